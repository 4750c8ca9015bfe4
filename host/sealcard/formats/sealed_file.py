"""Sealed party files: CMS, signed by the sender, encrypted to the receivers, in one pass.

    ContentInfo(AuthEnvelopedData {                       RFC 5083, BER indefinite lengths
      recipientInfos: one KeyAgreeRecipientInfo per receiver
        ephemeral-static ECDH on P-256, dhSinglePass-stdDH-sha256kdf-scheme (X9.63 KDF),
        the content key wrapped with id-aes256-wrap (RFC 3394); rid = issuerAndSerialNumber
      authEncryptedContentInfo: id-data, id-aes256-GCM (12-byte nonce, 16-byte tag)
        encryptedContent = AES-256-GCM of the BER bytes of
          ContentInfo(SignedData {                        RFC 5652
            encapContentInfo: id-data, the content (our CSV) in 64 KiB OCTET STRING chunks
            certificates: the sender's certificate
            signerInfo: sha256, signed attributes (contentType, signingTime, messageDigest),
                        ecdsa-with-SHA256 by the sender's key })
      mac = the GCM tag })

Why this shape (docs/files.md): sign, then encrypt, is what `openssl cms -decrypt` followed by
`openssl cms -verify` opens; it hides who signed from anyone but the receiver, and the signed
CSV header names sender and receivers, so a receiver cannot pass a file on as if it had been
sent to someone else. Indefinite lengths let the writer stream: nothing has to be known about
the size of the content before the first byte goes out, and neither side ever holds more than
one chunk. GCM through `cryptography`'s incremental cipher (`finalize_with_tag` on reading)
authenticates the whole ciphertext at the end; the reader hands out content before that, so
its callers stage what they read and commit only after :meth:`SealedFileReader.finish`.

Keys stay behind two callables, so a token's key works as well as a software one:
`sign(data) -> DER ECDSA P-256 signature over SHA-256(data)` and
`ecdh(peer_public_key) -> shared secret` (the x coordinate, as CKM_ECDH1_DERIVE with CKD_NULL
gives it). No file I/O here: the writer writes to, and the reader reads from, a binary stream
the caller opened.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Final, Protocol

from asn1crypto import cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.x963kdf import X963KDF
from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap,
    aes_key_wrap,
)

from sealcard.errors import SealcardError

CHUNK_BYTES: Final = 64 * 1024
MAX_CHUNK_BYTES: Final = 16 * 1024 * 1024
MAX_SMALL_ELEMENT: Final = 256 * 1024
CONTENT_KEY_BYTES: Final = 32
GCM_NONCE_BYTES: Final = 12
GCM_TAG_BYTES: Final = 16

Signer = Callable[[bytes], bytes]
"""DER ECDSA P-256 signature over SHA-256 of its argument (computed where the key lives)."""
KeyAgreement = Callable[[ec.EllipticCurvePublicKey], bytes]
"""ECDH with the receiver's private key: the shared secret (x coordinate, 32 bytes)."""


class SealedFileError(SealcardError):
    """A sealed party file that cannot be accepted; the message is the one-line reason."""


class MalformedFileError(SealedFileError):
    """Not a sealed party file, or one built in a way this code does not read."""


class TruncatedFileError(SealedFileError):
    """The file ends before its structure does."""


class TamperedFileError(SealedFileError):
    """Authentication failed: the ciphertext, tag, content key or signature was changed."""


class NotForUsError(SealedFileError):
    """The file is encrypted to other receivers only."""


# -- DER pieces ----------------------------------------------------------------------------


def _len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    size = (n.bit_length() + 7) // 8
    return bytes([0x80 | size]) + n.to_bytes(size, "big")


def _tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _len(len(content)) + content


def _oid(dotted: str) -> bytes:
    return bytes(core.ObjectIdentifier(dotted).dump())


