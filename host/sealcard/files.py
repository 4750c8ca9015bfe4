"""Checking the folders and files a command will write, before it does any work.

A command that writes its result at the end (a CA's key files, the issuer home, seed shares,
the bureau's result data) checks every output path first, so that a path it cannot write
fails in one line that names the path and the fix, and nothing is half done. Every error
is a ConfigurationError (the CLI exits with 2).
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path

from sealcard.errors import ConfigurationError

_NOT_A_FOLDER = "a file of that name is in the way"


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ENOTDIR:
        return "a part of that path is a file, not a folder"
    if exc.errno == errno.EEXIST:
        return _NOT_A_FOLDER
    return exc.strerror or str(exc)


def prepare_dir(path: Path, *, what: str, fix: str, mode: int = 0o700, new: bool = False) -> bool:
    """Create folder `path` (and its parents) if needed and check that files can be written
    in it. Returns whether it was created (so a caller that fails later can remove it again).

    `new=True` refuses a folder that exists already. `what` names the folder for a person
    ("the shares' folder"), `fix` says what to do instead ("give another --out-dir").
    """
    if path.exists() and not path.is_dir():
        raise ConfigurationError(f"cannot use {path} as {what}: {_NOT_A_FOLDER}; {fix}")
    if new and path.exists():
        raise ConfigurationError(f"{what} {path} exists already; {fix}")
    created = not path.exists()
    try:
        path.mkdir(mode=mode, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(f"cannot create {what} {path}: {_reason(exc)}; {fix}") from None
    try:
        check_writable_dir(path, what=what, fix=fix)
    except ConfigurationError:
        if created:
            remove_if_empty(path)
        raise
    return created


def check_writable_dir(path: Path, *, what: str, fix: str) -> None:
    """Whether a file can be created in folder `path` (tried for real: root ignores modes, a
    read-only mount does not)."""
    try:
        with tempfile.TemporaryFile(dir=path, prefix=".sealcard-write-check-"):
            pass
    except OSError as exc:
        raise ConfigurationError(f"cannot write in {what} {path}: {_reason(exc)}; {fix}") from None


def check_new_file(path: Path, *, what: str, fix: str, overwrite: bool = True) -> None:
    """Whether file `path` can be written later: its folder exists and is writable, nothing
    but a file is in its place (and, with overwrite=False, nothing at all)."""
    if path.is_dir():
        raise ConfigurationError(f"cannot write {what} {path}: it is a folder; {fix}")
    if path.exists() and not overwrite:
        raise ConfigurationError(f"{what} {path} exists already; {fix}")
    parent = path.parent
    if not parent.is_dir():
        problem = "is not a folder" if parent.exists() else "does not exist"
        raise ConfigurationError(
            f"cannot write {what} {path}: its folder {parent} {problem}; {fix}"
        )
    check_writable_dir(parent, what=f"the folder of {what}", fix=fix)


def remove_if_empty(path: Path) -> None:
    """Remove a folder this command created, if nothing was written in it."""
    with contextlib.suppress(OSError):
        path.rmdir()


def write_new_file(path: Path, data: bytes, mode: int) -> None:
    """Create `path` with `mode` and write `data`; never overwrite (ConfigurationError)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise ConfigurationError(f"{path} exists; refusing to overwrite it") from None
    except OSError as exc:
        raise ConfigurationError(f"cannot write {path}: {_reason(exc)}") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, mode)
