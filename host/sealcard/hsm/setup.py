"""`sealcard issuer hsm init` as a library call: tokens, keys, seed, configuration.

    setup_hsms(home)                      two SoftHSM tokens (issuer HSM, issuer-system HSM)
    setup_hsms(home, separate_tokens=False)   one token for both roles
    setup_hsms(home, seed_mnemonics=[...])    restore the seed from SLIP-39 shares instead

The seed is generated inside the token (this process never sees it); with shares, this
process combines them and stores the seed (a disaster-recovery ceremony on the HSM host).
``python -m sealcard.hsm.setup --home DIR [--single-token] [--restore]`` runs the same in a
fresh process (mnemonics, one per line, on stdin for --restore).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from sealcard.errors import SealcardError
from sealcard.hsm.config import DEFAULT_SERVICE_USER, IssuerHsmSettings, save_settings
from sealcard.hsm.hardening import (
    HardeningError,
    ServiceAccount,
    grant_service_access,
    service_paths,
)
from sealcard.hsm.issuer_keys import provision_issuer_token
from sealcard.hsm.softhsm import init_softhsm
from sealcard.hsm.system_hsm import AuditKey, DeviceAuthKeys, RequestSigner
from sealcard.hsm.token import Token

ISSUER_TOKEN_LABEL = "sealcard-issuer"  # noqa: S105 - a label, not a secret
SYSTEM_TOKEN_LABEL = "sealcard-system"  # noqa: S105 - a label
SHARED_TOKEN_LABEL = "sealcard-hsm"  # noqa: S105 - a label

log = logging.getLogger("sealcard.hsm.setup")


def setup_hsms(
    home: Path,
    *,
    separate_tokens: bool = True,
    module_path: str | None = None,
    seed_mnemonics: Sequence[str] | None = None,
    request_public_key_pem: bytes | None = None,
    service_user: str = DEFAULT_SERVICE_USER,
    socket_group: str | None = None,
) -> IssuerHsmSettings:
    """Create and provision the HSM tokens of an issuer home; append their config sections.

    ``request_public_key_pem`` names another issuer system's request key (e.g. when an HSM is
    restored for an existing issuer system); by default the new system token's key is used.
    ``service_user`` is the issuer HSM service's own Unix user, ``socket_group`` a group that
    may connect to its socket (an issuer system that runs as another user; docs/hsm.md).
    """
    labels = [ISSUER_TOKEN_LABEL, SYSTEM_TOKEN_LABEL] if separate_tokens else [SHARED_TOKEN_LABEL]
    configs = init_softhsm(home, labels, module_path)
    issuer_cfg = configs[labels[0]]
    system_cfg = configs[labels[-1]]
    settings = IssuerHsmSettings(
        issuer=issuer_cfg,
        system=system_cfg,
        socket_path=home / "run" / "issuer-hsm.sock",
        request_public_key=home / "hsm" / "request-key.pem",
        issuer_certificate=home / "hsm" / "issuer-cert.pem",
        service_user=service_user,
        socket_group=socket_group,
    )
    issuer_token = Token.open(issuer_cfg, pool_size=1)
    try:
        provision_issuer_token(issuer_token, settings.issuer_certificate, seed_mnemonics)
    finally:
        issuer_token.close()
    system_token = Token.open(system_cfg, pool_size=1)
    try:
        signer = RequestSigner(system_token)
        signer.ensure_key()
        DeviceAuthKeys(system_token).ensure_kek()
        audit_key = AuditKey(system_token)
        audit_key.ensure_key()
        write_audit_key_pem(home, audit_key)
        pem = request_public_key_pem or signer.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    finally:
        system_token.close()
    settings.request_public_key.parent.mkdir(parents=True, exist_ok=True)
    settings.request_public_key.write_bytes(pem)
    save_settings(home, settings)
    if os.geteuid() == 0:  # hand the issuer HSM's files to the service's own user
        try:
            account = ServiceAccount.named(settings.service_user)
        except HardeningError as exc:
            log.warning("%s; the issuer HSM service cannot start until it exists", exc)
        else:
            grant_service_access(
                service_paths(home.resolve(), settings), account, settings.socket_group
            )
    return settings


def audit_key_path(home: Path) -> Path:
    """Where the issuer home keeps the audit key's public half (docs/audit.md)."""
    return home / "hsm" / "audit-key.pem"


def write_audit_key_pem(home: Path, audit_key: AuditKey) -> Path:
    """Write the audit key's public half to the home (the default key of `audit verify`)."""
    path = audit_key_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        audit_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sealcard.hsm.setup")
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--single-token", action="store_true")
    parser.add_argument("--restore", action="store_true", help="SLIP-39 shares on stdin")
    parser.add_argument("--request-key", type=Path, help="PEM of the issuer system's key")
    args = parser.parse_args(argv)
    mnemonics = None
    if args.restore:
        mnemonics = [line.strip() for line in sys.stdin if line.strip()]
    try:
        setup_hsms(
            args.home,
            separate_tokens=not args.single_token,
            seed_mnemonics=mnemonics,
            request_public_key_pem=args.request_key.read_bytes() if args.request_key else None,
        )
    except (SealcardError, OSError) as exc:
        logging.basicConfig()
        log.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
