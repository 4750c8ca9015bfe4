#!/usr/bin/env bash
# Run a command with its own pcscd and simulated cards, so that several runs on one machine
# (parallel test runs, several work trees) never stop each other's pcscd: a private pid and mount
# namespace, with a fresh tmpfs on /run/pcscd and /run/sealcard-sim. As root.
#   tools/isolated.sh bash tools/test.sh
#   tools/isolated.sh bash -c 'sealcard sim up --cards 4 && python3 -m pytest tests/sim'
# Everything started inside (pcscd, the card JVM, PostgreSQL) dies with the command.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 COMMAND [ARG...]" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "isolated.sh: needs root (unshare of mount and pid namespaces)" >&2; exit 2; }
mkdir -p /run/pcscd /run/sealcard-sim
exec unshare --mount --pid --fork --mount-proc -- bash -c '
  set -e
  mount -t tmpfs -o mode=0755 tmpfs /run/pcscd
  mount -t tmpfs -o mode=0755 tmpfs /run/sealcard-sim
  exec "$@"' isolated "$@"
