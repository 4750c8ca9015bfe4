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

from sealcard.card.constants import HASH_LENGTH, Capability
from sealcard.card.encoding import CardStatus, PinStatus
from sealcard.card.errors import BlockedError, InvalidPinError, PinNotSetError
from sealcard.card.secp256k1 import point_bytes
from sealcard.cli.common import (
    Decorator,
    emit,
    emit_error,
    extended_option,
    fd_option,
    json_option,
    open_session,
    read_fd,
    read_secret,
    reader_option,
)
from sealcard.crypto.keys import PublicKey, fingerprint, public_key_pem
from sealcard.errors import ConfigurationError
from sealcard.formats.attestation import AttestationReport, CardPublicData
from sealcard.parties import bureau, user
from sealcard.parties.provider import check_card, load_root_certificate, read_card_public_data

ROOT_ENV = "SEALCARD_PROVIDER_ROOT"


def _root_or_env(root_path: Path | None) -> Path | None:
    """The --root given, else $SEALCARD_PROVIDER_ROOT when set and not empty, else None."""
    if root_path is None and os.environ.get(ROOT_ENV):
        return Path(os.environ[ROOT_ENV])
    return root_path


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
@reader_option()
@click.option(
    "--root",
    "root_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help=f"Provider root certificate (PEM) to check the card against; default ${ROOT_ENV}.",
)
@extended_option()
@json_option()
def info(reader: str | None, root_path: Path | None, extended: bool, as_json: bool) -> None:
    """Show a card's public data and whether it is genuine.

    Reads serial, state, capabilities, both card public keys, the injected
    issuer key, the certificates and the signed device key. With a provider
    root (--root or $SEALCARD_PROVIDER_ROOT) it checks the whole attestation
    chain and explains every check; exit code 1 when the card is not genuine.

    Example: sealcard card info --root provider-ca/root.pem
    """
    root_path = _root_or_env(root_path)
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


# ---- issue 3: personalization and use -----------------------------------------------------------
#
# PINs and PUKs come from a hidden prompt or from a file descriptor the caller
# opened (`--pin-fd 3 3<pin.txt`, or a pipe), never from argv or the
# environment, and are never printed.


def _root_option() -> Decorator:
    return click.option(
        "--root",
        "root_path",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help=f"Provider root certificate (PEM); default ${ROOT_ENV}.",
    )


def _fd_option(name: str, what: str) -> Decorator:
    return fd_option(
        name,
        f"Read the {what} from file descriptor N (e.g. `{name} 3 3<file`) instead of a "
        "prompt. Never pass secrets on the command line.",
    )


def _pin_status_json(status: PinStatus) -> dict[str, Any]:
    return {
        "pin_set": status.pin_set,
        "pin_tries_remaining": status.pin_tries_remaining,
        "puk_tries_remaining": status.puk_tries_remaining,
        "pin_blocked": status.pin_blocked,
        "puk_blocked": status.puk_blocked,
    }


def _emit(as_json: bool, payload: dict[str, Any], text: str) -> None:
    emit(as_json, payload, text, indent=2)


@contextmanager
def pin_errors(as_json: bool, *, puk: bool = False) -> Iterator[None]:
    """Turn a refused PIN/PUK into a clear message and exit code 1 (never the value tried)."""
    label = "PUK" if puk else "PIN"
    try:
        yield
    except InvalidPinError as exc:
        tries = exc.tries_remaining
        message = f"wrong {label}: {tries} {'try' if tries == 1 else 'tries'} left"
        if tries == 0 and not puk:
            message += "; the PIN is now blocked (unblock it: sealcard card pin unblock)"
        _fail(as_json, "InvalidPinError", message, tries_remaining=tries)
    except BlockedError:
        if puk:
            message = "the PUK is blocked; the user key is wiped for good"
        else:
            message = "the PIN is blocked; unblock it with the PUK: sealcard card pin unblock"
        _fail(as_json, "BlockedError", message)
    except PinNotSetError:
        _fail(as_json, "PinNotSetError", "no PIN is set yet: choose one with sealcard card pin set")


def _fail(as_json: bool, kind: str, message: str, **extra: Any) -> None:
    emit_error(message, as_json=as_json, kind=kind, **extra)
    raise click.exceptions.Exit(1)


