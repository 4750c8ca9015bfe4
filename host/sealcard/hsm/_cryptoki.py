"""The few raw PKCS#11 calls python-pkcs11 0.10.1 does not offer, through ctypes.

python-pkcs11 calls ``C_Initialize(NULL)``, i.e. without ``CKF_OS_LOCKING_OK``: with SoftHSM
two threads on separate sessions then crash. :func:`initialize_with_os_locking` makes that
call with the flag on the very same loaded library (``dlopen`` returns the same handle), and
:func:`init_token` is ``C_InitToken`` + ``C_InitPIN`` so token PINs never go through argv.
"""

from __future__ import annotations

import ctypes
from typing import Any

from sealcard.hsm.errors import HsmError

CKR_OK = 0
CKR_CRYPTOKI_ALREADY_INITIALIZED = 0x191
CKF_OS_LOCKING_OK = 0x2
CKF_TOKEN_INITIALIZED = 0x400
CKF_SERIAL_SESSION = 0x4
CKF_RW_SESSION = 0x2
CKU_SO = 0
TOKEN_LABEL_LENGTH = 32

_RV = ctypes.c_ulong
_ULONG = ctypes.c_ulong
_PTR = ctypes.c_void_p


class _InitArgs(ctypes.Structure):
    _fields_ = [
        ("create_mutex", _PTR),
        ("destroy_mutex", _PTR),
        ("lock_mutex", _PTR),
        ("unlock_mutex", _PTR),
        ("flags", _ULONG),
        ("reserved", _PTR),
    ]


def _fn(*args: Any) -> Any:
    return ctypes.CFUNCTYPE(_RV, *args)


def _untyped(*names: str) -> list[tuple[str, Any]]:
    """Function-list slots this module never calls: their place counts, not their type."""
    return [(name, _fn(_PTR)) for name in names]


