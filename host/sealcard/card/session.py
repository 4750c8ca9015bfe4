"""`SealcardSession`: one method per applet command, pyca key objects in and out."""

from __future__ import annotations

from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from sealcard.card.constants import (
    AID_APPLET,
    CLA_PROPRIETARY,
    MAX_CERT_LENGTH,
    RANDOM_SERIAL_LENGTH,
    SERIAL_MAX_LENGTH,
    SERIAL_MIN_LENGTH,
    SW_FILE_NOT_FOUND,
    Capability,
    CertRef,
    DataObject,
    Ins,
    KeyRef,
    SerialMode,
    State,
)
from sealcard.card.encoding import (
    CardStatus,
    decode_ec_point,
    decode_rsa_public_key,
    decode_status,
    encode_ec_point,
)
from sealcard.card.errors import (
    CardResponseError,
    NotFoundError,
    NotSealcardError,
    typed_apdu_error,
)
from sealcard.transport.apdu import EXTENDED_MAX_LE, SHORT_MAX_LE
from sealcard.transport.connection import Connection, CountingConnection, TrafficCount
from sealcard.transport.errors import ApduError
from sealcard.transport.protocol import SmartCardProtocol

LE_SHORT: Final = SHORT_MAX_LE
LE_LONG: Final = EXTENDED_MAX_LE - 1
"""Extended Le FFFF: jCardSim reads an extended Le of 0000 as 0 (docs/apdu.md)."""


