"""Issue 3 host side without a card: session methods, typed errors, workflows, on fake_card."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Protocol

import coincurve
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fake_card import FakeSealcard

from sealcard.card import constants as c
from sealcard.card.encoding import decode_pin_status, digits, issuer_command_message
from sealcard.card.errors import (
    BadSignatureError,
    BlobDataInvalidError,
    BlobMalformedError,
    BlockedError,
    CardResponseError,
    InvalidPinError,
    IssuerSignatureError,
    NoChallengeError,
    PinNotSetError,
    PinNotVerifiedError,
    WrongCardError,
    WrongStateError,
    typed_apdu_error,
)
from sealcard.card.secp256k1 import HALF_N, is_low_s, recoverable_signature
from sealcard.card.session import SealcardSession
from sealcard.crypto.sealed_blob import SealedPayload, seal
from sealcard.errors import VerificationError
from sealcard.parties import bureau, user
from sealcard.parties.provider import ProviderCA, initialize_card
from sealcard.transport.errors import ApduError

SERIAL = bytes.fromhex("5EA1CA4D00000001")
PIN = b"246810"
PUK = b"13572468"
NEW_PIN = b"97531"
HASH = hashlib.sha256(b"a transaction").digest()

Signer = Callable[[bytes], bytes]


def signer_of(key: ec.EllipticCurvePrivateKey) -> Signer:
    return lambda message: key.sign(message, ec.ECDSA(hashes.SHA256()))


def point(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> ProviderCA:
    return ProviderCA.create(tmp_path_factory.mktemp("ca"), b"unit test passphrase")


@pytest.fixture(scope="module")
def issuer() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def device_auth() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, 2048)


@pytest.fixture
def user_key() -> coincurve.PrivateKey:
    return coincurve.PrivateKey()


@pytest.fixture
def card(
    rsa_key: rsa.RSAPrivateKey, ca: ProviderCA, issuer: ec.EllipticCurvePrivateKey
) -> FakeSealcard:
    fake = FakeSealcard(rsa_key_source=[rsa_key])
    initialize_card(SealcardSession(fake), ca, issuer.public_key(), SERIAL)
    return fake


def make_blob(
    card: FakeSealcard,
    issuer: ec.EllipticCurvePrivateKey,
    device_auth: ec.EllipticCurvePrivateKey,
    user_key: coincurve.PrivateKey,
    *,
    pin: bytes | None = PIN,
    puk: bytes | None = PUK,
) -> bytes:
    assert card.device_key is not None and card.serial is not None
    payload = SealedPayload(user_key.secret, point(device_auth), pin, puk)
    return seal(payload, card.serial, card.device_key.public_key(), signer_of(issuer))


class BlobFor(Protocol):
    def __call__(self, *, pin: bytes | None = PIN, puk: bytes | None = PUK) -> bytes: ...


@pytest.fixture
def blob_for(
    card: FakeSealcard,
    issuer: ec.EllipticCurvePrivateKey,
    device_auth: ec.EllipticCurvePrivateKey,
    user_key: coincurve.PrivateKey,
) -> BlobFor:
    """make_blob for this test's card and keys: `blob_for()`, or `blob_for(pin=None, puk=None)`."""

    def make(*, pin: bytes | None = PIN, puk: bytes | None = PUK) -> bytes:
        return make_blob(card, issuer, device_auth, user_key, pin=pin, puk=puk)

    return make


def test_pin_digits_never_in_messages() -> None:
    assert digits("1234", "PIN", 4, 12) == b"1234"
    for bad in ("12a4", "123", "1" * 13, "١٢٣٤"):
        with pytest.raises(ValueError) as info:
            digits(bad, "PIN", 4, 12)
        assert bad not in str(info.value)


def test_63cx_is_invalid_pin_with_tries_and_named_sw() -> None:
    error = typed_apdu_error(ApduError(c.SW_PIN_TRIES_REMAINING | 2), "VERIFY")
    assert isinstance(error, InvalidPinError)
    assert error.tries_remaining == 2
    assert "63C2" in str(error)
    assert isinstance(typed_apdu_error(ApduError(c.SW_AUTH_METHOD_BLOCKED), "x"), BlockedError)


def test_pin_status_decoding() -> None:
    status = decode_pin_status(bytes((1, 0, 4)))  # applet 1.0: three bytes
    assert status.pin_set and status.pin_blocked and not status.puk_blocked
    assert status.user_key_present is None
    wiped = decode_pin_status(bytes((1, 3, 5, 0)))
    assert wiped.user_key_present is False and not wiped.pin_blocked
    assert decode_pin_status(bytes((1, 3, 5, 1))).user_key_present is True
    with pytest.raises(CardResponseError):
        decode_pin_status(bytes((1, 3)))


