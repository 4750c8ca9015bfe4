"""No command, in any state reachable now, returns private key material.

The test cannot read the card's private keys, so it checks the answers
instead, with two independent arguments:

1. Whitelist. Every answer with data must be (a prefix of, when it comes
   with 61xx) one of the documented public objects: the SELECT/status TLVs,
   or a GET DATA value (serial, public keys, certificates, signed device
   key), read fresh from the card; or a new signed device key (SIGN DEVICE
   KEY signs again, ECDSA is randomized) that verifies under the card's
   issuer authentication public key. Nothing else may come back, and no
   answer is longer than the longest documented object (a certificate,
   MAX_CERT_LENGTH bytes). A leaked private key (256-byte exponent,
   128-byte primes or CRT parts, 32-byte EC scalar) is none of these.
2. Direct search. Every window of every answer is also tested as key
   material we *can* recognise without the secret: a 128-byte window that
   divides the RSA modulus (a prime factor), and a 32-byte window k with
   k*G equal to the issuer authentication public key (the EC private key).

Sweep: CLA in {00, 80, 90, 84, A0, C0, E0, 10} x INS 00..FF, P1 = P2 = 00,
as case 2 (Le only), case 4 with 1 data byte, and case 4 with 16 data
bytes; in every life-cycle state: BLANK (keys, serial, issuer key, device
certificate and signed device key present; the issuer authentication
certificate left out so that the sweep's CLOSE INITIALIZATION cannot change
the state), INITIALIZED, PERSONALIZED (a sealed blob with PIN and PUK in;
the PIN is not verified, so SIGN HASH is refused) and TERMINATED (by an
issuer-signed command). MANAGE CHANNEL (00 70) is skipped: the platform
answers it, not the applet, and opening channels would break the sweep's
session.

Answers that are fresh by design are allowed when they are what the
contract says: GET CHALLENGE's 16 random bytes, and INTERNAL AUTHENTICATE's
signature, which must verify under the issuer authentication public key
over the documented message. Once the card holds a user key (whose value
this test knows, since it sealed it), every answer is also searched for it
byte for byte, and for any 32-byte window k with k*G equal to the user's
public key.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import coincurve
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from simcards import reset_blank

from sealcard.card import constants as c
from sealcard.card.session import SealcardSession
from sealcard.crypto import sealed_blob as sb
from sealcard.errors import VerificationError
from sealcard.formats.attestation import verify_signed_device_key
from sealcard.formats.certificates import CardKeyRole
from sealcard.parties.provider import ProviderCA, initialize_card
from sealcard.transport.apdu import SHORT_MAX_LE, Apdu
from sealcard.transport.errors import ApduError
from sealcard.transport.pcsc import PcscConnection
from sealcard.transport.sw import SW1_BYTES_REMAINING

pytestmark = pytest.mark.sim

CLASSES = (0x00, 0x80, 0x90, 0x84, 0xA0, 0xC0, 0xE0, 0x10)
BODIES = (b"", b"\x00", bytes(range(16)))
INS_MANAGE_CHANNEL = 0x70
SERIAL = bytes.fromhex("5EA1CA4D00000042")
RSA_PRIME_BYTES = 128
EC_SCALAR_BYTES = 32
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
INTERNAL_AUTH_MAGIC = b"SCIA"
ISSUER_COMMAND_MAGIC = b"SCIC"
PIN = b"246810"
PUK = b"13579111"


@contextmanager
def session_on(card: Any) -> Iterator[SealcardSession]:
    with PcscConnection.open(card.reader) as connection:
        yield SealcardSession(connection)


class PublicObjects:
    """The card's documented public objects, re-read on demand."""

    def __init__(self, session: SealcardSession) -> None:
        self.session = session
        self.values: list[bytes] = []
        self.refresh()
        device = session.device_public_key()
        auth = session.issuer_auth_public_key()
        assert device is not None and auth is not None and session.serial is not None
        self.device: rsa.RSAPublicKey = device
        self.auth: ec.EllipticCurvePublicKey = auth
        self.serial: bytes = session.serial
        self.auth_point = auth.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        self.user_key: bytes | None = None

    def refresh(self) -> None:
        values = []
        for obj in c.DataObject:
            try:
                values.append(self.session.get_data(obj))
            except ApduError:  # not set yet, or an object of a later issue
                continue
        self.values = values

    def is_fresh_by_design(self, apdu: Apdu, answer: bytes) -> bool:
        """GET CHALLENGE's random bytes; INTERNAL AUTHENTICATE's signature over the challenge."""
        if apdu.cla != c.CLA_ISO7816:
            return False
        if apdu.ins == c.INS_GET_CHALLENGE:
            return len(answer) == c.CHALLENGE_LENGTH
        if apdu.ins == c.INS_INTERNAL_AUTHENTICATE:
            message = INTERNAL_AUTH_MAGIC + bytes([len(self.serial)]) + self.serial + apdu.data
            try:
                self.auth.verify(answer, message, ec.ECDSA(hashes.SHA256()))
            except (InvalidSignature, ValueError):
                return False
            return True
        return False

    def is_public(self, answer: bytes, partial: bool) -> bool:
        if partial:
            return any(v.startswith(answer) for v in self.values)
        if answer in self.values:
            return True
        try:
            verify_signed_device_key(answer, self.serial, self.device, self.auth)
        except (VerificationError, ValueError):
            return False
        return True

    def leaks_key_material(self, answer: bytes) -> str | None:
        n = self.device.public_numbers().n
        for i in range(len(answer) - RSA_PRIME_BYTES + 1):
            candidate = int.from_bytes(answer[i : i + RSA_PRIME_BYTES], "big")
            if 1 < candidate < n and n % candidate == 0:
                return f"an RSA prime factor at offset {i}"
        for i in range(len(answer) - EC_SCALAR_BYTES + 1):
            k = int.from_bytes(answer[i : i + EC_SCALAR_BYTES], "big")
            if not 0 < k < P256_ORDER:
                continue
            public = ec.derive_private_key(k, ec.SECP256R1()).public_key()
            if (
                public.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
                == self.auth_point
            ):
                return f"the EC private scalar at offset {i}"
        if self.user_key is not None:
            if self.user_key in answer:
                return "the user private key"
            user_point = coincurve.PrivateKey(self.user_key).public_key.format(compressed=True)
            for i in range(len(answer) - EC_SCALAR_BYTES + 1):
                window = answer[i : i + EC_SCALAR_BYTES]
                k = int.from_bytes(window, "big")
                if not 0 < k < sb.SECP256K1_ORDER:
                    continue
                if coincurve.PrivateKey(window).public_key.format(compressed=True) == user_point:
                    return f"the user private key (as k*G) at offset {i}"
        return None


