#!/usr/bin/env bash
# The main job, end to end on simulated cards (fresh Debian 12, as root). Each party works in
# its own folder with its own keys (in its own PKCS#11 token) and what it was sent; only
# sealed files cross between them (signed by the sender, encrypted to the receiver):
#   provider --device-init--> issuer --personalization--> bureau --results, shipping--> issuer
#   issuer --PIN letters (FIG. 5)--> mailer <--PIN letters (FIG. 2)-- bureau
#   bureau --shipping--> shipper; mailer and shipper --confirmations--> issuer
# Half the cards get PIN and PUK from the issuer HSM (FIG. 5), half from the bureau (FIG. 2).
# At the end every party folder is searched for the seed, user keys, PINs and PUKs
# (tools/leak_check.py); the script exits non-zero if any step or check fails.
set -euo pipefail
cd "$(dirname "$0")/.."

CARDS=${SEALCARD_DEMO_CARDS:-4}
WORK=${SEALCARD_DEMO_DIR:-/tmp/sealcard-demo}

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
json_field() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval("d"+sys.argv[1]))' "$1"; }
# A file crosses from one party to another (in real life: SFTP, a courier, ...).
hand_over() {
  local file=$1 from=$2 to=$3
  mkdir -p "$WORK/$to/inbox"
  cp "$file" "$WORK/$to/inbox/"
  printf '  %-8s -> %-8s %s\n' "$from" "$to" "$(basename "$file")"
}

if [ "${SEALCARD_DEMO_SKIP_SETUP:-}" != 1 ]; then
  step "0. set up this machine (Debian packages, Python package, applet build)"
  bash tools/setup.sh
fi

