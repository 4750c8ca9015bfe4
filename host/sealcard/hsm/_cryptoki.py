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


# CK_FUNCTION_LIST up to C_Logout, in the order PKCS#11 v2.40 defines.
class _FunctionList(ctypes.Structure):
    _fields_ = [
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
    ]


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
