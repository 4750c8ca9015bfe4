#!/usr/bin/env bash
# The adversarial suites of docs/assurance.md at one size, one command:
#   tools/assurance.sh [ci|full] [SUITE ...]
# SUITE: fuzz tear blobs side vectors (in-JVM), pcsc (suite 1 through pcscd), hygiene (suite 7);
# all of them when none is named. Cards and pcscd run in tools/isolated.sh's private namespaces.
# Exit status 1 when any suite failed.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE=${1:-ci}
case "$SIZE" in ci|full) ;; *) echo "usage: tools/assurance.sh [ci|full] [SUITE ...]" >&2; exit 2 ;; esac
shift || true
SUITES=${*:-fuzz tear blobs side vectors pcsc hygiene}
PCSC_APDUS=400
[ "$SIZE" = full ] && PCSC_APDUS=25000

on_cards() {  # a pytest file on 4 simulated cards, in private namespaces
  SEALCARD_FUZZ_PCSC_APDUS=$PCSC_APDUS tools/isolated.sh bash -c \
    "sealcard sim up --cards 4 >/dev/null && python3 -m pytest -q -p no:cacheprovider $1; rc=\$?; sealcard sim down >/dev/null; exit \$rc"
}

failed=0
for suite in $SUITES; do
  echo "== $suite ($SIZE)"
  case "$suite" in
    fuzz|tear|blobs|side|vectors)
      ant -f build.xml "assurance-$suite" -Dsize="$SIZE" 2>&1 \
        | grep -E '\[java\] (==|   |suites:)|BUILD|Exception' || failed=1
      [ "$suite" = vectors ] && { python3 -m pytest -q -p no:cacheprovider tests/unit/test_wycheproof_host.py || failed=1; }
      ;;
    pcsc) on_cards tests/sim/test_apdu_fuzz_pcsc.py || failed=1 ;;
    hygiene) on_cards tests/sim/test_main_job.py || failed=1 ;;  # the main job once, both checks
    *) echo "unknown suite: $suite" >&2; exit 2 ;;
  esac
done
exit $failed