def sweep(session: SealcardSession, user_key: bytes | None = None) -> tuple[int, list[str]]:
    """Send the whole sweep; return (APDUs sent, problems found)."""
    objects = PublicObjects(session)
    objects.user_key = user_key
    longest = max(c.MAX_CERT_LENGTH, *(len(v) for v in objects.values))
    raw = session.connection
    problems: list[str] = []
    sent = 0
    for cla in CLASSES:
        for ins in range(0x100):
            if cla == c.CLA_ISO7816 and ins == INS_MANAGE_CHANNEL:
                continue
            for body in BODIES:
                apdu = Apdu(cla, ins, 0, 0, body, SHORT_MAX_LE)
                answer, sw = raw.send_and_receive(apdu.encode_short())
                sent += 1
                where = f"{apdu.encode_short()[:4].hex()} +{len(body)} -> {sw:04X}"
                leak = objects.leaks_key_material(answer)
                if leak:
                    problems.append(f"{where}: {leak}")
                if not answer:
                    continue
                if len(answer) > longest:
                    problems.append(f"{where}: {len(answer)} bytes, longer than any public object")
                partial = sw >> 8 == SW1_BYTES_REMAINING
                if sw != c.SW_OK and not partial:
                    problems.append(f"{where}: data with an error status")
                    continue
                if not partial and objects.is_fresh_by_design(apdu, answer):
                    continue
                if not objects.is_public(answer, partial):
                    objects.refresh()
                    if not objects.is_public(answer, partial):
                        problems.append(f"{where}: {len(answer)} bytes, not a public object")
        session.select()
    return sent, problems


def issuer_key() -> ec.EllipticCurvePublicKey:
    return ec.generate_private_key(ec.SECP256R1()).public_key()


def test_blank_card_leaks_nothing(sim_cards: list[Any], ca: ProviderCA) -> None:
    card = sim_cards[0]
    reset_blank(card)
    with session_on(card) as session:
        device = session.generate_device_key()
        session.generate_issuer_auth_key()
        session.set_serial(SERIAL)
        session.put_issuer_key(issuer_key())
        session.put_certificate(c.CertRef.DEVICE_KEY, ca.issue(CardKeyRole.DEVICE, device, SERIAL))
        session.sign_device_key()
        sent, problems = sweep(session)
        assert session.refresh_status().state == c.State.BLANK
    assert sent == len(CLASSES) * 0x100 * len(BODIES) - len(BODIES)
    assert not problems, "\n".join(problems[:20])


def test_initialized_card_leaks_nothing(sim_cards: list[Any], ca: ProviderCA) -> None:
    card = sim_cards[0]
    reset_blank(card)
    with session_on(card) as session:
        initialize_card(session, ca, issuer_key(), SERIAL)
        sent, problems = sweep(session)
        assert session.refresh_status().state == c.State.INITIALIZED
    assert sent > 0
    assert not problems, "\n".join(problems[:20])


