"""SLIP-39 seed backup: any m of n shares restore the seed, fewer do not."""

from __future__ import annotations

import itertools
import os

import pytest

from sealcard.crypto.secret_sharing import SecretSharingError, combine_shares, split_seed


@pytest.mark.parametrize("seed_length", [16, 32, 64])
def test_any_threshold_subset_restores(seed_length: int) -> None:
    seed = os.urandom(seed_length)
    shares = split_seed(seed, 3, 5)
    assert len(shares) == 5 and len(set(shares)) == 5
    for subset in itertools.combinations(shares, 3):
        assert combine_shares(list(subset)) == seed


def test_fewer_than_threshold_fail() -> None:
    shares = split_seed(os.urandom(32), 3, 5)
    for subset in itertools.combinations(shares, 2):
        with pytest.raises(SecretSharingError):
            combine_shares(list(subset))


def test_shares_of_different_splits_do_not_mix() -> None:
    a = split_seed(os.urandom(32), 2, 3)
    b = split_seed(os.urandom(32), 2, 3)
    with pytest.raises(SecretSharingError):
        combine_shares([a[0], b[1]])


def test_mistyped_share_fails_checksum() -> None:
    shares = split_seed(os.urandom(32), 2, 3)
    words = shares[0].split()
    words[5] = "academic" if words[5] != "academic" else "acid"
    with pytest.raises(SecretSharingError):
        combine_shares([" ".join(words), shares[1]])


def test_passphrase_changes_the_result() -> None:
    seed = os.urandom(32)
    shares = split_seed(seed, 2, 3, passphrase=b"correct horse")
    assert combine_shares(shares[:2], passphrase=b"correct horse") == seed
    assert combine_shares(shares[:2], passphrase=b"wrong") != seed


def test_extra_whitespace_tolerated() -> None:
    seed = os.urandom(32)
    shares = split_seed(seed, 2, 2)
    assert combine_shares(["  " + shares[0].replace(" ", "   ") + "\n", shares[1]]) == seed


@pytest.mark.parametrize(("threshold", "count"), [(0, 3), (4, 3), (1, 3), (2, 17)])
def test_bad_parameters(threshold: int, count: int) -> None:
    with pytest.raises(SecretSharingError):
        split_seed(os.urandom(32), threshold, count)


def test_bad_seed_length() -> None:
    with pytest.raises(SecretSharingError):
        split_seed(os.urandom(15), 2, 3)
    with pytest.raises(SecretSharingError):
        combine_shares([])
