#!/usr/bin/env python3
"""Search every party folder of a chain run for secrets that party must not hold.

    python3 tools/leak_check.py WORK --shares DIR --derivation-base PATH --indexes N
        [--expect-pubkey HEX ...] [--letters-party mailer] [--allow-clear-key PATH ...]

The secrets are found, not guessed (`demo_secrets`): the issuer HSM's seed comes back from the
custodians' SLIP-39 shares (--shares, at least the threshold), the BIP32 master key, the
derivation base key and every user private key are derived from it (DERIVATION-BASE/0 ..
/N-1; --expect-pubkey checks that these are the keys the cards hold, so the search is for the
real ones), every PIN and PUK is read off the mailer's PIN letters (the PDFs in the
--letters-party folder; pdftotext), and every token PIN from the `secrets/` folders.

The search itself is tools/secret_scan.py's (suite 7 of docs/assurance.md: raw, hex,
base64 and base64url at every alignment and across PEM line breaks, UTF-16; a PIN only as a
whole number), over every file of every folder of WORK but the shares, and over the text of
every PDF (what a person reads there is in no byte of the file). Each secret may sit in
its container only: a PIN or PUK in the mailer's letter PDFs (the paper letters), a token
PIN in its own file, a share in the shares' folder. Any unencrypted PEM private key is a
finding too (every party's keys live in its PKCS#11 token; the provider's root CA key is an
ENCRYPTED PRIVATE KEY), but for one a service must read from disk (--allow-clear-key: the
issuer API's TLS key), and that one only with mode 0600.

Prints one line per party folder and one line per finding; exit code 0 when nothing was
found, 1 when something was (or when the secrets could not be found: a check with nothing to
look for is no check), 2 on usage errors.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sealcard.crypto.bip32 import ExtendedPrivateKey
from sealcard.crypto.secret_sharing import SecretSharingError, combine_shares

sys.path.insert(0, str(Path(__file__).resolve().parent))
import secret_scan  # tools/ is no package: the scanner sits next to this file

LETTER_PDF_GLOB = "pin-letters-*.pdf"
SECRETS_FOLDER = "secrets"
_PEM_PRIVATE = re.compile(rb"-----BEGIN (?:RSA |EC |DSA |OPENSSH )?PRIVATE KEY-----")
_PIN_LINE = re.compile(r"^\s*(PIN|PUK):\s*([0-9]{4,12})\s*$", re.MULTILINE)


class NothingToLookFor(Exception):  # noqa: N818 - a reason, printed as it is
    """The secrets could not be found: the check would prove nothing."""


@dataclass
class DemoSecrets:
    """What a chain run must keep in its containers, and where the search found it."""

    secrets: list[secret_scan.Secret]
    letter_pdfs: list[Path]
    pins: int
    puks: int
    indexes: int
    public_keys: list[bytes] = field(default_factory=list)


def recover_seed(shares_dir: Path) -> bytes | None:
    """The seed from the fewest shares (in file order) that combine."""
    shares = [p.read_text().strip() for p in sorted(shares_dir.glob("*.txt"))]
    for count in range(2, len(shares) + 1):
        try:
            return combine_shares(shares[:count])
        except SecretSharingError:
            continue
    return None


def pdf_text(pdf: Path) -> str:
    """What a person reads in a PDF (its pages keep their text compressed, in glyph codes)."""
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
        for kind, digits in _PIN_LINE.findall(pdf_text(pdf)):
            found.append((f"a {kind} (from {pdf.name})", digits))
    return found


def demo_secrets(
    work: Path,
    shares_dir: Path,
    base: str,
    indexes: int,
    *,
    expect_pubkeys: Sequence[bytes] = (),
    letters_party: str = "mailer",
    seed: bytes | None = None,
) -> DemoSecrets:
    """Every secret of a chain run in WORK, each with the containers allowed to hold it.

    `seed` may be given by a caller that knows it (a test that restored it from its own
    shares); it is then also checked against the custodians' shares.
    """
    recovered = recover_seed(shares_dir)
    if recovered is None:
        raise NothingToLookFor(f"the shares in {shares_dir} do not give the seed")
    if seed is not None and seed != recovered:
        raise NothingToLookFor(f"the shares in {shares_dir} give another seed than the known one")
    master = ExtendedPrivateKey.from_seed(recovered)
    base_key = master.derive(base)
    shares = sorted(shares_dir.resolve().glob("*.txt"))
    found = [
        secret_scan.Secret("the issuer HSM seed", recovered),
        secret_scan.Secret("the BIP32 master key", master.private_key),
        secret_scan.Secret("the BIP32 master chain code", master.chain_code),
        secret_scan.Secret(f"the derivation base key {base}", base_key.private_key),
        *(
            secret_scan.Secret(f"seed share {p.name}", p.read_text().strip().encode(), (p,))
            for p in shares
        ),
    ]
    publics = []
    for index in range(indexes):
        user = base_key.child(index)
        found.append(secret_scan.Secret(f"user private key {base}/{index}", user.private_key))
        publics.append(user.public_key)
    for expected in expect_pubkeys:
        if expected not in publics:
            raise NothingToLookFor(
                f"public key {expected.hex()} is none of the {indexes} derived: these are not"
                " the keys the cards hold"
            )
    letter_pdfs = sorted(p.resolve() for p in (work / letters_party).rglob(LETTER_PDF_GLOB))
    digits = pins_and_puks(letter_pdfs)
    if not digits:
        raise NothingToLookFor(f"no PIN letter found under {work / letters_party}")
    letters = tuple(letter_pdfs)
    found += [secret_scan.Secret(what, value.encode(), letters) for what, value in digits]
    for path in sorted(work.rglob(f"{SECRETS_FOLDER}/*")):
        if path.is_file():
            name = f"the token PIN {path.relative_to(work)}"
            found.append(secret_scan.Secret(name, path.read_bytes().strip(), (path.resolve(),)))
    pins = sum(1 for what, _ in digits if what.startswith("a PIN"))
    return DemoSecrets(found, letter_pdfs, pins, len(digits) - pins, indexes, publics)


def kinds(paths: list[Path]) -> str:
    """What a folder holds, by kind of file."""
    names = {".p7m": "sealed files", ".pem": "certificates", ".pdf": "PDFs", ".db": "databases"}
    counts: dict[str, int] = {}
    for path in paths:
        label = names.get(path.suffix, "other")
        if "hsm" in path.parts or SECRETS_FOLDER in path.parts:
            label = "token files"
        counts[label] = counts.get(label, 0) + 1
    return ", ".join(f"{label} {n}" for label, n in sorted(counts.items()))


def files(folder: Path) -> list[Path]:
    return [p for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()]


def scan_pdf_text(scanner: secret_scan.Scanner, paths: list[Path]) -> list[secret_scan.Finding]:
    """The text of every PDF searched too: a PIN printed on the wrong sheet is in no byte of
    the file (compressed page streams, font glyph codes), only in what a person reads."""
    found = []
    for path in paths:
        if path.suffix == ".pdf":
            text = pdf_text(path).encode()
            for f in scanner.scan_bytes(text, str(path), path.resolve()):
                found.append(secret_scan.Finding(f.secret, f"{f.encoding}, printed", f.where))
    return found


def clear_private_keys(paths: list[Path], allowed: set[Path]) -> list[secret_scan.Finding]:
    """Unencrypted PEM private keys; one that must be on disk (`allowed`) only with mode 0600."""
    found = []
    for path in paths:
        if not _PEM_PRIVATE.search(path.read_bytes()):
            continue
        if path.resolve() not in allowed:
            found.append(secret_scan.Finding("an unencrypted PEM private key", "pem", str(path)))
        elif path.stat().st_mode & 0o077:
            what = "a private key readable by others than its owner (mode not 0600)"
            found.append(secret_scan.Finding(what, "pem", str(path)))
    return found


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
    parser.add_argument(
        "--allow-clear-key",
        action="append",
        default=[],
        metavar="PATH",
        help="a clear private key that must be on disk, under WORK (the issuer API's TLS key:"
        " its service reads it); allowed with mode 0600 only",
    )
    args = parser.parse_args(argv)

    try:
        found = demo_secrets(
            args.work,
            args.shares,
            args.derivation_base,
            args.indexes,
            expect_pubkeys=[bytes.fromhex(h) for h in args.expect_pubkey],
            letters_party=args.letters_party,
        )
    except NothingToLookFor as exc:
        print(f"leak check: {exc}", file=sys.stderr)
        return 1
    shares_dir = args.shares.resolve()
    parties = [p for p in sorted(args.work.iterdir()) if p.is_dir() and p.resolve() != shares_dir]
    print(
        f"leak check of {args.work}: the seed, the master key, {found.indexes} user private"
        f" key(s), {found.pins} PIN(s) and {found.puks} PUK(s), the token PINs, unencrypted PEM"
        " private keys"
    )
    scanner = secret_scan.Scanner(found.secrets)
    allowed_keys = {(args.work / p).resolve() for p in args.allow_clear_key}
    findings: list[secret_scan.Finding] = []
    for party in parties:
        scanned = files(party)
        here = scanner.scan_roots([party]) + scan_pdf_text(scanner, scanned)
        here += clear_private_keys(scanned, allowed_keys)
        findings += here
        letters = [p for p in found.letter_pdfs if party.resolve() in p.parents]
        note = f"; PIN and PUK in its {len(letters)} letter PDF(s) only" if letters else ""
        print(f"  {party.name:10} {'LEAK ' if here else 'clean'} {kinds(scanned)}{note}")
    root = args.work.resolve()
    for finding in findings:
        where = Path(finding.where).resolve()
        shown = where.relative_to(root) if root in where.parents else where
        print(f"LEAK {shown}: {finding.secret}")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
