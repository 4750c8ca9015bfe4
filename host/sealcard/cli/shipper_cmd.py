"""`sealcard shipper`: the shipping system (the bureau's shipping data)."""

from __future__ import annotations

from pathlib import Path

import click

from sealcard.cli.common import emit, json_option
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


@click.group(name="shipper")
def shipper() -> None:
    """Shipping system: the bureau's shipping data in, a manifest and a confirmation out.

    \b
    Once:       sealcard shipper keys init --name parcel-co --out shipper.pem
                sealcard shipper party add --role bureau --cert bureau.pem
                sealcard shipper party add --role issuer --cert issuer.pem
    Per batch:  sealcard shipper manifest --file shipping-B1.p7m
    """


shipper.add_command(make_keys_group(Role.SHIPPER, (Role.ISSUER, Role.BUREAU)))
shipper.add_command(make_party_group(Role.SHIPPER, (Role.ISSUER, Role.BUREAU)))


@shipper.command(name="manifest")
@home_option_for(Role.SHIPPER)
@party_file_option("The shipping data of one batch, from the bureau (`bureau personalize`).")
@to_issuer_option("The registered issuer the confirmation goes to (default: the only one).")
@party_out_dir_option()
@json_option()
def manifest(
    home: Path | None,
    party_file: Path,
    issuer_name: str | None,
    out_dir: Path | None,
    as_json: bool,
) -> None:
    """Turn the bureau's shipping data into a shipping manifest and a confirmation.

    Checks the file (sealed to this shipper, signed by the registered bureau, not taken in
    before). Writes shipping-manifest-BATCH.pdf (one parcel a block: tracking number, card
    serial, recipient) and ship-confirmation-BATCH.p7m for the issuer (serial and tracking
    number of each card; the orders move to shipped).

    \b
    Example:
      sealcard shipper manifest --file shipping-B1.p7m --out-dir dispatch/
    """
    from sealcard.parties.party_home import load_home, open_party
    from sealcard.parties.shipper import ship_batch

    target = out_dir or load_home(Role.SHIPPER, home).root / "outbox"
    with output_folder(target), open_party(Role.SHIPPER, home) as party:
        report = ship_batch(party, party_file, target, issuer_name=issuer_name)
    emit(
        as_json,
        {
            "batch": report.batch,
            "sender": report.sender,
            "file_id": report.file_id,
            "parcels": report.parcels,
            "manifest": str(report.manifest),
            "confirmation": str(report.confirmation),
        },
        f"batch {report.batch} from {report.sender}: {report.parcels} parcel(s)\n"
        f"  {report.manifest}\n  {report.confirmation} (for the issuer)",
    )
