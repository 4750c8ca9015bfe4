#!/usr/bin/env bash
# The main job, end to end on simulated cards (fresh Debian 12, as root):
# provider initializes cards -> issuer imports them -> issuer HSM seals a key per card ->
# bureau personalizes -> mailer opens the PIN letter -> user signs a hash with the card.
# Every party uses its own `sealcard` command group; no party but the issuer HSM service
# ever holds a user private key, and no PIN is printed or written to disk here.
set -euo pipefail
cd "$(dirname "$0")/.."

CARDS=${SEALCARD_DEMO_CARDS:-4}
WORK=${SEALCARD_DEMO_DIR:-/tmp/sealcard-demo}

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
json_field() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval("d"+sys.argv[1]))' "$1"; }

if [ "${SEALCARD_DEMO_SKIP_SETUP:-}" != 1 ]; then
  step "0. set up this machine (Debian packages, Python package, applet build)"
  bash tools/setup.sh
fi

rm -rf "$WORK"
mkdir -p "$WORK"/{provider,bureau,mailer/letters}
# 711: the issuer HSM service drops to its own user (sealcard-hsm), which must pass through
# to the issuer home (the home's own folders say what it may read)
chmod 711 "$WORK"
chmod 700 "$WORK"/{provider,bureau,mailer}
export SEALCARD_ISSUER_HOME="$WORK/issuer"
# The provider's CA passphrase: random for the demo, in the environment only (never argv, never disk).
SEALCARD_PROVIDER_PASSPHRASE=$(head -c 24 /dev/urandom | base64)
export SEALCARD_PROVIDER_PASSPHRASE

cleanup() {
  set +e
  sealcard issuer hsm stop >/dev/null 2>&1
  [ "${SEALCARD_DEMO_KEEP_CARDS:-}" = 1 ] || sealcard sim down >/dev/null 2>&1
}
trap cleanup EXIT

if [ -n "${SEALCARD_DEMO_READERS:-}" ]; then
  # Cards already in readers (the tests pass blank simulated cards this way): one name a line.
  step "1. blank cards in the readers named by SEALCARD_DEMO_READERS"
  mapfile -t READERS <<<"$SEALCARD_DEMO_READERS"
  SEALCARD_DEMO_KEEP_CARDS=1
else
  step "1. $CARDS blank simulated cards, each in its own PC/SC reader"
  sealcard sim down >/dev/null 2>&1 || true   # a fresh set of blank cards
  sealcard sim up --cards "$CARDS"
  mapfile -t READERS < <(sealcard readers --json | python3 -c '
import json, sys
for r in json.load(sys.stdin)["readers"]:
    if r.get("sealcard"):
        print(r["reader"])')
fi
sealcard readers

step "2. issuer: records, SoftHSM2 tokens, the issuer HSM service; publish the issuer public key"
sealcard issuer init
if [ -n "${SEALCARD_DEMO_SEED_SHARES:-}" ]; then  # SLIP-39 shares: a test that must know the seed
  sealcard issuer hsm init --restore <"$SEALCARD_DEMO_SEED_SHARES"
else
  sealcard issuer hsm init
fi
sealcard issuer hsm start
sealcard issuer hsm issuer-key --out "$WORK/issuer.pub.pem"

step "3. card provider: root CA, then step A on every card (keys made on the card, closed)"
sealcard provider ca init --out-dir "$WORK/provider/ca"
for reader in "${READERS[@]}"; do
  sealcard provider init-card --reader "$reader" --issuer-key "$WORK/issuer.pub.pem" \
    --ca-dir "$WORK/provider/ca"
done

step "4. anyone: is the card in the first reader genuine? (attestation chain to the provider root)"
sealcard card info --reader "${READERS[0]}" --root "$WORK/provider/ca/root.pem"

step "5. issuer: take the genuine cards into stock as one pack"
pack_readers=()
for reader in "${READERS[@]}"; do pack_readers+=(--reader "$reader"); done
sealcard issuer pack import-cards --root "$WORK/provider/ca/root.pem" --pack DEMO-PACK-1 "${pack_readers[@]}"

step "6. mailer: its key pair (RSA-3072); the issuer HSM learns the public key"
openssl genpkey -quiet -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out "$WORK/mailer/key.pem"
chmod 600 "$WORK/mailer/key.pem"
openssl pkey -in "$WORK/mailer/key.pem" -pubout -out "$WORK/mailer/public.pem"
sealcard issuer hsm mailer add --id post --key "$WORK/mailer/public.pem"

step "7. issuer: users and their orders (FIG. 5: the HSM makes PIN and PUK)"
names=("Ada Lovelace" "Alan Turing" "Grace Hopper" "Claude Shannon" "Hedy Lamarr" "Edsger Dijkstra")
for ((i = 0; i < ${#READERS[@]}; i++)); do
  name=${names[$((i % ${#names[@]}))]}
  user=$(sealcard issuer user add --name "$name" --address "$((i + 1)) Example Street, Test Town" --json \
    | json_field '["user"]["id"]')
  sealcard issuer order --user "$user" --mailer post
done

step "8. issuer: seal (device authentication keys, BIP32 user keys, blobs, PIN letters)"
sealcard issuer seal
sealcard issuer hsm xpub

step "9. issuer: hand the blobs to the bureau and the PIN letters to the mailer"
sealcard issuer export --blob-dir "$WORK/bureau/blobs" --letter-dir "$WORK/mailer/letters"

step "10. bureau: match every card by serial, personalize it, report the result data"
sealcard bureau personalize --blob-dir "$WORK/bureau/blobs" --results "$WORK/bureau/results.json" \
  "${pack_readers[@]}"
sealcard issuer results --results "$WORK/bureau/results.json"

step "11. user of the first card: the public key and its addresses"
sealcard card pubkey --reader "${READERS[0]}"

step "12. user: sign a transaction hash, PIN straight from the mailer's letter (never on disk)"
serial=$(sealcard card info --reader "${READERS[0]}" --json | json_field '["serial"]')
letter="$WORK/mailer/letters/$serial.p7m"
hash=$(printf 'sealcard demo transaction' | sha256sum | cut -d' ' -f1)
pin_from_letter() {
  # The mailer checks the issuer's signature, then decrypts; the user reads the PIN off the letter.
  openssl cms -verify -inform DER -in "$letter" -CAfile "$SEALCARD_ISSUER_HOME/hsm/issuer-cert.pem" \
    -outform DER 2>/dev/null \
    | openssl cms -decrypt -inform DER -inkey "$WORK/mailer/key.pem" \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["pin"])'
}
sealcard card sign --reader "${READERS[0]}" --hash "$hash" --pin-fd 3 3< <(pin_from_letter)

step "13. issuer: a user forgot PIN and PUK: issuer-assisted PIN reset (signed by the card's wrapped key)"
# The new PIN lives in a shell variable and travels through pipes (printf is a shell builtin,
# so it never appears in a process's arguments).
NEW_PIN=$(python3 -c 'import secrets; print(f"{secrets.randbelow(10**6):06d}")')
sealcard issuer card reset-pin --reader "${READERS[0]}" --new-pin-fd 3 3< <(printf '%s\n' "$NEW_PIN")
sealcard card pin verify --reader "${READERS[0]}" --pin-fd 3 3< <(printf '%s\n' "$NEW_PIN")
unset NEW_PIN

step "14. issuer: terminate the last card for good (claim 14); it now refuses all use"
sealcard issuer card terminate --reader "${READERS[-1]}" --yes
sealcard readers

step "15. issuer: where every order stands"
sealcard issuer status

printf '\n\033[1mDone.\033[0m Files of every party are in %s\n' "$WORK"