@card.command(name="personalize")
@click.option(
    "--blob",
    "blob_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The sealed blob for this card (docs/sealed-blob.md), as made by the issuer HSM.",
)
@reader_option()
@click.option(
    "--bureau-pin-fd",
    type=click.IntRange(min=0),
    metavar="N",
    help="FIG. 2 variant: read the bureau's PIN and PUK from file descriptor N, two lines "
    "(PIN, then PUK); they are staged on the card before the blob. A PIN inside the blob wins.",
)
@extended_option()
@json_option()
def personalize(
    blob_path: Path,
    reader: str | None,
    bureau_pin_fd: int | None,
    extended: bool,
    as_json: bool,
) -> None:
    """Personalize an INITIALIZED card with its sealed blob (step Q).

    Checks that the blob names this card's serial, optionally stages the
    bureau's PIN and PUK, then sends the blob. The card verifies the
    issuer's signature before it decrypts; any refusal (malformed, other
    card, bad signature, undecryptable) leaves it unchanged.

    \b
    Examples:
      sealcard card personalize --blob 5EA1CA4D00000001.blob
      sealcard card personalize --blob card.blob --bureau-pin-fd 3 3<pin-puk.txt
    """
    blob = blob_path.read_bytes()
    pin = puk = None
    if bureau_pin_fd is not None:
        lines = read_fd(bureau_pin_fd, "bureau PIN and PUK").splitlines()
        if len(lines) != 2:  # a PIN line and a PUK line
            raise ConfigurationError("--bureau-pin-fd needs two lines: the PIN, then the PUK")
        pin, puk = lines[0].strip(), lines[1].strip()
    with open_session(reader, extended=extended) as (name, session):
        result = bureau.personalize_card(session, blob, bureau_pin=pin, bureau_puk=puk)
    key = point_bytes(result.user_public_key, compressed=True).hex()
    payload = {
        "reader": name,
        **status_json(result.status),
        "user_public_key": key,
        "pin": _pin_status_json(result.pin_status),
        "bureau_pin_staged": result.bureau_pin_staged,
        "seconds": round(result.seconds, 4),
        "apdus": result.traffic.apdus,
        "bytes": result.traffic.total_bytes,
    }
    pin_text = "PIN set" if result.pin_status.pin_set else "no PIN yet (the user chooses one)"
    _emit(
        as_json,
        payload,
        f"card {result.status.serial_hex} personalized on {name}: user key {key}; {pin_text}",
    )


@card.group(name="pin")
def pin_group() -> None:
    """The user's PIN and PUK: verify, change, unblock, choose, status.

    PIN and PUK are read from a hidden prompt, or from a file descriptor
    (--pin-fd N, --puk-fd N, --new-pin-fd N); never from the command line.
    """


@pin_group.command(name="status")
@reader_option()
@json_option()
def pin_status(reader: str | None, as_json: bool) -> None:
    """Show whether a PIN is set and how many PIN and PUK tries are left."""
    with open_session(reader, exclusive=False) as (_name, session):
        status = session.pin_status()
    text = (
        f"PIN set: {'yes' if status.pin_set else 'no'}; PIN tries left: "
        f"{status.pin_tries_remaining}; PUK tries left: {status.puk_tries_remaining}"
    )
    _emit(as_json, _pin_status_json(status), text)


@pin_group.command(name="verify")
@reader_option()
@_fd_option("--pin-fd", "PIN")
@json_option()
def pin_verify(reader: str | None, pin_fd: int | None, as_json: bool) -> None:
    """Check the PIN (a wrong PIN costs one of 3 tries).

    Example: sealcard card pin verify --pin-fd 3 3<pin.txt
    """
    secret = read_secret(pin_fd, "PIN")
    with open_session(reader) as (_name, session), pin_errors(as_json):
        session.verify_pin(secret)
        status = session.pin_status()
    _emit(as_json, {"verified": True, **_pin_status_json(status)}, "PIN correct")


@pin_group.command(name="change")
@reader_option()
@_fd_option("--pin-fd", "current PIN")
@_fd_option("--new-pin-fd", "new PIN")
@json_option()
def pin_change(
    reader: str | None, pin_fd: int | None, new_pin_fd: int | None, as_json: bool
) -> None:
    """Change the PIN (needs the current one; a wrong one costs a try)."""
    old = read_secret(pin_fd, "current PIN")
    new = read_secret(new_pin_fd, "new PIN", confirm=True)
    with open_session(reader) as (_name, session), pin_errors(as_json):
        session.change_pin(old, new)
    _emit(as_json, {"changed": True}, "PIN changed")


@pin_group.command(name="unblock")
@reader_option()
@_fd_option("--puk-fd", "PUK")
@_fd_option("--new-pin-fd", "new PIN")
@json_option()
def pin_unblock(
    reader: str | None, puk_fd: int | None, new_pin_fd: int | None, as_json: bool
) -> None:
    """Unblock the PIN with the PUK and set a new PIN.

    A wrong PUK costs one of 5 tries; when the PUK blocks, the card wipes
    the user key for good.
    """
    puk = read_secret(puk_fd, "PUK")
    new = read_secret(new_pin_fd, "new PIN", confirm=True)
    with open_session(reader) as (_name, session), pin_errors(as_json, puk=True):
        session.unblock_pin(puk, new)
        status = session.pin_status()
    _emit(as_json, {"unblocked": True, **_pin_status_json(status)}, "PIN unblocked and set")


