#!/usr/bin/env bash
# Replay deploy/docker/Dockerfile without a container engine: each stage's RUN steps in a fresh
# Debian 12 chroot (debootstrap), the COPY steps by hand, then the issuer side as the image runs
# it (uid 990, the image's ENV): issuer init, hsm init, hsm start, doctor, a seal, a seed backup.
# On demand (not in CI: about 3 minutes of debootstrap, then 2.5 minutes; 1 GB in WORK). As root, on Debian, with network to
# Debian's mirror and PyPI.
#   tools/dockerfile_in_chroot.sh [WORK]      (default WORK: /tmp/sealcard-image)
# What it does not replay: the FROM image itself (debootstrap --variant=minbase stands in for
# debian:12-slim), VOLUME, HEALTHCHECK and ENTRYPOINT (the commands run by their full names).
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
DOCKERFILE=$SRC/deploy/docker/Dockerfile
WORK=${1:-/tmp/sealcard-image}
BASE=$WORK/base BUILD=$WORK/build RUNTIME=$WORK/run
[ "$(id -u)" -eq 0 ] || { echo "needs root (debootstrap, chroot)" >&2; exit 2; }
command -v debootstrap >/dev/null || apt-get install -y -q --no-install-recommends debootstrap

# The RUN commands of stage N (continuation lines joined), NUL-separated.
runs() {
  python3 - "$DOCKERFILE" "$1" <<'PY'
import re, sys
stage, found = -1, []
for line in re.sub(r"\\\n", " ", open(sys.argv[1]).read()).splitlines():
    line = line.strip()
    if line.startswith("FROM "):
        stage += 1
    elif line.startswith("RUN ") and stage == int(sys.argv[2]):
        found.append(line[4:])
sys.stdout.write("\0".join(found))
PY
}

# A clean environment; the host's CA bundle as pip's, for a network behind a TLS proxy.
CLEAN=(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive
       PIP_CERT=/etc/host-ca.crt REQUESTS_CA_BUNDLE=/etc/host-ca.crt SSL_CERT_FILE=/etc/host-ca.crt)
in_root() {  # ROOT WORKDIR COMMAND
  unshare --mount --pid --fork --mount-proc="$1/proc" chroot "$1" "${CLEAN[@]}" /bin/sh -c "cd $2 && $3"
}

[ -x "$BASE/bin/sh" ] || debootstrap --variant=minbase bookworm "$BASE" http://deb.debian.org/debian
rm -rf "$BUILD" "$RUNTIME"
for root in "$BUILD" "$RUNTIME"; do
  cp -a "$BASE" "$root"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/host-ca.crt"
done

echo "== stage 1 (build)"
mapfile -d '' STEPS < <(runs 0)
in_root "$BUILD" / "${STEPS[0]}"
mkdir -p "$BUILD/src" && cp -r pyproject.toml README.md host "$BUILD/src/"   # COPY
find "$BUILD/src" \( -name __pycache__ -o -name '*.egg-info' \) -prune -exec rm -rf {} +
in_root "$BUILD" /src "${STEPS[1]}"

echo "== stage 2 (run)"
mapfile -d '' STEPS < <(runs 1)
in_root "$RUNTIME" / "${STEPS[0]}"
cp -a "$BUILD/opt/sealcard" "$RUNTIME/opt/sealcard"                          # COPY --from=build
mkdir -p "$RUNTIME/opt/sealcard/share" && cp -r docs "$RUNTIME/opt/sealcard/share/doc"

echo "== the issuer side as the image runs it (USER 990:990, --ulimit memlock=-1)"
IMAGE_ENV="PATH=/opt/sealcard/bin:/usr/bin:/bin SEALCARD_ISSUER_HOME=/var/lib/sealcard/issuer"
in_root "$RUNTIME" /var/lib/sealcard "env -i $IMAGE_ENV HOME=/var/lib/sealcard \
  prlimit --memlock=unlimited:unlimited -- \
  setpriv --reuid 990 --regid 990 --clear-groups sh -ec '
    sealcard --version
    sealcard issuer init
    sealcard issuer hsm init --service-user sealcard
    sealcard issuer hsm start
    sealcard doctor --for issuer
    sealcard issuer user add --name Ada --address Somewhere
    sealcard issuer order --user 1 --count 2 --pin-source none
    sealcard issuer pack import-fake --cards 2 --pack P1 --rsa-pool 1
    sealcard issuer seal
    sealcard issuer hsm backup-seed --threshold 2 --shares 3 --out-dir /var/lib/sealcard/sheets
    ls -l /var/lib/sealcard/sheets
    sealcard issuer hsm stop'"
echo "dockerfile_in_chroot: every step ran"
