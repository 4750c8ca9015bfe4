"""m-of-n backup of the BIP32 seed as SLIP-39 mnemonic shares (library: shamir-mnemonic).

One group, ``threshold`` of ``shares`` members: any ``threshold`` shares give the seed back,
fewer reveal nothing about it (Shamir's scheme over GF(256), as SLIP-39 specifies).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import shamir_mnemonic

from sealcard.errors import SealcardError

MIN_SEED_BYTES = 16
MAX_SHARES = 16
ITERATION_EXPONENT = 1


class SecretSharingError(ValueError, SealcardError):
    """Bad split parameters, or shares that do not combine (too few, mixed, mistyped)."""


def split_seed(seed: bytes, threshold: int, shares: int, passphrase: bytes = b"") -> list[str]:
    """Split ``seed`` into ``shares`` SLIP-39 mnemonics of which ``threshold`` recover it."""
    if len(seed) < MIN_SEED_BYTES or len(seed) % 2:
        raise SecretSharingError("the seed must be at least 16 bytes and an even length")
    if not 1 <= threshold <= shares <= MAX_SHARES:
        raise SecretSharingError(f"need 1 <= threshold <= shares <= {MAX_SHARES}")
    if threshold == 1 and shares != 1:
        raise SecretSharingError("a threshold of 1 would make every share a full copy")
    try:
        groups = shamir_mnemonic.generate_mnemonics(
            1, [(threshold, shares)], seed, passphrase, iteration_exponent=ITERATION_EXPONENT
        )
    except (shamir_mnemonic.MnemonicError, ValueError) as exc:
        raise SecretSharingError(f"cannot split the seed: {exc}") from None
    return list(groups[0])


def combine_shares(mnemonics: Sequence[str], passphrase: bytes = b"") -> bytes:
    """Recover the seed from at least ``threshold`` mnemonics of one split."""
    cleaned = [" ".join(m.split()) for m in mnemonics]
    if not cleaned:
        raise SecretSharingError("no shares given")
    try:
        return bytes(shamir_mnemonic.combine_mnemonics(cleaned, passphrase))
    except (shamir_mnemonic.MnemonicError, ValueError) as exc:
        # The library's messages describe the shares' structure, never their secret value.
        raise SecretSharingError(f"the shares do not combine: {exc}") from None


@dataclass(frozen=True)
class ShareInfo:
    """What a SLIP-39 share says about itself in clear (its words encode these, unencrypted)."""

    set_id: int  # SLIP-39 identifier: the same on every share of one split
    number: int  # 1-based member index
    threshold: int  # shares needed


def share_info(mnemonic: str) -> ShareInfo:
    """The identifier, member number and threshold of one share (SecretSharingError if bad)."""
    try:
        share = shamir_mnemonic.Share.from_mnemonic(" ".join(mnemonic.split()))
    except (shamir_mnemonic.MnemonicError, ValueError) as exc:
        raise SecretSharingError(f"not a SLIP-39 share: {exc}") from None
    return ShareInfo(share.identifier, share.index + 1, share.member_threshold)
