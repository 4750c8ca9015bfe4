"""The P2 PIN letter: CMS EnvelopedData to the mailer (RSA-OAEP), inside CMS SignedData by the
issuer key (ECDSA P-256 SHA-256, computed in the token through a ``sign`` callable).

Format (docs/pin-letter.md): ContentInfo(SignedData{ eContentType id-data, eContent =
DER ContentInfo(EnvelopedData{ RSAES-OAEP(SHA-256, MGF1-SHA-256) key transport, AES-256-CBC })
}), the issuer's self-signed certificate included. ``openssl cms -verify`` then
``openssl cms -decrypt`` open it. Pure functions: no token, no I/O.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from asn1crypto import algos, cms, core, keys, x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from sealcard.errors import SealcardError, VerificationError

LETTER_FORMAT = "sealcard-pin-letter/1"
AES_KEY_BYTES = 32
AES_BLOCK_BYTES = 16
CERT_VALIDITY_YEARS = 20
_UTC_TIME_LIMIT_YEAR = 2050

Signer = Callable[[bytes], bytes]
"""Returns a DER ECDSA P-256 signature over SHA-256 of its argument."""


class PinLetterError(ValueError, SealcardError):
    """A letter that cannot be built or parsed."""


@dataclass(frozen=True, repr=False)
class PinLetterData:
    """What the mailer prints. ``repr`` hides PIN and PUK."""

    serial: bytes
    name: str
    address: str
    pin: bytes
    puk: bytes

    def __repr__(self) -> str:
        return f"PinLetterData(serial={self.serial.hex()}, name={self.name!r}, <pin>, <puk>)"

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "format": LETTER_FORMAT,
                "serial": self.serial.hex(),
                "name": self.name,
                "address": self.address,
                "pin": self.pin.decode("ascii"),
                "puk": self.puk.decode("ascii"),
            },
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> PinLetterData:
        try:
            value = json.loads(data.decode("utf-8"))
            if value.get("format") != LETTER_FORMAT:
                raise PinLetterError("not a sealcard PIN letter")
            return cls(
                bytes.fromhex(value["serial"]),
                str(value["name"]),
                str(value["address"]),
                str(value["pin"]).encode("ascii"),
                str(value["puk"]).encode("ascii"),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            if isinstance(exc, PinLetterError):
                raise
            raise PinLetterError("malformed PIN letter content") from None


def _time(when: dt.datetime) -> x509.Time:
    if when.year < _UTC_TIME_LIMIT_YEAR:
        return x509.Time(name="utc_time", value=when)
    return x509.Time(name="general_time", value=when)


def _spki(public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> keys.PublicKeyInfo:
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return keys.PublicKeyInfo.load(der)


def key_identifier(public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> bytes:
    """SHA-1 of the subjectPublicKey bits (RFC 5280 method 1), as certificates use."""
    return hashlib.sha1(_spki(public_key)["public_key"].contents[1:]).digest()  # noqa: S324


def make_issuer_certificate(
    public_key: ec.EllipticCurvePublicKey,
    sign: Signer,
    common_name: str = "sealcard issuer HSM",
    now: dt.datetime | None = None,
) -> bytes:
    """A self-signed X.509 certificate for the issuer key, signed in the token (DER)."""
    now = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    name = x509.Name.build({"common_name": common_name})
    skid = key_identifier(public_key)
    extensions = [
        {"extn_id": "basic_constraints", "critical": True, "extn_value": {"ca": False}},
        {
            "extn_id": "key_usage",
            "critical": True,
            "extn_value": {"digital_signature", "non_repudiation"},
        },
        {"extn_id": "key_identifier", "critical": False, "extn_value": skid},
    ]
    tbs = x509.TbsCertificate(
        {
            "version": "v3",
            "serial_number": int.from_bytes(os.urandom(16), "big") >> 1,
            "signature": {"algorithm": "sha256_ecdsa"},
            "issuer": name,
            "validity": {
                "not_before": _time(now),
                "not_after": _time(now.replace(year=now.year + CERT_VALIDITY_YEARS)),
            },
            "subject": name,
            "subject_public_key_info": _spki(public_key),
            "extensions": extensions,
        }
    )
    signature = sign(tbs.dump())
    certificate = x509.Certificate(
        {
            "tbs_certificate": tbs,
            "signature_algorithm": {"algorithm": "sha256_ecdsa"},
            "signature_value": signature,
        }
    )
    return bytes(certificate.dump())


def _der(tag: int, content: bytes) -> bytes:
    """One DER TLV (definite length)."""
    length = len(content)
    if length < 0x80:
        return bytes([tag, length]) + content
    size = (length.bit_length() + 7) // 8
    return bytes([tag, 0x80 | size]) + length.to_bytes(size, "big") + content


_SEQUENCE, _SET, _OCTET_STRING, _INTEGER = 0x30, 0x31, 0x04, 0x02
_CONTEXT_0_CONSTRUCTED, _CONTEXT_0_PRIMITIVE, _CONTEXT_0_IMPLICIT_SET = 0xA0, 0x80, 0xA0
_UTC_TIME = 0x17


def _oid(dotted: str) -> bytes:
    return bytes(core.ObjectIdentifier(dotted).dump())


_OID_DATA = _oid("1.2.840.113549.1.7.1")
_OID_SIGNED_DATA = _oid("1.2.840.113549.1.7.2")
_OID_ENVELOPED_DATA = _oid("1.2.840.113549.1.7.3")
_OID_CONTENT_TYPE = _oid("1.2.840.113549.1.9.3")
_OID_MESSAGE_DIGEST = _oid("1.2.840.113549.1.9.4")
_OID_SIGNING_TIME = _oid("1.2.840.113549.1.9.5")
_OID_AES256_CBC = _oid("2.16.840.1.101.3.4.1.42")
_ALG_SHA256 = bytes(algos.DigestAlgorithm({"algorithm": "sha256"}).dump())
_ALG_ECDSA_SHA256 = bytes(algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"}).dump())
_ALG_RSAES_OAEP_SHA256 = bytes(
    cms.KeyEncryptionAlgorithm(
        {
            "algorithm": "rsaes_oaep",
            "parameters": algos.RSAESOAEPParams(
                {
                    "hash_algorithm": {"algorithm": "sha256"},
                    "mask_gen_algorithm": {
                        "algorithm": "mgf1",
                        "parameters": {"algorithm": "sha256"},
                    },
                }
            ),
        }
    ).dump()
)
_VERSION_1 = _der(_INTEGER, b"\x01")
_VERSION_2 = _der(_INTEGER, b"\x02")


def _oaep() -> asym_padding.OAEP:
    return asym_padding.OAEP(
        mgf=asym_padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None
    )


# Built once: the padding object is immutable, and these DER pieces never change.
_OAEP_SHA256 = _oaep()
_PKCS7_PADS = [bytes([n]) * n for n in range(AES_BLOCK_BYTES + 1)]
_AES_CBC_IV_PREFIX = _der(_SEQUENCE, _OID_AES256_CBC + _der(_OCTET_STRING, bytes(AES_BLOCK_BYTES)))[
    :-AES_BLOCK_BYTES
]


def envelope(plaintext: bytes, recipient: rsa.RSAPublicKey, skid: bytes | None = None) -> bytes:
    """DER ContentInfo(EnvelopedData): AES-256-CBC content, RSA-OAEP-SHA256 key transport.

    The recipient is named by subjectKeyIdentifier (``skid``, computed if not given).
    Built with a small DER writer: asn1crypto's object model costs milliseconds per letter.
    """
    if not isinstance(recipient, rsa.RSAPublicKey):
        raise TypeError("the mailer key must be an RSA public key")
    skid = skid if skid is not None else key_identifier(recipient)
    content_key = os.urandom(AES_KEY_BYTES)
    iv = os.urandom(AES_BLOCK_BYTES)
    padded = plaintext + _PKCS7_PADS[AES_BLOCK_BYTES - len(plaintext) % AES_BLOCK_BYTES]
    encryptor = Cipher(algorithms.AES(content_key), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    ktri = _der(
        _SEQUENCE,
        _VERSION_2
        + _der(_CONTEXT_0_PRIMITIVE, skid)
        + _ALG_RSAES_OAEP_SHA256
        + _der(_OCTET_STRING, recipient.encrypt(content_key, _OAEP_SHA256)),
    )
    encrypted_content_info = _der(
        _SEQUENCE,
        _OID_DATA + _AES_CBC_IV_PREFIX + iv + _der(_CONTEXT_0_PRIMITIVE, ciphertext),
    )
    enveloped = _der(_SEQUENCE, _VERSION_2 + _der(_SET, ktri) + encrypted_content_info)
    return _der(_SEQUENCE, _OID_ENVELOPED_DATA + _der(_CONTEXT_0_CONSTRUCTED, enveloped))


@dataclass(frozen=True)
class SignerCertificate:
    """The issuer certificate, pre-encoded for fast SignedData assembly."""

    der: bytes
    issuer_and_serial: bytes

    @classmethod
    def load(cls, certificate_der: bytes) -> SignerCertificate:
        certificate = x509.Certificate.load(certificate_der)
        ias = cms.IssuerAndSerialNumber(
            {"issuer": certificate.issuer, "serial_number": certificate.serial_number}
        )
        return cls(bytes(certificate_der), bytes(ias.dump()))

    @cached_property
    def signer_info_prefix(self) -> bytes:
        """SignerInfo's version, sid and digestAlgorithm (constant for this signer)."""
        return _VERSION_1 + self.issuer_and_serial + _ALG_SHA256

    @cached_property
    def certificates(self) -> bytes:
        """SignedData's ``certificates [0] IMPLICIT`` holding this certificate."""
        return _der(_CONTEXT_0_CONSTRUCTED, self.der)


