"""What a PKCS#11 module offers, read without logging in: the library and its tokens.

For `sealcard doctor`: which tokens are there, initialized, and whether a user PIN is locked or
on its last tries (token flags; no PIN is tried, so no try is spent).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pkcs11
from pkcs11 import TokenFlag

from sealcard.hsm.errors import HsmError
from sealcard.hsm.store_lock import softhsm_store_lock
from sealcard.hsm.token import load_library


def _text(value: object) -> str:
    """A PKCS#11 text field without its blank padding (python-pkcs11 decodes it already)."""
    return str(value).rstrip(" \x00")


@dataclass(frozen=True)
class TokenInfo:
    """One token as its slot reports it."""

    label: str
    manufacturer: str
    model: str
    serial: str
    initialized: bool
    user_pin_locked: bool
    user_pin_low: bool  # PKCS#11: a wrong PIN was given since the last right one, or final try


@dataclass(frozen=True)
class ModuleInfo:
    """A loaded PKCS#11 module and the tokens in its slots."""

    path: str
    description: str
    manufacturer: str
    library_version: str
    tokens: tuple[TokenInfo, ...]

    def token(self, label: str) -> TokenInfo | None:
        return next((t for t in self.tokens if t.label == label and t.initialized), None)


def _version(value: object) -> str:
    if isinstance(value, tuple):
        return ".".join(str(part) for part in value)
    return str(value)


def module_inventory(module_path: str, softhsm_conf: Path | None = None) -> ModuleInfo:
    """Load the module (once per process, like every token user here) and list its tokens."""
    if not Path(module_path).is_file():
        raise HsmError(f"no PKCS#11 module at {module_path}")
    with softhsm_store_lock(softhsm_conf):
        return _inventory(module_path, softhsm_conf)


def _inventory(module_path: str, softhsm_conf: Path | None) -> ModuleInfo:
    library = load_library(module_path, softhsm_conf)
    tokens: list[TokenInfo] = []
    try:
        for slot in library.get_slots(token_present=True):
            token = slot.get_token()
            flags = TokenFlag(token.flags)
            tokens.append(
                TokenInfo(
                    label=_text(token.label),
                    manufacturer=_text(token.manufacturer_id),
                    model=_text(token.model),
                    serial=_text(token.serial),
                    initialized=TokenFlag.TOKEN_INITIALIZED in flags,
                    user_pin_locked=TokenFlag.USER_PIN_LOCKED in flags,
                    user_pin_low=bool(
                        flags & (TokenFlag.USER_PIN_COUNT_LOW | TokenFlag.USER_PIN_FINAL_TRY)
                    ),
                )
            )
    except pkcs11.PKCS11Error as exc:
        raise HsmError(f"cannot list the tokens of {module_path}: {type(exc).__name__}") from None
    return ModuleInfo(
        path=module_path,
        description=_text(library.library_description),
        manufacturer=_text(library.manufacturer_id),
        library_version=_version(library.library_version),
        tokens=tuple(tokens),
    )