rm -rf "$WORK"
mkdir -p "$WORK"/{provider,issuer,bureau,mailer,shipper}
# 711: the issuer HSM service drops to its own user (sealcard-hsm), which must pass through
# to the issuer home (the home's own folders say what it may read); every other party's
# folder is its own (700).
chmod 711 "$WORK" "$WORK/issuer"
chmod 700 "$WORK"/{provider,bureau,mailer,shipper}
export SEALCARD_ISSUER_HOME="$WORK/issuer/home"
export SEALCARD_PROVIDER_HOME="$WORK/provider/home" SEALCARD_BUREAU_HOME="$WORK/bureau/home"
export SEALCARD_MAILER_HOME="$WORK/mailer/home" SEALCARD_SHIPPER_HOME="$WORK/shipper/home"
export SEALCARD_PROVIDER_CA_DIR="$WORK/provider/ca"
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
CARDS=${#READERS[@]}
reader_args=()
for reader in "${READERS[@]}"; do reader_args+=(--reader "$reader"); done
sealcard readers

step "2. issuer: records, SoftHSM2 tokens, seed backup to three custodians, the issuer HSM service"
sealcard issuer init
if [ -n "${SEALCARD_DEMO_SEED_SHARES:-}" ]; then  # SLIP-39 shares: a test that must know the seed
  sealcard issuer hsm init --restore <"$SEALCARD_DEMO_SEED_SHARES"
else
  sealcard issuer hsm init
fi
# Text shares here (the leak check reads them back); a bank prints custody sheets (--format pdf).
sealcard issuer hsm backup-seed --threshold 2 --shares 3 --format text --out-dir "$WORK/custodians"
sealcard issuer hsm start

step "3. every party makes its key pair for sealed files, in its own token"
sealcard issuer keys init --name bank --out "$WORK/issuer/issuer.pem"
sealcard provider ca init --out-dir "$WORK/provider/ca"
sealcard provider keys init --name acme
sealcard provider keys export --out "$WORK/provider/provider.pem"   # with the root CA
sealcard bureau keys init --name print-house --out "$WORK/bureau/bureau.pem"
sealcard mailer keys init --name post --out "$WORK/mailer/mailer.pem"   # + its letter key
sealcard shipper keys init --name parcel-co --out "$WORK/shipper/shipper.pem"

step "4. the parties exchange certificates once (out of band: compare fingerprints)"
for party in provider bureau mailer shipper; do hand_over "$WORK/issuer/issuer.pem" issuer "$party"; done
for party in provider bureau mailer shipper; do hand_over "$WORK/$party/$party.pem" "$party" issuer; done
for party in mailer shipper; do hand_over "$WORK/bureau/bureau.pem" bureau "$party"; done
for party in mailer shipper; do hand_over "$WORK/$party/$party.pem" "$party" bureau; done
sealcard provider party add --role issuer --cert "$WORK/provider/inbox/issuer.pem"
for peer in issuer mailer shipper; do
  sealcard bureau party add --role "$peer" --cert "$WORK/bureau/inbox/$peer.pem"
done
for peer in issuer bureau; do
  sealcard mailer party add --role "$peer" --cert "$WORK/mailer/inbox/$peer.pem"
  sealcard shipper party add --role "$peer" --cert "$WORK/shipper/inbox/$peer.pem"
done
# The mailer's letter key also goes to the issuer HSM (it encrypts the FIG. 5 PIN letters).
for peer in provider bureau mailer shipper; do
  sealcard issuer party add --role "$peer" --cert "$WORK/issuer/inbox/$peer.pem"
done

step "5. card provider: step A on every blank card, all readers at once; the pack file to the issuer"
sealcard provider init-pack --pack DEMO-PACK-1 "${reader_args[@]}"
hand_over "$WORK/provider/home/outbox/device-init-DEMO-PACK-1.p7m" provider issuer

step "6. anyone: is the card in the first reader genuine? (attestation chain to the provider root)"
sealcard card info --reader "${READERS[0]}" --root "$WORK/provider/ca/root.pem"

step "7. issuer: take the pack into stock (signer, every card's attestation, serials)"
sealcard issuer pack import --file "$WORK/issuer/inbox/device-init-DEMO-PACK-1.p7m"

step "8. issuer: users and their orders: FIG. 5 (the HSM makes PIN and PUK), then FIG. 2 (the bureau does)"
names=("Ada Lovelace" "Alan Turing" "Grace Hopper" "Claude Shannon" "Hedy Lamarr" "Edsger Dijkstra")
FIG5=$(((CARDS + 1) / 2))
for ((i = 0; i < CARDS; i++)); do
  name=${names[$((i % ${#names[@]}))]}
  user=$(sealcard issuer user add --name "$name" --address "$((i + 1)) Example Street
Test Town" --json | json_field '["user"]["id"]')
  if ((i < FIG5)); then source=hsm; else source=none; fi
  sealcard issuer order --user "$user" --pin-source "$source" --mailer post
done

step "9. issuer: seal (device authentication keys, BIP32 user keys, blobs, FIG. 5 PIN letters)"
sealcard issuer seal
sealcard issuer hsm xpub

step "10. issuer: one personalization file per batch for the bureau, the PIN letters for the mailer"
sealcard issuer export --bureau print-house --batch-size "$FIG5" --out-dir "$WORK/issuer/outbox"
for file in "$WORK"/issuer/outbox/personalization-*.p7m; do hand_over "$file" issuer bureau; done
for file in "$WORK"/issuer/outbox/pin-letters-*.p7m; do hand_over "$file" issuer mailer; done

step "11. bureau: every card of each batch matched by serial and personalized, all readers at once"
mapfile -t BATCHES < <(ls "$WORK"/bureau/inbox/personalization-*.p7m)
sealcard bureau personalize --file "${BATCHES[0]}" --pin-source hsm "${reader_args[@]}"
if ((${#BATCHES[@]} > 1)); then   # FIG. 2
  sealcard bureau personalize --file "${BATCHES[1]}" --pin-source bureau "${reader_args[@]}"
fi
for file in "$WORK"/bureau/home/outbox/{results,shipping}-*.p7m; do hand_over "$file" bureau issuer; done
for file in "$WORK"/bureau/home/outbox/shipping-*.p7m; do hand_over "$file" bureau shipper; done
for file in "$WORK"/bureau/home/outbox/pin-letters-*.p7m; do
  [ -e "$file" ] && hand_over "$file" bureau mailer
done
ls "$WORK"/bureau/home/outbox/print-sheet-*.pdf   # for the card printer's operator

step "12. issuer: result and shipping data (orders -> personalized)"
files_of() { for file in "$@"; do printf -- '--file\n%s\n' "$file"; done; }
mapfile -t RETURNED < <(files_of "$WORK"/issuer/inbox/{results,shipping}-*.p7m)
sealcard issuer receive "${RETURNED[@]}"

step "13. shipper: manifest and confirmation; mailer: PIN letters to print and confirmation"
for file in "$WORK"/shipper/inbox/shipping-*.p7m; do sealcard shipper manifest --file "$file"; done
for file in "$WORK"/mailer/inbox/pin-letters-*.p7m; do sealcard mailer letters --file "$file"; done
for file in "$WORK"/shipper/home/outbox/ship-confirmation-*.p7m; do hand_over "$file" shipper issuer; done
for file in "$WORK"/mailer/home/outbox/mail-confirmation-*.p7m; do hand_over "$file" mailer issuer; done

step "14. issuer: confirmations (orders -> shipped -> pin_mailed: the card and its PIN reached the user)"
mapfile -t RETURNED < <(files_of "$WORK"/issuer/inbox/{ship,mail}-confirmation-*.p7m)
sealcard issuer receive "${RETURNED[@]}"
sealcard issuer status

# The user reads the PIN off the paper letter: here, the mailer's PDF through a pipe.
pin_from_letter() {
  local serial=$1
  for pdf in "$WORK"/mailer/home/outbox/pin-letters-*.pdf; do pdftotext -layout "$pdf" -; done \
    | python3 -c '
import re, sys
serial = sys.argv[1]
for page in sys.stdin.read().split("\f"):
    if f"Card serial: {serial}" in page:
        print(re.search(r"PIN: ([0-9]+)", page).group(1))
        break' "$serial"
}
hash=$(printf 'sealcard demo transaction' | sha256sum | cut -d' ' -f1)
PUBKEYS=()
for reader in "${READERS[0]}" "${READERS[-1]}"; do
  step "15. user of the card in $reader: its public key, then a signature with the PIN from the letter"
  serial=$(sealcard card info --reader "$reader" --json | json_field '["serial"]')
  sealcard card pubkey --reader "$reader"
  PUBKEYS+=(--expect-pubkey "$(sealcard card pubkey --reader "$reader" --json | json_field '["compressed"]')")
  sealcard card sign --reader "$reader" --hash "$hash" --pin-fd 3 3< <(pin_from_letter "$serial")
done

step "16. issuer: a user forgot PIN and PUK: issuer-assisted PIN reset (signed by the card's wrapped key)"
# The new PIN lives in a shell variable and travels through pipes (printf is a shell builtin,
# so it never appears in a process's arguments).
NEW_PIN=$(python3 -c 'import secrets; print(f"{secrets.randbelow(10**6):06d}")')
sealcard issuer card reset-pin --reader "${READERS[0]}" --new-pin-fd 3 3< <(printf '%s\n' "$NEW_PIN")
sealcard card pin verify --reader "${READERS[0]}" --pin-fd 3 3< <(printf '%s\n' "$NEW_PIN")
unset NEW_PIN

step "17. issuer: terminate the last card for good (claim 14); it now refuses all use"
sealcard issuer card terminate --reader "${READERS[-1]}" --yes
sealcard readers
sealcard issuer status   # the terminated card's order says so

step "18. every party folder: no seed, user key, PIN or PUK where that party should not have it"
status=$(sealcard issuer status --json)
base=$(json_field '["derivation_base"]' <<<"$status")
indexes=$(json_field '["next_derivation_index"]' <<<"$status")
# The one clear private key allowed on disk: the TLS key of the issuer's HTTPS API (`issuer
# serve` reads it; mode 0600), made by `issuer init`.
python3 tools/leak_check.py "$WORK" --shares "$WORK/custodians" \
  --derivation-base "$base" --indexes "$indexes" "${PUBKEYS[@]}" \
  --allow-clear-key issuer/home/tls/server-key.pem

printf '\n\033[1mDone.\033[0m Each party'"'"'s folder is in %s\n' "$WORK"
