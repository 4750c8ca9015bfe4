"""A Python model of the sealcard applet (docs/apdu.md), for unit tests without a simulator.

It is a test double, written from the contract, so unit tests can drive the
host library end to end; the real applet is tested through PC/SC in tests/sim.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import coincurve
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sealcard.card import constants as c
from sealcard.crypto import sealed_blob
from sealcard.formats.attestation import signed_device_key_message

SW_FILE_NOT_FOUND = c.SW_FILE_NOT_FOUND
SHORT_LE = 256
MAX_CHUNK = 255


class CardError(Exception):
    def __init__(self, sw: int) -> None:
        self.sw = sw


def _tlv(tag: int, value: bytes) -> bytes:
    n = len(value)
    if n < 0x80:
        length = bytes([n])
    elif n <= 0xFF:
        length = bytes([0x81, n])
    else:
        length = bytes([0x82]) + n.to_bytes(2, "big")
    return bytes([tag]) + length + value


def _rsa_tlv(key: rsa.RSAPublicKey) -> bytes:
    n = key.public_numbers()
    return _tlv(0x81, n.n.to_bytes(256, "big")) + _tlv(0x82, n.e.to_bytes(3, "big"))


@dataclass
class FakeSealcard:
    """Implements SELECT, GET RESPONSE and every step A command of docs/apdu.md."""

    state: int = c.STATE_BLANK
    capabilities: int = c.CAP_EXTENDED_LENGTH | c.CAP_TRNG
    selected: bool = False
    serial: bytes | None = None
    device_key: rsa.RSAPrivateKey | None = None
    auth_key: ec.EllipticCurvePrivateKey | None = None
    issuer_key: bytes | None = None
    certs: dict[int, bytes] = field(default_factory=dict)
    signed_device_key: bytes | None = None
    pending: bytes = b""
    chain: tuple[int, int, int] | None = None
    chain_buffer: bytearray = field(default_factory=bytearray)
    log: list[bytes] = field(default_factory=list)
    rsa_key_source: list[rsa.RSAPrivateKey] = field(default_factory=list)
    # issue 3: persistent
    staged_pin: bytes | None = None
    staged_puk: bytes | None = None
    pin: bytes | None = None
    puk: bytes | None = None
    pin_tries: int = c.PIN_TRY_LIMIT
    puk_tries: int = c.PUK_TRY_LIMIT
    user_key: bytes | None = None
    device_auth_key: bytes | None = None
    # issue 3: transient (lost on reset)
    pin_verified: bool = False
    challenge: bytes | None = None

    def power_cycle(self) -> None:
        """A card reset: selection, PIN verification, challenge, open chain and answer are lost."""
        self.selected = False
        self.pin_verified = False
        self.challenge = None
        self.chain = None
        self.chain_buffer = bytearray()
        self.pending = b""

    # ---- the Connection protocol -----------------------------------------------------------

    def send_and_receive(self, apdu: bytes) -> tuple[bytes, int]:
        self.log.append(apdu)
        try:
            cla, ins, p1, p2, data, le, extended = self._parse(apdu)
            if ins != c.INS_GET_RESPONSE:
                pending_was, self.pending = self.pending, b""
            else:
                pending_was = self.pending
            answer = self._dispatch(cla, ins, p1, p2, data, pending_was)
        except CardError as err:
            return b"", err.sw
        limit = le if le else (65536 if extended else SHORT_LE)
        if len(answer) > limit:
            self.pending = answer[limit:]
            waiting = len(self.pending)
            return answer[:limit], (0x61 << 8) | (waiting if waiting < SHORT_LE else 0)
        return answer, c.SW_OK

    @staticmethod
    def _parse(apdu: bytes) -> tuple[int, int, int, int, bytes, int, bool]:
        if len(apdu) < 4:
            raise CardError(c.SW_WRONG_LENGTH)
        cla, ins, p1, p2 = apdu[:4]
        body = apdu[4:]
        if not body:
            return cla, ins, p1, p2, b"", 0, False
        if len(body) == 1:
            return cla, ins, p1, p2, b"", body[0] or 256, False
        if body[0] == 0 and len(body) >= 3:
            if len(body) == 3:
                return cla, ins, p1, p2, b"", int.from_bytes(body[1:3], "big") or 65536, True
            lc = int.from_bytes(body[1:3], "big")
            data = body[3 : 3 + lc]
            rest = body[3 + lc :]
            if len(data) != lc or len(rest) not in (0, 2):
                raise CardError(c.SW_WRONG_LENGTH)
            le = (int.from_bytes(rest, "big") or 65536) if rest else 0
            return cla, ins, p1, p2, data, le, True
        lc = body[0]
        data = body[1 : 1 + lc]
        rest = body[1 + lc :]
        if len(data) != lc or len(rest) > 1:
            raise CardError(c.SW_WRONG_LENGTH)
        return cla, ins, p1, p2, data, (rest[0] or 256) if rest else 0, False

    # ---- commands ------------------------------------------------------------------------

    def _status(self) -> bytes:
        out = _tlv(c.TAG_VERSION, c.APPLET_VERSION.to_bytes(2, "big"))
        out += _tlv(c.TAG_STATE, bytes([self.state]))
        out += _tlv(c.TAG_CAPABILITIES, self.capabilities.to_bytes(2, "big"))
        if self.serial is not None:
            out += _tlv(c.TAG_SERIAL, self.serial)
        return out

    def _dispatch(self, cla: int, ins: int, p1: int, p2: int, data: bytes, pending: bytes) -> bytes:
        if cla == c.CLA_ISO7816 and ins == c.INS_SELECT:
            if data != c.AID_APPLET:
                self.selected = False
                raise CardError(SW_FILE_NOT_FOUND)
            self.selected = True
            return self._status()
        if cla == c.CLA_ISO7816 and ins == c.INS_GET_RESPONSE:
            if not pending:
                raise CardError(c.SW_CONDITIONS_NOT_SATISFIED)
            self.pending = b""
            return pending
        if not self.selected:
            raise CardError(c.SW_INS_NOT_SUPPORTED)
        challenge, self.challenge = self.challenge, None
        if ins == c.INS_ISSUER_COMMAND:
            self._issuer_challenge = challenge
        if cla == c.CLA_ISO7816:
            iso = self._iso_handlers().get(ins)
            if iso is None:
                raise CardError(c.SW_INS_NOT_SUPPORTED)
            self._abandon_chain()
            if self.state == c.STATE_TERMINATED:
                raise CardError(c.SW_CONDITIONS_NOT_SATISFIED)
            return iso(p1, p2, data, False)
        if cla not in (c.CLA_PROPRIETARY, c.CLA_PROPRIETARY_CHAINING):
            raise CardError(c.SW_CLA_NOT_SUPPORTED)
        chained = cla == c.CLA_PROPRIETARY_CHAINING
        if self.chain is not None and self.chain != (ins, p1, p2):
            self._abandon_chain()
            raise CardError(c.SW_LAST_COMMAND_OF_CHAIN_EXPECTED)
        if chained and ins not in (c.INS_PUT_CERTIFICATE, c.INS_PERSONALIZE):
            raise CardError(c.SW_CHAINING_NOT_SUPPORTED)
        if self.state == c.STATE_TERMINATED and ins != c.INS_GET_DATA:
            raise CardError(c.SW_CONDITIONS_NOT_SATISFIED)
        handlers: dict[int, Callable[[int, int, bytes, bool], bytes]] = {
            c.INS_GENERATE_KEY_PAIR: self._generate,
            c.INS_SET_SERIAL: self._set_serial,
            c.INS_PUT_ISSUER_KEY: self._put_issuer_key,
            c.INS_PUT_CERTIFICATE: self._put_certificate,
            c.INS_SIGN_DEVICE_KEY: self._sign,
            c.INS_CLOSE_INITIALIZATION: self._close,
            c.INS_GET_DATA: self._get_data,
            c.INS_PUT_PIN_PUK: self._put_pin_puk,
            c.INS_PERSONALIZE: self._personalize,
            c.INS_ISSUER_COMMAND: self._issuer_command,
        }
        handler = handlers.get(ins)
        if handler is None:
            raise CardError(c.SW_INS_NOT_SUPPORTED)
        return handler(p1, p2, data, chained)

    def _blank(self) -> None:
        if self.state != c.STATE_BLANK:
            raise CardError(c.SW_CONDITIONS_NOT_SATISFIED)

    def _generate(self, p1: int, p2: int, data: bytes, chained: bool) -> bytes:
        if p1 not in (c.KEY_DEVICE, c.KEY_ISSUER_AUTH) or p2:
            raise CardError(c.SW_INCORRECT_P1P2)
        if data:
            raise CardError(c.SW_WRONG_LENGTH)
        self._blank()
        if p1 == c.KEY_DEVICE:
            if self.rsa_key_source:
                self.device_key = self.rsa_key_source.pop()
            else:
                self.device_key = rsa.generate_private_key(65537, 2048)
            self.certs.pop(c.CERT_DEVICE_KEY, None)
            self.signed_device_key = None
            return _rsa_tlv(self.device_key.public_key())
        self.auth_key = ec.generate_private_key(ec.SECP256R1())
        self.certs.pop(c.CERT_ISSUER_AUTH_KEY, None)
        self.signed_device_key = None
        return self.auth_key.public_key().public_bytes(
            Encoding.X962, PublicFormat.UncompressedPoint
        )

    def _set_serial(self, p1: int, p2: int, data: bytes, chained: bool) -> bytes:
        if p1 not in (c.SERIAL_GIVEN, c.SERIAL_RANDOM) or p2:
            raise CardError(c.SW_INCORRECT_P1P2)
        given = p1 == c.SERIAL_GIVEN
        if (given and not 4 <= len(data) <= 16) or (not given and data):
            raise CardError(c.SW_WRONG_LENGTH)
        self._blank()
        self.serial = bytes(data) if given else bytes(range(1, 9))
        self.signed_device_key = None
        return b"" if given else self.serial

    def _put_issuer_key(self, p1: int, p2: int, data: bytes, chained: bool) -> bytes:
        if p1 or p2:
            raise CardError(c.SW_INCORRECT_P1P2)
        if len(data) != 65:
            raise CardError(c.SW_WRONG_LENGTH)
        if data[0] != 0x04:
            raise CardError(c.SW_WRONG_DATA)
        self._blank()
        self.issuer_key = bytes(data)
        return b""

    def _put_certificate(self, p1: int, p2: int, data: bytes, chained: bool) -> bytes:
        if p1 not in (c.CERT_DEVICE_KEY, c.CERT_ISSUER_AUTH_KEY) or p2:
            raise CardError(c.SW_INCORRECT_P1P2)
        if not data:
            raise CardError(c.SW_WRONG_LENGTH)
        self._blank()
        key = self.device_key if p1 == c.CERT_DEVICE_KEY else self.auth_key
        if key is None:
            raise CardError(c.SW_CONDITIONS_NOT_SATISFIED)
        self.chain_buffer += data
        if len(self.chain_buffer) > c.MAX_CERT_LENGTH:
            self.chain, self.chain_buffer = None, bytearray()
            raise CardError(c.SW_NOT_ENOUGH_MEMORY)
        if chained:
            self.chain = (c.INS_PUT_CERTIFICATE, p1, p2)
            return b""
        whole, self.chain, self.chain_buffer = bytes(self.chain_buffer), None, bytearray()
        if whole[0] != 0x30:
            raise CardError(c.SW_WRONG_DATA)
        self.certs[p1] = whole
        return b""

    def _sign(self, p1: int, p2: int, data: bytes, chained: bool) -> bytes:
        if p1 or p2:
            raise CardError(c.SW_INCORRECT_P1P2)
        self._blank()
        if self.device_key is None or self.auth_key is None or self.serial is None:
            raise CardError(c.SW_CONDITIONS_NOT_SATISFIED)
        message = signed_device_key_message(self.serial, self.device_key.public_key())
        self.signed_device_key = self.auth_key.sign(message, ec.ECDSA(hashes.SHA256()))
        return self.signed_device_key

    def _close(self, p1: int, p2: int, data: bytes, chained: bool) -> bytes:
        if p1 or p2:
            raise CardError(c.SW_INCORRECT_P1P2)
        self._blank()
        ready = (
            self.device_key is not None
            and self.auth_key is not None
            and self.serial is not None
            and self.issuer_key is not None
            and c.CERT_ISSUER_AUTH_KEY in self.certs
            and (c.CERT_DEVICE_KEY in self.certs or self.signed_device_key is not None)
        )
        if not ready:
            raise CardError(c.SW_CONDITIONS_NOT_SATISFIED)
        self.state = c.STATE_INITIALIZED
        return b""

    def _get_data(self, p1: int, p2: int, data: bytes, chained: bool) -> bytes:
        if data:
            raise CardError(c.SW_WRONG_LENGTH)
        obj = (p1 << 8) | p2
        values: dict[int, bytes | None] = {
            c.DO_SERIAL: self.serial,
            c.DO_STATUS: self._status(),
            c.DO_DEVICE_PUBLIC_KEY: _rsa_tlv(self.device_key.public_key())
            if self.device_key
            else None,
            c.DO_ISSUER_AUTH_PUBLIC_KEY: self.auth_key.public_key().public_bytes(
                Encoding.X962, PublicFormat.UncompressedPoint
            )
            if self.auth_key
            else None,
            c.DO_ISSUER_PUBLIC_KEY: self.issuer_key,
            c.DO_DEVICE_KEY_CERT: self.certs.get(c.CERT_DEVICE_KEY),
            c.DO_ISSUER_AUTH_KEY_CERT: self.certs.get(c.CERT_ISSUER_AUTH_KEY),
            c.DO_SIGNED_DEVICE_KEY: self.signed_device_key,
            c.DO_USER_PUBLIC_KEY: None
            if self.user_key is None
            else coincurve.PrivateKey(self.user_key).public_key.format(compressed=False),
            c.DO_PIN_STATUS: bytes(
                (self.pin is not None, self.pin_tries, self.puk_tries, self.user_key is not None)
            ),
        }
        if obj not in values:
            raise CardError(c.SW_INCORRECT_P1P2)
        value = values[obj]
        if value is None:
            raise CardError(c.SW_REFERENCED_DATA_NOT_FOUND)
        return value

    # ---- issue 3: personalization and use -------------------------------------------------

    _issuer_challenge: bytes | None = None

    def _abandon_chain(self) -> None:
        self.chain = None
        self.chain_buffer = bytearray()

    def _iso_handlers(self) -> dict[int, Callable[[int, int, bytes, bool], bytes]]:
        return {
            c.INS_VERIFY: self._verify,
            c.INS_CHANGE_REFERENCE_DATA: self._change,
            c.INS_RESET_RETRY_COUNTER: self._reset_retry,
            c.INS_SIGN_HASH: self._sign_hash,
            c.INS_GET_CHALLENGE: self._get_challenge,
            c.INS_INTERNAL_AUTHENTICATE: self._internal_authenticate,
        }

    def _need(self, *states: int) -> None:
        if self.state not in states:
            raise CardError(c.SW_CONDITIONS_NOT_SATISFIED)

    @staticmethod
    def _secret_tlvs(data: bytes, tags: tuple[int, int]) -> tuple[bytes, bytes]:
        """Exactly two TLVs with the given tags, values of digits in the allowed lengths."""
        values: list[bytes] = []
        pos = 0
        for tag in tags:
            if pos + 2 > len(data) or data[pos] != tag:
                raise CardError(c.SW_WRONG_DATA)
            length = data[pos + 1]
            value = data[pos + 2 : pos + 2 + length]
            low, high = (
                (c.PIN_MIN_LENGTH, c.PIN_MAX_LENGTH)
                if tag == c.TAG_PIN
                else (c.PUK_MIN_LENGTH, c.PUK_MAX_LENGTH)
            )
            if len(value) != length or not low <= length <= high or not value.isdigit():
                raise CardError(c.SW_WRONG_DATA)
            values.append(value)
            pos += 2 + length
        if pos != len(data):
            raise CardError(c.SW_WRONG_DATA)
        return values[0], values[1]

    def _put_pin_puk(self, p1: int, p2: int, data: bytes, chained: bool) -> bytes:
        self._need(c.STATE_INITIALIZED)
        if p1 or p2:
            raise CardError(c.SW_INCORRECT_P1P2)
        self.staged_pin, self.staged_puk = self._secret_tlvs(data, (c.TAG_PIN, c.TAG_PUK))
        return b""

    def _personalize(self, p1: int, p2: int, data: bytes, chained: bool) -> bytes:
        if self.state != c.STATE_INITIALIZED:
            self._abandon_chain()
            raise CardError(c.SW_CONDITIONS_NOT_SATISFIED)
        if p1 or p2:
            self._abandon_chain()
            raise CardError(c.SW_INCORRECT_P1P2)
        if not data:
            self._abandon_chain()
            raise CardError(c.SW_WRONG_LENGTH)
        self.chain_buffer += data
        if chained:
            self.chain = (c.INS_PERSONALIZE, p1, p2)
            return b""
        blob = bytes(self.chain_buffer)
        self._abandon_chain()
        try:
            parsed = sealed_blob.parse(blob)
        except sealed_blob.SealedBlobError:
            raise CardError(c.SW_WRONG_DATA) from None
        if parsed.serial != self.serial:
            raise CardError(c.SW_REFERENCED_DATA_NOT_FOUND)
        assert self.issuer_key is not None and self.device_key is not None
        issuer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), self.issuer_key)
        try:
            sealed_blob.verify_signature(parsed, issuer)
        except sealed_blob.BadSignatureError:
            raise CardError(c.SW_SECURITY_STATUS_NOT_SATISFIED) from None
        oaep = padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)
        try:
            payload = sealed_blob.decode_payload(self.device_key.decrypt(parsed.ciphertext, oaep))
        except ValueError:  # decryption, padding and payload errors look the same
            raise CardError(c.SW_DATA_INVALID) from None
        self.user_key = payload.user_private_key
        self.device_auth_key = payload.device_auth_public_key
        if payload.pin is not None:
            self.pin, self.puk = payload.pin, payload.puk
        else:
            self.pin, self.puk = self.staged_pin, self.staged_puk
        self.staged_pin = self.staged_puk = None
        self.pin_tries, self.puk_tries = c.PIN_TRY_LIMIT, c.PUK_TRY_LIMIT
        self.state = c.STATE_PERSONALIZED
        return b""

    def _check_pin(self, candidate: bytes) -> None:
        """Decrement first, compare, restore on success; 63Cx / 6983 as docs/apdu.md."""
        if self.pin is None:
            raise CardError(c.SW_CONDITIONS_NOT_SATISFIED)
        if self.pin_tries == 0:
            raise CardError(c.SW_AUTH_METHOD_BLOCKED)
        self.pin_tries -= 1
        if not hmac.compare_digest(candidate, self.pin):
            self.pin_verified = False
            raise CardError(c.SW_PIN_TRIES_REMAINING | self.pin_tries)
        self.pin_tries = c.PIN_TRY_LIMIT
        self.pin_verified = True

    def _verify(self, p1: int, p2: int, data: bytes, chained: bool) -> bytes:
        self._need(c.STATE_PERSONALIZED)
        if p1 or p2 != c.PIN_REF_USER:
            raise CardError(c.SW_INCORRECT_P1P2)
        if not data:
            if self.pin_verified:
                return b""
            if self.pin is not None and self.pin_tries == 0:
                raise CardError(c.SW_AUTH_METHOD_BLOCKED)
            raise CardError(c.SW_PIN_TRIES_REMAINING | self.pin_tries)
        self._check_pin(data)
        return b""

    def _change(self, p1: int, p2: int, data: bytes, chained: bool) -> bytes:
        self._need(c.STATE_PERSONALIZED)
        if p1 not in (c.CHANGE_P1_OLD_AND_NEW, c.CHANGE_P1_INITIAL) or p2 != c.PIN_REF_USER:
            raise CardError(c.SW_INCORRECT_P1P2)
        if p1 == c.CHANGE_P1_INITIAL:
            pin, puk = self._secret_tlvs(data, (c.TAG_PIN, c.TAG_PUK))
            if self.pin is not None:
                raise CardError(c.SW_CONDITIONS_NOT_SATISFIED)
            self.pin, self.puk = pin, puk
            self.pin_tries, self.puk_tries = c.PIN_TRY_LIMIT, c.PUK_TRY_LIMIT
            return b""
        old, new = self._secret_tlvs(data, (c.TAG_PIN, c.TAG_PIN))
        self._check_pin(old)
        self.pin = new
        return b""

    def _reset_retry(self, p1: int, p2: int, data: bytes, chained: bool) -> bytes:
        self._need(c.STATE_PERSONALIZED)
        if p1 or p2 != c.PIN_REF_USER:
            raise CardError(c.SW_INCORRECT_P1P2)
        puk, new_pin = self._secret_tlvs(data, (c.TAG_PUK, c.TAG_PIN))
        if self.puk is None:
            raise CardError(c.SW_CONDITIONS_NOT_SATISFIED)
        if self.puk_tries == 0:
            raise CardError(c.SW_AUTH_METHOD_BLOCKED)
        self.puk_tries -= 1
        if not hmac.compare_digest(puk, self.puk):
            if self.puk_tries == 0:
                self.user_key = None
                self.pin_verified = False
                raise CardError(c.SW_AUTH_METHOD_BLOCKED)
            raise CardError(c.SW_PIN_TRIES_REMAINING | self.puk_tries)
        self.pin = new_pin
        self.pin_tries, self.puk_tries = c.PIN_TRY_LIMIT, c.PUK_TRY_LIMIT
        return b""

    def _sign_hash(self, p1: int, p2: int, data: bytes, chained: bool) -> bytes:
        self._need(c.STATE_PERSONALIZED)
        if (p1 << 8) | p2 != c.PSO_P1P2_SIGN:
            raise CardError(c.SW_INCORRECT_P1P2)
        if len(data) != c.HASH_LENGTH:
            raise CardError(c.SW_WRONG_LENGTH)
        if not self.pin_verified or self.user_key is None:
            raise CardError(c.SW_SECURITY_STATUS_NOT_SATISFIED)
        return bytes(coincurve.PrivateKey(self.user_key).sign(data, hasher=None))

    def _get_challenge(self, p1: int, p2: int, data: bytes, chained: bool) -> bytes:
        self._need(c.STATE_INITIALIZED, c.STATE_PERSONALIZED)
        if p1 or p2:
            raise CardError(c.SW_INCORRECT_P1P2)
        if data:
            raise CardError(c.SW_WRONG_LENGTH)
        self.challenge = os.urandom(c.CHALLENGE_LENGTH)
        return self.challenge

    def _internal_authenticate(self, p1: int, p2: int, data: bytes, chained: bool) -> bytes:
        self._need(c.STATE_INITIALIZED, c.STATE_PERSONALIZED)
        if p1 or p2:
            raise CardError(c.SW_INCORRECT_P1P2)
        if not c.INTERNAL_AUTH_CHALLENGE_MIN <= len(data) <= c.INTERNAL_AUTH_CHALLENGE_MAX:
            raise CardError(c.SW_WRONG_LENGTH)
        assert self.auth_key is not None and self.serial is not None
        message = b"SCIA" + bytes((len(self.serial),)) + self.serial + data
        return self.auth_key.sign(message, ec.ECDSA(hashes.SHA256()))

    def _issuer_command(self, p1: int, p2: int, data: bytes, chained: bool) -> bytes:
        challenge, self._issuer_challenge = self._issuer_challenge, None
        self._need(c.STATE_PERSONALIZED)
        if p1 not in (c.ISSUER_CMD_RESET_PIN, c.ISSUER_CMD_TERMINATE) or p2:
            raise CardError(c.SW_INCORRECT_P1P2)
        if not data or len(data) < 1 + data[0] + 8:
            raise CardError(c.SW_WRONG_DATA)
        if challenge is None:
            raise CardError(c.SW_CONDITIONS_NOT_SATISFIED)
        body = data[1 : 1 + data[0]]
        signature = data[1 + data[0] :]
        assert self.serial is not None and self.device_auth_key is not None
        message = (
            b"SCIC"
            + bytes((len(self.serial),))
            + self.serial
            + challenge
            + bytes((c.INS_ISSUER_COMMAND, p1, p2, len(body)))
            + body
        )
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), self.device_auth_key)
        try:
            key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError):
            raise CardError(c.SW_SECURITY_STATUS_NOT_SATISFIED) from None
        if p1 == c.ISSUER_CMD_TERMINATE:
            if body:
                raise CardError(c.SW_WRONG_DATA)
            self.user_key = None
            self.pin_verified = False
            self.state = c.STATE_TERMINATED
            return b""
        if len(body) < 2 or body[0] != c.TAG_PIN or body[1] != len(body) - 2:
            raise CardError(c.SW_WRONG_DATA)
        pin = body[2:]
        if not c.PIN_MIN_LENGTH <= len(pin) <= c.PIN_MAX_LENGTH or not pin.isdigit():
            raise CardError(c.SW_WRONG_DATA)
        self.pin = pin
        self.pin_tries, self.puk_tries = c.PIN_TRY_LIMIT, c.PUK_TRY_LIMIT
        return b""