def _utc_time(when: dt.datetime) -> bytes:
    return _der(_UTC_TIME, when.strftime("%y%m%d%H%M%SZ").encode("ascii"))


_ATTR_CONTENT_TYPE = _der(_SEQUENCE, _OID_CONTENT_TYPE + _der(_SET, _OID_DATA))
_ATTR_DIGEST_PREFIX = _der(
    _SEQUENCE, _OID_MESSAGE_DIGEST + _der(_SET, _der(_OCTET_STRING, bytes(32)))
)[:-32]
_ALGORITHMS_SET_SHA256 = _der(_SET, _ALG_SHA256)


class _SigningTime:
    """The signing-time attribute, encoded once per second (the clock's resolution in it)."""

    def __init__(self) -> None:
        self._second = -1
        self._encoded = b""

    def __call__(self) -> bytes:
        now = dt.datetime.now(dt.UTC)
        second = int(now.timestamp())
        if second != self._second:
            self._encoded = _der(_SEQUENCE, _OID_SIGNING_TIME + _der(_SET, _utc_time(now)))
            self._second = second
        return self._encoded


_signing_time = _SigningTime()


def sign_content(content: bytes, sign: Signer, certificate: bytes | SignerCertificate) -> bytes:
    """DER ContentInfo(SignedData) over ``content`` (id-data), signer = the certificate's key."""
    signer = (
        certificate
        if isinstance(certificate, SignerCertificate)
        else (SignerCertificate.load(certificate))
    )
    encoded = [
        _ATTR_CONTENT_TYPE,
        _ATTR_DIGEST_PREFIX + hashlib.sha256(content).digest(),
        _signing_time(),
    ]
    attributes = b"".join(sorted(encoded))  # DER: a SET OF is sorted by encoding
    signature = sign(_der(_SET, attributes))
    signer_info = _der(
        _SEQUENCE,
        signer.signer_info_prefix
        + _der(_CONTEXT_0_IMPLICIT_SET, attributes)
        + _ALG_ECDSA_SHA256
        + _der(_OCTET_STRING, signature),
    )
    signed = _der(
        _SEQUENCE,
        _VERSION_1
        + _ALGORITHMS_SET_SHA256
        + _der(_SEQUENCE, _OID_DATA + _der(_CONTEXT_0_CONSTRUCTED, _der(_OCTET_STRING, content)))
        + signer.certificates
        + _der(_SET, signer_info),
    )
    return _der(_SEQUENCE, _OID_SIGNED_DATA + _der(_CONTEXT_0_CONSTRUCTED, signed))


