"""One PKCS#11 token through python-pkcs11: login once, a pool of sessions, the key operations.

The library is initialized with ``CKF_OS_LOCKING_OK`` (see ``_cryptoki``), so threads may use
separate sessions at once. Login state is per application in PKCS#11: the first session logs
in with the PIN, the others are opened without it.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pkcs11
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from pkcs11 import Attribute, KeyType, ObjectClass
from pkcs11 import _pkcs11 as _native
from pkcs11.util.ec import encode_named_curve_parameters

from sealcard.hsm import _cryptoki
from sealcard.hsm.config import HsmConfig
from sealcard.hsm.errors import HsmError, KeyNotFoundError, TokenNotFoundError
from sealcard.hsm.store_lock import softhsm_store_lock

CURVES = {"P-256": ("secp256r1", ec.SECP256R1()), "secp256k1": ("secp256k1", ec.SECP256K1())}
P256_POINT_LENGTH = 65
P256_COORDINATE_LENGTH = 32
DEFAULT_POOL_SIZE = 4
SESSION_COPY_SUFFIX = "#session-copy"
_OCTET_STRING_TAG = 0x04
_lock = threading.Lock()
_libraries: dict[str, Any] = {}
_softhsm_conf: str | None = None


class _OsLockingLib(_native.lib):
    """python-pkcs11's library object, initialized with CKF_OS_LOCKING_OK.

    ``lib.initialize`` is a Cython ``cpdef`` method, so this override is the one its
    constructor calls.
    """

    def initialize(self) -> None:
        _cryptoki.initialize_with_os_locking(self.so)


def load_library(module_path: str, softhsm_conf: Path | None = None) -> Any:
    """Load (once per process) and initialize a PKCS#11 module with OS locking."""
    global _softhsm_conf
    with _lock:
        if softhsm_conf is not None:
            wanted = str(softhsm_conf)
            if _softhsm_conf is not None and _softhsm_conf != wanted:
                raise HsmError(
                    "this process already uses another SoftHSM configuration; "
                    "one configuration per process"
                )
            os.environ["SOFTHSM2_CONF"] = wanted
            _softhsm_conf = wanted
        library = _libraries.get(module_path)
        if library is None:
            try:
                library = _OsLockingLib(module_path)
            except pkcs11.PKCS11Error as exc:
                raise HsmError(f"cannot load PKCS#11 module {module_path}: {exc!r}") from None
            _libraries[module_path] = library
        return library


def point_from_ec_point_attribute(value: bytes) -> bytes:
    """CKA_EC_POINT is a DER OCTET STRING around the X9.62 point: unwrap it."""
    if len(value) == P256_POINT_LENGTH + 2 and value[0] == _OCTET_STRING_TAG:
        return bytes(value[2:])
    if len(value) == P256_POINT_LENGTH:
        return bytes(value)
    raise HsmError("unexpected CKA_EC_POINT encoding")


def _der_integer(magnitude: bytes) -> bytes:
    """DER INTEGER of an unsigned big-endian value (minimal; a 0 byte if the top bit is set)."""
    value = magnitude.lstrip(b"\x00") or b"\x00"
    if value[0] & 0x80:
        value = b"\x00" + value
    return b"\x02" + bytes([len(value)]) + value


_DER_SHORT_FORM_LIMIT = 0x80


def raw_to_der(signature: bytes) -> bytes:
    """PKCS#11 ECDSA output r||s (32+32) -> DER SEQUENCE of r, s."""
    half = len(signature) // 2
    body = _der_integer(signature[:half]) + _der_integer(signature[half:])
    if len(body) < _DER_SHORT_FORM_LIMIT:
        return b"\x30" + bytes([len(body)]) + body
    r = int.from_bytes(signature[:half], "big")  # long-form lengths (curves above 256 bits)
    s = int.from_bytes(signature[half:], "big")
    return encode_dss_signature(r, s)


_ECDSA = _cryptoki.MechanismSpec(_cryptoki.CKM_ECDSA)


