"""--reader/-r as a person types it: the name, a unique part of it, or its number."""

from __future__ import annotations

import pytest

from sealcard.cli.common import resolve_reader
from sealcard.errors import ConfigurationError
from sealcard.transport.errors import ReaderNotFoundError

READERS = ["Sealcard Sim 0 00 00", "Sealcard Sim 0 00 01", "Yubico YubiKey CCID 00 00"]


@pytest.mark.parametrize(
    ("wanted", "found"),
    [
        ("Sealcard Sim 0 00 01", "Sealcard Sim 0 00 01"),  # exact
        ("0", "Sealcard Sim 0 00 00"),  # number, as `sealcard readers` shows it
        ("2", "Yubico YubiKey CCID 00 00"),
        ("yubikey", "Yubico YubiKey CCID 00 00"),  # a part, any case
        ("00 01", "Sealcard Sim 0 00 01"),
    ],
)
def test_a_reader_by_name_number_or_part(wanted: str, found: str) -> None:
    assert resolve_reader(wanted, READERS) == found


def test_no_match_lists_the_readers() -> None:
    with pytest.raises(ReaderNotFoundError) as missing:
        resolve_reader("Gemalto", READERS)
    assert str(missing.value) == (
        "no reader matches 'Gemalto'; the readers are 0: Sealcard Sim 0 00 00; "
        "1: Sealcard Sim 0 00 01; 2: Yubico YubiKey CCID 00 00"
    )
    with pytest.raises(ReaderNotFoundError, match="no reader is attached"):
        resolve_reader("0", [])


def test_a_part_of_several_names_is_refused_with_the_list() -> None:
    with pytest.raises(ConfigurationError, match=r"'sim' matches 2 readers.*0: Sealcard Sim"):
        resolve_reader("sim", READERS)
