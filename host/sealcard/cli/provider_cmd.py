"""`sealcard provider`: the card provider's root CA and step A on blank cards."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click
from cryptography.hazmat.primitives.serialization import Encoding

from sealcard.cli.card_cmd import cert_json, key_json, status_json
from sealcard.cli.common import (
    Decorator,
    emit,
    extended_option,
    json_option,
    open_session,
    reader_option,
    readers_option,
)
from sealcard.cli.party_cmd import batch_id_option, finish, pick_readers, readers_count_option
from sealcard.crypto.keys import load_p256_public_key
from sealcard.errors import ConfigurationError
from sealcard.parties.provider import (
    PASSPHRASE_ENV,
    ROOT_CERT_FILE,
    ROOT_KEY_FILE,
    ProviderCA,
    initialize_card,
    passphrase_from_env,
)

CA_DIR_ENV = "SEALCARD_PROVIDER_CA_DIR"
DEFAULT_CA_DIR = "provider-ca"
MAX_PASSPHRASE_BYTES = 4096

passphrase_fd_option = click.option(
    "--passphrase-fd",
    type=int,
    metavar="FD",
    help=f"Read the CA passphrase from this file descriptor (first line). Otherwise "
    f"${PASSPHRASE_ENV}, otherwise a prompt. Never give it on the command line.",
)


def read_passphrase(fd: int | None, *, confirm: bool) -> bytes:
    """The passphrase from a file descriptor, the environment, or a hidden prompt."""
    if fd is not None:
        try:
            raw = os.read(fd, MAX_PASSPHRASE_BYTES)
        except OSError as exc:
            raise ConfigurationError(f"cannot read the passphrase from fd {fd}") from exc
        return raw.split(b"\n", 1)[0].rstrip(b"\r")
    from_env = passphrase_from_env()
    if from_env is not None:
        return from_env
    text: str = click.prompt(
        "provider CA passphrase", hide_input=True, confirmation_prompt=confirm, err=True
    )
    return text.encode("utf-8")


ca_dir_option = click.option(
    "--ca-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=lambda: os.environ.get(CA_DIR_ENV, DEFAULT_CA_DIR),
    show_default=f"${CA_DIR_ENV} or ./{DEFAULT_CA_DIR}",
    help="Provider CA directory (from `sealcard provider ca init`).",
)


@click.group(name="provider")
def provider() -> None:
    """Card provider: root CA and card initialization (step A)."""


@provider.group(name="ca")
def ca_group() -> None:
    """The provider's root CA that certifies every card it initializes."""


@ca_group.command(name="init")
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help=f"Directory for {ROOT_CERT_FILE} (public) and {ROOT_KEY_FILE} (encrypted, mode 0600).",
)
@click.option("--name", default="sealcard provider root CA", show_default=True, help="Root CN.")
@click.option("--organisation", default="sealcard card provider", show_default=True, help="Root O.")
@passphrase_fd_option
@json_option()
def ca_init(
    out_dir: Path, name: str, organisation: str, passphrase_fd: int | None, as_json: bool
) -> None:
    """Create the provider root CA: an EC P-256 key and its self-signed certificate.

    The private key is written only as encrypted PKCS#8 under a passphrase
    (from --passphrase-fd, $SEALCARD_PROVIDER_PASSPHRASE, or a prompt; at
    least 8 characters). Existing files are never overwritten. Publish
    root.pem: anyone checks a card's genuineness with it
    (`sealcard card info --root root.pem`).

    Example: sealcard provider ca init --out-dir provider-ca
    """
    passphrase = read_passphrase(passphrase_fd, confirm=True)
    ca = ProviderCA.create(out_dir, passphrase, common_name=name, organisation=organisation)
    cert_path = out_dir / ROOT_CERT_FILE
    if as_json:
        payload = {
            "ok": True,
            "root_certificate": str(cert_path),
            "root_key": str(out_dir / ROOT_KEY_FILE),
            "subject": ca.certificate.subject.rfc4514_string(),
            "not_after": ca.certificate.not_valid_after_utc.isoformat(),
            "pem": ca.certificate.public_bytes(Encoding.PEM).decode("ascii"),
        }
        click.echo(json.dumps(payload, indent=2))
    else:
        click.echo(f"root CA created: {ca.certificate.subject.rfc4514_string()}")
        click.echo(f"  certificate  {cert_path} (publish it)")
        click.echo(f"  private key  {out_dir / ROOT_KEY_FILE} (encrypted, keep it safe)")


