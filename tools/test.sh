#!/usr/bin/env bash
# Set up a fresh Debian machine (as root) and run every sealcard test: lint, types, unit tests, then the tests that
# need simulated cards behind pcscd, SoftHSM2 tokens and PostgreSQL. Starts those services and stops them after.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tools/setup.sh

PG_DIR=$(mktemp -d /tmp/sealcard-pg.XXXXXX)

cleanup() {
  set +e
  sealcard sim down >/dev/null 2>&1
  bash tools/pg_test_server.sh stop "$PG_DIR" >/dev/null 2>&1
  rm -rf "$PG_DIR"
}
trap cleanup EXIT

echo "== ruff"; ruff check host tests bench tools; ruff format --check host tests bench tools
echo "== mypy"; mypy

echo "== services"
sealcard sim down >/dev/null 2>&1 || true   # start from fresh blank cards
sealcard sim up --cards 4
SEALCARD_TEST_PG_URL=$(bash tools/pg_test_server.sh start "$PG_DIR")
export SEALCARD_TEST_PG_URL
# Here every service runs: a test that would skip for want of one fails instead.
export SEALCARD_TEST_REQUIRE_SERVICES=1
echo "== applet (in-JVM smoke test of every command)"
ant -q -f build.xml applet-smoke
echo "== assurance suites 1-5 (in-JVM, CI size; full size: ant assurance -Dsize=full, docs/assurance.md)"
ant -f build.xml assurance 2>&1 | grep -E '\[java\] (==|   |suites:)|BUILD|Exception'

echo "== pytest"
python3 -m pytest -q -p no:cacheprovider "$@"

echo "== lowest dependency versions (a throwaway venv: every floor in pyproject.toml installed and tested)"
bash tools/dependency_bounds.sh lowest-direct