def personalized_card(
    session: SealcardSession, ca: ProviderCA
) -> tuple[bytes, ec.EllipticCurvePrivateKey]:
    """Step A, then a sealed blob with PIN and PUK; (user key, device authentication key)."""
    issuer = ec.generate_private_key(ec.SECP256R1())
    init = initialize_card(session, ca, issuer.public_key(), SERIAL)
    user_key = coincurve.PrivateKey().secret
    device_auth = ec.generate_private_key(ec.SECP256R1())
    auth_point = device_auth.public_key().public_bytes(
        Encoding.X962, PublicFormat.UncompressedPoint
    )
    blob = sb.seal(
        sb.SealedPayload(user_key, auth_point, PIN, PUK),
        init.serial,
        init.device_public_key,
        lambda message: issuer.sign(message, ec.ECDSA(hashes.SHA256())),
    )
    _, sw = session.protocol.transceive(
        Apdu(c.CLA_PROPRIETARY, c.INS_PERSONALIZE, 0, 0, blob, SHORT_MAX_LE)
    )
    assert sw == c.SW_OK, f"PERSONALIZE answered {sw:04X}"
    return user_key, device_auth


def terminate(session: SealcardSession, device_auth: ec.EllipticCurvePrivateKey) -> None:
    """The issuer's signed TERMINATE, built here from the contract in docs/apdu.md."""
    challenge, sw = session.protocol.transceive(
        Apdu(c.CLA_ISO7816, c.INS_GET_CHALLENGE, 0, 0, b"", c.CHALLENGE_LENGTH)
    )
    assert sw == c.SW_OK and len(challenge) == c.CHALLENGE_LENGTH
    body = b""
    p1, p2 = c.ISSUER_CMD_TERMINATE, 0
    message = (
        ISSUER_COMMAND_MAGIC
        + bytes([len(SERIAL)])
        + SERIAL
        + challenge
        + bytes([c.INS_ISSUER_COMMAND, p1, p2, len(body)])
        + body
    )
    signature = device_auth.sign(message, ec.ECDSA(hashes.SHA256()))
    data = bytes([len(body)]) + body + signature
    _, sw = session.protocol.transceive(
        Apdu(c.CLA_PROPRIETARY, c.INS_ISSUER_COMMAND, p1, p2, data, SHORT_MAX_LE)
    )
    assert sw == c.SW_OK, f"ISSUER COMMAND (terminate) answered {sw:04X}"


def test_personalized_card_leaks_nothing(sim_cards: list[Any], ca: ProviderCA) -> None:
    card = sim_cards[0]
    reset_blank(card)
    with session_on(card) as session:
        user_key, _ = personalized_card(session, ca)
        assert session.refresh_status().state == c.State.PERSONALIZED
        sent, problems = sweep(session, user_key)
        assert session.refresh_status().state == c.State.PERSONALIZED
    assert sent > 0
    assert not problems, "\n".join(problems[:20])


def test_terminated_card_leaks_nothing(sim_cards: list[Any], ca: ProviderCA) -> None:
    card = sim_cards[0]
    reset_blank(card)
    with session_on(card) as session:
        user_key, device_auth = personalized_card(session, ca)
        terminate(session, device_auth)
        assert session.refresh_status().state == c.State.TERMINATED
        sent, problems = sweep(session, user_key)
        assert session.refresh_status().state == c.State.TERMINATED
    assert sent > 0
    assert not problems, "\n".join(problems[:20])


def test_the_leak_detector_finds_planted_keys() -> None:
    """The direct search is not vacuous: it finds a prime and a scalar planted in an answer."""
    rsa_key = rsa.generate_private_key(65537, 2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    detector = PublicObjects.__new__(PublicObjects)
    detector.device = rsa_key.public_key()
    detector.auth = ec_key.public_key()
    detector.auth_point = ec_key.public_key().public_bytes(
        Encoding.X962, PublicFormat.UncompressedPoint
    )
    prime = rsa_key.private_numbers().p.to_bytes(RSA_PRIME_BYTES, "big")
    scalar = ec_key.private_numbers().private_value.to_bytes(EC_SCALAR_BYTES, "big")
    assert detector.leaks_key_material(b"\x01\x02" + prime + b"\x03") is not None
    assert detector.leaks_key_material(b"\x09" + scalar) is not None
    detector.user_key = None
    assert detector.leaks_key_material(bytes(300)) is None
    user_key = coincurve.PrivateKey().secret
    detector.user_key = user_key
    assert detector.leaks_key_material(b"\x07" + user_key + b"\x08") is not None
    assert detector.leaks_key_material(bytes(300)) is None
