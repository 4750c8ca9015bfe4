#!/usr/bin/env bash
# Prove pyproject.toml's version bounds: build sealcard with the lowest setuptools the build-system
# table allows, install it with the lowest version of every direct dependency the metadata allows
# (uv --resolution lowest-direct) into a throwaway venv, and run the tests that need no card there.
#   tools/dependency_bounds.sh                   lowest versions (what tools/test.sh runs)
#   tools/dependency_bounds.sh highest           the newest releases under the caps
# Needs uv (pip install 'sealcard[dev]') and PyPI. Leaves the main install and the work tree alone.
# The PostgreSQL tests run too when SEALCARD_TEST_PG_URL is set.
set -euo pipefail
cd "$(dirname "$0")/.."

RESOLUTION=${1:-lowest-direct}
case "$RESOLUTION" in lowest-direct|highest) ;; *) echo "usage: $0 [lowest-direct|highest]" >&2; exit 2;; esac
command -v uv >/dev/null || { echo "dependency_bounds: uv not found (pip install 'uv==0.13.9')" >&2; exit 1; }

WORK=$(mktemp -d /tmp/sealcard-bounds.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
VENV=$WORK/venv

# The lowest build backend named in [build-system], read from pyproject.toml itself.
SETUPTOOLS_FLOOR=$(python3 -c '
import re, tomllib
reqs = tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"]
print(next(re.fullmatch(r"setuptools>=([\w.]+)", r).group(1) for r in reqs if r.startswith("setuptools")))')

# Build from a copy: setuptools writes build/ and *.egg-info next to the sources it builds.
mkdir -p "$WORK/src"
cp -r pyproject.toml README.md host "$WORK/src/"
find "$WORK/src/host" \( -name __pycache__ -o -name '*.egg-info' \) -prune -exec rm -rf {} +
BUILD_CONSTRAINT=()
if [ "$RESOLUTION" = lowest-direct ]; then
  echo "setuptools==$SETUPTOOLS_FLOOR" >"$WORK/build-constraints.txt"
  BUILD_CONSTRAINT=(--build-constraint "$WORK/build-constraints.txt")
fi
uv build -q --wheel "${BUILD_CONSTRAINT[@]}" -o "$WORK/dist" "$WORK/src"

# Requirements straight from pyproject.toml, so each is a direct one (lowest-direct takes the
# floor of direct requirements only). Of the dev extra only what the tests run: ruff, mypy and
# uv are pinned exactly and test nothing here. bip-utils holds pycryptodome below 4, so `highest` leaves it out (its
# cross-checks skip) to try the newest pycryptodome.
python3 - "$RESOLUTION" >"$WORK/requirements.txt" <<'PY'
import sys, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
extras = project["optional-dependencies"]
wanted = ("pytest", "hadolint") + (() if sys.argv[1] == "highest" else ("bip-utils",))
dev = [r for r in extras["dev"] if r.startswith(wanted)]
print("\n".join(project["dependencies"] + extras["postgres"] + dev))
PY
uv venv -q --python "${PYTHON:-python3}" "$VENV"
uv pip install -q --compile-bytecode --python "$VENV/bin/python" --resolution "$RESOLUTION" -r "$WORK/requirements.txt"
uv pip install -q --compile-bytecode --python "$VENV/bin/python" --no-deps "$WORK"/dist/sealcard-*.whl

echo "dependency_bounds: $RESOLUTION:" \
  "$([ "$RESOLUTION" = lowest-direct ] && echo "setuptools==$SETUPTOOLS_FLOOR (build)")" \
  "$(uv pip list --python "$VENV/bin/python" --format freeze 2>/dev/null |
     grep -iE '^(pyscard|cryptography|asn1crypto|click|coincurve|python-pkcs11|shamir-mnemonic|pycryptodome|pytest|bip-utils|psycopg|tomli-w|reportlab|prometheus-client)==' |
     tr '\n' ' ')"

TESTS=(tests/unit tests/hsm)
if [ -n "${SEALCARD_TEST_PG_URL:-}" ]; then TESTS+=(tests/issuer/test_issuer_records_pg.py); fi
# The venv's own sealcard and python first; the tests' subprocesses use them too.
env -u PYTHONPATH PATH="$VENV/bin:$PATH" "$VENV/bin/python" -m pytest -q -p no:cacheprovider "${TESTS[@]}"
