"""User-key derivation behind one interface, so a hardware HSM with BIP32 is a config switch.

``derivation = "in-process"`` (default, SoftHSM): the issuer HSM service reads the seed from
its token at start and derives with :mod:`sealcard.crypto.bip32` (libsecp256k1) in its own
memory. ``derivation = "pkcs11-vendor"``: an HSM with a BIP32 mechanism derives in the token;
no module is implemented here (see docs/hsm.md for what it needs).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Protocol

from sealcard.crypto.bip32 import HARDENED, ExtendedPrivateKey
from sealcard.errors import ConfigurationError
from sealcard.hsm.config import DERIVATION_IN_PROCESS, DERIVATION_PKCS11_VENDOR

PARENT_CACHE_SIZE = 1024


class KeyDeriver(Protocol):
    """Derives users' secp256k1 keys from the issuer's BIP32 seed."""

    def derive(self, path: tuple[int, ...]) -> tuple[bytes, bytes]:
        """(private key 32 bytes, compressed public key 33 bytes) at ``path``."""
        ...

    def xpub(self, path: tuple[int, ...]) -> str:
        """The extended public key at ``path``."""
        ...


class InProcessDeriver:
    """BIP32 in this process's memory; parents of recent paths are cached (one HMAC per card)."""

    def __init__(self, seed: bytes | bytearray) -> None:
        self._master = ExtendedPrivateKey.from_seed(seed)
        self._parents: OrderedDict[tuple[int, ...], ExtendedPrivateKey] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return "InProcessDeriver(<seed>)"

    def _node(self, path: tuple[int, ...]) -> ExtendedPrivateKey:
        with self._lock:
            node = self._parents.get(path)
            if node is not None:
                self._parents.move_to_end(path)
                return node
        node = self._master.derive(path)
        with self._lock:
            self._parents[path] = node
            if len(self._parents) > PARENT_CACHE_SIZE:
                self._parents.popitem(last=False)
        return node

    def derive(self, path: tuple[int, ...]) -> tuple[bytes, bytes]:
        if not path:
            return self._master.private_key, self._master.public_key
        parent = self._node(path[:-1])
        if path[-1] < HARDENED:  # a user's element: one HMAC and one point multiplication
            return parent.normal_child_keys(path[-1])
        child = parent.child(path[-1])
        return child.private_key, child.public_key

    def xpub(self, path: tuple[int, ...]) -> str:
        return self._node(path).neuter().to_xpub()


def make_deriver(kind: str, seed: bytes | bytearray | None) -> KeyDeriver:
    """The deriver the configuration names."""
    if kind == DERIVATION_IN_PROCESS:
        if seed is None:
            raise ConfigurationError("in-process derivation needs the seed from the token")
        return InProcessDeriver(seed)
    if kind == DERIVATION_PKCS11_VENDOR:
        raise ConfigurationError(
            "derivation = pkcs11-vendor needs a vendor BIP32 mechanism; this build implements "
            "none (SoftHSM2 has none): use derivation = in-process"
        )
    raise ConfigurationError(f"unknown derivation {kind!r}")