@dataclass
class PooledSession:
    """A session, the key objects already looked up in it, and its direct-call handle."""

    session: Any
    module_path: str = ""
    keys: dict[tuple[int, str], Any] = field(default_factory=dict)
    _raw: _cryptoki.RawSession | None = None

    @property
    def raw(self) -> _cryptoki.RawSession:
        """Direct PKCS#11 calls on this session (prebuilt templates, no per-call objects)."""
        if self._raw is None:
            self._raw = _cryptoki.RawSession(self.module_path, int(self.session.handle))
        return self._raw

    def copy_handle(self, object_class: ObjectClass, label: str) -> int:
        """The object handle of :meth:`session_copy` (for the direct calls)."""
        return int(self.session_copy(object_class, label).handle)

    def sign_digest(self, key_label: str, digest: bytes) -> bytes:
        """Raw ECDSA (r||s) over a digest with the session copy of a token key."""
        return self.raw.sign(_ECDSA, self.copy_handle(ObjectClass.PRIVATE_KEY, key_label), digest)

    def key(self, object_class: ObjectClass, label: str) -> Any:
        """The token object (CKA_TOKEN true) of this class and label."""
        cache_key = (int(object_class), label)
        found = self.keys.get(cache_key)
        if found is None:
            template = {
                Attribute.CLASS: object_class,
                Attribute.LABEL: label,
                Attribute.TOKEN: True,
            }
            matches = list(self.session.get_objects(template))
            if not matches:
                raise KeyNotFoundError(f"no key labelled {label!r} in the token")
            if len(matches) > 1:
                raise HsmError(f"several keys labelled {label!r} in the token")
            found = matches[0]
            self.keys[cache_key] = found
        return found

    def session_copy(self, object_class: ObjectClass, label: str) -> Any:
        """A session-object copy of a token key (C_CopyObject, CKA_TOKEN false), cached.

        The copy stays inside the token with the original's attributes (sensitive,
        non-extractable). Measured with SoftHSM, each operation on the copy is markedly
        cheaper than on the token object. Destroyed with the session.
        """
        cache_key = (-int(object_class) - 1, label)
        found = self.keys.get(cache_key)
        if found is None:
            original = self.key(object_class, label)
            try:
                found = original.copy(
                    {Attribute.TOKEN: False, Attribute.LABEL: label + SESSION_COPY_SUFFIX}
                )
            except pkcs11.PKCS11Error:
                found = original  # a module that refuses the copy: use the token object
            self.keys[cache_key] = found
        return found

    def forget(self) -> None:
        self.keys.clear()


