"""The mailing system: open a PIN-letter file (from the issuer HSM, FIG. 5, or from the
bureau, FIG. 2), check every letter's signature, decrypt it with the letter key in the
mailer's token, render the printable letters (PDF, one a page, name and address in the
envelope window) and write the mail confirmation for the issuer.

Nothing is put in place before the whole file proved authentic (tag and sender's signature):
the PDF is written under a temporary name and renamed after. A letter that cannot be opened
(wrong signature, another mailer's key, a serial that does not match its row) is not
printed and goes back to the issuer as `not_mailed` with its reason; the others go out.
The PDF is the one place where PIN and PUK are in clear, as on the paper they are printed on.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives.asymmetric import ec

from sealcard.errors import ConfigurationError, SealcardError
from sealcard.files import prepare_dir
from sealcard.formats.party_csv import (
    FileHeader,
    FileKind,
    Role,
    parse_serial,
    serial_hex,
    unb64,
    utc_now,
)
from sealcard.formats.pdf_sheets import LetterPage, pin_letters
from sealcard.hsm.party_keys import TokenLetterKey
from sealcard.hsm.pin_letter import (
    PinLetterData,
    open_envelope_with,
    verify_signed,
)
from sealcard.parties.exchange import (
    Peer,
    StagedFile,
    write_party_file,
)
from sealcard.parties.party_home import OpenParty

MAILED: Final = "mailed"
NOT_MAILED: Final = "not_mailed"


@dataclass
class MailReport:
    """What one PIN-letter file became."""

    batch: str
    sender: str
    letters_pdf: Path
    confirmation: Path
    file_id: str
    printed: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)  # (serial, reason)


def letter_signer_key(sender: Peer) -> ec.EllipticCurvePublicKey:
    """Whose key signs the letters themselves: the issuer HSM's (its certificate comes in the
    issuer's certificate file) or, in FIG. 2, the bureau's party key."""
    if sender.role is Role.ISSUER:
        certificate = sender.bundle.extra
        if certificate is None:
            raise ConfigurationError(f"issuer {sender.name}'s certificate file lacks its HSM's")
    else:
        certificate = sender.certificate
    key = certificate.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ConfigurationError(f"{sender.party} signs letters with a key that is not EC")
    return key


def open_letter(
    row: list[str], signer: ec.EllipticCurvePublicKey, letter_key: TokenLetterKey
) -> PinLetterData:
    """One row's letter: signature first, then decryption in the token, then the serial."""
    serial = parse_serial(row[0])
    letter = unb64(row[1], f"card {row[0]}: letter")
    content = verify_signed(letter, signer)
    data = PinLetterData.from_json(open_envelope_with(content, letter_key.decrypt_oaep_sha256))
    if data.serial != serial:
        raise SealcardError(f"the letter inside is for card {serial_hex(data.serial)}")
    return data


def mail_letters(
    party: OpenParty,
    path: Path,
    out_dir: Path,
    *,
    issuer_name: str | None = None,
) -> MailReport:
    """Open a PIN-letter file, write the letters' PDF and the confirmation for the issuer."""
    prepare_dir(out_dir, what="the output folder", fix="give another --out-dir", mode=0o750)
    issuer = party.peer(Role.ISSUER, issuer_name)
    letter_key = TokenLetterKey(party.token)
    outcomes: list[tuple[str, str, str]] = []  # (serial, outcome, reason)

    with StagedFile(out_dir) as pdf:

        def consume(header: FileHeader, rows: Iterator[list[str]]) -> int:
            sender = party.peers.find(header.sender)
            assert sender is not None  # read_party_file checked the sender
            signer = letter_signer_key(sender)

            def pages() -> Iterator[LetterPage]:
                for row in rows:
                    try:
                        data = open_letter(row, signer, letter_key)
                    except SealcardError as exc:
                        outcomes.append((row[0].upper(), NOT_MAILED, str(exc)[:200]))
                        continue
                    outcomes.append((serial_hex(data.serial), MAILED, ""))
                    yield LetterPage(
                        serial_hex(data.serial),
                        data.name,
                        data.address,
                        data.pin.decode("ascii"),
                        data.puk.decode("ascii"),
                    )

            return pin_letters(pdf.handle, str(party.home.party), pages())

        received, printed = party.read_file(path, FileKind.PIN_LETTERS, consume)
        header = received.header
        pdf_path = out_dir / f"pin-letters-{header.batch}-{header.sender.role.value}.pdf"
        pdf.commit(pdf_path)
    at = utc_now()
    confirmation = out_dir / f"mail-confirmation-{header.batch}-{header.sender.role.value}.p7m"
    write_party_file(
        confirmation,
        party.identity,
        [issuer],
        FileKind.MAIL_CONFIRMATION,
        header.batch,
        len(outcomes),
        ([serial, outcome, reason, at] for serial, outcome, reason in outcomes),
    )
    party.journal.record(header, pdf=str(pdf_path), confirmation=str(confirmation))
    return MailReport(
        header.batch,
        str(header.sender),
        pdf_path,
        confirmation,
        header.file_id,
        printed,
        [(s, r) for s, o, r in outcomes if o == NOT_MAILED],
    )
