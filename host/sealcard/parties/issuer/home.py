"""Opening the issuer system from its home folder: records, and on request the two HSM roles
(the issuer-system token in this process, the issuer HSM service over its socket).

The CLI and `sealcard issuer serve` both start here, so neither opens records, tokens or the
HSM client itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from sealcard.issuer.config import IssuerHome, load_home
from sealcard.issuer.records import Records
from sealcard.parties.issuer.context import (
    DeviceAuthKeyService,
    IssuerContext,
    Policy,
    SealService,
)


def open_records(home_dir: Path | None, actor: str | None = None) -> tuple[IssuerHome, Records]:
    """The issuer home and its records (schema current; actor from the config unless given)."""
    home = load_home(home_dir)
    return home, Records.open(home.database_url, actor or home.default_actor())


@dataclass(frozen=True)
class HsmRoles:
    """The issuer-system HSM (device authentication keys), the issuer HSM service's client,
    and the issuer key it vouches for."""

    auth_keys: DeviceAuthKeyService
    hsm: SealService
    issuer_public_key: ec.EllipticCurvePublicKey


@contextmanager
def open_hsm_roles(home: IssuerHome, *, sessions: int = 4) -> Iterator[HsmRoles]:
    """Log in to the issuer-system token (`sessions` PKCS#11 sessions) and connect to the
    issuer HSM service; both closed when the block ends."""
    from sealcard.hsm.config import load_settings
    from sealcard.hsm.issuer_client import IssuerHsmClient
    from sealcard.hsm.system_hsm import DeviceAuthKeys, RequestSigner
    from sealcard.hsm.token import Token

    settings = load_settings(home.root, home.raw_config())
    token = Token.open(settings.system, pool_size=sessions)
    try:
        client = IssuerHsmClient.for_settings(settings, RequestSigner(token))
        try:
            yield HsmRoles(DeviceAuthKeys(token), client, client.issuer_public_key())
        finally:
            client.close()
    finally:
        token.close()


@contextmanager
def open_issuer(
    home_dir: Path | None,
    *,
    with_hsm: bool = False,
    actor: str | None = None,
    provider_roots: Sequence[x509.Certificate] = (),
    policy: Policy | None = None,
) -> Iterator[IssuerContext]:
    """An IssuerContext over the home's records; `with_hsm` also logs in to the
    issuer-system token and connects to the issuer HSM service (activation, issuer commands).
    Everything is closed when the block ends."""
    home, records = open_records(home_dir, actor)
    with ExitStack() as stack:
        stack.callback(records.close)
        ctx = IssuerContext(records, provider_roots=provider_roots, policy=policy or Policy())
        if with_hsm:
            roles = stack.enter_context(open_hsm_roles(home))
            ctx.auth_keys = roles.auth_keys
            ctx.hsm = roles.hsm
            ctx.issuer_public_key = roles.issuer_public_key
        yield ctx
