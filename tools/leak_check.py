#!/usr/bin/env python3
"""Search every party folder of a chain run for secrets that party must not hold.

    python3 tools/leak_check.py WORK --shares DIR --derivation-base PATH --indexes N
        [--expect-pubkey HEX ...] [--letters-party mailer]

The secrets are found, not guessed: the issuer HSM's seed comes back from the custodians'
SLIP-39 shares (--shares, at least the threshold), every user private key is derived from it
(BIP32, DERIVATION-BASE/0 .. /N-1; --expect-pubkey checks that these are the keys the cards
hold, so the search is for the real ones), and every PIN and PUK is read off the mailer's
PIN letters (the PDFs in the --letters-party folder; pdftotext). Then every file of every
folder of WORK (except the shares) is searched for:
- the seed, the BIP32 master key and each user private key: raw bytes, hex (either case),
  base64 (each of the three alignments inside a longer base64 text);
- each PIN and PUK as a whole number (not inside a longer run of digits); the mailer's PIN
  letter PDFs are the one place allowed to hold them (the paper letters);
- any unencrypted PEM private key (every party's keys live in its PKCS#11 token; the
  provider's root CA key is an ENCRYPTED PRIVATE KEY).

Prints one line per party folder and one line per finding; exit code 0 when nothing was
found, 1 when something was (or when the secrets could not be found: a check with nothing to
look for is no check), 2 on usage errors.
"""

from __future__ import annotations

import argparse
import base64
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sealcard.crypto.bip32 import ExtendedPrivateKey
from sealcard.crypto.secret_sharing import SecretSharingError, combine_shares

