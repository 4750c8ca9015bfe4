"""What the issuer takes in from the provider and hands to the bureau and the mailer.

The signed and encrypted pack file between provider and issuer (CSV in CMS) and the other
party files belong to the file-format issue. Until then the issuer takes its stock from the
initialized cards themselves (each one's attestation checked against the provider root), and
hands over plain folders: one sealed blob per card for the bureau (a blob is already encrypted
to its card and signed by the issuer HSM) and one PIN letter per card for the mailer (CMS,
already encrypted to the mailer and signed).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sealcard.card.constants import State
from sealcard.formats.attestation import AttestationReport, CardPublicData
from sealcard.issuer.errors import IssuerError
from sealcard.issuer.lifecycle import OrderState
from sealcard.issuer.records import CardInit, Records

BLOB_SUFFIX = ".blob"
LETTER_SUFFIX = ".p7m"
EXPORT_LIMIT = 1_000_000


class CardIntakeError(IssuerError):
    """A card cannot join the issuer's stock (not genuine, not closed, or not for this issuer)."""


def _spki(key: object) -> bytes:
    public_bytes = getattr(key, "public_bytes", None)
    if public_bytes is None:
        raise CardIntakeError("the card reported no such public key")
    der: bytes = public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return der


def card_init_from_public_data(
    data: CardPublicData,
    report: AttestationReport,
    issuer_public_key: ec.EllipticCurvePublicKey,
) -> CardInit:
    """A verified stock record from a card's public data, or CardIntakeError saying why not."""
    serial = data.serial.hex().upper() if data.serial else "?"
    if not report.genuine:
        reasons = "; ".join(f"{f.name}: {f.reason}" for f in report.failures)
        raise CardIntakeError(f"card {serial} is not genuine: {reasons}")
    if data.state != State.INITIALIZED:
        raise CardIntakeError(f"card {serial} is not closed (state {data.state:#04x})")
    if data.serial is None:
        raise CardIntakeError("card has no serial")
    ours = issuer_public_key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    theirs = (
        data.issuer_public_key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        if data.issuer_public_key is not None
        else b""
    )
    if theirs != ours:
        raise CardIntakeError(f"card {serial} holds another issuer's public key")

    def der(cert: x509.Certificate | None) -> bytes | None:
        return None if cert is None else cert.public_bytes(Encoding.DER)

    return CardInit(
        serial=data.serial,
        device_public_key_der=_spki(data.device_public_key),
        issuer_auth_public_key_der=_spki(data.issuer_auth_public_key),
        device_key_cert=der(data.device_key_certificate),
        issuer_auth_cert=der(data.issuer_auth_key_certificate),
        signed_device_key=data.signed_device_key,
        verified=True,
    )


def _write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary name, then rename: a crash leaves the old file or the new one."""
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(path)


@dataclass(frozen=True)
class ExportReport:
    """Files written for the bureau and the mailer, and the orders moved to sent_to_bureau."""

    blobs: list[Path]
    letters: list[Path]
    orders: list[int]


def export_for_bureau(
    records: Records,
    blob_dir: Path,
    letter_dir: Path | None,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> ExportReport:
    """Write every sealed bureau order's blob (and PIN letter) and mark the order sent to the
    bureau; also the PIN letters of activation orders whose card took its blob (`personalized`,
    written again at each export until the mailer's report moves them on).

    Files are written before the order moves, so an interrupted export is simply run again:
    the orders still `sealed` are written again (same bytes) and moved. Activation orders are
    never sent to the bureau: their blob went to the customer's computer.
    """
    blob_dir.mkdir(parents=True, exist_ok=True)
    if letter_dir is not None:
        letter_dir.mkdir(parents=True, exist_ok=True)
    orders = records.list_orders(OrderState.SEALED, limit=EXPORT_LIMIT, channel="bureau")
    report = ExportReport([], [], [])
    if letter_dir is not None:  # activation orders: the card has its blob, the mailer the letter
        for order in records.list_orders(
            OrderState.PERSONALIZED, limit=EXPORT_LIMIT, channel="activation"
        ):
            output = records.sealed_output(order.id)
            if output.pin_letter is not None:
                path = letter_dir / f"{output.card_serial.hex().upper()}{LETTER_SUFFIX}"
                _write_atomically(path, output.pin_letter)
                report.letters.append(path)
    for done, order in enumerate(orders, start=1):
        output = records.sealed_output(order.id)
        name = output.card_serial.hex().upper()
        blob_path = blob_dir / f"{name}{BLOB_SUFFIX}"
        _write_atomically(blob_path, output.sealed_blob)
        report.blobs.append(blob_path)
        if output.pin_letter is not None and letter_dir is not None:
            letter_path = letter_dir / f"{name}{LETTER_SUFFIX}"
            _write_atomically(letter_path, output.pin_letter)
            report.letters.append(letter_path)
        records.advance_order(order.id, OrderState.SENT_TO_BUREAU)
        report.orders.append(order.id)
        if progress is not None:
            progress(done, len(orders))
    return report


@dataclass(frozen=True)
class BureauResult:
    """One line of the bureau's result data."""

    serial: bytes
    personalized: bool
    reason: str


def apply_bureau_results(records: Records, results: Iterable[BureauResult]) -> dict[str, int]:
    """Move each order sent to the bureau to personalized or failed, by card serial.

    A serial the issuer did not send (or already settled) is counted as `unknown` and changes
    nothing, so applying the same result file twice is harmless.
    """
    waiting = {
        order.card_serial: order
        for order in records.list_orders(OrderState.SENT_TO_BUREAU, limit=EXPORT_LIMIT)
        if order.card_serial is not None
    }
    counts = {"personalized": 0, "failed": 0, "unknown": 0}
    for result in results:
        order = waiting.pop(result.serial, None)
        if order is None:
            counts["unknown"] += 1
            continue
        if result.personalized:
            records.advance_order(order.id, OrderState.PERSONALIZED)
            counts["personalized"] += 1
        else:
            records.advance_order(order.id, OrderState.FAILED, note=result.reason[:200])
            counts["failed"] += 1
    return counts