@pytest.mark.parametrize("extended", [False, True])
def test_personalize_sign_verify(
    card: FakeSealcard, user_key: coincurve.PrivateKey, blob_for: BlobFor, extended: bool
) -> None:
    session = SealcardSession(card, extended=extended)
    blob = blob_for()
    sent_before = len(card.log)
    result = bureau.personalize_card(session, blob)
    chunks = [a for a in card.log[sent_before:] if a[1] == c.INS_PERSONALIZE]
    assert len(chunks) == (1 if extended else 2)
    assert result.status.state == c.State.PERSONALIZED
    assert result.pin_status.pin_set and result.pin_status.pin_tries_remaining == c.PIN_TRY_LIMIT
    expected = user_key.public_key.format(compressed=False)
    assert user.user_key_info(session).uncompressed_hex == expected.hex()
    with pytest.raises(PinNotVerifiedError):
        session.sign_hash(HASH)
    signature = user.sign_hash(session, HASH, PIN)
    assert signature.low_s and signature.s <= HALF_N
    assert user_key.public_key.verify(signature.der, HASH, hasher=None)
    recovered = coincurve.PublicKey.from_signature_and_message(
        signature.compact + bytes((signature.recovery_id,)), HASH, hasher=None
    )
    assert recovered.format() == user_key.public_key.format()
    with pytest.raises(WrongStateError):
        session.personalize(blob)


def test_blob_refusals_are_typed_and_change_nothing(
    card: FakeSealcard,
    issuer: ec.EllipticCurvePrivateKey,
    device_auth: ec.EllipticCurvePrivateKey,
    user_key: coincurve.PrivateKey,
) -> None:
    session = SealcardSession(card)
    good = make_blob(card, issuer, device_auth, user_key)
    other_issuer = ec.generate_private_key(ec.SECP256R1())
    cases: list[tuple[bytes, type[ApduError]]] = [
        (b"X" + good[1:], BlobMalformedError),
        (good[:-1], BlobMalformedError),
        (good + b"\0", BlobMalformedError),
        (good[:5] + bytes((good[5] ^ 1,)) + good[6:], WrongCardError),
        (good[:100] + bytes((good[100] ^ 1,)) + good[101:], BadSignatureError),
        (make_blob(card, other_issuer, device_auth, user_key), BadSignatureError),
    ]
    for blob, error in cases:
        with pytest.raises(error):
            session.personalize(blob)
        assert card.state == c.STATE_INITIALIZED and card.user_key is None
    session.personalize(good)
    assert card.state == c.STATE_PERSONALIZED


def test_blob_to_another_device_key_is_data_invalid(
    card: FakeSealcard,
    issuer: ec.EllipticCurvePrivateKey,
    device_auth: ec.EllipticCurvePrivateKey,
    user_key: coincurve.PrivateKey,
) -> None:
    other = rsa.generate_private_key(65537, 2048).public_key()
    payload = SealedPayload(user_key.secret, point(device_auth), PIN, PUK)
    blob = seal(payload, SERIAL, other, signer_of(issuer))
    with pytest.raises(BlobDataInvalidError):
        SealcardSession(card).personalize(blob)


def test_bureau_refuses_blob_for_another_card_before_sending(
    card: FakeSealcard,
    issuer: ec.EllipticCurvePrivateKey,
    device_auth: ec.EllipticCurvePrivateKey,
    user_key: coincurve.PrivateKey,
) -> None:
    assert card.device_key is not None
    payload = SealedPayload(user_key.secret, point(device_auth))
    blob = seal(payload, b"\x99" * 8, card.device_key.public_key(), signer_of(issuer))
    with pytest.raises(bureau.BlobNotForThisCardError):
        bureau.personalize_card(SealcardSession(card), blob)
    assert not [a for a in card.log if a[1] == c.INS_PERSONALIZE]


def test_pin_exhaustion_unblock_and_puk_exhaustion(card: FakeSealcard, blob_for: BlobFor) -> None:
    session = SealcardSession(card)
    session.personalize(blob_for())
    for left in range(c.PIN_TRY_LIMIT - 1, -1, -1):
        with pytest.raises(InvalidPinError) as info:
            session.verify_pin(b"0000")
        assert info.value.tries_remaining == left
        assert "0000" not in str(info.value)
    with pytest.raises(BlockedError):
        session.verify_pin(PIN)
    with pytest.raises(InvalidPinError) as wrong_puk:
        session.unblock_pin(b"00000000", NEW_PIN)
    assert wrong_puk.value.tries_remaining == c.PUK_TRY_LIMIT - 1
    session.unblock_pin(PUK, NEW_PIN)
    assert session.pin_status().pin_tries_remaining == c.PIN_TRY_LIMIT
    session.verify_pin(NEW_PIN)
    for _ in range(c.PUK_TRY_LIMIT - 1):
        with pytest.raises(InvalidPinError):
            session.unblock_pin(b"00000000", NEW_PIN)
    with pytest.raises(BlockedError):
        session.unblock_pin(b"00000000", NEW_PIN)
    with pytest.raises(BlockedError):
        session.unblock_pin(PUK, NEW_PIN)
    assert card.user_key is None