_SEQ, _SET, _OCTETS, _INT, _BITS = 0x30, 0x31, 0x04, 0x02, 0x03
_CONSTRUCTED_OCTETS = 0x24
_CTX0, _CTX1, _CTX0_PRIM = 0xA0, 0xA1, 0x80
_INDEFINITE = b"\x80"
_EOC = b"\x00\x00"

OID_DATA: Final = "1.2.840.113549.1.7.1"
OID_SIGNED_DATA: Final = "1.2.840.113549.1.7.2"
OID_AUTH_ENVELOPED_DATA: Final = "1.2.840.113549.1.9.16.1.23"
OID_EC_PUBLIC_KEY: Final = "1.2.840.10045.2.1"
OID_ECDH_SHA256_KDF: Final = "1.3.132.1.11.1"  # dhSinglePass-stdDH-sha256kdf-scheme
OID_AES256_WRAP: Final = "2.16.840.1.101.3.4.1.45"
OID_AES256_GCM: Final = "2.16.840.1.101.3.4.1.46"
OID_SHA256: Final = "2.16.840.1.101.3.4.2.1"
OID_ECDSA_SHA256: Final = "1.2.840.10045.4.3.2"
OID_CONTENT_TYPE: Final = "1.2.840.113549.1.9.3"
OID_MESSAGE_DIGEST: Final = "1.2.840.113549.1.9.4"
OID_SIGNING_TIME: Final = "1.2.840.113549.1.9.5"

_ALG_SHA256 = _tlv(_SEQ, _oid(OID_SHA256))
_ALG_ECDSA_SHA256 = _tlv(_SEQ, _oid(OID_ECDSA_SHA256))
_ALG_AES256_WRAP = _tlv(_SEQ, _oid(OID_AES256_WRAP))
_ALG_KEY_AGREEMENT = _tlv(_SEQ, _oid(OID_ECDH_SHA256_KDF) + _ALG_AES256_WRAP)
# X9.63 KDF shared info (RFC 5753 section 7.2): keyInfo, suppPubInfo = 256 as 32 bits.
_SHARED_INFO = _tlv(
    _SEQ, _ALG_AES256_WRAP + _tlv(0xA2, _tlv(_OCTETS, (CONTENT_KEY_BYTES * 8).to_bytes(4, "big")))
)


def _gcm_algorithm(nonce: bytes) -> bytes:
    params = _tlv(_SEQ, _tlv(_OCTETS, nonce) + _tlv(_INT, bytes([GCM_TAG_BYTES])))
    return _tlv(_SEQ, _oid(OID_AES256_GCM) + params)