LETTER_PDF_GLOB = "pin-letters-*.pdf"
_PEM_PRIVATE = re.compile(rb"-----BEGIN (?:RSA |EC |DSA |OPENSSH )?PRIVATE KEY-----")
_PIN_LINE = re.compile(r"^\s*(PIN|PUK):\s*([0-9]{4,12})\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Secret:
    """A value no party folder may hold, the forms it is searched in, and what it is."""

    what: str
    patterns: tuple[bytes, ...]


def encodings(value: bytes) -> tuple[bytes, ...]:
    """Raw, hex in both cases, and base64 at each of the three alignments a value can have
    inside a longer base64 text (the characters that do not depend on its neighbours)."""
    forms = [value, value.hex().encode(), value.hex().upper().encode()]
    for offset in range(3):
        encoded = base64.b64encode(bytes(offset) + value + bytes(2))
        start = (offset * 4 + 2) // 3
        stop = ((offset + len(value)) * 4) // 3
        forms.append(encoded[start:stop])
    return tuple(forms)


def key_secrets(seed: bytes, base: str, indexes: int) -> tuple[list[Secret], list[bytes]]:
    """The seed, the master key and the user keys; and the user public keys (compressed)."""
    master = ExtendedPrivateKey.from_seed(seed)
    secrets = [
        Secret("the issuer HSM seed", encodings(seed)),
        Secret("the BIP32 master key", encodings(master.private_key)),
    ]
    base_key = master.derive(base)
    publics = []
    for index in range(indexes):
        user = base_key.child(index)
        secrets.append(Secret(f"user private key {base}/{index}", encodings(user.private_key)))
        publics.append(user.public_key)
    return secrets, publics


def letters_text(pdf: Path) -> str:
    run = subprocess.run(  # noqa: S603 - a fixed program on our own file
        ["pdftotext", "-layout", str(pdf), "-"],  # noqa: S607 - from poppler-utils on PATH
        capture_output=True,
        text=True,
        check=True,
    )
    return run.stdout


def pins_and_puks(letter_pdfs: list[Path]) -> list[tuple[str, str]]:
    """(what, digits) of every PIN and PUK printed in the letters."""
    found = []
    for pdf in letter_pdfs:
        for kind, digits in _PIN_LINE.findall(letters_text(pdf)):
            found.append((f"a {kind} (from {pdf.name})", digits))
    return found


def recover_seed(shares_dir: Path) -> bytes | None:
    """The seed from the fewest shares (in file order) that combine."""
    shares = [p.read_text() for p in sorted(shares_dir.glob("*.txt"))]
    for count in range(2, len(shares) + 1):
        try:
            return combine_shares(shares[:count])
        except SecretSharingError:
            continue
    return None


def kinds(paths: list[Path]) -> str:
    """What a folder holds, by kind of file."""
    names = {".p7m": "sealed files", ".pem": "certificates", ".pdf": "PDFs", ".db": "databases"}
    counts: dict[str, int] = {}
    for path in paths:
        label = names.get(path.suffix, "other")
        if "hsm" in path.parts or "secrets" in path.parts:
            label = "token files"
        counts[label] = counts.get(label, 0) + 1
    return ", ".join(f"{label} {n}" for label, n in sorted(counts.items()))


def files(folder: Path) -> Iterator[Path]:
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            yield path


@dataclass
class Finding:
    path: Path
    what: str


def scan(
    folder: Path,
    secrets: list[Secret],
    digits: list[tuple[str, str]],
    allowed_pin_files: set[Path],
) -> tuple[list[Path], list[Finding]]:
    """(the files scanned, findings) for one party folder."""
    numbers = {value: what for what, value in digits}
    number_re = (
        re.compile(rb"(?<![0-9])(" + b"|".join(v.encode() for v in numbers) + rb")(?![0-9])")
        if numbers
        else None
    )
    scanned = list(files(folder))
    findings: list[Finding] = []
    for path in scanned:
        data = path.read_bytes()
        for secret in secrets:
            if any(pattern in data for pattern in secret.patterns):
                findings.append(Finding(path, secret.what))
        if _PEM_PRIVATE.search(data):
            findings.append(Finding(path, "an unencrypted PEM private key"))
        if number_re is not None and path not in allowed_pin_files:
            for match in number_re.finditer(data):
                findings.append(Finding(path, numbers[match.group(1).decode()]))
                break
    return scanned, findings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("work", type=Path, help="the folder holding one folder per party")
    parser.add_argument("--shares", type=Path, required=True, help="the custodians' shares")
    parser.add_argument("--derivation-base", required=True, help="e.g. m/44'/0'/0'/0")
    parser.add_argument("--indexes", type=int, required=True, help="derivation indexes used")
    parser.add_argument(
        "--expect-pubkey",
        action="append",
        default=[],
        metavar="HEX",
        help="a user public key read from a card (compressed hex); must be among the derived",
    )
    parser.add_argument("--letters-party", default="mailer", help="the folder of the mailer")
    args = parser.parse_args(argv)

    seed = recover_seed(args.shares)
    if seed is None:
        print(f"leak check: the shares in {args.shares} do not give the seed", file=sys.stderr)
        return 1
    secrets, publics = key_secrets(seed, args.derivation_base, args.indexes)
    for expected in args.expect_pubkey:
        if bytes.fromhex(expected) not in publics:
            print(
                f"leak check: public key {expected} is none of the {args.indexes} derived: these"
                " are not the keys the cards hold",
                file=sys.stderr,
            )
            return 1
    mailer_dir = args.work / args.letters_party
    letter_pdfs = sorted(mailer_dir.rglob(LETTER_PDF_GLOB))
    digits = pins_and_puks(letter_pdfs)
    if not digits:
        print(f"leak check: no PIN letter found under {mailer_dir}", file=sys.stderr)
        return 1
    shares_dir = args.shares.resolve()
    parties = [p for p in sorted(args.work.iterdir()) if p.is_dir() and p.resolve() != shares_dir]
    pins = sum(1 for what, _ in digits if what.startswith("a PIN"))
    print(
        f"leak check of {args.work}: the seed, the master key, {args.indexes} user private"
        f" key(s), {pins} PIN(s) and {len(digits) - pins} PUK(s), unencrypted PEM private keys"
    )
    findings: list[Finding] = []
    for party in parties:
        allowed = set(letter_pdfs) if party == mailer_dir else set()
        scanned, found = scan(party, secrets, digits, allowed)
        findings += found
        note = f"; PIN and PUK in its {len(allowed)} letter PDF(s) only" if allowed else ""
        print(f"  {party.name:10} {'LEAK ' if found else 'clean'} {kinds(scanned)}{note}")
    for finding in findings:
        print(f"LEAK {finding.path.relative_to(args.work)}: {finding.what}")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
