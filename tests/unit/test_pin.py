"""PIN/PUK generation: digit counts, only digits, unbiased rejection sampling."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable

import pytest

from sealcard.crypto.pin import PinError, generate_pin, generate_puk, secrets_equal


def test_default_lengths_and_digits() -> None:
    pin, puk = generate_pin(os.urandom), generate_puk(os.urandom)
    assert len(pin) == 6 and pin.isdigit()
    assert len(puk) == 8 and puk.isdigit()


@pytest.mark.parametrize("digits", [3, 13])
def test_pin_length_bounds(digits: int) -> None:
    with pytest.raises(PinError):
        generate_pin(os.urandom, digits)


@pytest.mark.parametrize("digits", [7, 13])
def test_puk_length_bounds(digits: int) -> None:
    with pytest.raises(PinError):
        generate_puk(os.urandom, digits)


def _scripted(values: list[int]) -> Callable[[int], bytes]:
    stream = iter(values)

    def randbytes(n: int) -> bytes:
        return bytes(next(stream) for _ in range(n))

    return randbytes


def test_bytes_250_and_above_are_rejected() -> None:
    """Bytes 250..255 would favour digits 0..5: they must be skipped, not reduced."""
    source = _scripted([250, 251, 252, 253, 254, 255, 9, 18, 27, 36] + [0] * 64)
    assert generate_pin(source, 4) == b"9876"


def test_distribution_is_flat() -> None:
    counts = Counter(generate_pin(os.urandom, 12) for _ in range(2000))
    digits = Counter(d for pin in counts.elements() for d in pin)
    expected = 2000 * 12 / 10
    for digit in b"0123456789":
        assert abs(digits[digit] - expected) < expected * 0.12


def test_empty_rng_is_an_error() -> None:
    with pytest.raises(PinError):
        generate_pin(lambda n: b"", 6)


def test_secrets_equal() -> None:
    assert secrets_equal(b"123456", b"123456")
    assert not secrets_equal(b"123456", b"123457")
