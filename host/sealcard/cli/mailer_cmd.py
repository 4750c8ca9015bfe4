"""`sealcard mailer`: the mailing system (PIN letters from the issuer HSM or the bureau)."""

from __future__ import annotations

from pathlib import Path

import click

from sealcard.cli.common import emit, json_option
from sealcard.cli.outcome import CliFail
from sealcard.cli.party_cmd import (
    home_option_for,
    make_keys_group,
    make_party_group,
    output_folder,
    party_file_option,
    party_out_dir_option,
    to_issuer_option,
)
from sealcard.formats.roles import Role


@click.group(name="mailer")
def mailer() -> None:
    """Mailing system: open the PIN letters, print them, confirm to the issuer.

    The mailer's token holds two keys: the party key (signs and opens sealed files) and the
    letter key (RSA-3072) that every PIN letter is encrypted to. Its certificate file carries
    both; the issuer hands the letter key to its HSM at `issuer party add --role mailer`.

    \b
    Once:       sealcard mailer keys init --name post --out mailer.pem
                sealcard mailer party add --role issuer --cert issuer.pem
                sealcard mailer party add --role bureau --cert bureau.pem   (FIG. 2)
    Per file:   sealcard mailer letters --file pin-letters-B1-post.p7m
    """


mailer.add_command(make_keys_group(Role.MAILER, (Role.ISSUER, Role.BUREAU)))
mailer.add_command(make_party_group(Role.MAILER, (Role.ISSUER, Role.BUREAU)))


@mailer.command(name="letters")
@home_option_for(Role.MAILER)
@party_file_option("A PIN-letter file, from the issuer (`issuer export`) or the bureau (FIG. 2).")
@to_issuer_option("The registered issuer the confirmation goes to (default: the only one).")
@party_out_dir_option()
@json_option()
def letters(
    home: Path | None,
    party_file: Path,
    issuer_name: str | None,
    out_dir: Path | None,
    as_json: bool,
) -> None:
    """Open a PIN-letter file and render the letters to print, one a page.

    Checks the file (sealed to this mailer, signed by the registered issuer or bureau, not
    taken in before), then each letter: its signature (the issuer HSM's, or the bureau's in
    FIG. 2), decryption with the letter key in the token, the serial. Writes
    pin-letters-BATCH-SENDER.pdf (mode 0600: PIN and PUK in clear, for the printer only) and
    mail-confirmation-BATCH-SENDER.p7m for the issuer: each card mailed, or not_mailed with
    the reason. Exit code 1 when a letter could not be opened (the others are printed).

    \b
    Example:
      sealcard mailer letters --file pin-letters-B1-post.p7m --out-dir print/
    """
    from sealcard.parties.mailer import mail_letters
    from sealcard.parties.party_home import load_home, open_party

    target = out_dir or load_home(Role.MAILER, home).root / "outbox"
    with output_folder(target), open_party(Role.MAILER, home) as party:
        report = mail_letters(party, party_file, target, issuer_name=issuer_name)
    payload = {
        "batch": report.batch,
        "sender": report.sender,
        "file_id": report.file_id,
        "printed": report.printed,
        "letters_pdf": str(report.letters_pdf),
        "confirmation": str(report.confirmation),
        "not_mailed": [{"serial": s, "reason": r} for s, r in report.refused],
    }
    lines = [
        f"batch {report.batch} from {report.sender}: {report.printed} letter(s) to print",
        f"  {report.letters_pdf}",
        f"  {report.confirmation} (for the issuer)",
    ]
    lines += [f"  not mailed: card {s}: {r}" for s, r in report.refused]
    if report.refused:
        if not as_json:
            for serial, reason in report.refused:
                click.echo(f"not mailed: card {serial}: {reason}", err=True)
        raise CliFail(
            f"batch {report.batch}: {len(report.refused)} letter(s) could not be opened (each"
            " reason is above and in the confirmation, so the issuer learns which);"
            f" {report.printed} letter(s) to print in {report.letters_pdf}",
            kind="LettersRefused",
            payload=payload,
        )
    emit(as_json, payload, "\n".join(lines))