# CK_FUNCTION_LIST, in the order PKCS#11 v2.40 defines (typed where this module calls).
_HANDLE_P = ctypes.POINTER(_ULONG)
_FUNCTION_LIST_FIELDS: list[tuple[str, Any]] = [
    ("version", ctypes.c_ubyte * 2),
    ("C_Initialize", _fn(_PTR)),
    ("C_Finalize", _fn(_PTR)),
    ("C_GetInfo", _fn(_PTR)),
    ("C_GetFunctionList", _fn(_PTR)),
    ("C_GetSlotList", _fn(ctypes.c_ubyte, ctypes.POINTER(_ULONG), ctypes.POINTER(_ULONG))),
    ("C_GetSlotInfo", _fn(_ULONG, _PTR)),
    ("C_GetTokenInfo", _fn(_ULONG, _PTR)),
    ("C_GetMechanismList", _fn(_ULONG, _PTR, _PTR)),
    ("C_GetMechanismInfo", _fn(_ULONG, _ULONG, _PTR)),
    ("C_InitToken", _fn(_ULONG, ctypes.c_char_p, _ULONG, ctypes.c_char_p)),
    ("C_InitPIN", _fn(_ULONG, ctypes.c_char_p, _ULONG)),
    ("C_SetPIN", _fn(_ULONG, _PTR, _ULONG, _PTR, _ULONG)),
    ("C_OpenSession", _fn(_ULONG, _ULONG, _PTR, _PTR, ctypes.POINTER(_ULONG))),
    ("C_CloseSession", _fn(_ULONG)),
    ("C_CloseAllSessions", _fn(_ULONG)),
    ("C_GetSessionInfo", _fn(_ULONG, _PTR)),
    ("C_GetOperationState", _fn(_ULONG, _PTR, _PTR)),
    ("C_SetOperationState", _fn(_ULONG, _PTR, _ULONG, _ULONG, _ULONG)),
    ("C_Login", _fn(_ULONG, _ULONG, ctypes.c_char_p, _ULONG)),
    ("C_Logout", _fn(_ULONG)),
    ("C_CreateObject", _fn(_ULONG, _PTR, _ULONG, _HANDLE_P)),
    ("C_CopyObject", _fn(_ULONG, _ULONG, _PTR, _ULONG, _HANDLE_P)),
    ("C_DestroyObject", _fn(_ULONG, _ULONG)),
    ("C_GetObjectSize", _fn(_ULONG, _ULONG, _PTR)),
    ("C_GetAttributeValue", _fn(_ULONG, _ULONG, _PTR, _ULONG)),
    ("C_SetAttributeValue", _fn(_ULONG, _ULONG, _PTR, _ULONG)),
    ("C_FindObjectsInit", _fn(_ULONG, _PTR, _ULONG)),
    ("C_FindObjects", _fn(_ULONG, _HANDLE_P, _ULONG, _HANDLE_P)),
    ("C_FindObjectsFinal", _fn(_ULONG)),
]
_FUNCTION_LIST_FIELDS += _untyped(
    "C_EncryptInit",
    "C_Encrypt",
    "C_EncryptUpdate",
    "C_EncryptFinal",
)
_FUNCTION_LIST_FIELDS += [
    ("C_DecryptInit", _fn(_ULONG, _PTR, _ULONG)),
    ("C_Decrypt", _fn(_ULONG, _PTR, _ULONG, _PTR, _HANDLE_P)),
]
_FUNCTION_LIST_FIELDS += _untyped(
    "C_DecryptUpdate",
    "C_DecryptFinal",
    "C_DigestInit",
    "C_Digest",
    "C_DigestUpdate",
    "C_DigestKey",
    "C_DigestFinal",
)
_FUNCTION_LIST_FIELDS += [
    ("C_SignInit", _fn(_ULONG, _PTR, _ULONG)),
    ("C_Sign", _fn(_ULONG, _PTR, _ULONG, _PTR, _HANDLE_P)),
]
_FUNCTION_LIST_FIELDS += _untyped(
    "C_SignUpdate",
    "C_SignFinal",
    "C_SignRecoverInit",
    "C_SignRecover",
    "C_VerifyInit",
    "C_Verify",
    "C_VerifyUpdate",
    "C_VerifyFinal",
    "C_VerifyRecoverInit",
    "C_VerifyRecover",
    "C_DigestEncryptUpdate",
    "C_DecryptDigestUpdate",
    "C_SignEncryptUpdate",
    "C_DecryptVerifyUpdate",
    "C_GenerateKey",
)
_FUNCTION_LIST_FIELDS += [
    ("C_GenerateKeyPair", _fn(_ULONG, _PTR, _PTR, _ULONG, _PTR, _ULONG, _HANDLE_P, _HANDLE_P)),
    ("C_WrapKey", _fn(_ULONG, _PTR, _ULONG, _ULONG, _PTR, _HANDLE_P)),
    ("C_UnwrapKey", _fn(_PTR)),
    ("C_DeriveKey", _fn(_PTR)),
    ("C_SeedRandom", _fn(_PTR)),
    ("C_GenerateRandom", _fn(_ULONG, _PTR, _ULONG)),
]


class _FunctionList(ctypes.Structure):
    _fields_ = _FUNCTION_LIST_FIELDS


# CK_TOKEN_INFO: label[32] manufacturerID[32] model[16] serialNumber[16] then flags.
_TOKEN_INFO_FLAGS_OFFSET = 96
_TOKEN_INFO_SIZE = 512  # larger than the real struct (about 208 bytes); only flags are read


def _function_list(module_path: str) -> Any:
    try:
        library = ctypes.CDLL(module_path)
    except OSError as exc:
        raise HsmError(f"cannot load PKCS#11 module {module_path}: {exc}") from None
    pointer = ctypes.POINTER(_FunctionList)()
    rv = library.C_GetFunctionList(ctypes.byref(pointer))
    if rv != CKR_OK:
        raise HsmError(f"C_GetFunctionList failed: {rv:#x}")
    return pointer.contents


def _check(rv: int, what: str) -> None:
    if rv != CKR_OK:
        raise HsmError(f"{what} failed: CKR {rv:#x}")


def initialize_with_os_locking(module_path: str) -> bool:
    """C_Initialize with CKF_OS_LOCKING_OK. False if the library was already initialized."""
    functions = _function_list(module_path)
    args = _InitArgs(flags=CKF_OS_LOCKING_OK)
    rv = functions.C_Initialize(ctypes.cast(ctypes.pointer(args), _PTR))
    if rv == CKR_CRYPTOKI_ALREADY_INITIALIZED:
        return False
    _check(rv, "C_Initialize")
    return True