@pin_group.command(name="set")
@reader_option()
@_fd_option("--new-pin-fd", "new PIN")
@_fd_option("--puk-fd", "new PUK")
@json_option()
def pin_set(reader: str | None, new_pin_fd: int | None, puk_fd: int | None, as_json: bool) -> None:
    """Choose the first PIN and PUK (user-system flow: only when the card has none yet)."""
    new = read_secret(new_pin_fd, "new PIN", confirm=True)
    puk = read_secret(puk_fd, "new PUK", confirm=True)
    with open_session(reader) as (_name, session):
        session.set_initial_pin_puk(new, puk)
    _emit(as_json, {"set": True}, "PIN and PUK set")


@card.command(name="pubkey")
@reader_option()
@click.option("--testnet", is_flag=True, help="Bitcoin testnet address (tb1...) instead of bc1.")
@json_option()
def pubkey(reader: str | None, testnet: bool, as_json: bool) -> None:
    """Show the user's public key (secp256k1) and its addresses.

    Compressed and uncompressed hex, the Ethereum address (EIP-55) and the
    Bitcoin native segwit (P2WPKH) address. No PIN needed.
    """
    with open_session(reader, exclusive=False) as (_name, session):
        info_ = user.user_key_info(session, bitcoin_hrp="tb" if testnet else "bc")
    payload = {
        "compressed": info_.compressed_hex,
        "uncompressed": info_.uncompressed_hex,
        "ethereum_address": info_.ethereum_address,
        "bitcoin_p2wpkh_address": info_.bitcoin_p2wpkh_address,
    }
    text = "\n".join(f"{k:<24} {v}" for k, v in payload.items())
    _emit(as_json, payload, text)


def _hash_arg(value: str) -> bytes:
    try:
        raw = bytes.fromhex(value.removeprefix("0x"))
    except ValueError:
        raise click.BadParameter("not hex") from None
    if len(raw) != HASH_LENGTH:
        raise click.BadParameter(f"a hash is {HASH_LENGTH} bytes ({2 * HASH_LENGTH} hex digits)")
    return raw


@card.command(name="sign")
@click.option(
    "--hash",
    "hash_hex",
    required=True,
    metavar="HEX",
    help="The 32-byte hash to sign (64 hex digits), e.g. a transaction's sighash.",
)
@reader_option()
@_fd_option("--pin-fd", "PIN")
@json_option()
def sign(hash_hex: str, reader: str | None, pin_fd: int | None, as_json: bool) -> None:
    """Sign a 32-byte hash with the user key (ECDSA secp256k1, low S).

    Verifies the PIN, has the card sign, then checks the signature with
    libsecp256k1 against the card's public key and finds the recovery id.
    Prints DER, r, s, the low-S check and the recovery id (Ethereum v = 27 + id).

    Example: sealcard card sign --hash 9f86d0...0a08 --pin-fd 3 3<pin.txt
    """
    digest = _hash_arg(hash_hex)
    secret = read_secret(pin_fd, "PIN")
    with open_session(reader) as (_name, session), pin_errors(as_json):
        result = user.sign_hash(session, digest, secret)
    payload = {
        "hash": digest.hex(),
        "der": result.der.hex(),
        "r": f"{result.r:064x}",
        "s": f"{result.s:064x}",
        "low_s": result.low_s,
        "recovery_id": result.recovery_id,
        "ethereum_v": result.ethereum_v,
        "verified_by": "libsecp256k1",
    }
    text = "\n".join(f"{k:<12} {v}" for k, v in payload.items())
    _emit(as_json, payload, text)


@card.command(name="authenticate")
@_root_option()
@reader_option()
@json_option()
def authenticate(root_path: Path | None, reader: str | None, as_json: bool) -> None:
    """Prove the card is genuine: attestation chain plus a fresh challenge (INTERNAL AUTHENTICATE).

    Checks the card's certificates against the provider root, sends a random
    32-byte challenge and verifies the card's signature with the issuer
    authentication key from the root-signed certificate. Exit code 1 when
    the card is not genuine.

    Example: sealcard card authenticate --root provider-ca/root.pem
    """
    root_path = _root_or_env(root_path)
    if root_path is None:
        raise ConfigurationError(
            f"give the provider root certificate: --root ROOT.pem or ${ROOT_ENV}"
        )
    root = load_root_certificate(root_path)
    with open_session(reader, exclusive=False) as (name, session):
        result = user.authenticate_card(session, root)
    payload = {
        "reader": name,
        "serial": None if result.card.serial is None else result.card.serial.hex().upper(),
        "genuine": result.genuine,
        "reason": result.reason,
        "challenge": result.challenge.hex(),
        "signature": result.signature.hex(),
        "attestation": report_json(result.attestation),
    }
    if as_json:
        click.echo(json.dumps({"ok": result.genuine, **payload}, indent=2))
    else:
        click.echo(f"{'GENUINE' if result.genuine else 'NOT GENUINE'}: {result.reason}")
    if not result.genuine:
        raise click.exceptions.Exit(1)