class Token:
    """A logged-in token with a session pool."""

    def __init__(self, cfg: HsmConfig, token: Any, sessions: list[Any]) -> None:
        self.config = cfg
        self._token = token
        self._all = [PooledSession(s, cfg.module_path) for s in sessions]
        self._pool: queue.Queue[PooledSession] = queue.Queue()
        for pooled in self._all:
            self._pool.put(pooled)
        self._closed = False

    def __repr__(self) -> str:
        return f"Token(label={self.config.token_label!r}, sessions={len(self._all)})"

    @classmethod
    def open(cls, cfg: HsmConfig, pool_size: int = DEFAULT_POOL_SIZE) -> Token:
        """Find the token by label, log in with its PIN, open ``pool_size`` sessions."""
        with softhsm_store_lock(cfg.softhsm_conf):
            return cls._open(cfg, pool_size)

    @classmethod
    def _open(cls, cfg: HsmConfig, pool_size: int) -> Token:
        library = load_library(cfg.module_path, cfg.softhsm_conf)
        try:
            token = library.get_token(token_label=cfg.token_label)
        except pkcs11.NoSuchToken:
            raise TokenNotFoundError(
                f"no token labelled {cfg.token_label!r} behind {cfg.module_path}"
            ) from None
        pin = cfg.read_pin()
        try:
            try:
                first = token.open(rw=True, user_pin=pin)
            except pkcs11.UserAlreadyLoggedIn:
                first = token.open(rw=True)
        except pkcs11.PinIncorrect:
            raise HsmError(f"wrong PIN for token {cfg.token_label!r}") from None
        except pkcs11.PKCS11Error as exc:
            raise HsmError(f"cannot open token {cfg.token_label!r}: {type(exc).__name__}") from None
        sessions = [first] + [token.open(rw=True) for _ in range(max(0, pool_size - 1))]
        return cls(cfg, token, sessions)

    @contextmanager
    def session(self) -> Iterator[PooledSession]:
        """Borrow a session from the pool (blocks while all are in use)."""
        if self._closed:
            raise HsmError("token is closed")
        pooled = self._pool.get()
        try:
            yield pooled
        finally:
            self._pool.put(pooled)

    @property
    def pool_size(self) -> int:
        return len(self._all)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for pooled in self._all:
            with suppress(pkcs11.PKCS11Error):
                pooled.session.close()

    # ------------------------------------------------------------------ random

    def generate_random(self, length: int) -> bytes:
        """``length`` bytes from the token's RNG (C_GenerateRandom)."""
        with self.session() as s:
            return bytes(s.session.generate_random(length * 8))

    # ------------------------------------------------------------------ objects

    def has_object(self, label: str) -> bool:
        with self.session() as s:
            return any(True for _ in s.session.get_objects({Attribute.LABEL: label}))

    def destroy_objects(self, label: str) -> int:
        """Destroy every object with this label (tests and re-initialization)."""
        count = 0
        with self.session() as s:
            for obj in list(s.session.get_objects({Attribute.LABEL: label})):
                obj.destroy()
                count += 1
        for pooled in self._all:
            pooled.forget()
        return count

    def read_attribute(self, object_class: ObjectClass, label: str, attribute: Attribute) -> Any:
        """Read one attribute; PKCS#11 errors (e.g. sensitive values) raise HsmError."""
        with self.session() as s:
            key = s.key(object_class, label)
            try:
                return key[attribute]
            except pkcs11.AttributeSensitive:
                raise HsmError(f"attribute {attribute.name} of {label!r} is sensitive") from None
            except pkcs11.PKCS11Error as exc:
                raise HsmError(f"cannot read {attribute.name} of {label!r}: {exc!r}") from None

    # ------------------------------------------------------------------ EC keys

    def generate_ec_keypair(
        self, label: str, curve: str = "P-256", token: bool = True, extractable: bool = False
    ) -> bytes:
        """An EC key pair in the token (private part sensitive); returns the public point."""
        if curve not in CURVES:
            raise HsmError(f"unsupported curve {curve!r}")
        params = encode_named_curve_parameters(CURVES[curve][0])
        with self.session() as s:
            public, _private = s.session.generate_keypair(
                KeyType.EC,
                store=token,
                label=label,
                public_template={Attribute.EC_PARAMS: params, Attribute.VERIFY: True},
                private_template={
                    Attribute.SENSITIVE: True,
                    Attribute.EXTRACTABLE: extractable,
                    Attribute.SIGN: True,
                    Attribute.DERIVE: False,
                    Attribute.PRIVATE: True,
                },
            )
            return point_from_ec_point_attribute(public[Attribute.EC_POINT])

    def ec_public_point(self, label: str) -> bytes:
        with self.session() as s:
            public = s.key(ObjectClass.PUBLIC_KEY, label)
            return point_from_ec_point_attribute(public[Attribute.EC_POINT])

    def ec_public_key(self, label: str, curve: str = "P-256") -> ec.EllipticCurvePublicKey:
        return ec.EllipticCurvePublicKey.from_encoded_point(
            CURVES[curve][1], self.ec_public_point(label)
        )

    def sign_ecdsa_sha256(self, key_label: str, data: bytes) -> bytes:
        """ECDSA over SHA-256(data) with a token key; DER signature."""
        digest = hashlib.sha256(data).digest()
        with self.session() as s:
            return raw_to_der(s.sign_digest(key_label, digest))

    # ------------------------------------------------------------------ AES keys

    def generate_aes_key(
        self, label: str, *, wrap: bool = True, decrypt: bool = False, token: bool = True
    ) -> None:
        """An AES-256 key, sensitive and non-extractable, for wrapping (and decrypting)."""
        with self.session() as s:
            s.session.generate_key(
                KeyType.AES,
                256,
                label=label,
                store=token,
                template={
                    Attribute.SENSITIVE: True,
                    Attribute.EXTRACTABLE: False,
                    Attribute.WRAP: wrap,
                    Attribute.UNWRAP: wrap,
                    Attribute.ENCRYPT: False,
                    Attribute.DECRYPT: decrypt,
                    Attribute.SIGN: False,
                    Attribute.VERIFY: False,
                    Attribute.PRIVATE: True,
                },
            )
