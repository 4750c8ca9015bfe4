"""What an order may say and where its keys are derived: the records' vocabulary, on its own.

The records (`issuer/records.py`) check orders against these; the issuer home's settings and
the CLI's options name them too, and importing them from here costs nothing (the records bring
the database drivers, the audit chain and cryptography).
"""

from __future__ import annotations

import re
from typing import Final

from sealcard.issuer.errors import IssuerError

#: Derivation base path of a new database: BIP44 account 0, external chain; each derivation
#: element is a normal (non-hardened) index under it, so the base path's xpub yields every
#: user's public key without the HSM.
DEFAULT_DERIVATION_BASE: Final = "m/44'/0'/0'/0"
#: Largest normal BIP32 index.
MAX_NORMAL_INDEX: Final = 2**31 - 1
#: PIN sources of an order: made by the issuer HSM (FIG. 5) or not in the blob at all (the
#: bureau or the user provides them).
PIN_SOURCES: Final = ("hsm", "none")
#: How an order's card gets its blob: in a batch for the bureau, or on the user's own computer
#: (activation through the issuer's HTTPS API, which seals for the card the user presents).
CHANNELS: Final = ("bureau", "activation")

_PATH_RE = re.compile(r"^m(/[0-9]+['h]?)*$")


def validate_base_path(path: str) -> str:
    """Check a BIP32 base path's syntax (``m/44'/0'/0'/0``); returns it unchanged."""
    if not _PATH_RE.match(path):
        raise IssuerError(f"not a BIP32 path: {path!r} (expected like m/44'/0'/0'/0)")
    for step in path.split("/")[1:]:
        if int(step.rstrip("'h")) > MAX_NORMAL_INDEX:
            raise IssuerError(f"BIP32 step out of range in {path!r}")
    return path
