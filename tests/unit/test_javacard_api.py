"""The JavaCard 3.0.4 API check: the data, the stubs javac compiles against, the class check.

Run as the build runs them (the scripts as subprocesses, javac on the generated stubs), so a
3.0.5-only symbol in the applet fails here the way it fails `ant applet`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / "tools"
API_DATA = TOOLS / "javacard_api" / "3.0.4.txt"
APPLET_SOURCES = sorted((ROOT / "applet/src/main/java/sealcard/applet").glob("*.java"))

sys.path.insert(0, str(TOOLS))
import javacard_api  # noqa: E402 - tools/ is not a package

pytestmark = pytest.mark.skipif(shutil.which("javac") is None, reason="needs a JDK (javac)")


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, check=False, timeout=300
    )


def _javac(bootclasspath: Path, out: Path, sources: list[Path]) -> subprocess.CompletedProcess[str]:
    out.mkdir(parents=True, exist_ok=True)
    return _run(
        "javac",
        "-source",
        "7",
        "-target",
        "7",
        "-g",
        "-Xlint:-options",
        "-encoding",
        "UTF-8",
        "-bootclasspath",
        bootclasspath,
        "-d",
        out,
        *sources,
    )


@pytest.fixture(scope="module")
def api_304(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 3.0.4 stubs generated from the data and compiled, as `ant jc-api` does."""
    base = tmp_path_factory.mktemp("jc-api")
    generated = _run(sys.executable, TOOLS / "javacard_api.py", "stubs", API_DATA, base / "src")
    assert generated.returncode == 0, generated.stderr
    classes = base / "classes"
    compiled = _javac(classes, classes, sorted((base / "src").rglob("*.java")))
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    return classes


def _write(directory: Path, name: str, body: str) -> Path:
    source = directory / "sealcard" / "applet" / f"{name}.java"
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_text(f"package sealcard.applet;\n\n{body}", encoding="utf-8")
    return source


def test_the_data_lists_the_304_api_and_not_305() -> None:
    surface = javacard_api.load(API_DATA)
    assert len(surface.classes) == 95
    cipher = surface.classes["javacardx/crypto/Cipher"]
    assert cipher.fields["PAD_PKCS1_OAEP"].value == 9
    assert "PAD_PKCS1_OAEP_SHA256" not in cipher.fields  # JavaCard 3.0.5
    assert surface.find_method("javacard/security/RandomData", "nextBytes", "([BSS)S") is None
    # Inherited through an interface: ECPrivateKey.setA comes from ECKey.
    assert surface.find_method("javacard/security/ECPrivateKey", "setA", "([BSS)V") is not None
    assert not surface.has_class("java/lang/String")