def finalize(module_path: str) -> None:
    _check(_function_list(module_path).C_Finalize(None), "C_Finalize")


def _free_slot(functions: Any) -> int:
    count = _ULONG(0)
    _check(functions.C_GetSlotList(1, None, ctypes.byref(count)), "C_GetSlotList")
    slots = (_ULONG * count.value)()
    _check(functions.C_GetSlotList(1, slots, ctypes.byref(count)), "C_GetSlotList")
    for slot in slots[: count.value]:
        info = ctypes.create_string_buffer(_TOKEN_INFO_SIZE)
        _check(functions.C_GetTokenInfo(slot, info), "C_GetTokenInfo")
        flags = _ULONG.from_buffer(info, _TOKEN_INFO_FLAGS_OFFSET).value
        if not flags & CKF_TOKEN_INITIALIZED:
            return int(slot)
    raise HsmError("no free slot to initialize a token in")


def init_token(module_path: str, label: str, so_pin: bytes, user_pin: bytes) -> None:
    """Initialize a token in the first free slot and set its user PIN.

    Must run in a process where the library is not initialized yet (SoftHSM lists a new free
    slot only at C_Initialize); the library is finalized again before returning.
    """
    encoded = label.encode("utf-8")
    if len(encoded) > TOKEN_LABEL_LENGTH:
        raise HsmError("token label longer than 32 bytes")
    functions = _function_list(module_path)
    args = _InitArgs(flags=CKF_OS_LOCKING_OK)
    rv = functions.C_Initialize(ctypes.cast(ctypes.pointer(args), _PTR))
    if rv == CKR_CRYPTOKI_ALREADY_INITIALIZED:
        raise HsmError("the PKCS#11 library is already in use in this process")
    _check(rv, "C_Initialize")
    try:
        slot = _free_slot(functions)
        padded = encoded.ljust(TOKEN_LABEL_LENGTH, b" ")
        _check(functions.C_InitToken(slot, so_pin, len(so_pin), padded), "C_InitToken")
        _check(functions.C_Finalize(None), "C_Finalize")
        _check(functions.C_Initialize(ctypes.cast(ctypes.pointer(args), _PTR)), "C_Initialize")
        slot = _slot_with_label(functions, padded)
        session = _ULONG(0)
        flags = CKF_SERIAL_SESSION | CKF_RW_SESSION
        _check(functions.C_OpenSession(slot, flags, None, None, ctypes.byref(session)), "open")
        try:
            _check(functions.C_Login(session, CKU_SO, so_pin, len(so_pin)), "C_Login (SO)")
            _check(functions.C_InitPIN(session, user_pin, len(user_pin)), "C_InitPIN")
            _check(functions.C_Logout(session), "C_Logout")
        finally:
            functions.C_CloseSession(session)
    finally:
        functions.C_Finalize(None)


def _slot_with_label(functions: Any, padded_label: bytes) -> int:
    count = _ULONG(0)
    _check(functions.C_GetSlotList(1, None, ctypes.byref(count)), "C_GetSlotList")
    slots = (_ULONG * count.value)()
    _check(functions.C_GetSlotList(1, slots, ctypes.byref(count)), "C_GetSlotList")
    for slot in slots[: count.value]:
        info = ctypes.create_string_buffer(_TOKEN_INFO_SIZE)
        _check(functions.C_GetTokenInfo(slot, info), "C_GetTokenInfo")
        if info.raw[:TOKEN_LABEL_LENGTH] == padded_label:
            return int(slot)
    raise HsmError("the token just initialized is not listed")


# ------------------------------------------------------------------------------------------
# The hot path: direct calls on an open session with prebuilt templates.
#
# python-pkcs11 builds attribute templates from dicts and creates a Python class per object
# handle it returns; for one device authentication key that is most of the cost (measured:
# bench/seal_batch.py, docs/hsm.md). ctypes releases the GIL during each foreign call, so
# threads on separate sessions overlap (the library is initialized with CKF_OS_LOCKING_OK).

