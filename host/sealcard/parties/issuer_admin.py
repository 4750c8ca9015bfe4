"""The issuer talking to a card it issued (claim 14): commands signed with the card's
private device authentication key, which the issuer-system HSM keeps wrapped in the records
and unwraps only to sign one command.

The card gives a fresh challenge; the issuer signs challenge, serial and command in the HSM;
the card checks the signature with the public device authentication key from its sealed blob.
"""

from __future__ import annotations

from typing import Protocol

from sealcard.card.encoding import Secret
from sealcard.card.session import IssuerSigner, SealcardSession
from sealcard.errors import SealcardError
from sealcard.issuer.lifecycle import OrderState, check_transition
from sealcard.issuer.records import Records


class WrappedKeySigner(Protocol):
    """What the issuer-system HSM offers here (`sealcard.hsm.system_hsm.DeviceAuthKeys`)."""

    def sign(self, wrapped: bytes, data: bytes) -> bytes: ...


class UnknownCardError(SealcardError):
    """The card in the reader was not issued from these records."""


def _signer_for(
    session: SealcardSession, records: Records, keys: WrappedKeySigner
) -> tuple[bytes, int, IssuerSigner]:
    serial = session.refresh_status().serial
    if serial is None:
        raise UnknownCardError("the card reports no serial")
    try:
        order = records.order_for_card(serial)
        wrapped = records.sealed_output(order.id).device_auth_wrapped_key
    except SealcardError as exc:
        raise UnknownCardError(
            f"card {serial.hex().upper()} has no sealed order in these records"
        ) from exc

    def sign(message: bytes) -> bytes:
        return keys.sign(wrapped, message)

    return serial, order.id, sign


def reset_pin(
    session: SealcardSession, records: Records, keys: WrappedKeySigner, new_pin: Secret
) -> None:
    """Issuer-assisted PIN reset: the card takes the new PIN and fills both retry counters."""
    serial, order_id, sign = _signer_for(session, records, keys)
    session.issuer_reset_pin(new_pin, sign)
    records.audit("card.pin_reset_by_issuer", order_id=order_id, card_serial=serial)


def terminate(session: SealcardSession, records: Records, keys: WrappedKeySigner) -> None:
    """Terminate the card for good: the card wipes the user key and refuses all use; its
    order becomes `terminated` (checked before the card is touched, so records and card
    never disagree)."""
    serial, order_id, sign = _signer_for(session, records, keys)
    order = records.get_order(order_id)
    if order.state is not OrderState.TERMINATED:
        check_transition(order_id, order.state, OrderState.TERMINATED)
    session.issuer_terminate(sign)
    records.audit("card.terminated_by_issuer", order_id=order_id, card_serial=serial)
    if order.state is not OrderState.TERMINATED:
        records.mark_terminated(order_id, note="terminated in the issuer's reader")