class SealcardSession:
    """A selected sealcard applet on one connection.

    Selects the applet in `__init__` (NotSealcardError when the card has
    none) and keeps the SELECT answer in `status`. `extended=True` sends long
    data as one extended-length APDU; otherwise (the default, any reader)
    commands are chained and long answers fetched with GET RESPONSE. All
    traffic is counted in `traffic`.
    """

    def __init__(self, connection: Connection, *, extended: bool = False) -> None:
        self.connection = CountingConnection(connection)
        self.protocol = SmartCardProtocol(self.connection, extended=extended)
        self.status: CardStatus = self.select()

    # ---- plumbing ------------------------------------------------------------------------

    @property
    def traffic(self) -> TrafficCount:
        return self.connection.count

    @property
    def extended(self) -> bool:
        return self.protocol.extended

    @extended.setter
    def extended(self, value: bool) -> None:
        self.protocol.extended = value

    def _send(
        self, what: str, ins: Ins, p1: int = 0, p2: int = 0, data: bytes = b"", *, le: int = 0
    ) -> bytes:
        try:
            return self.protocol.send(CLA_PROPRIETARY, ins, p1, p2, data, le=le)
        except ApduError as exc:
            raise typed_apdu_error(exc, what) from exc

    # ---- SELECT and status --------------------------------------------------------------------

    def select(self) -> CardStatus:
        """SELECT the applet; parse and remember version, state, capabilities, serial."""
        try:
            answer = self.protocol.select(AID_APPLET)
        except ApduError as exc:
            if exc.sw == SW_FILE_NOT_FOUND:
                raise NotSealcardError("the card has no sealcard applet") from exc
            raise typed_apdu_error(exc, "SELECT sealcard applet") from exc
        self.status = decode_status(answer)
        return self.status

    def refresh_status(self) -> CardStatus:
        """Read the status again (GET DATA DO_STATUS) and remember it."""
        self.status = decode_status(self.get_data(DataObject.STATUS))
        return self.status

    @property
    def state(self) -> State | int:
        return self.status.state

    @property
    def capabilities(self) -> Capability:
        return self.status.capabilities

    @property
    def version(self) -> int:
        return self.status.version

    # ---- initialization commands (step A) ----------------------------------------------------

    def generate_key_pair(self, key: KeyRef) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
        """GENERATE KEY PAIR: the card makes the pair; return its public key."""
        if key == KeyRef.DEVICE:
            return self.generate_device_key()
        if key == KeyRef.ISSUER_AUTH:
            return self.generate_issuer_auth_key()
        raise ValueError(f"unknown key reference {key!r}")

    def generate_device_key(self) -> rsa.RSAPublicKey:
        """GENERATE KEY PAIR KEY_DEVICE (RSA-2048)."""
        answer = self._send(
            "GENERATE KEY PAIR DEVICE", Ins.GENERATE_KEY_PAIR, KeyRef.DEVICE, le=LE_LONG
        )
        return decode_rsa_public_key(answer)

    def generate_issuer_auth_key(self) -> ec.EllipticCurvePublicKey:
        """GENERATE KEY PAIR KEY_ISSUER_AUTH (EC P-256)."""
        answer = self._send(
            "GENERATE KEY PAIR ISSUER_AUTH", Ins.GENERATE_KEY_PAIR, KeyRef.ISSUER_AUTH, le=LE_SHORT
        )
        return decode_ec_point(answer)

    def set_serial(self, serial: bytes) -> None:
        """SET SERIAL SERIAL_GIVEN: store `serial` (4 to 16 bytes)."""
        if not SERIAL_MIN_LENGTH <= len(serial) <= SERIAL_MAX_LENGTH:
            raise ValueError(
                f"a serial is {SERIAL_MIN_LENGTH} to {SERIAL_MAX_LENGTH} bytes, got {len(serial)}"
            )
        self._send("SET SERIAL", Ins.SET_SERIAL, SerialMode.GIVEN, data=serial)
        self.status = CardStatus(self.version, self.state, self.capabilities, bytes(serial))

    def generate_serial(self) -> bytes:
        """SET SERIAL SERIAL_RANDOM: the card draws an 8-byte serial; return it."""
        serial = self._send("SET SERIAL RANDOM", Ins.SET_SERIAL, SerialMode.RANDOM, le=LE_SHORT)
        if len(serial) != RANDOM_SERIAL_LENGTH:
            raise CardResponseError(f"random serial is {len(serial)} bytes, expected 8")
        self.status = CardStatus(self.version, self.state, self.capabilities, serial)
        return serial

    def put_issuer_key(self, key: ec.EllipticCurvePublicKey) -> None:
        """PUT ISSUER KEY: inject the issuer's public key (EC P-256)."""
        self._send("PUT ISSUER KEY", Ins.PUT_ISSUER_KEY, data=encode_ec_point(key))

    def put_certificate(self, ref: CertRef, certificate: x509.Certificate | bytes) -> None:
        """PUT CERTIFICATE: store a DER certificate (chained or extended, per `extended`)."""
        der = (
            certificate.public_bytes(Encoding.DER)
            if isinstance(certificate, x509.Certificate)
            else bytes(certificate)
        )
        if len(der) > MAX_CERT_LENGTH:
            raise ValueError(f"certificate is {len(der)} bytes; the card stores {MAX_CERT_LENGTH}")
        self._send(f"PUT CERTIFICATE {ref.name}", Ins.PUT_CERTIFICATE, ref, data=der)

    def sign_device_key(self) -> bytes:
        """SIGN DEVICE KEY: the card signs its device key; return the DER ECDSA signature."""
        return self._send("SIGN DEVICE KEY", Ins.SIGN_DEVICE_KEY, le=LE_SHORT)

    def close_initialization(self) -> None:
        """CLOSE INITIALIZATION: BLANK -> INITIALIZED, for good."""
        self._send("CLOSE INITIALIZATION", Ins.CLOSE_INITIALIZATION)
        self.status = CardStatus(self.version, State.INITIALIZED, self.capabilities, self.serial)

    # ---- reading public data ------------------------------------------------------------------

    def get_data(self, obj: DataObject) -> bytes:
        """GET DATA: the raw value of a public object (NotFoundError when absent)."""
        return self._send(f"GET DATA {obj.name}", Ins.GET_DATA, obj >> 8, obj & 0xFF, le=LE_LONG)

    def _optional(self, obj: DataObject) -> bytes | None:
        try:
            return self.get_data(obj)
        except NotFoundError:
            return None

    @property
    def serial(self) -> bytes | None:
        """The serial as of the last SELECT / status read / SET SERIAL (None: not set)."""
        return self.status.serial

    def read_serial(self) -> bytes | None:
        """GET DATA DO_SERIAL (None when no serial is set)."""
        return self._optional(DataObject.SERIAL)

    def device_public_key(self) -> rsa.RSAPublicKey | None:
        raw = self._optional(DataObject.DEVICE_PUBLIC_KEY)
        return None if raw is None else decode_rsa_public_key(raw)

    def issuer_auth_public_key(self) -> ec.EllipticCurvePublicKey | None:
        raw = self._optional(DataObject.ISSUER_AUTH_PUBLIC_KEY)
        return None if raw is None else decode_ec_point(raw)

    def issuer_public_key(self) -> ec.EllipticCurvePublicKey | None:
        raw = self._optional(DataObject.ISSUER_PUBLIC_KEY)
        return None if raw is None else decode_ec_point(raw)

    def _certificate(self, obj: DataObject) -> x509.Certificate | None:
        raw = self._optional(obj)
        if raw is None:
            return None
        try:
            return x509.load_der_x509_certificate(raw)
        except ValueError as exc:
            raise CardResponseError(f"{obj.name} is not a DER certificate: {exc}") from exc

    def device_key_certificate(self) -> x509.Certificate | None:
        return self._certificate(DataObject.DEVICE_KEY_CERT)

    def issuer_auth_key_certificate(self) -> x509.Certificate | None:
        return self._certificate(DataObject.ISSUER_AUTH_KEY_CERT)

    def signed_device_key(self) -> bytes | None:
        return self._optional(DataObject.SIGNED_DEVICE_KEY)