def test_the_applet_compiles_against_the_304_stubs_and_passes_the_check(
    api_304: Path, tmp_path: Path
) -> None:
    compiled = _javac(api_304, tmp_path, APPLET_SOURCES)
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    checked = _run(sys.executable, TOOLS / "check_javacard_subset.py", tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "passed: 22 classes" in checked.stdout


def test_a_305_constant_does_not_compile_against_the_304_stubs(
    api_304: Path, tmp_path: Path
) -> None:
    source = _write(
        tmp_path / "src",
        "Oaep",
        "import javacardx.crypto.Cipher;\n\n"
        "final class Oaep {\n"
        "    Cipher make() {\n"
        "        return Cipher.getInstance(Cipher.CIPHER_RSA,\n"
        "                Cipher.PAD_PKCS1_OAEP_SHA256, false);\n"
        "    }\n}\n",
    )
    compiled = _javac(api_304, tmp_path / "classes", [source])
    assert compiled.returncode != 0
    assert "PAD_PKCS1_OAEP_SHA256" in compiled.stderr


def _api_with_305_next_bytes(tmp_path: Path) -> Path:
    """A copy of the 3.0.4 data plus RandomData.nextBytes, the way JavaCard 3.0.5 added it."""
    lines = API_DATA.read_text(encoding="utf-8").splitlines()
    at = lines.index("class javacard/security/RandomData public abstract extends java/lang/Object")
    lines.insert(at + 1, "  method nextBytes ([BSS)S public abstract")
    data = tmp_path / "3.0.5-ish.txt"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return data


def test_a_class_using_a_305_method_is_refused_by_the_class_check(tmp_path: Path) -> None:
    api_305 = tmp_path / "api-305"
    generated = _run(
        sys.executable,
        TOOLS / "javacard_api.py",
        "stubs",
        _api_with_305_next_bytes(tmp_path),
        api_305 / "src",
    )
    assert generated.returncode == 0, generated.stderr
    compiled_api = _javac(
        api_305 / "classes", api_305 / "classes", sorted((api_305 / "src").rglob("*.java"))
    )
    assert compiled_api.returncode == 0, compiled_api.stderr
    source = _write(
        tmp_path / "src",
        "Draw",
        "import javacard.security.RandomData;\n\n"
        "final class Draw {\n"
        "    short draw(RandomData random, byte[] out) {\n"
        "        return random.nextBytes(out, (short) 0, (short) 8);\n"
        "    }\n}\n",
    )
    classes = tmp_path / "classes"
    compiled = _javac(api_305 / "classes", classes, [source])
    assert compiled.returncode == 0, compiled.stderr  # it compiles against the 3.0.5-ish API

    refused = _run(sys.executable, TOOLS / "check_javacard_subset.py", classes)
    assert refused.returncode == 1
    assert "javacard/security/RandomData.nextBytes ([BSS)S is not in the JavaCard API" in (
        refused.stderr
    )
    # The same class against the 3.0.5-ish list passes: the refusal is the API, nothing else.
    accepted = _run(
        sys.executable,
        TOOLS / "check_javacard_subset.py",
        classes,
        "--api",
        tmp_path / "3.0.5-ish.txt",
    )
    assert accepted.returncode == 0, accepted.stderr


def test_the_class_check_refuses_a_305_method_compiled_against_jcardsim(tmp_path: Path) -> None:
    """jCardSim's API is 3.0.5 (`ant deps` fetches it; tools/test.sh runs ant first)."""
    jcardsim = ROOT / "build" / "lib" / "jcardsim-3.0.6.0.jar"
    if not jcardsim.is_file():
        pytest.skip("run `ant deps` first (build/lib/jcardsim-3.0.6.0.jar)")
    source = _write(
        tmp_path / "src",
        "Trng",
        "import javacard.security.RandomData;\n\n"
        "final class Trng {\n"
        "    RandomData make() {\n"
        "        return RandomData.getInstance(RandomData.ALG_TRNG);\n"
        "    }\n"
        "    short draw(RandomData random, byte[] out) {\n"
        "        return random.nextBytes(out, (short) 0, (short) 8);\n"
        "    }\n}\n",
    )
    classes = tmp_path / "classes"
    compiled = _run(
        "javac",
        "--release",
        "8",
        "-g",
        "-cp",
        jcardsim,
        "-d",
        classes,
        source,
    )
    assert compiled.returncode == 0, compiled.stderr
    refused = _run(sys.executable, TOOLS / "check_javacard_subset.py", classes)
    assert refused.returncode == 1
    assert "RandomData.nextBytes" in refused.stderr


def test_a_member_inherited_by_an_applet_class_is_resolved_through_the_api(
    api_304: Path, tmp_path: Path
) -> None:
    source = _write(
        tmp_path / "src",
        "Tiny",
        "import javacard.framework.APDU;\nimport javacard.framework.Applet;\n\n"
        "public final class Tiny extends Applet {\n"
        "    private Tiny() { register(); }\n"
        "    public static void install(byte[] b, short o, byte l) { new Tiny(); }\n"
        "    public void process(APDU apdu) { if (selectingApplet()) { return; } }\n"
        "}\n",
    )
    classes = tmp_path / "classes"
    assert _javac(api_304, classes, [source]).returncode == 0
    checked = _run(sys.executable, TOOLS / "check_javacard_subset.py", classes)
    assert checked.returncode == 0, checked.stderr

    missing_register = tmp_path / "no-register.txt"
    missing_register.write_text(
        "\n".join(
            line
            for line in API_DATA.read_text(encoding="utf-8").splitlines()
            if not line.startswith("  method register ()V ")
        )
        + "\n",
        encoding="utf-8",
    )
    refused = _run(
        sys.executable, TOOLS / "check_javacard_subset.py", classes, "--api", missing_register
    )
    assert refused.returncode == 1
    assert "sealcard/applet/Tiny.register ()V is not in the JavaCard API" in refused.stderr


def test_compare_reports_a_difference_between_data_and_an_api_jar(tmp_path: Path) -> None:
    """`ant cap` runs `compare` against the SDK's jar; here a jar made from the stubs."""
    surface = javacard_api.load(API_DATA)
    assert javacard_api.differences(surface, surface) == []
    altered = javacard_api.load(_api_with_305_next_bytes(tmp_path))
    assert javacard_api.differences(surface, altered) == [
        "only in the API jar: method javacard/security/RandomData nextBytes ([BSS)S public abstract"
    ]
