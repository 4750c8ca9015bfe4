"""`SealcardSession`: one method per applet command, pyca key objects in and out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from sealcard.card.constants import (
    AID_APPLET,
    CHALLENGE_LENGTH,
    CHANGE_P1_INITIAL,
    CHANGE_P1_OLD_AND_NEW,
    CLA_ISO7816,
    CLA_PROPRIETARY,
    HASH_LENGTH,
    INTERNAL_AUTH_CHALLENGE_MAX,
    INTERNAL_AUTH_CHALLENGE_MIN,
    MAX_CERT_LENGTH,
    PIN_MAX_LENGTH,
    PIN_MIN_LENGTH,
    PIN_REF_USER,
    PSO_P1P2_SIGN,
    PUK_MAX_LENGTH,
    PUK_MIN_LENGTH,
    RANDOM_SERIAL_LENGTH,
    SERIAL_MAX_LENGTH,
    SERIAL_MIN_LENGTH,
    SW_FILE_NOT_FOUND,
    TAG_PIN,
    TAG_PUK,
    Capability,
    CertRef,
    DataObject,
    Ins,
    IssuerCommand,
    KeyRef,
    SerialMode,
    State,
)
from sealcard.card.encoding import (
    AppletPlatform,
    CardStatus,
    PinStatus,
    Secret,
    decode_ec_point,
    decode_pin_status,
    decode_platform,
    decode_rsa_public_key,
    decode_status,
    digits,
    encode_ec_point,
    encode_tlv,
    issuer_command_message,
)
from sealcard.card.errors import (
    ISSUER_COMMAND_ERRORS,
    PERSONALIZE_ERRORS,
    SIGN_ERRORS,
    VERIFY_ERRORS,
    CardResponseError,
    IncorrectParametersError,
    InvalidPinError,
    NotFoundError,
    NotSealcardError,
    typed_apdu_error,
)
from sealcard.card.secp256k1 import decode_user_public_key
from sealcard.transport.apdu import EXTENDED_MAX_LE, SHORT_MAX_LE
from sealcard.transport.connection import Connection, CountingConnection, TrafficCount
from sealcard.transport.errors import ApduError
from sealcard.transport.protocol import SmartCardProtocol

IssuerSigner = Callable[[bytes], bytes]
"""Signs a message with the issuer's private device authentication key: DER ECDSA P-256 SHA-256."""

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
        self,
        what: str,
        ins: Ins,
        p1: int = 0,
        p2: int = 0,
        data: bytes = b"",
        *,
        le: int = 0,
        cla: int = CLA_PROPRIETARY,
        errors: dict[int, type[ApduError]] | None = None,
        secret: bool = False,
    ) -> bytes:
        """Send one command; a non-9000 SW becomes the typed error (never with `data` in it).

        `secret`: the data holds a PIN or PUK (the --debug trace then hides even its length).
        """
        try:
            if secret:
                with self.protocol.secret():
                    return self.protocol.send(cla, ins, p1, p2, data, le=le)
            return self.protocol.send(cla, ins, p1, p2, data, le=le)
        except ApduError as exc:
            raise typed_apdu_error(exc, what, errors) from exc

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

    # ---- personalization (issue 3) -----------------------------------------------------------

    def put_pin_puk(self, pin: Secret, puk: Secret) -> None:
        """PUT PIN PUK: the bureau's PIN and PUK (FIG. 2), staged until PERSONALIZE.

        If the blob then carries its own PIN and PUK (FIG. 5), the blob's win.
        """
        data = _pin_tlv(pin) + _puk_tlv(puk)
        self._send("PUT PIN PUK", Ins.PUT_PIN_PUK, data=data, secret=True)

    def personalize(self, blob: bytes) -> CardStatus:
        """PERSONALIZE: hand the card its sealed blob (docs/sealed-blob.md); INITIALIZED -> P.

        Sent as one extended APDU or as a chain of short ones (per `extended`).
        Refusals are typed: WrongStateError (not initialized or done already),
        BlobMalformedError, WrongCardError, BadSignatureError, BlobDataInvalidError;
        the card is unchanged after any of them.
        """
        self._send("PERSONALIZE", Ins.PERSONALIZE, data=bytes(blob), errors=PERSONALIZE_ERRORS)
        self.status = CardStatus(self.version, State.PERSONALIZED, self.capabilities, self.serial)
        return self.status

    # ---- PIN and PUK ------------------------------------------------------------------------

    def verify_pin(self, pin: Secret) -> None:
        """VERIFY: InvalidPinError(tries_remaining), BlockedError, PinNotSetError."""
        self._send(
            "VERIFY",
            Ins.VERIFY,
            0,
            PIN_REF_USER,
            _pin(pin),
            cla=CLA_ISO7816,
            errors=VERIFY_ERRORS,
            secret=True,
        )

    def pin_verified(self) -> bool:
        """VERIFY without data: whether the PIN is verified in this card session."""
        try:
            self._send("VERIFY (status)", Ins.VERIFY, 0, PIN_REF_USER, cla=CLA_ISO7816)
        except InvalidPinError:
            return False
        return True

    def platform(self) -> AppletPlatform | None:
        """GET DATA DO_PLATFORM: JavaCard version and free memory (None: an older applet)."""
        try:
            return decode_platform(self.get_data(DataObject.PLATFORM))
        except IncorrectParametersError:
            return None

    def pin_status(self) -> PinStatus:
        """GET DATA DO_PIN_STATUS: PIN set, PIN tries left, PUK tries left."""
        return decode_pin_status(self.get_data(DataObject.PIN_STATUS))

    def change_pin(self, old_pin: Secret, new_pin: Secret) -> None:
        """CHANGE REFERENCE DATA P1=00: old PIN, new PIN (a wrong old PIN costs a try)."""
        data = _pin_tlv(old_pin) + _pin_tlv(new_pin)
        self._send(
            "CHANGE REFERENCE DATA",
            Ins.CHANGE_REFERENCE_DATA,
            CHANGE_P1_OLD_AND_NEW,
            PIN_REF_USER,
            data,
            cla=CLA_ISO7816,
            secret=True,
        )

    def set_initial_pin_puk(self, pin: Secret, puk: Secret) -> None:
        """CHANGE REFERENCE DATA P1=01: the user chooses PIN and PUK (only while none is set)."""
        data = _pin_tlv(pin) + _puk_tlv(puk)
        self._send(
            "CHANGE REFERENCE DATA (initial)",
            Ins.CHANGE_REFERENCE_DATA,
            CHANGE_P1_INITIAL,
            PIN_REF_USER,
            data,
            cla=CLA_ISO7816,
            secret=True,
        )

    def unblock_pin(self, puk: Secret, new_pin: Secret) -> None:
        """RESET RETRY COUNTER: unblock with the PUK and set a new PIN.

        InvalidPinError(tries_remaining) for a wrong PUK; BlockedError when the
        PUK is (or just became) blocked: the user key is then wiped for good.
        """
        data = _puk_tlv(puk) + _pin_tlv(new_pin)
        self._send(
            "RESET RETRY COUNTER",
            Ins.RESET_RETRY_COUNTER,
            0,
            PIN_REF_USER,
            data,
            cla=CLA_ISO7816,
            secret=True,
        )

    # ---- use ------------------------------------------------------------------------------------

    def user_public_key(self) -> ec.EllipticCurvePublicKey:
        """GET DATA DO_USER_PUBLIC_KEY: the user's secp256k1 public key."""
        return decode_user_public_key(self.get_data(DataObject.USER_PUBLIC_KEY))

    def sign_hash(self, hash32: bytes) -> bytes:
        """SIGN HASH: ECDSA secp256k1 over a 32-byte hash, DER, low S (PIN verified first).

        PinNotVerifiedError without a verified PIN. Check the answer with
        sealcard.card.secp256k1.recoverable_signature (libsecp256k1).
        """
        if len(hash32) != HASH_LENGTH:
            raise ValueError(f"SIGN HASH takes a {HASH_LENGTH}-byte hash, got {len(hash32)}")
        return self._send(
            "SIGN HASH",
            Ins.SIGN_HASH,
            PSO_P1P2_SIGN >> 8,
            PSO_P1P2_SIGN & 0xFF,
            bytes(hash32),
            le=LE_SHORT,
            cla=CLA_ISO7816,
            errors=SIGN_ERRORS,
        )

    def get_challenge(self) -> bytes:
        """GET CHALLENGE: a fresh 16-byte challenge for the next ISSUER COMMAND."""
        answer = self._send(
            "GET CHALLENGE", Ins.GET_CHALLENGE, le=CHALLENGE_LENGTH, cla=CLA_ISO7816
        )
        if len(answer) != CHALLENGE_LENGTH:
            raise CardResponseError(f"challenge is {len(answer)} bytes, expected 16")
        return answer

    def internal_authenticate(self, challenge: bytes) -> bytes:
        """INTERNAL AUTHENTICATE: the card signs `challenge` with its issuer authentication key.

        Returns the DER signature; check it with
        sealcard.formats.attestation.verify_internal_authenticate against the
        *certified* key (sealcard.parties.user.authenticate_card does both).
        """
        if not INTERNAL_AUTH_CHALLENGE_MIN <= len(challenge) <= INTERNAL_AUTH_CHALLENGE_MAX:
            raise ValueError(
                f"a challenge is {INTERNAL_AUTH_CHALLENGE_MIN} to "
                f"{INTERNAL_AUTH_CHALLENGE_MAX} bytes, got {len(challenge)}"
            )
        return self._send(
            "INTERNAL AUTHENTICATE",
            Ins.INTERNAL_AUTHENTICATE,
            data=bytes(challenge),
            le=LE_SHORT,
            cla=CLA_ISO7816,
        )

    # ---- issuer-authenticated commands ----------------------------------------------------------

    def issuer_command_message(self, kind: IssuerCommand, body: bytes, challenge: bytes) -> bytes:
        """The exact bytes the issuer signs for ISSUER COMMAND `kind` after `challenge`."""
        serial = self.serial
        if serial is None:
            raise CardResponseError("the card reports no serial")
        return issuer_command_message(serial, challenge, Ins.ISSUER_COMMAND, kind, 0, body)

    def send_issuer_command(self, kind: IssuerCommand, body: bytes, signature: bytes) -> None:
        """ISSUER COMMAND with a ready signature (the card's last challenge is consumed).

        IssuerSignatureError (bad signature), NoChallengeError (no fresh
        challenge, or wrong state), WrongDataError (body malformed).
        """
        if len(body) > 0xFF:
            raise ValueError("an issuer command body is at most 255 bytes")
        data = bytes((len(body),)) + body + signature
        self._send(
            f"ISSUER COMMAND {kind.name}",
            Ins.ISSUER_COMMAND,
            kind,
            0,
            data,
            errors=ISSUER_COMMAND_ERRORS,
            secret=True,
        )

    def issuer_command(self, kind: IssuerCommand, body: bytes, signer: IssuerSigner) -> None:
        """GET CHALLENGE, have `signer` sign the command message, send ISSUER COMMAND."""
        challenge = self.get_challenge()
        signature = signer(self.issuer_command_message(kind, body, challenge))
        self.send_issuer_command(kind, body, signature)

    def issuer_reset_pin(self, new_pin: Secret, signer: IssuerSigner) -> None:
        """Issuer-assisted PIN reset: new PIN, PIN and PUK counters full."""
        self.issuer_command(IssuerCommand.RESET_PIN, _pin_tlv(new_pin), signer)

    def issuer_terminate(self, signer: IssuerSigner) -> CardStatus:
        """Terminate the card for good: the user key is wiped, state TERMINATED."""
        self.issuer_command(IssuerCommand.TERMINATE, b"", signer)
        self.status = CardStatus(self.version, State.TERMINATED, self.capabilities, self.serial)
        return self.status


def _pin(value: Secret) -> bytes:
    return digits(value, "PIN", PIN_MIN_LENGTH, PIN_MAX_LENGTH)


def _pin_tlv(value: Secret) -> bytes:
    return encode_tlv(TAG_PIN, _pin(value))


def _puk_tlv(value: Secret) -> bytes:
    return encode_tlv(TAG_PUK, digits(value, "PUK", PUK_MIN_LENGTH, PUK_MAX_LENGTH))
