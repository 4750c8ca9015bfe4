"""One process at a time loads SoftHSM2 or logs in to one of its tokens.

SoftHSM2's file object store rewrites the token file at every login (the PIN-count flags), and
another process that reads the same store meanwhile (its C_Initialize, its login, its first
object lookup) gets CKR_GENERAL_ERROR or finds no token at all (SoftHSMv2 issue #757; measured
here with SoftHSM 2.6.1: four processes opening one token at once, 40 times each, failed in 111
of 160 opens). So whoever loads the module or logs in holds an advisory lock (flock) on a file
beside the home's softhsm2.conf. Once logged in, a process needs no lock: the same four
processes, each logged in once, signed thousands of times while others logged in, without an
error. Other PKCS#11 modules (no SoftHSM configuration) need nothing.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sealcard.hsm.errors import TokenBusyError

#: beside a home's softhsm2.conf
STORE_LOCK_NAME = "token-open.lock"
#: a login takes milliseconds: a lock held this long is held by something that is stuck
STORE_LOCK_TIMEOUT_S = 60.0
_POLL_S = 0.005


def create_store_lock(conf_dir: Path) -> None:
    """Make the lock file when the home is made (0644: whoever may reach the folder, such as
    the issuer HSM service's own user, may take it; it holds nothing)."""
    fd = os.open(conf_dir / STORE_LOCK_NAME, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        os.fchmod(fd, 0o644)  # whatever the umask
    finally:
        os.close(fd)


@contextmanager
def softhsm_store_lock(
    softhsm_conf: Path | None, timeout_s: float = STORE_LOCK_TIMEOUT_S
) -> Iterator[None]:
    """Hold the store's lock (TokenBusyError, exit code 3, after ``timeout_s``); nothing for
    other modules."""
    if softhsm_conf is None:
        yield
        return
    path = softhsm_conf.parent / STORE_LOCK_NAME
    try:  # read-only is enough for flock
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError:  # a home made before the lock, in a folder we may not write: unserialised
        yield
        return
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TokenBusyError(
                        f"another process has held {path} for {timeout_s:.0f} s while opening"
                        " the token: find it with `fuser -v` on that file"
                    ) from None
                time.sleep(_POLL_S)
        yield
    finally:
        os.close(fd)  # releases the lock