def test_pin_variants_bureau_and_user_chosen(card: FakeSealcard, blob_for: BlobFor) -> None:
    session = SealcardSession(card)
    blob = blob_for(pin=None, puk=None)
    staged = bureau.new_bureau_pin()
    assert "secret" in repr(staged) and staged.pin.decode() not in repr(staged)
    bureau.personalize_card(session, blob, bureau_pin=staged.pin, bureau_puk=staged.puk)
    session.verify_pin(staged.pin)


def test_user_chosen_pin(card: FakeSealcard, blob_for: BlobFor) -> None:
    session = SealcardSession(card)
    session.personalize(blob_for(pin=None, puk=None))
    assert not session.pin_status().pin_set
    with pytest.raises(PinNotSetError):
        session.verify_pin(PIN)
    session.set_initial_pin_puk(PIN, PUK)
    with pytest.raises(WrongStateError):
        session.set_initial_pin_puk(NEW_PIN, PUK)
    session.change_pin(PIN, NEW_PIN)
    session.verify_pin(NEW_PIN)


def test_verification_lost_on_reset(card: FakeSealcard, blob_for: BlobFor) -> None:
    session = SealcardSession(card)
    session.personalize(blob_for())
    session.verify_pin(PIN)
    assert session.pin_verified()
    card.power_cycle()
    session = SealcardSession(card)
    assert not session.pin_verified()
    with pytest.raises(PinNotVerifiedError):
        session.sign_hash(HASH)


def test_internal_authenticate(ca: ProviderCA, card: FakeSealcard) -> None:
    session = SealcardSession(card)
    result = user.authenticate_card(session, ca.certificate)
    assert result.genuine, result.reason
    assert card.auth_key is not None
    card.auth_key = ec.generate_private_key(ec.SECP256R1())  # answers with an uncertified key
    forged = user.authenticate_card(SealcardSession(card), ca.certificate)
    assert not forged.genuine


def test_internal_authenticate_wrong_root(
    tmp_path_factory: pytest.TempPathFactory, card: FakeSealcard
) -> None:
    other = ProviderCA.create(tmp_path_factory.mktemp("other"), b"another passphrase")
    result = user.authenticate_card(SealcardSession(card), other.certificate)
    assert not result.genuine and "attestation failed" in result.reason


def test_issuer_commands(
    card: FakeSealcard, device_auth: ec.EllipticCurvePrivateKey, blob_for: BlobFor
) -> None:
    session = SealcardSession(card)
    session.personalize(blob_for())
    good = signer_of(device_auth)
    with pytest.raises(IssuerSignatureError):
        session.issuer_reset_pin(NEW_PIN, signer_of(ec.generate_private_key(ec.SECP256R1())))
    challenge = session.get_challenge()
    body = bytes((c.TAG_PIN, len(NEW_PIN))) + NEW_PIN
    message = session.issuer_command_message(c.IssuerCommand.RESET_PIN, body, challenge)
    assert message == issuer_command_message(
        SERIAL, challenge, c.INS_ISSUER_COMMAND, c.ISSUER_CMD_RESET_PIN, 0, body
    )
    assert message.startswith(b"SCIC" + bytes((len(SERIAL),)) + SERIAL + challenge)
    signature = good(message)
    session.send_issuer_command(c.IssuerCommand.RESET_PIN, body, signature)
    session.verify_pin(NEW_PIN)
    with pytest.raises(NoChallengeError):  # replay: the challenge was consumed
        session.send_issuer_command(c.IssuerCommand.RESET_PIN, body, signature)
    session.get_challenge()
    with pytest.raises(IssuerSignatureError):  # replay against a fresh challenge
        session.send_issuer_command(c.IssuerCommand.RESET_PIN, body, signature)
    session.issuer_terminate(good)
    assert session.refresh_status().state == c.State.TERMINATED
    with pytest.raises(WrongStateError):
        session.verify_pin(NEW_PIN)


