#!/usr/bin/env bash
# Install everything sealcard needs on a fresh Debian 12 machine (run as root), then build the applet and simulator.
# Safe to run again: every step skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(
  openjdk-17-jdk-headless ant maven         # applet build, jCardSim
  pcscd libpcsclite-dev vsmartcard-vpcd     # PC/SC daemon and the virtual reader driver
  swig gcc python3-dev                      # pyscard builds from source where no wheel fits
  softhsm2 opensc                           # PKCS#11 token and pkcs11-tool
  postgresql                                # the issuer's records on PostgreSQL (tests)
  openssl iproute2 util-linux procps
  poppler-utils                             # pdftotext/pdftoppm: tests read the PDFs a person would
  libengine-pkcs11-openssl                  # openssl cms with a party key in its token (docs/files.md)
  systemd                                   # systemd-analyze: tests check the service units offline
  chromium                                  # the operator console's browser tests (headless)
)

missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# Debian starts pcscd through systemd socket activation where systemd runs; sealcard runs its own pcscd.
if command -v systemctl >/dev/null && systemctl is-active --quiet pcscd.socket 2>/dev/null; then
  systemctl stop pcscd.socket pcscd.service || true
fi

# The issuer HSM service runs as its own Unix user (docs/hsm.md): started as root it drops to it.
if ! getent passwd sealcard-hsm >/dev/null; then
  echo "setup: creating the system user sealcard-hsm (the issuer HSM service's own user)"
  useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin sealcard-hsm
fi

PYTHON=${PYTHON:-python3}
# SEALCARD_SETUP_NO_PIP=1: leave the installed package alone (a second work tree on a machine whose
# `sealcard` is installed from another checkout runs its own code with PYTHONPATH=<tree>/host).
if [ "${SEALCARD_SETUP_NO_PIP:-}" != 1 ]; then
  echo "setup: installing the sealcard Python package ($($PYTHON --version))"
  $PYTHON -m pip install -q --disable-pip-version-check -e '.[dev,postgres]' 2>&1 | grep -v "Running pip as the 'root' user" || true
fi

echo "setup: building the applet and the simulator (ant)"
ant -q -f build.xml sim-jar
echo "setup: done"
