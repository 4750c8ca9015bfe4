"""`sealcard card`: one card's public data and whether it is genuine."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from sealcard.card.constants import (
    HASH_LENGTH,
    PIN_MAX_LENGTH,
    PIN_MIN_LENGTH,
    PUK_MAX_LENGTH,
    PUK_MIN_LENGTH,
    Capability,
    State,
)
from sealcard.card.encoding import CardStatus, PinStatus, digits
from sealcard.card.errors import (
    BlockedError,
    InvalidPinError,
    NotFoundError,
    SecretFormatError,
    WrongStateError,
)
from sealcard.card.secp256k1 import point_bytes
from sealcard.card.session import SealcardSession
from sealcard.cli.common import (
    Decorator,
    emit,
    extended_option,
    fd_option,
    json_option,
    open_session,
    read_digits,
    read_fd,
    reader_option,
    require_root,
    root_option,
)
from sealcard.cli.outcome import CliFail
from sealcard.crypto.keys import PublicKey, fingerprint, public_key_pem
from sealcard.errors import ConfigurationError
from sealcard.formats.attestation import AttestationReport, CardPublicData, Check, Outcome
from sealcard.parties import bureau, user
from sealcard.parties.provider import check_card, load_root_certificate, read_card_public_data


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
@root_option()
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
    root = load_root_certificate(root_path) if root_path is not None else None
    with open_session(reader, extended=extended, exclusive=False) as (name, session):
        if root is not None:
            data, report = check_card(session, root)
        else:
            data, report = read_card_public_data(session), None
        status = session.status
    payload: dict[str, Any] = {"reader": name, **status_json(status)}
    payload.update(public_data_json(data))
    payload["attestation"] = None if report is None else report_json(report)
    genuine = report is None or report.genuine
    if as_json and genuine:
        click.echo(json.dumps({"ok": True, **payload}, indent=2))
    elif not as_json:
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
        raise not_genuine(report.checks, status.serial_hex, payload)


def not_genuine(checks: Sequence[Check], serial: str | None, payload: dict[str, Any]) -> CliFail:
    """Exit 1 for a card that failed its attestation, naming the first failed check."""
    failed = [c for c in checks if c.outcome == Outcome.FAIL]
    why = f"{failed[0].name}: {failed[0].reason}" if failed else "a check did not pass"
    return CliFail(
        f"card {serial or '(no serial)'} is NOT GENUINE: {why}",
        kind="NotGenuine",
        payload=payload,
    )


# ---- issue 3: personalization and use -----------------------------------------------------------
#
# PINs and PUKs come from a hidden prompt or from a file descriptor the caller
# opened (`--pin-fd 3 3<pin.txt`, or a pipe), never from argv or the
# environment, and are never printed.


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
        "user_key_present": status.user_key_present,
    }


def _emit(as_json: bool, payload: dict[str, Any], text: str) -> None:
    emit(as_json, payload, text, indent=2)


@contextmanager
def pin_errors(
    session: SealcardSession, *, puk: bool = False, choosing: bool = False
) -> Iterator[None]:
    """Turn a refused PIN/PUK or a card in the wrong state into one clear sentence and exit 1.

    The sentence depends on the card's state (not personalized yet, terminated, no PIN set,
    user key wiped); it never contains the value tried.
    """
    label = "PUK" if puk else "PIN"
    try:
        yield
    except InvalidPinError as exc:
        tries = exc.tries_remaining
        message = f"wrong {label}: {tries} {'try' if tries == 1 else 'tries'} left"
        if tries == 0 and not puk:
            message += "; the PIN is now blocked (unblock it: sealcard card pin unblock)"
        elif tries == 0:
            message += "; the PUK is now blocked and the user key is wiped for good"
        raise CliFail(message, kind="InvalidPinError", payload={"tries_remaining": tries}) from exc
    except BlockedError as exc:
        if puk:
            message = "the PUK is blocked; the user key is wiped for good"
        else:
            message = "the PIN is blocked; unblock it with the PUK: sealcard card pin unblock"
        raise CliFail(message, kind="BlockedError") from exc
    except WrongStateError as exc:
        raise CliFail(state_refusal(session, choosing=choosing), kind=type(exc).__name__) from exc


def state_refusal(session: SealcardSession, *, choosing: bool = False) -> str:
    """Why a card in its present state refused a PIN command or SIGN HASH, in one sentence."""
    status = session.refresh_status()
    card_name = f"card {status.serial_hex or '(no serial)'}"
    if status.state in (State.BLANK, State.INITIALIZED):
        return (
            f"{card_name} is {status.state_name}: it has no user key and no PIN until it is "
            "personalized (sealcard card personalize)"
        )
    if status.state == State.TERMINATED:
        return f"{card_name} was terminated by its issuer: it no longer takes a PIN or signs"
    pins = session.pin_status()
    if pins.user_key_present is False:
        return f"{card_name}: {USER_KEY_GONE}"
    if choosing and pins.pin_set:
        return f"{card_name} already has a PIN: change it with sealcard card pin change"
    if not pins.pin_set:
        return f"{card_name} has no PIN yet: choose one with sealcard card pin set"
    return f"{card_name} ({status.state_name}) refused the command in its present state"


USER_KEY_GONE = (
    "the user key is gone (wiped when the PUK was blocked): this card can no longer sign; "
    "the funds stay reachable through the issuer (ask for a new card)"
)


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
        for value, kind, low, high in (
            (pin, "PIN", PIN_MIN_LENGTH, PIN_MAX_LENGTH),
            (puk, "PUK", PUK_MIN_LENGTH, PUK_MAX_LENGTH),
        ):
            try:
                digits(value, kind, low, high)
            except SecretFormatError as exc:
                raise click.BadParameter(
                    f"{exc}; file descriptor {bureau_pin_fd} gave something else",
                    param_hint="--bureau-pin-fd",
                ) from None
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
    """Show whether a PIN is set, how many PIN and PUK tries are left, and whether the card
    still holds its user key (a blocked PUK wipes it for good)."""
    with open_session(reader, exclusive=False) as (_name, session):
        status = session.pin_status()
        card_status = session.status
    text = (
        f"PIN set: {'yes' if status.pin_set else 'no'}; PIN tries left: "
        f"{status.pin_tries_remaining}; PUK tries left: {status.puk_tries_remaining}"
    )
    if card_status.state == State.PERSONALIZED and status.user_key_present is False:
        text += f"\nuser key: GONE: {USER_KEY_GONE}"
    elif card_status.state != State.PERSONALIZED:
        text += f"\ncard state: {card_status.state_name} (no user key)"
    _emit(as_json, {"state": card_status.state_name, **_pin_status_json(status)}, text)


@pin_group.command(name="verify")
@reader_option()
@_fd_option("--pin-fd", "PIN")
@json_option()
def pin_verify(reader: str | None, pin_fd: int | None, as_json: bool) -> None:
    """Check the PIN (a wrong PIN costs one of 3 tries).

    Example: sealcard card pin verify --pin-fd 3 3<pin.txt
    """
    secret = read_digits(pin_fd, "PIN", option="--pin-fd")
    with open_session(reader) as (_name, session), pin_errors(session):
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
    old = read_digits(pin_fd, "current PIN", option="--pin-fd")
    new = read_digits(new_pin_fd, "new PIN", option="--new-pin-fd", confirm=True)
    with open_session(reader) as (_name, session), pin_errors(session):
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
    puk = read_digits(puk_fd, "PUK", option="--puk-fd", kind="PUK")
    new = read_digits(new_pin_fd, "new PIN", option="--new-pin-fd", confirm=True)
    with open_session(reader) as (_name, session), pin_errors(session, puk=True):
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
    new = read_digits(new_pin_fd, "new PIN", option="--new-pin-fd", confirm=True)
    puk = read_digits(puk_fd, "new PUK", option="--puk-fd", kind="PUK", confirm=True)
    with open_session(reader) as (_name, session), pin_errors(session, choosing=True):
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
        try:
            info_ = user.user_key_info(session, bitcoin_hrp="tb" if testnet else "bc")
        except NotFoundError as exc:
            raise CliFail(no_user_key(session.status), kind="NoUserKey") from exc
    payload = {
        "compressed": info_.compressed_hex,
        "uncompressed": info_.uncompressed_hex,
        "ethereum_address": info_.ethereum_address,
        "bitcoin_p2wpkh_address": info_.bitcoin_p2wpkh_address,
    }
    text = "\n".join(f"{k:<24} {v}" for k, v in payload.items())
    _emit(as_json, payload, text)


def no_user_key(status: CardStatus) -> str:
    """Why a card shows no user public key, by its state."""
    card_name = f"card {status.serial_hex or '(no serial)'}"
    if status.state in (State.BLANK, State.INITIALIZED):
        return (
            f"{card_name} is {status.state_name}: it holds no user key until it is "
            "personalized (sealcard card personalize)"
        )
    return (
        f"{card_name} ({status.state_name}) does not show its user public key: its platform "
        "cannot compute it (docs/apdu.md); recover it from a signature (sealcard card sign)"
    )


def _hash_arg(value: str) -> bytes:
    expected = f"a hash is {HASH_LENGTH} bytes ({2 * HASH_LENGTH} hex digits)"
    try:
        raw = bytes.fromhex(value.removeprefix("0x"))
    except ValueError:
        raise click.BadParameter(f"not hex; {expected}", param_hint="--hash") from None
    if len(raw) != HASH_LENGTH:
        raise click.BadParameter(expected, param_hint="--hash")
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
    secret = read_digits(pin_fd, "PIN", option="--pin-fd")
    with open_session(reader) as (_name, session), pin_errors(session):
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
@root_option()
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
    root = load_root_certificate(require_root(root_path))
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
    if not result.genuine:
        raise CliFail(
            f"card {payload['serial'] or '(no serial)'} is NOT GENUINE: {result.reason}",
            kind="NotGenuine",
            payload=payload,
        )
    _emit(as_json, payload, f"GENUINE: {result.reason}")
