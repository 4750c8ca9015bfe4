"""The simulator's card timing model (simulator/.../CardTiming.java), read through its main().

Compiled here from source (it needs nothing but the JDK), then asked how long exchanges take.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ROOT / "simulator/src/main/java/sealcard/simulator"
BLOB_343 = "00" * 343

pytestmark = pytest.mark.skipif(shutil.which("javac") is None, reason="needs a JDK (javac)")


@pytest.fixture(scope="module")
def classes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("timing")
    compiled = subprocess.run(
        [
            "javac",
            "--release",
            "17",
            "-d",
            str(out),
            str(SOURCES / "CardTiming.java"),
            str(SOURCES / "Hex.java"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert compiled.returncode == 0, compiled.stderr
    return out


def modelled_ms(classes: Path, model: str, command: str, response: str) -> float:
    run = subprocess.run(
        ["java", "-cp", str(classes), "sealcard.simulator.CardTiming", model, command, response],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    return float(run.stdout)


def personalize() -> str:
    return "80500000" + "00" + "0157" + BLOB_343  # extended Lc 0x0157 = 343


def test_no_model_adds_nothing(classes: Path) -> None:
    assert modelled_ms(classes, "none", personalize(), "9000") == 0.0
    assert modelled_ms(classes, "none", "80460100", "6110") == 0.0


def test_personalize_costs_follow_how_far_the_card_got(classes: Path) -> None:
    early = modelled_ms(classes, "jcop4", personalize(), "6A80")
    signature = modelled_ms(classes, "jcop4", personalize(), "6982")
    decryption = modelled_ms(classes, "jcop4", personalize(), "6984")
    success = modelled_ms(classes, "jcop4", personalize(), "9000")
    assert early < signature < decryption < success
    # JCAlgTest J3R180: ECDSA verify 30.2 + RSA-2048 CRT 53.2 + ECDH 20.0 + d*G 20.0 ms at least
    assert success > 30.2 + 53.2 + 20.0 + 20.0
    assert 150 < decryption < success


def test_a_chained_chunk_only_stages_its_bytes(classes: Path) -> None:
    chunk = modelled_ms(classes, "jcop4", "90500000FF" + "00" * 255, "9000")
    last = modelled_ms(classes, "jcop4", "8050000058" + "00" * 88, "9000")
    assert chunk < 30 < 150 < last


def test_key_generation_answered_with_61xx_still_costs_the_key_generation(classes: Path) -> None:
    rsa = modelled_ms(classes, "jcop4", "80460100", "6110")  # RSA answer waits for GET RESPONSE
    ec = modelled_ms(classes, "jcop4", "80460200", "6143")
    assert rsa >= 595.5  # the fastest RSA-2048 key generation JCAlgTest saw
    assert 26.8 < ec < 100


def test_a_wrong_pin_costs_a_pin_check_and_a_length_error_does_not(classes: Path) -> None:
    wrong = modelled_ms(classes, "jcop4", "0020008106313233343536", "63C2")
    bad_length = modelled_ms(classes, "jcop4", "0020008101", "6700")
    assert wrong > bad_length


def test_an_unknown_model_is_refused(classes: Path) -> None:
    run = subprocess.run(
        ["java", "-cp", str(classes), "sealcard.simulator.CardTiming", "fast", "00A40400", "9000"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert run.returncode != 0
    assert "unknown timing fast" in run.stderr