@provider.command(name="init-card")
@reader_option()
@click.option(
    "--issuer-key",
    "issuer_key_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The issuer's public key, EC P-256 (PEM, DER or a raw 65-byte point), injected into "
    "the card.",
)
@click.option(
    "--serial",
    metavar="HEX",
    help="Card serial, 4 to 16 bytes as hex (e.g. 00A1B2C3D4E5F607). Default: the card draws "
    "8 random bytes.",
)
@ca_dir_option
@click.option(
    "--device-cert/--no-device-cert",
    default=True,
    show_default=True,
    help="Root-sign the device key (X.509 leaf).",
)
@click.option(
    "--signed-device-key/--no-signed-device-key",
    default=True,
    show_default=True,
    help="Have the card sign its device key with its issuer authentication key.",
)
@extended_option()
@passphrase_fd_option
@json_option()
def init_card(
    reader: str | None,
    issuer_key_path: Path,
    serial: str | None,
    ca_dir: Path,
    device_cert: bool,
    signed_device_key: bool,
    extended: bool,
    passphrase_fd: int | None,
    as_json: bool,
) -> None:
    """Initialize one blank card (step A) and close its initialization.

    On the card: generate the device key pair (RSA-2048) and the issuer
    authentication key pair (EC P-256), set the serial, inject the issuer's
    public key, store the root-signed X.509 certificates of both public keys
    (serial in the subject) and the card-signed device key, check the whole
    chain against the root, then close: nothing of this can change afterwards.

    Example: sealcard provider init-card --reader "Virtual PCD 00 00"
    --issuer-key issuer.pub.pem --serial 0000000000000001
    """
    serial_bytes = None
    if serial is not None:
        try:
            serial_bytes = bytes.fromhex(serial)
        except ValueError as exc:
            raise click.BadParameter("not hex", param_hint="--serial") from exc
    try:
        issuer_key = load_p256_public_key(issuer_key_path.read_bytes())
    except (ValueError, TypeError) as exc:
        raise click.BadParameter(str(exc), param_hint="--issuer-key") from exc
    ca = ProviderCA.load(ca_dir, read_passphrase(passphrase_fd, confirm=False))
    with open_session(reader, extended=extended) as (name, session):
        result = initialize_card(
            session,
            ca,
            issuer_key,
            serial_bytes,
            certify_device_key=device_cert,
            sign_device_key=signed_device_key,
        )
    traffic = result.traffic
    if as_json:
        payload: dict[str, Any] = {"ok": True, "reader": name, **status_json(result.status)}
        payload.update(
            {
                "device_public_key": key_json(result.device_public_key),
                "issuer_auth_public_key": key_json(result.issuer_auth_public_key),
                "device_key_certificate": cert_json(result.device_key_certificate),
                "issuer_auth_key_certificate": cert_json(result.issuer_auth_key_certificate),
                "signed_device_key": None
                if result.signed_device_key is None
                else result.signed_device_key.hex(),
                "keygen_seconds": round(result.keygen_seconds, 4),
                "total_seconds": round(result.total_seconds, 4),
                "apdus": traffic.apdus,
                "bytes_sent": traffic.bytes_sent,
                "bytes_received": traffic.bytes_received,
            }
        )
        click.echo(json.dumps(payload, indent=2))
    else:
        click.echo(f"card in {name!r} initialized and closed")
        click.echo(f"  serial  {result.serial.hex().upper()}")
        click.echo(f"  state   {result.status.state_name}")
        click.echo(
            f"  took    {result.total_seconds:.3f} s (key generation {result.keygen_seconds:.3f} s)"
        )
        click.echo(
            f"  traffic {traffic.apdus} APDUs, {traffic.bytes_sent} bytes out, "
            f"{traffic.bytes_received} bytes in"
        )


# -- sealed files: keys, parties, a whole pack ------------------------------------------------


