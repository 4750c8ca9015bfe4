"""Several processes opening one SoftHSM2 token at once (sealcard.hsm.store_lock): without the
lock, SoftHSM2's login rewrites the token file under the others' feet and they fail with
GeneralError or find no token (111 of 160 opens here); with it every open succeeds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hsm_helpers import softhsm_available

from sealcard.hsm.config import HsmConfig
from sealcard.hsm.errors import TokenBusyError
from sealcard.hsm.softhsm import init_softhsm
from sealcard.hsm.store_lock import STORE_LOCK_NAME, softhsm_store_lock

LABEL = "sealcard-lock-test"
KEY = "lock-test-key"
PROCESSES = 4
OPENS = 25

# in children: this process may use one SoftHSM configuration only (the session's issuer home)
_CONFIG = """
import sys
from pathlib import Path
from sealcard.hsm.config import HsmConfig
from sealcard.hsm.token import Token
cfg = HsmConfig(module_path=sys.argv[1], token_label=sys.argv[2], pin_file=Path(sys.argv[3]),
                softhsm_conf=Path(sys.argv[4]))
"""
_MAKE_KEY = (
    _CONFIG
    + """
token = Token.open(cfg, pool_size=1)
token.generate_aes_key(sys.argv[6], wrap=True, decrypt=False)
token.close()
"""
)
# each child opens the token, finds the key, closes; prints how many opens failed and how
_CHILD = (
    _CONFIG
    + """
failed = []
for _ in range(int(sys.argv[5])):
    try:
        token = Token.open(cfg, pool_size=1)
        try:
            if not token.has_object(sys.argv[6]):
                failed.append("key not found")
        finally:
            token.close()
    except Exception as exc:
        failed.append(f"{type(exc).__name__}: {exc}")
print(len(failed), failed[:3])
"""
)


def _argv(script: str, cfg: HsmConfig) -> list[str]:
    return [
        sys.executable,
        "-c",
        script,
        cfg.module_path,
        LABEL,
        str(cfg.pin_file),
        str(cfg.softhsm_conf),
        str(OPENS),
        KEY,
    ]


@pytest.fixture
def token_config(tmp_path: Path) -> HsmConfig:
    if not softhsm_available():
        pytest.skip("SoftHSM2 is not installed")
    cfg = init_softhsm(tmp_path / "home", [LABEL])[LABEL]
    subprocess.run(_argv(_MAKE_KEY, cfg), check=True, capture_output=True)
    return cfg


def test_the_home_has_its_lock_file(token_config: HsmConfig) -> None:
    assert token_config.softhsm_conf is not None
    lock = token_config.softhsm_conf.parent / STORE_LOCK_NAME
    assert lock.is_file() and lock.stat().st_size == 0
    assert lock.stat().st_mode & 0o777 == 0o644  # the service's own user may take it


def test_processes_opening_one_token_at_once_all_succeed(token_config: HsmConfig) -> None:
    argv = _argv(_CHILD, token_config)
    children = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(PROCESSES)
    ]
    reports = [child.communicate(timeout=300) for child in children]
    for child, (out, err) in zip(children, reports, strict=True):
        assert child.returncode == 0, err
        assert out.startswith("0 "), out


def test_a_lock_held_too_long_is_a_clear_error(token_config: HsmConfig) -> None:
    # flock locks belong to the open file: a second open in this process must wait too
    with (
        softhsm_store_lock(token_config.softhsm_conf),
        pytest.raises(TokenBusyError, match=r"held .* while opening the token"),
        softhsm_store_lock(token_config.softhsm_conf, timeout_s=0.2),
    ):
        pass
    with softhsm_store_lock(token_config.softhsm_conf, timeout_s=0.2):
        pass  # released when the holder is done
