"""A Python model of the sealcard applet (docs/apdu.md), for unit tests without a simulator.

It is a test double, written from the contract, so unit tests can drive the
host library end to end; the real applet is tested through PC/SC in tests/sim.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sealcard.card import constants as c
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
        if cla not in (c.CLA_PROPRIETARY, c.CLA_PROPRIETARY_CHAINING):
            raise CardError(c.SW_CLA_NOT_SUPPORTED)
        chained = cla == c.CLA_PROPRIETARY_CHAINING
        if self.chain is not None and self.chain != (ins, p1, p2):
            self.chain = None
            self.chain_buffer = bytearray()
            raise CardError(c.SW_LAST_COMMAND_OF_CHAIN_EXPECTED)
        if chained and ins != c.INS_PUT_CERTIFICATE:
            raise CardError(c.SW_CHAINING_NOT_SUPPORTED)
        handlers: dict[int, Callable[[int, int, bytes, bool], bytes]] = {
            c.INS_GENERATE_KEY_PAIR: self._generate,
            c.INS_SET_SERIAL: self._set_serial,
            c.INS_PUT_ISSUER_KEY: self._put_issuer_key,
            c.INS_PUT_CERTIFICATE: self._put_certificate,
            c.INS_SIGN_DEVICE_KEY: self._sign,
            c.INS_CLOSE_INITIALIZATION: self._close,
            c.INS_GET_DATA: self._get_data,
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
        }
        if obj not in values:
            raise CardError(c.SW_INCORRECT_P1P2)
        value = values[obj]
        if value is None:
            raise CardError(c.SW_REFERENCED_DATA_NOT_FOUND)
        return value
