"""Adding packs of initialized cards to the issuer's stock.

The pack file between provider and issuer (CSV in CMS, signed and encrypted) belongs to the
file-format issue; this takes the card data once it is parsed and its certificates verified.
"""

from __future__ import annotations

from collections.abc import Sequence

from sealcard.issuer.records import CardInit, Records


def import_pack(records: Records, pack_serial: str, cards: Sequence[CardInit]) -> int:
    """Add a pack's verified cards to the stock (first in, first out); returns the count.

    Refuses (`DuplicateRecordError`, nothing added) a pack serial or card serial seen before.
    """
    return records.import_pack(pack_serial, cards, source="import")