def _provider_keys_export(home_option: Decorator) -> click.Command:
    @click.command(name="export")
    @home_option
    @ca_dir_option
    @click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
    @json_option()
    def keys_export(home: Path | None, ca_dir: Path, out: Path, as_json: bool) -> None:
        """Write the provider's certificate file for the issuer: the party certificate and the
        root CA certificate that every card's attestation chains to."""
        from sealcard.cli.party_cmd import bundle_json
        from sealcard.formats.party_csv import Role
        from sealcard.parties.party_home import export_bundle, load_home
        from sealcard.parties.provider import load_root_certificate

        root = load_root_certificate(ca_dir / ROOT_CERT_FILE)
        bundle = export_bundle(load_home(Role.PROVIDER, home), root)
        out.write_bytes(bundle.pem())
        emit(as_json, {"out": str(out), **bundle_json(bundle)}, f"certificate file {out}")

    return keys_export


def _register_party_groups() -> None:
    from sealcard.cli.party_cmd import make_keys_group, make_party_group
    from sealcard.formats.party_csv import Role

    provider.add_command(
        make_keys_group(Role.PROVIDER, (Role.ISSUER,), extra_export=_provider_keys_export)
    )
    provider.add_command(make_party_group(Role.PROVIDER, (Role.ISSUER,)))


_register_party_groups()


@provider.command(name="init-pack")
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The provider's home (default: $SEALCARD_PROVIDER_HOME, else ./provider-home).",
)
@batch_id_option("--pack", "pack", "Pack id, e.g. PACK-2026-0001 (letters, digits, . _ -).")
@readers_count_option()
@readers_option("Only this reader (repeat). Default: every reader holding a card.")
@click.option(
    "--issuer",
    "issuer_name",
    default=None,
    help="The registered issuer to send the pack to (default: the only one).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The pack file (default: HOME/outbox/device-init-PACK.p7m).",
)
@ca_dir_option
@extended_option()
@passphrase_fd_option
@json_option()
def init_pack(
    home: Path | None,
    pack: str,
    readers_mode: str,
    readers: tuple[str, ...],
    issuer_name: str | None,
    out: Path | None,
    ca_dir: Path,
    extended: bool,
    passphrase_fd: int | None,
    as_json: bool,
) -> None:
    """Initialize every blank card present, all readers at once, and write the pack file.

    Step A on each blank card (keys made on the card, serial, the issuer's key from its
    certificate file, root-signed certificates, closed), then the device initialization
    data file for the issuer: CSV in CMS, signed by the provider, encrypted to the issuer.
    Run it again with the same --pack to add the cards of another round (or after an
    interruption): cards already in the pack are kept, and the file is written anew with
    all of them.

    \b
    Example:
      sealcard provider init-pack --pack PACK-1 --readers all --out device-init-PACK-1.p7m
    """
    from sealcard.formats.party_csv import Role
    from sealcard.parties.party_home import open_party
    from sealcard.parties.provider_pack import ReaderOutcome
    from sealcard.parties.provider_pack import init_pack as run_init_pack

    names = pick_readers(readers_mode, readers)
    ca = ProviderCA.load(ca_dir, read_passphrase(passphrase_fd, confirm=False))
    with open_party(Role.PROVIDER, home) as party:
        issuer = party.peer(Role.ISSUER, issuer_name)
        target = out or party.home.root / "outbox" / f"device-init-{pack}.p7m"
        target.parent.mkdir(parents=True, exist_ok=True)

        def show(outcome: ReaderOutcome) -> None:
            if not as_json:
                serial = outcome.serial.hex().upper() if outcome.serial else "?"
                click.echo(
                    f"{outcome.outcome:20} {serial:18} {outcome.reader}: {outcome.reason}", err=True
                )

        report = run_init_pack(
            party, ca, pack, names, issuer, target, extended=extended, on_card=show
        )
    failed = [o for o in report.outcomes if o.outcome == "failed"]
    payload = {
        "pack": report.pack,
        "file": str(report.path),
        "file_id": report.file_id,
        "cards": report.cards,
        "issuer": issuer.name,
        "readers": [
            {
                "reader": o.reader,
                "serial": o.serial.hex().upper() if o.serial else None,
                "outcome": o.outcome,
                "reason": o.reason,
                "seconds": round(o.seconds, 3),
            }
            for o in report.outcomes
        ],
    }
    finish(
        as_json,
        not failed,
        payload,
        f"pack {report.pack}: {report.cards} cards in {report.path} (for issuer {issuer.name})",
        f"{len(failed)} reader(s) failed; their cards are not in the pack",
    )
