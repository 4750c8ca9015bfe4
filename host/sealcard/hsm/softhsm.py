"""SoftHSM2, the embedded default: a private configuration and tokens inside the issuer home.

    HOME/hsm/softhsm2.conf        directories.tokendir = HOME/hsm/tokens
    HOME/hsm/tokens/              the token files
    HOME/secrets/LABEL.user-pin   random user PIN, mode 0600
    HOME/secrets/LABEL.so-pin     random SO PIN, mode 0600

Tokens are initialized through PKCS#11 (C_InitToken, C_InitPIN) in a child Python process,
which reads the PINs from those files: no PIN in argv, on a pipe or in a log, and the PKCS#11
library of the calling process is left untouched (SoftHSM lists new tokens only at
C_Initialize).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

from sealcard.hsm.config import HsmConfig, default_softhsm_module
from sealcard.hsm.errors import HsmError
from sealcard.hsm.store_lock import create_store_lock

CONF_NAME = "softhsm2.conf"
PIN_BYTES = 16  # 32 hex characters
_DIR_MODE = 0o700
_FILE_MODE = 0o600
_CHILD_TIMEOUT_S = 60


def softhsm_paths(home: Path) -> tuple[Path, Path]:
    """(configuration file, token folder) of a home."""
    hsm_dir = home / "hsm"
    return hsm_dir / CONF_NAME, hsm_dir / "tokens"


def write_softhsm_conf(home: Path) -> Path:
    """Write HOME/hsm/softhsm2.conf (kept if present) and create the token folder."""
    conf, tokendir = softhsm_paths(home)
    tokendir.mkdir(parents=True, exist_ok=True, mode=_DIR_MODE)
    os.chmod(conf.parent, _DIR_MODE)
    if not conf.exists():
        text = (
            "# SoftHSM2 configuration of this sealcard issuer home\n"
            f"directories.tokendir = {tokendir.resolve()}\n"
            "objectstore.backend = file\n"
            "log.level = ERROR\n"
            "slots.removable = false\n"
        )
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
    create_store_lock(conf.parent)
    return conf


def _write_secret(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(value + "\n")


def init_softhsm(
    home: Path, labels: list[str], module_path: str | None = None
) -> dict[str, HsmConfig]:
    """Create SoftHSM tokens ``labels`` in HOME with random SO and user PINs in 0600 files.

    Returns one HsmConfig per label. Refuses a label whose PIN files already exist.
    """
    module = module_path or default_softhsm_module()
    conf = write_softhsm_conf(home)
    secrets_dir = home / "secrets"
    secrets_dir.mkdir(parents=True, exist_ok=True, mode=_DIR_MODE)
    os.chmod(secrets_dir, _DIR_MODE)
    configs: dict[str, HsmConfig] = {}
    jobs = []
    for label in dict.fromkeys(labels):
        user_pin_file = secrets_dir / f"{label}.user-pin"
        so_pin_file = secrets_dir / f"{label}.so-pin"
        if user_pin_file.exists() or so_pin_file.exists():
            raise HsmError(f"token {label!r} already has PIN files in {secrets_dir}")
        _write_secret(so_pin_file, secrets.token_hex(PIN_BYTES))
        _write_secret(user_pin_file, secrets.token_hex(PIN_BYTES))
        jobs.append(
            {"label": label, "so_pin_file": str(so_pin_file), "user_pin_file": str(user_pin_file)}
        )
        configs[label] = HsmConfig(
            module_path=module, token_label=label, pin_file=user_pin_file, softhsm_conf=conf
        )
    request = json.dumps({"module": module, "tokens": jobs})
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    result = subprocess.run(
        [sys.executable, "-m", "sealcard.hsm.softhsm"],
        input=request,
        env=env,
        capture_output=True,
        text=True,
        timeout=_CHILD_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        reason = result.stdout.strip().splitlines()[-1:] or ["no reason given"]
        raise HsmError(f"SoftHSM token initialization failed: {reason[0]}")
    return configs


def _child_main() -> int:
    """In the child: initialize each token named on stdin (PINs read from their files)."""
    from sealcard.hsm import _cryptoki

    request = json.loads(sys.stdin.read())
    try:
        for job in request["tokens"]:
            so_pin = Path(job["so_pin_file"]).read_text(encoding="utf-8").strip().encode()
            user_pin = Path(job["user_pin_file"]).read_text(encoding="utf-8").strip().encode()
            _cryptoki.init_token(request["module"], job["label"], so_pin, user_pin)
    except HsmError as exc:
        sys.stdout.write(f"{exc}\n")  # the child's only channel back; holds no PIN
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_child_main())