def build_pin_letter(
    letter: PinLetterData,
    mailer_key: rsa.RSAPublicKey,
    sign: Signer,
    certificate: bytes | SignerCertificate,
    mailer_skid: bytes | None = None,
) -> bytes:
    """Encrypt the letter to the mailer, then sign the envelope with the issuer key."""
    return sign_content(envelope(letter.to_json(), mailer_key, mailer_skid), sign, certificate)


def verify_signed(letter: bytes, issuer_public_key: ec.EllipticCurvePublicKey) -> bytes:
    """Check the issuer's signature; return the signed content (the EnvelopedData ContentInfo)."""
    try:
        info = cms.ContentInfo.load(letter)
        if info["content_type"].native != "signed_data":
            raise PinLetterError("not a CMS SignedData")
        signed = info["content"]
        content = bytes(signed["encap_content_info"]["content"].native)
        signer = signed["signer_infos"][0]
        attrs = signer["signed_attrs"]
        digest = next(a["values"][0].native for a in attrs if a["type"].native == "message_digest")
        signature = bytes(signer["signature"].native)
        attrs_der = bytes(attrs.dump())
    except (ValueError, KeyError, TypeError, StopIteration, IndexError) as exc:
        if isinstance(exc, PinLetterError):
            raise
        raise PinLetterError("malformed PIN letter") from None
    if digest != hashlib.sha256(content).digest():
        raise VerificationError("the PIN letter's content digest does not match")
    try:
        issuer_public_key.verify(signature, _set_of(attrs_der), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise VerificationError("the PIN letter is not signed by the issuer key") from None
    return content


def _set_of(attrs_der: bytes) -> bytes:
    """Signed attributes are signed as an explicit SET OF (tag 0x31), not as [0] IMPLICIT."""
    return b"\x31" + attrs_der[1:]


def open_envelope(enveloped: bytes, mailer_private_key: rsa.RSAPrivateKey) -> bytes:
    """Decrypt a ContentInfo(EnvelopedData) made by :func:`envelope`."""
    return open_envelope_with(enveloped, lambda key: mailer_private_key.decrypt(key, _oaep()))


def open_envelope_with(enveloped: bytes, unwrap: Callable[[bytes], bytes]) -> bytes:
    """Decrypt a ContentInfo(EnvelopedData) made by :func:`envelope`; `unwrap` is the RSA-OAEP
    (SHA-256) decryption of the content key by the mailer's key, wherever that key lives
    (raising ValueError or SealcardError when it cannot)."""
    try:
        info = cms.ContentInfo.load(enveloped)
        data = info["content"]
        ktri = data["recipient_infos"][0].chosen
        encrypted_key = bytes(ktri["encrypted_key"].native)
        eci = data["encrypted_content_info"]
        iv = bytes(eci["content_encryption_algorithm"]["parameters"].native)
        ciphertext = bytes(eci["encrypted_content"].native)
    except (ValueError, KeyError, TypeError, IndexError):
        raise PinLetterError("malformed EnvelopedData") from None
    try:
        content_key = unwrap(encrypted_key)
        if len(content_key) != AES_KEY_BYTES:
            raise ValueError("content key length")
        decryptor = Cipher(algorithms.AES(content_key), modes.CBC(iv)).decryptor()
        padded = decryptor.update(ciphertext) + decryptor.finalize()
        unpadder = padding.PKCS7(AES_BLOCK_BYTES * 8).unpadder()
        return unpadder.update(padded) + unpadder.finalize()
    except (ValueError, SealcardError):
        raise PinLetterError("the PIN letter cannot be decrypted with this key") from None


def open_pin_letter(
    letter: bytes,
    mailer_private_key: rsa.RSAPrivateKey,
    issuer_public_key: ec.EllipticCurvePublicKey,
) -> PinLetterData:
    """What the mailer does: verify the issuer signature, decrypt, parse."""
    return PinLetterData.from_json(
        open_envelope(verify_signed(letter, issuer_public_key), mailer_private_key)
    )