CKA_CLASS = 0x0
CKA_TOKEN = 0x1
CKA_PRIVATE = 0x2
CKA_LABEL = 0x3
CKA_KEY_TYPE = 0x100
CKA_SENSITIVE = 0x103
CKA_SIGN = 0x108
CKA_VERIFY = 0x10A
CKA_DERIVE = 0x10C
CKA_EXTRACTABLE = 0x162
CKA_EC_PARAMS = 0x180
CKA_EC_POINT = 0x181
CKO_PUBLIC_KEY = 2
CKO_PRIVATE_KEY = 3
CKO_SECRET_KEY = 4
CKK_EC = 0x3
CKM_EC_KEY_PAIR_GEN = 0x1040
CKM_ECDSA = 0x1041
CKM_AES_KEY_WRAP_PAD = 0x210A
CKM_AES_CBC = 0x1082
CKR_ATTRIBUTE_SENSITIVE = 0x11
CKR_KEY_UNEXTRACTABLE = 0x6A
#: Output buffer of one session: an RSA-4096 signature or a wrapped P-521 key fits.
OUTPUT_BUFFER = 1024
_FIND_BATCH = 4

AttributeValue = bool | int | bytes


class CryptokiError(HsmError):
    """A PKCS#11 call returned an error code (``rv``)."""

    def __init__(self, what: str, rv: int) -> None:
        super().__init__(f"{what} failed: CKR {rv:#x}")
        self.rv = rv


class _Attribute(ctypes.Structure):
    _fields_ = [("type", _ULONG), ("value", _PTR), ("length", _ULONG)]


class _Mechanism(ctypes.Structure):
    _fields_ = [("mechanism", _ULONG), ("parameter", _PTR), ("length", _ULONG)]


class Template:
    """A CK_ATTRIBUTE array built once (the value buffers live as long as the template).

    Booleans become CK_BBOOL, ints CK_ULONG, bytes byte strings. Never put a secret in one:
    templates are reused for the life of the process.
    """

    def __init__(self, items: list[tuple[int, AttributeValue]]) -> None:
        self._buffers: list[Any] = []
        self.array = (_Attribute * len(items))()
        self.count = len(items)
        for index, (kind, value) in enumerate(items):
            buffer: Any
            if isinstance(value, bool):
                buffer = ctypes.c_ubyte(1 if value else 0)
            elif isinstance(value, int):
                buffer = _ULONG(value)
            else:
                buffer = ctypes.create_string_buffer(bytes(value), len(value))
            self._buffers.append(buffer)
            self.array[index].type = kind
            self.array[index].value = ctypes.addressof(buffer)
            self.array[index].length = ctypes.sizeof(buffer)


class MechanismSpec:
    """A CK_MECHANISM, built once; ``parameter`` (e.g. an IV) is copied and kept with it."""

    def __init__(self, mechanism: int, parameter: bytes | None = None) -> None:
        self._parameter = None if parameter is None else ctypes.create_string_buffer(parameter)
        self.struct = _Mechanism(
            mechanism,
            None if self._parameter is None else ctypes.addressof(self._parameter),
            0 if parameter is None else len(parameter),
        )
        self.ref = ctypes.byref(self.struct)


_tables: dict[str, Any] = {}


def functions(module_path: str) -> Any:
    """The module's CK_FUNCTION_LIST (loaded once per process)."""
    table = _tables.get(module_path)
    if table is None:
        table = _function_list(module_path)
        _tables[module_path] = table
    return table