def _point(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def issuer_and_serial(certificate: x509.Certificate) -> bytes:
    """DER IssuerAndSerialNumber of a certificate (how CMS names a key's holder)."""
    serial = certificate.serial_number
    serial_bytes = serial.to_bytes((serial.bit_length() + 8) // 8 or 1, "big")
    return _tlv(_SEQ, certificate.issuer.public_bytes() + _tlv(_INT, serial_bytes))


def _kek(shared_secret: bytes) -> bytes:
    kdf = X963KDF(algorithm=hashes.SHA256(), length=CONTENT_KEY_BYTES, sharedinfo=_SHARED_INFO)
    return kdf.derive(shared_secret)


def _p256_public(certificate: x509.Certificate) -> ec.EllipticCurvePublicKey:
    key = certificate.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise SealedFileError("party keys are EC P-256; this certificate holds another key")
    return key


def _key_agree_recipient(recipient: x509.Certificate, content_key: bytes) -> bytes:
    """KeyAgreeRecipientInfo: a fresh ephemeral key per receiver, the content key wrapped."""
    ephemeral = ec.generate_private_key(ec.SECP256R1())
    shared = ephemeral.exchange(ec.ECDH(), _p256_public(recipient))
    wrapped = aes_key_wrap(_kek(shared), content_key)
    originator_key = _tlv(
        0xA1,  # [1] IMPLICIT OriginatorPublicKey
        _tlv(_SEQ, _oid(OID_EC_PUBLIC_KEY)) + _tlv(_BITS, b"\x00" + _point(ephemeral.public_key())),
    )
    encrypted_key = _tlv(_SEQ, issuer_and_serial(recipient) + _tlv(_OCTETS, wrapped))
    body = (
        _tlv(_INT, b"\x03")
        + _tlv(_CTX0, originator_key)
        + _ALG_KEY_AGREEMENT
        + _tlv(_SEQ, encrypted_key)
    )
    return _tlv(_CTX1, body)  # [1] IMPLICIT KeyAgreeRecipientInfo


def _signed_attributes(content_digest: bytes, when: dt.datetime) -> bytes:
    """The DER content of the signed attributes (sorted, as DER sorts a SET OF)."""
    time = _tlv(0x17, when.strftime("%y%m%d%H%M%SZ").encode("ascii"))
    attributes = [
        _tlv(_SEQ, _oid(OID_CONTENT_TYPE) + _tlv(_SET, _oid(OID_DATA))),
        _tlv(_SEQ, _oid(OID_MESSAGE_DIGEST) + _tlv(_SET, _tlv(_OCTETS, content_digest))),
        _tlv(_SEQ, _oid(OID_SIGNING_TIME) + _tlv(_SET, time)),
    ]
    return b"".join(sorted(attributes))


# -- writing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SenderKey:
    """The sender's certificate and the callable that signs with its private key."""

    certificate: x509.Certificate
    sign: Signer


class SealedFileWriter:
    """Writes one sealed file to `out` as content arrives: `write(bytes)`... then `close()`.

    Memory stays at about two chunks whatever the size of the content. If anything fails
    before `close()`, what was written is not a valid file (the caller writes to a temporary
    name and renames only after `close()`).
    """

    def __init__(
        self,
        out: BinaryIO,
        sender: SenderKey,
        recipients: list[x509.Certificate],
        *,
        chunk_bytes: int = CHUNK_BYTES,
        now: dt.datetime | None = None,
    ) -> None:
        if not recipients:
            raise SealedFileError("a sealed file needs at least one receiver")
        self._out = out
        self._sender = sender
        self._chunk = chunk_bytes
        self._when = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
        self._digest = hashlib.sha256()
        self._pending = bytearray()  # content not yet put into an inner chunk
        self._cipher_pending = bytearray()  # ciphertext not yet written as an outer chunk
        self._closed = False
        self.content_bytes = 0
        self.bytes_written = 0
        content_key = os.urandom(CONTENT_KEY_BYTES)
        nonce = os.urandom(GCM_NONCE_BYTES)
        self._encryptor = Cipher(algorithms.AES(content_key), modes.GCM(nonce)).encryptor()
        recipient_infos = b"".join(_key_agree_recipient(r, content_key) for r in recipients)
        self._emit(
            b"\x30\x80"
            + _oid(OID_AUTH_ENVELOPED_DATA)
            + b"\xa0\x80"
            + b"\x30\x80"
            + _tlv(_INT, b"\x00")
            + _tlv(_SET, recipient_infos)
            + b"\x30\x80"
            + _oid(OID_DATA)
            + _gcm_algorithm(nonce)
            + b"\xa0\x80"  # [0] IMPLICIT encryptedContent, constructed: chunks follow
        )
        self._plain(
            b"\x30\x80"
            + _oid(OID_SIGNED_DATA)
            + b"\xa0\x80"
            + b"\x30\x80"
            + _tlv(_INT, b"\x01")
            + _tlv(_SET, _ALG_SHA256)
            + b"\x30\x80"
            + _oid(OID_DATA)
            + b"\xa0\x80"
            + b"\x24\x80"  # eContent: a constructed OCTET STRING of chunks
        )

    def _emit(self, data: bytes) -> None:
        self._out.write(data)
        self.bytes_written += len(data)

    def _plain(self, data: bytes) -> None:
        """Encrypt inner bytes; whole outer chunks go out as they fill."""
        self._cipher_pending += self._encryptor.update(data)
        while len(self._cipher_pending) >= self._chunk:
            piece = bytes(self._cipher_pending[: self._chunk])
            del self._cipher_pending[: self._chunk]
            self._emit(_tlv(_OCTETS, piece))

    def _flush_content(self, final: bool) -> None:
        while len(self._pending) >= self._chunk or (final and self._pending):
            piece = bytes(self._pending[: self._chunk])
            del self._pending[: self._chunk]
            self._plain(_tlv(_OCTETS, piece))

    def write(self, data: bytes) -> None:
        """Add content (hashed for the signature, then encrypted)."""
        if self._closed:
            raise SealedFileError("the sealed file is already closed")
        self._digest.update(data)
        self.content_bytes += len(data)
        self._pending += data
        if len(self._pending) >= self._chunk:
            self._flush_content(final=False)

    def close(self) -> None:
        """Sign, finish the encryption and write the tag. The file is complete afterwards."""
        if self._closed:
            return
        self._flush_content(final=True)
        attributes = _signed_attributes(self._digest.digest(), self._when)
        signature = self._sender.sign(_tlv(_SET, attributes))
        certificate = self._sender.certificate
        signer_info = _tlv(
            _SEQ,
            _tlv(_INT, b"\x01")
            + issuer_and_serial(certificate)
            + _ALG_SHA256
            + _tlv(_CTX0, attributes)
            + _ALG_ECDSA_SHA256
            + _tlv(_OCTETS, signature),
        )
        self._plain(
            _EOC  # eContent chunks
            + _EOC  # [0] EXPLICIT
            + _EOC  # encapContentInfo
            + _tlv(_CTX0, certificate.public_bytes(serialization.Encoding.DER))
            + _tlv(_SET, signer_info)
            + _EOC  # SignedData
            + _EOC  # [0] EXPLICIT
            + _EOC  # ContentInfo
        )
        self._cipher_pending += self._encryptor.finalize()
        if self._cipher_pending:
            self._emit(_tlv(_OCTETS, bytes(self._cipher_pending)))
            self._cipher_pending.clear()
        self._emit(
            _EOC  # encryptedContent
            + _EOC  # authEncryptedContentInfo
            + _tlv(_OCTETS, self._encryptor.tag)
            + _EOC  # AuthEnvelopedData
            + _EOC  # [0] EXPLICIT
            + _EOC  # ContentInfo
        )
        self._closed = True


# -- reading -------------------------------------------------------------------------------


class _Ber:
    """A pull parser for the BER this module writes, over a `read(n)` source."""

    def __init__(self, read: Callable[[int], bytes], what: str) -> None:
        self._read = read
        self.what = what
        self.offset = 0

    def take(self, n: int) -> bytes:
        data = self._read(n)
        while len(data) < n:
            more = self._read(n - len(data))
            if not more:
                raise TruncatedFileError(
                    f"the {self.what} ends early at byte {self.offset + len(data)} (truncated)"
                )
            data += more
        self.offset += n
        return data

    def header(self) -> tuple[int, int | None]:
        """(tag, length); length None for the indefinite form."""
        tag = self.take(1)[0]
        if tag & 0x1F == 0x1F:
            raise MalformedFileError(f"{self.what}: multi-byte tags are not used here")
        first = self.take(1)[0]
        if first < 0x80:
            return tag, first
        if first == 0x80:
            if not tag & 0x20:
                raise MalformedFileError(f"{self.what}: indefinite length on a primitive")
            return tag, None
        size = first & 0x7F
        if size > 4:
            raise MalformedFileError(f"{self.what}: length field too long")
        return tag, int.from_bytes(self.take(size), "big")

    def expect(self, tag: int, what: str) -> int | None:
        got, length = self.header()
        if got != tag:
            raise MalformedFileError(
                f"{self.what}: expected {what} (tag {tag:#04x}), found tag {got:#04x}"
            )
        return length

    def value(self, tag: int, what: str, limit: int = MAX_SMALL_ELEMENT) -> bytes:
        """A definite-length element's content."""
        length = self.expect(tag, what)
        if length is None or length > limit:
            raise MalformedFileError(f"{self.what}: {what} has a bad length")
        return self.take(length)

    def eoc(self, what: str) -> None:
        if self.take(2) != _EOC:
            raise MalformedFileError(f"{self.what}: {what} is not closed where expected")

    def end(self, length: int | None, start: int, what: str) -> None:
        """Close a constructed element opened at `start` (after its header)."""
        if length is None:
            self.eoc(what)
        elif self.offset - start != length:
            raise MalformedFileError(f"{self.what}: {what} has trailing or missing bytes")

    def oid(self, expected: str, what: str) -> None:
        got = core.ObjectIdentifier.load(_tlv(0x06, self.value(0x06, what))).dotted
        if got != expected:
            raise MalformedFileError(f"{self.what}: {what} is {got}, expected {expected}")

    def chunks(self, tag_primitive: int, tag_constructed: int, what: str) -> Iterator[bytes]:
        """The content of an OCTET STRING-like element, primitive or constructed, in pieces."""
        tag, length = self.header()
        if tag == tag_primitive and length is not None:
            remaining = length
            while remaining:
                n = min(remaining, CHUNK_BYTES)
                yield self.take(n)
                remaining -= n
            return
        if tag != tag_constructed:
            raise MalformedFileError(f"{self.what}: expected {what}, found tag {tag:#04x}")
        start = self.offset
        while True:
            if length is not None and self.offset - start >= length:
                if self.offset - start != length:
                    raise MalformedFileError(f"{self.what}: {what} overruns its length")
                return
            piece_tag, piece_length = self.header()
            if length is None and piece_tag == 0 and piece_length == 0:
                return
            if piece_tag != _OCTETS or piece_length is None or piece_length > MAX_CHUNK_BYTES:
                raise MalformedFileError(f"{self.what}: bad chunk in {what}")
            remaining = piece_length
            while remaining:
                n = min(remaining, CHUNK_BYTES)
                yield self.take(n)
                remaining -= n


@dataclass(frozen=True)
class ReceiverKey:
    """The receiver's certificate and the callable doing ECDH with its private key."""

    certificate: x509.Certificate
    ecdh: KeyAgreement


class _Decrypting:
    """`read(n)` over the plaintext of the outer parser's ciphertext chunks."""

    def __init__(self, chunks: Iterator[bytes], decryptor: object) -> None:
        self._chunks = chunks
        self._decryptor = decryptor
        self._buffer = bytearray()
        self.exhausted = False

    def read(self, n: int) -> bytes:
        while len(self._buffer) < n and not self.exhausted:
            piece = next(self._chunks, None)
            if piece is None:
                self.exhausted = True
                break
            self._buffer += self._decryptor.update(piece)  # type: ignore[attr-defined]
        out = bytes(self._buffer[:n])
        del self._buffer[:n]
        return out

    def drain(self) -> int:
        """Decrypt and drop whatever is left; returns how many plaintext bytes that was."""
        left = len(self._buffer)
        self._buffer.clear()
        for piece in self._chunks:
            left += len(self._decryptor.update(piece))  # type: ignore[attr-defined]
        self.exhausted = True
        return left


@dataclass(frozen=True)
class Recipient:
    """How a KeyAgreeRecipientInfo names one receiver (for "addressed to someone else")."""

    issuer: str
    serial_number: int


class SealedFileReader:
    """Opens a sealed file as a stream: `content()` yields the signed content in pieces, then
    `finish()` checks the GCM tag and the signature and returns the signer's certificate.

    Nothing read through `content()` is authentic until `finish()` returns: stage it, and
    commit only then. `finish()` may be called before `content()` is exhausted (the rest is
    decrypted and dropped), so a caller that stops on bad content still learns whether the
    file was tampered with (TamperedFileError wins over the caller's own complaint).
    """

    def __init__(self, source: BinaryIO, receiver: ReceiverKey) -> None:
        self._source = source
        self._outer = _Ber(source.read, "sealed file")
        self._receiver = receiver
        self._digest = hashlib.sha256()
        self.content_bytes = 0
        self._content_done = False
        self._gen: Iterator[bytes] | None = None
        self._failure: SealedFileError | None = None
        self._finished = False
        self.recipients: list[Recipient] = []
        try:
            self._open_outer()
        except SealedFileError:
            raise
        except (ValueError, TypeError, KeyError) as exc:
            raise MalformedFileError(f"sealed file: {exc}") from None
        self._plain = _Decrypting(self._cipher_chunks(), self._decryptor)
        self._inner = _Ber(self._plain.read, "signed content")
        self._open_inner()

    # outer: AuthEnvelopedData up to the encrypted content
    def _open_outer(self) -> None:
        b = self._outer
        try:
            tag, self._info_len = b.header()
        except TruncatedFileError:
            raise TruncatedFileError("the file is empty or ends at once (truncated)") from None
        except MalformedFileError:
            tag = -1
        if tag != _SEQ:
            raise MalformedFileError("not a sealed party file (not CMS)")
        b.oid(OID_AUTH_ENVELOPED_DATA, "the content type (a sealed file is AuthEnvelopedData)")
        self._explicit_len = b.expect(_CTX0, "[0] content")
        self._aed_len = b.expect(_SEQ, "AuthEnvelopedData")
        if b.value(_INT, "version") != b"\x00":
            raise MalformedFileError("AuthEnvelopedData version is not 0")
        infos = b.value(_SET, "recipientInfos")
        content_key = self._content_key(infos)
        self._eci_len = b.expect(_SEQ, "authEncryptedContentInfo")
        b.oid(OID_DATA, "the encrypted content type")
        nonce = self._gcm_nonce(b.value(_SEQ, "content encryption algorithm"))
        self._decryptor = Cipher(algorithms.AES(content_key), modes.GCM(nonce)).decryptor()

    def _content_key(self, infos_der: bytes) -> bytes:
        try:
            infos = cms.RecipientInfos.load(_tlv(_SET, infos_der))
            ours = issuer_and_serial(self._receiver.certificate)
            match = None
            for info in infos:
                if info.name != "kari":
                    raise MalformedFileError("a receiver is not named by key agreement")
                kari = info.chosen
                if kari["key_encryption_algorithm"]["algorithm"].dotted != OID_ECDH_SHA256_KDF:
                    raise MalformedFileError("unsupported key agreement (not ECDH, SHA-256 KDF)")
                wrap = kari["key_encryption_algorithm"]["parameters"]
                if core.Sequence.load(wrap.dump())[0].dotted != OID_AES256_WRAP:
                    raise MalformedFileError("unsupported key wrap (expected AES-256 wrap)")
                for rek in kari["recipient_encrypted_keys"]:
                    rid = rek["rid"]
                    if rid.name != "issuer_and_serial_number":
                        raise MalformedFileError("a receiver is not named by issuer and serial")
                    ias = rid.chosen
                    self.recipients.append(
                        Recipient(ias["issuer"].human_friendly, int(ias["serial_number"].native))
                    )
                    if bytes(ias.dump()) == ours:
                        match = (kari, bytes(rek["encrypted_key"].native))
        except (ValueError, TypeError, KeyError) as exc:
            raise MalformedFileError(f"sealed file: unreadable recipientInfos ({exc})") from None
        if match is None:
            names = "; ".join(f"{r.issuer} #{r.serial_number:x}" for r in self.recipients)
            raise NotForUsError(f"the file is addressed to another party ({names}), not to us")
        kari, wrapped = match
        originator = kari["originator"]
        if originator.name != "originator_key":
            raise MalformedFileError("the sender's ephemeral key is missing")
        key_info = originator.chosen
        if key_info["algorithm"]["algorithm"].dotted != OID_EC_PUBLIC_KEY:
            raise MalformedFileError("the ephemeral key is not an EC key")
        try:
            ephemeral = ec.EllipticCurvePublicKey.from_encoded_point(
                ec.SECP256R1(), bytes(key_info["public_key"].native)
            )
        except ValueError:
            raise TamperedFileError("tampered: the ephemeral key is not a P-256 point") from None
        shared = self._receiver.ecdh(ephemeral)
        try:
            return aes_key_unwrap(_kek(shared), wrapped)
        except InvalidUnwrap:
            raise TamperedFileError("tampered: the content key does not unwrap") from None

    @staticmethod
    def _gcm_nonce(algorithm_der: bytes) -> bytes:
        try:
            seq = core.Sequence.load(_tlv(_SEQ, algorithm_der))
            if seq[0].dotted != OID_AES256_GCM:
                raise MalformedFileError("unsupported content encryption (expected AES-256-GCM)")
            params = core.Sequence.load(seq[1].dump())
            nonce = bytes(core.OctetString.load(params[0].dump()).native)
            tag_len = int(core.Integer.load(params[1].dump()).native) if len(params) > 1 else 12
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            raise MalformedFileError(f"sealed file: unreadable GCM parameters ({exc})") from None
        if len(nonce) != GCM_NONCE_BYTES or tag_len != GCM_TAG_BYTES:
            raise MalformedFileError("unsupported GCM parameters (12-byte nonce, 16-byte tag)")
        return nonce

    def _cipher_chunks(self) -> Iterator[bytes]:
        yield from self._outer.chunks(_CTX0_PRIM, _CTX0, "encrypted content")

    # inner: SignedData up to the content
    def _open_inner(self) -> None:
        b = self._inner
        try:
            b.expect(_SEQ, "ContentInfo")
            b.oid(OID_SIGNED_DATA, "the signed content type")
            self._in_explicit = b.expect(_CTX0, "[0] content")
            b.expect(_SEQ, "SignedData")
            if b.value(_INT, "version") not in (b"\x01", b"\x03"):
                raise MalformedFileError("signed content: SignedData version is not 1 or 3")
            b.value(_SET, "digestAlgorithms")
            b.expect(_SEQ, "encapContentInfo")
            b.oid(OID_DATA, "the signed content type")
            b.expect(_CTX0, "[0] eContent")
        except SealedFileError as exc:
            self._fail_inner(exc)

    def _fail_inner(self, exc: SealedFileError) -> None:
        """A damaged inner structure: tampering if the tag fails, else the sender's fault."""
        self._plain.drain()
        self._check_tag()
        self._failure = exc
        raise exc

    def content(self) -> Iterator[bytes]:
        """The signed content (the CSV), piece by piece, hashed on the way (one iterator)."""
        if self._gen is None:
            self._gen = self._content()
        return self._gen

    def _content(self) -> Iterator[bytes]:
        try:
            for piece in self._inner.chunks(_OCTETS, _CONSTRUCTED_OCTETS, "eContent"):
                self._digest.update(piece)
                self.content_bytes += len(piece)
                yield piece
        except SealedFileError as exc:
            self._fail_inner(exc)
        self._content_done = True

    def _check_tag(self) -> None:
        b = self._outer
        try:
            b.eoc("authEncryptedContentInfo")
            tag = b.value(_OCTETS, "mac")
            b.eoc("AuthEnvelopedData")
            b.eoc("[0] content")
            b.eoc("ContentInfo")
        except TruncatedFileError:
            raise
        except SealedFileError as exc:
            raise TamperedFileError(f"tampered: {exc}") from None
        if len(tag) != GCM_TAG_BYTES:
            raise TamperedFileError("tampered: the authentication tag has the wrong length")
        try:
            self._decryptor.finalize_with_tag(tag)
        except InvalidTag:
            raise TamperedFileError("tampered: the authentication tag does not match") from None
        if self._source.read(1):
            raise TamperedFileError("tampered: bytes follow the end of the sealed file")

    def finish(self) -> x509.Certificate:
        """Check the tag and the signature; the signer's certificate (trust is the caller's).

        Reads whatever content the caller left unread (hashing it), so a caller that stopped
        on bad content learns here whether the file is authentic."""
        if self._failure is not None:
            raise self._failure
        if self._finished:
            raise SealedFileError("finish() was already called")
        self._finished = True
        for _ in self.content():
            pass
        b = self._inner
        try:
            b.eoc("[0] eContent")
            b.eoc("encapContentInfo")
            certificates = b.value(_CTX0, "certificates")
            signer_infos = b.value(_SET, "signerInfos")
            b.eoc("SignedData")
            b.eoc("[0] content")
            b.eoc("ContentInfo")
        except SealedFileError as exc:
            self._fail_inner(exc)
        if self._plain.read(1) or self._plain.drain():
            self._check_tag()
            raise MalformedFileError("signed content: bytes after the end of SignedData")
        self._check_tag()
        return self._verify(certificates, signer_infos)

    def _verify(self, certificates: bytes, signer_infos: bytes) -> x509.Certificate:
        try:
            certs = core.SetOf.load(_tlv(_SET, certificates), spec=asn1_x509.Certificate)
            infos = cms.SignerInfos.load(_tlv(_SET, signer_infos))
            if len(certs) != 1 or len(infos) != 1:
                raise MalformedFileError("signed content: expected one certificate and one signer")
            certificate = x509.load_der_x509_certificate(bytes(certs[0].dump()))
            info = infos[0]
            sid = info["sid"]
            if sid.name != "issuer_and_serial_number" or bytes(
                sid.chosen.dump()
            ) != issuer_and_serial(certificate):
                raise MalformedFileError("signed content: signer is not the enclosed certificate")
            if info["digest_algorithm"]["algorithm"].dotted != OID_SHA256:
                raise MalformedFileError("signed content: the digest is not SHA-256")
            if info["signature_algorithm"]["algorithm"].dotted != OID_ECDSA_SHA256:
                raise MalformedFileError("signed content: the signature is not ECDSA with SHA-256")
            attributes = info["signed_attrs"]
            found: dict[str, bytes] = {}
            for attribute in attributes:
                found[attribute["type"].dotted] = bytes(attribute["values"][0].dump())
            signed_der = b"\x31" + bytes(attributes.dump())[1:]
            signature = bytes(info["signature"].native)
        except SealedFileError:
            raise
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            raise MalformedFileError(f"signed content: unreadable signer ({exc})") from None
        if found.get(OID_CONTENT_TYPE) != _oid(OID_DATA):
            raise MalformedFileError("signed content: the signed content type is not id-data")
        if found.get(OID_MESSAGE_DIGEST) != _tlv(_OCTETS, self._digest.digest()):
            raise TamperedFileError("tampered: the content does not match its signed digest")
        key = certificate.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise MalformedFileError("signed content: the signer's key is not an EC key")
        try:
            key.verify(signature, signed_der, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise TamperedFileError("tampered: the signature does not verify") from None
        return certificate


class KeyHolder(Protocol):
    """What a party's key store offers for files (a token, or a software key in tests)."""

    @property
    def certificate(self) -> x509.Certificate: ...

    def sign(self, data: bytes) -> bytes: ...

    def ecdh(self, peer: ec.EllipticCurvePublicKey) -> bytes: ...


def sender_key(holder: KeyHolder) -> SenderKey:
    return SenderKey(holder.certificate, holder.sign)


def receiver_key(holder: KeyHolder) -> ReceiverKey:
    return ReceiverKey(holder.certificate, holder.ecdh)
