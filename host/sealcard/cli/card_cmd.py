"""`sealcard card`: one card's public data and whether it is genuine."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from sealcard.card.constants import Capability
from sealcard.card.encoding import CardStatus
from sealcard.card.session import SealcardSession
from sealcard.crypto.keys import PublicKey, fingerprint, public_key_pem
from sealcard.errors import ConfigurationError
from sealcard.formats.attestation import AttestationReport, CardPublicData
from sealcard.parties.provider import check_card, load_root_certificate, read_card_public_data
from sealcard.transport.pcsc import PcscConnection, list_readers, readers_with_card

ROOT_ENV = "SEALCARD_PROVIDER_ROOT"

reader_option = click.option(
    "--reader",
    "-r",
    metavar="NAME",
    help="PC/SC reader name (see `sealcard readers`). May be left out when one card is present.",
)
extended_option = click.option(
    "--extended/--chained",
    default=False,
    show_default=True,
    help="Send long data as one extended-length APDU, or as short chained APDUs "
    "(works with every reader).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def pick_reader(reader: str | None) -> str:
    """The reader named, or the only reader holding a card."""
    if reader is not None:
        return reader
    with_card = readers_with_card()
    if len(with_card) == 1:
        return with_card[0]
    if not with_card:
        known = list_readers()
        hint = f" Readers: {', '.join(known)}." if known else " No reader is attached."
        raise ConfigurationError(f"no card in any reader.{hint}")
    raise ConfigurationError(
        f"{len(with_card)} readers hold a card; pick one with --reader: {', '.join(with_card)}"
    )


@contextmanager
def open_session(
    reader: str | None, *, extended: bool = False, exclusive: bool = True
) -> Iterator[tuple[str, SealcardSession]]:
    """Connect to the card in `reader` (or the only card), select sealcard, yield the session."""
    name = pick_reader(reader)
    with PcscConnection.open(name, exclusive=exclusive) as connection:
        yield name, SealcardSession(connection, extended=extended)


def capability_names(capabilities: Capability) -> list[str]:
    return [f"CAP_{c.name}" for c in Capability if c in capabilities and c.name]


def status_json(status: CardStatus) -> dict[str, Any]:
    return {
        "serial": status.serial_hex,
        "state": status.state_name,
        "version": f"{status.version >> 8}.{status.version & 0xFF}",
        "capabilities": capability_names(status.capabilities),
    }


def key_json(key: PublicKey | None) -> dict[str, str] | None:
    if key is None:
        return None
    return {"pem": public_key_pem(key), "sha256": fingerprint(key)}


def cert_json(cert: x509.Certificate | None) -> dict[str, str] | None:
    if cert is None:
        return None
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "pem": cert.public_bytes(Encoding.PEM).decode("ascii"),
    }


def public_data_json(data: CardPublicData) -> dict[str, Any]:
    return {
        "device_public_key": key_json(data.device_public_key),
        "issuer_auth_public_key": key_json(data.issuer_auth_public_key),
        "issuer_public_key": key_json(data.issuer_public_key),
        "device_key_certificate": cert_json(data.device_key_certificate),
        "issuer_auth_key_certificate": cert_json(data.issuer_auth_key_certificate),
        "signed_device_key": None
        if data.signed_device_key is None
        else data.signed_device_key.hex(),
    }


def report_json(report: AttestationReport) -> dict[str, Any]:
    return {
        "genuine": report.genuine,
        "checks": [
            {"name": c.name, "outcome": c.outcome.value, "reason": c.reason} for c in report.checks
        ],
    }


def echo_public_data(data: CardPublicData) -> None:
    def line(label: str, value: str) -> None:
        click.echo(f"  {label:<32} {value}")

    for label, key in (
        ("device public key (RSA)", data.device_public_key),
        ("issuer auth public key (EC)", data.issuer_auth_public_key),
        ("issuer public key (EC)", data.issuer_public_key),
    ):
        line(label, "absent" if key is None else f"sha256:{fingerprint(key)[:32]}")
    for label, cert in (
        ("device key certificate", data.device_key_certificate),
        ("issuer auth key certificate", data.issuer_auth_key_certificate),
    ):
        line(label, "absent" if cert is None else cert.subject.rfc4514_string())
    sdk = data.signed_device_key
    line("signed device key", "absent" if sdk is None else f"{len(sdk)}-byte ECDSA signature")


def echo_report(report: AttestationReport) -> None:
    verdict = "GENUINE" if report.genuine else "NOT GENUINE"
    click.echo(f"attestation: {verdict}")
    for check in report.checks:
        click.echo(f"  [{check.outcome.value:>4}] {check.name}: {check.reason}")


@click.group(name="card")
def card() -> None:
    """Talk to one card: its public data, attestation and use."""


@card.command(name="info")
@reader_option
@click.option(
    "--root",
    "root_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help=f"Provider root certificate (PEM) to check the card against; default ${ROOT_ENV}.",
)
@extended_option
@json_option
def info(reader: str | None, root_path: Path | None, extended: bool, as_json: bool) -> None:
    """Show a card's public data and whether it is genuine.

    Reads serial, state, capabilities, both card public keys, the injected
    issuer key, the certificates and the signed device key. With a provider
    root (--root or $SEALCARD_PROVIDER_ROOT) it checks the whole attestation
    chain and explains every check; exit code 1 when the card is not genuine.

    Example: sealcard card info --root provider-ca/root.pem
    """
    if root_path is None and os.environ.get(ROOT_ENV):
        root_path = Path(os.environ[ROOT_ENV])
    root = load_root_certificate(root_path) if root_path is not None else None
    with open_session(reader, extended=extended, exclusive=False) as (name, session):
        if root is not None:
            data, report = check_card(session, root)
        else:
            data, report = read_card_public_data(session), None
        status = session.status
    if as_json:
        payload: dict[str, Any] = {"ok": True, "reader": name, **status_json(status)}
        payload.update(public_data_json(data))
        payload["attestation"] = None if report is None else report_json(report)
        click.echo(json.dumps(payload, indent=2))
    else:
        fields = status_json(status)
        click.echo(f"reader: {name}")
        click.echo(f"  {'serial':<32} {fields['serial'] or 'not set'}")
        click.echo(f"  {'state':<32} {fields['state']}")
        click.echo(f"  {'applet version':<32} {fields['version']}")
        click.echo(f"  {'capabilities':<32} {', '.join(fields['capabilities']) or 'none'}")
        echo_public_data(data)
        if report is None:
            click.echo("attestation: not checked (give --root ROOT.pem)")
        else:
            echo_report(report)
    if report is not None and not report.genuine:
        raise click.exceptions.Exit(1)