class RawSession:
    """Direct PKCS#11 calls on one open session (its handle from python-pkcs11).

    Not thread-safe: one thread uses one session at a time (the Token pool does that). Output
    lands in a per-session buffer and is copied out as ``bytes``.
    """

    def __init__(self, module_path: str, handle: int) -> None:
        table = functions(module_path)
        self.handle = handle
        self._find_init = table.C_FindObjectsInit
        self._find = table.C_FindObjects
        self._find_final = table.C_FindObjectsFinal
        self._copy = table.C_CopyObject
        self._destroy = table.C_DestroyObject
        self._get_attribute = table.C_GetAttributeValue
        self._generate_key_pair = table.C_GenerateKeyPair
        self._wrap = table.C_WrapKey
        self._sign_init = table.C_SignInit
        self._sign = table.C_Sign
        self._decrypt_init = table.C_DecryptInit
        self._decrypt = table.C_Decrypt
        self._random = table.C_GenerateRandom
        self._out = ctypes.create_string_buffer(OUTPUT_BUFFER)
        self._out_length = _ULONG(0)
        self._out_length_ref = ctypes.byref(self._out_length)
        self._first = _ULONG(0)
        self._second = _ULONG(0)
        self._first_ref = ctypes.byref(self._first)
        self._second_ref = ctypes.byref(self._second)
        self._query = _Attribute(0, ctypes.addressof(self._out), OUTPUT_BUFFER)
        self._query_ref = ctypes.byref(self._query)

    def find(self, template: Template, limit: int = _FIND_BATCH) -> list[int]:
        """Handles of the objects matching ``template`` (at most ``limit``)."""
        rv = self._find_init(self.handle, template.array, template.count)
        if rv != CKR_OK:
            raise CryptokiError("C_FindObjectsInit", rv)
        handles = (_ULONG * limit)()
        count = _ULONG(0)
        try:
            rv = self._find(self.handle, handles, limit, ctypes.byref(count))
            if rv != CKR_OK:
                raise CryptokiError("C_FindObjects", rv)
        finally:
            self._find_final(self.handle)
        return [int(h) for h in handles[: count.value]]

    def copy_object(self, obj: int, template: Template) -> int:
        rv = self._copy(self.handle, obj, template.array, template.count, self._first_ref)
        if rv != CKR_OK:
            raise CryptokiError("C_CopyObject", rv)
        return self._first.value

    def destroy(self, obj: int) -> None:
        rv = self._destroy(self.handle, obj)
        if rv != CKR_OK:
            raise CryptokiError("C_DestroyObject", rv)

    def attribute(self, obj: int, kind: int) -> bytes:
        """One attribute's value (at most OUTPUT_BUFFER bytes)."""
        self._query.type = kind
        self._query.length = OUTPUT_BUFFER
        rv = self._get_attribute(self.handle, obj, self._query_ref, 1)
        if rv != CKR_OK:
            raise CryptokiError("C_GetAttributeValue", rv)
        return self._out.raw[: self._query.length]

    def generate_key_pair(
        self, mechanism: MechanismSpec, public: Template, private: Template
    ) -> tuple[int, int]:
        """(public handle, private handle)."""
        rv = self._generate_key_pair(
            self.handle,
            mechanism.ref,
            public.array,
            public.count,
            private.array,
            private.count,
            self._first_ref,
            self._second_ref,
        )
        if rv != CKR_OK:
            raise CryptokiError("C_GenerateKeyPair", rv)
        return self._first.value, self._second.value

    def wrap_key(self, mechanism: MechanismSpec, wrapping_key: int, key: int) -> bytes:
        self._out_length.value = OUTPUT_BUFFER
        rv = self._wrap(
            self.handle, mechanism.ref, wrapping_key, key, self._out, self._out_length_ref
        )
        if rv != CKR_OK:
            raise CryptokiError("C_WrapKey", rv)
        return self._out.raw[: self._out_length.value]

    def sign(self, mechanism: MechanismSpec, key: int, data: bytes) -> bytes:
        """C_SignInit + C_Sign (single part)."""
        rv = self._sign_init(self.handle, mechanism.ref, key)
        if rv != CKR_OK:
            raise CryptokiError("C_SignInit", rv)
        self._out_length.value = OUTPUT_BUFFER
        rv = self._sign(self.handle, data, len(data), self._out, self._out_length_ref)
        if rv != CKR_OK:
            raise CryptokiError("C_Sign", rv)
        return self._out.raw[: self._out_length.value]

    def decrypt_into(
        self, mechanism: MechanismSpec, key: int, data: bytes, out: ctypes.Array[ctypes.c_char]
    ) -> int:
        """C_DecryptInit + C_Decrypt into a buffer the caller owns (and wipes): the plaintext
        never becomes an immutable Python object here. Returns its length."""
        rv = self._decrypt_init(self.handle, mechanism.ref, key)
        if rv != CKR_OK:
            raise CryptokiError("C_DecryptInit", rv)
        length = _ULONG(ctypes.sizeof(out))
        rv = self._decrypt(self.handle, data, len(data), out, ctypes.byref(length))
        if rv != CKR_OK:
            raise CryptokiError("C_Decrypt", rv)
        return length.value

    def generate_random(self, count: int) -> bytes:
        buffer = ctypes.create_string_buffer(count)
        rv = self._random(self.handle, buffer, count)
        if rv != CKR_OK:
            raise CryptokiError("C_GenerateRandom", rv)
        return buffer.raw