def test_recoverable_signature_rejects_high_s(user_key: coincurve.PrivateKey) -> None:
    from cryptography.hazmat.primitives.asymmetric.utils import (
        decode_dss_signature,
        encode_dss_signature,
    )

    key = ec.EllipticCurvePublicKey.from_encoded_point(
        ec.SECP256K1(), user_key.public_key.format(compressed=False)
    )
    der = user_key.sign(HASH, hasher=None)
    assert is_low_s(der)
    r, s = decode_dss_signature(der)
    high = encode_dss_signature(r, 2 * HALF_N + 1 - s)
    assert not is_low_s(high)
    assert recoverable_signature(key, HASH, der).low_s
    with pytest.raises(VerificationError):
        recoverable_signature(key, HASH, high)


def test_addresses_match_known_vectors() -> None:
    key = ec.derive_private_key(1, ec.SECP256K1()).public_key()
    assert user.ethereum_address(key) == "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
    assert user.bitcoin_p2wpkh_address(key) == "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"


# ---- CLI over the fake card (PIN from a file descriptor, never in the output) ----------------


def test_cli_pin_and_sign_over_fd(
    monkeypatch: pytest.MonkeyPatch,
    card: FakeSealcard,
    issuer: ec.EllipticCurvePrivateKey,
    device_auth: ec.EllipticCurvePrivateKey,
    user_key: coincurve.PrivateKey,
) -> None:
    import contextlib
    import json
    import os
    from collections.abc import Iterator

    from click_runner import separate_runner

    from sealcard.cli import card_cmd
    from sealcard.cli.main import cli

    SealcardSession(card).personalize(make_blob(card, issuer, device_auth, user_key))

    @contextlib.contextmanager
    def fake_open(
        reader: str | None, *, extended: bool = False, exclusive: bool = True
    ) -> Iterator[tuple[str, SealcardSession]]:
        yield "fake reader", SealcardSession(card, extended=extended)

    monkeypatch.setattr(card_cmd, "open_session", fake_open)

    def fd_with(secret: bytes) -> int:
        read, write = os.pipe()
        os.write(write, secret + b"\n")
        os.close(write)
        return read

    runner = separate_runner()
    wrong = runner.invoke(
        cli, ["card", "pin", "verify", "--pin-fd", str(fd_with(b"000000")), "--json"]
    )
    assert wrong.exit_code == 1 and "000000" not in wrong.output
    assert json.loads(wrong.stdout)["tries_remaining"] == c.PIN_TRY_LIMIT - 1
    assert wrong.stderr == f"error: wrong PIN: {c.PIN_TRY_LIMIT - 1} tries left\n"
    args = ["card", "sign", "--hash", HASH.hex(), "--pin-fd", str(fd_with(PIN)), "--json"]
    signed = runner.invoke(cli, args)
    assert signed.exit_code == 0, signed.output
    answer = json.loads(signed.stdout)
    assert answer["low_s"] is True and PIN.decode() not in signed.output
    assert user_key.public_key.verify(bytes.fromhex(answer["der"]), HASH, hasher=None)
    keys = json.loads(runner.invoke(cli, ["card", "pubkey", "--json"]).stdout)
    assert keys["compressed"] == user_key.public_key.format().hex()


def test_debug_trace_shows_headers_and_status_words_never_data(
    caplog: pytest.LogCaptureFixture,
    card: FakeSealcard,
    issuer: ec.EllipticCurvePrivateKey,
    device_auth: ec.EllipticCurvePrivateKey,
    user_key: coincurve.PrivateKey,
) -> None:
    """`sealcard --debug`: CLA INS P1 P2, Lc, Le and the SW; a PIN command hides even its Lc."""
    blob = make_blob(card, issuer, device_auth, user_key)
    caplog.set_level(logging.DEBUG, logger="sealcard.apdu")
    session = SealcardSession(card)
    session.personalize(blob)
    with pytest.raises(InvalidPinError):
        session.verify_pin(b"000000")
    session.verify_pin(PIN)
    session.change_pin(PIN, NEW_PIN)
    lines = [record.getMessage() for record in caplog.records]
    assert lines[0] == "> 00 A4 04 00 Lc=10 Le=256"
    assert lines[1].startswith("< 9000 (")
    assert f"> 00 20 00 {c.PIN_REF_USER:02X} Lc=**" in lines
    assert "< 63C2 (0 bytes)" in lines
    ins = f"{c.Ins.PERSONALIZE:02X} 00 00"
    chain = [line for line in lines if line[2:].startswith((f"80 {ins}", f"90 {ins}"))]
    assert sum(int(line.rsplit("Lc=", 1)[1]) for line in chain) == len(blob)  # chained blob
    secrets = [PIN, NEW_PIN, b"000000", user_key.secret, blob[-64:]]
    text = "\n".join(lines)
    for secret in secrets:
        assert secret.hex() not in text.lower() and secret.hex().upper() not in text
        assert secret.decode("latin-1") not in text
    assert all(len(line) < 40 for line in lines)  # header, lengths and SW only
