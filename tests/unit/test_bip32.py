"""BIP32 against the BIP's own test vectors 1-5 (typed in from bip-0032.mediawiki)."""

from __future__ import annotations

import hashlib
import hmac

import coincurve
import pytest

from sealcard.crypto.bip32 import (
    CURVE_ORDER,
    HARDENED,
    Bip32Error,
    ExtendedPrivateKey,
    ExtendedPublicKey,
    b58check_decode,
    b58check_encode,
    format_path,
    parse_extended_key,
    parse_path,
)

SEED_1 = "000102030405060708090a0b0c0d0e0f"
SEED_2 = (
    "fffcf9f6f3f0edeae7e4e1dedbd8d5d2cfccc9c6c3c0bdbab7b4b1aeaba8a5a2"
    "9f9c999693908d8a8784817e7b7875726f6c696663605d5a5754514e4b484542"
)
SEED_3 = (
    "4b381541583be4423346c643850da4b320e46a87ae3d2a4e6da11eba819cd4ac"
    "ba45d239319ac14f863b8d5ab5a0d0c64d2e8a1e7d1457df2e5a3c51c73235be"
)
SEED_4 = "3ddd5602285899a946114506157c7997e5444528f3003f6134712147db19b678"

# (seed, path, ext pub, ext prv)
VALID_VECTORS: list[tuple[str, str, str, str]] = [
    # Test vector 1
    (
        SEED_1,
        "m",
        "xpub661MyMwAqRbcFtXgS5sYJABqqG9YLmC4Q1Rdap9gSE8NqtwybGhePY2gZ29ESFjqJoCu1Rupje8YtGqsefD265TMg7usUDFdp6W1EGMcet8",
        "xprv9s21ZrQH143K3QTDL4LXw2F7HEK3wJUD2nW2nRk4stbPy6cq3jPPqjiChkVvvNKmPGJxWUtg6LnF5kejMRNNU3TGtRBeJgk33yuGBxrMPHi",
    ),
    (
        SEED_1,
        "m/0'",
        "xpub68Gmy5EdvgibQVfPdqkBBCHxA5htiqg55crXYuXoQRKfDBFA1WEjWgP6LHhwBZeNK1VTsfTFUHCdrfp1bgwQ9xv5ski8PX9rL2dZXvgGDnw",
        "xprv9uHRZZhk6KAJC1avXpDAp4MDc3sQKNxDiPvvkX8Br5ngLNv1TxvUxt4cV1rGL5hj6KCesnDYUhd7oWgT11eZG7XnxHrnYeSvkzY7d2bhkJ7",
    ),
    (
        SEED_1,
        "m/0'/1",
        "xpub6ASuArnXKPbfEwhqN6e3mwBcDTgzisQN1wXN9BJcM47sSikHjJf3UFHKkNAWbWMiGj7Wf5uMash7SyYq527Hqck2AxYysAA7xmALppuCkwQ",
        "xprv9wTYmMFdV23N2TdNG573QoEsfRrWKQgWeibmLntzniatZvR9BmLnvSxqu53Kw1UmYPxLgboyZQaXwTCg8MSY3H2EU4pWcQDnRnrVA1xe8fs",
    ),
    (
        SEED_1,
        "m/0'/1/2'",
        "xpub6D4BDPcP2GT577Vvch3R8wDkScZWzQzMMUm3PWbmWvVJrZwQY4VUNgqFJPMM3No2dFDFGTsxxpG5uJh7n7epu4trkrX7x7DogT5Uv6fcLW5",
        "xprv9z4pot5VBttmtdRTWfWQmoH1taj2axGVzFqSb8C9xaxKymcFzXBDptWmT7FwuEzG3ryjH4ktypQSAewRiNMjANTtpgP4mLTj34bhnZX7UiM",
    ),
    (
        SEED_1,
        "m/0'/1/2'/2",
        "xpub6FHa3pjLCk84BayeJxFW2SP4XRrFd1JYnxeLeU8EqN3vDfZmbqBqaGJAyiLjTAwm6ZLRQUMv1ZACTj37sR62cfN7fe5JnJ7dh8zL4fiyLHV",
        "xprvA2JDeKCSNNZky6uBCviVfJSKyQ1mDYahRjijr5idH2WwLsEd4Hsb2Tyh8RfQMuPh7f7RtyzTtdrbdqqsunu5Mm3wDvUAKRHSC34sJ7in334",
    ),
    (
        SEED_1,
        "m/0'/1/2'/2/1000000000",
        "xpub6H1LXWLaKsWFhvm6RVpEL9P4KfRZSW7abD2ttkWP3SSQvnyA8FSVqNTEcYFgJS2UaFcxupHiYkro49S8yGasTvXEYBVPamhGW6cFJodrTHy",
        "xprvA41z7zogVVwxVSgdKUHDy1SKmdb533PjDz7J6N6mV6uS3ze1ai8FHa8kmHScGpWmj4WggLyQjgPie1rFSruoUihUZREPSL39UNdE3BBDu76",
    ),
    # Test vector 2
    (
        SEED_2,
        "m",
        "xpub661MyMwAqRbcFW31YEwpkMuc5THy2PSt5bDMsktWQcFF8syAmRUapSCGu8ED9W6oDMSgv6Zz8idoc4a6mr8BDzTJY47LJhkJ8UB7WEGuduB",
        "xprv9s21ZrQH143K31xYSDQpPDxsXRTUcvj2iNHm5NUtrGiGG5e2DtALGdso3pGz6ssrdK4PFmM8NSpSBHNqPqm55Qn3LqFtT2emdEXVYsCzC2U",
    ),
    (
        SEED_2,
        "m/0",
        "xpub69H7F5d8KSRgmmdJg2KhpAK8SR3DjMwAdkxj3ZuxV27CprR9LgpeyGmXUbC6wb7ERfvrnKZjXoUmmDznezpbZb7ap6r1D3tgFxHmwMkQTPH",
        "xprv9vHkqa6EV4sPZHYqZznhT2NPtPCjKuDKGY38FBWLvgaDx45zo9WQRUT3dKYnjwih2yJD9mkrocEZXo1ex8G81dwSM1fwqWpWkeS3v86pgKt",
    ),
    (
        SEED_2,
        "m/0/2147483647'",
        "xpub6ASAVgeehLbnwdqV6UKMHVzgqAG8Gr6riv3Fxxpj8ksbH9ebxaEyBLZ85ySDhKiLDBrQSARLq1uNRts8RuJiHjaDMBU4Zn9h8LZNnBC5y4a",
        "xprv9wSp6B7kry3Vj9m1zSnLvN3xH8RdsPP1Mh7fAaR7aRLcQMKTR2vidYEeEg2mUCTAwCd6vnxVrcjfy2kRgVsFawNzmjuHc2YmYRmagcEPdU9",
    ),
    (
        SEED_2,
        "m/0/2147483647'/1",
        "xpub6DF8uhdarytz3FWdA8TvFSvvAh8dP3283MY7p2V4SeE2wyWmG5mg5EwVvmdMVCQcoNJxGoWaU9DCWh89LojfZ537wTfunKau47EL2dhHKon",
        "xprv9zFnWC6h2cLgpmSA46vutJzBcfJ8yaJGg8cX1e5StJh45BBciYTRXSd25UEPVuesF9yog62tGAQtHjXajPPdbRCHuWS6T8XA2ECKADdw4Ef",
    ),
    (
        SEED_2,
        "m/0/2147483647'/1/2147483646'",
        "xpub6ERApfZwUNrhLCkDtcHTcxd75RbzS1ed54G1LkBUHQVHQKqhMkhgbmJbZRkrgZw4koxb5JaHWkY4ALHY2grBGRjaDMzQLcgJvLJuZZvRcEL",
        "xprvA1RpRA33e1JQ7ifknakTFpgNXPmW2YvmhqLQYMmrj4xJXXWYpDPS3xz7iAxn8L39njGVyuoseXzU6rcxFLJ8HFsTjSyQbLYnMpCqE2VbFWc",
    ),
    (
        SEED_2,
        "m/0/2147483647'/1/2147483646'/2",
        "xpub6FnCn6nSzZAw5Tw7cgR9bi15UV96gLZhjDstkXXxvCLsUXBGXPdSnLFbdpq8p9HmGsApME5hQTZ3emM2rnY5agb9rXpVGyy3bdW6EEgAtqt",
        "xprvA2nrNbFZABcdryreWet9Ea4LvTJcGsqrMzxHx98MMrotbir7yrKCEXw7nadnHM8Dq38EGfSh6dqA9QWTyefMLEcBYJUuekgW4BYPJcr9E7j",
    ),
    # Test vector 3 (leading zeros kept)
    (
        SEED_3,
        "m",
        "xpub661MyMwAqRbcEZVB4dScxMAdx6d4nFc9nvyvH3v4gJL378CSRZiYmhRoP7mBy6gSPSCYk6SzXPTf3ND1cZAceL7SfJ1Z3GC8vBgp2epUt13",
        "xprv9s21ZrQH143K25QhxbucbDDuQ4naNntJRi4KUfWT7xo4EKsHt2QJDu7KXp1A3u7Bi1j8ph3EGsZ9Xvz9dGuVrtHHs7pXeTzjuxBrCmmhgC6",
    ),
    (
        SEED_3,
        "m/0'",
        "xpub68NZiKmJWnxxS6aaHmn81bvJeTESw724CRDs6HbuccFQN9Ku14VQrADWgqbhhTHBaohPX4CjNLf9fq9MYo6oDaPPLPxSb7gwQN3ih19Zm4Y",
        "xprv9uPDJpEQgRQfDcW7BkF7eTya6RPxXeJCqCJGHuCJ4GiRVLzkTXBAJMu2qaMWPrS7AANYqdq6vcBcBUdJCVVFceUvJFjaPdGZ2y9WACViL4L",
    ),
    # Test vector 4 (leading zeros kept)
    (
        SEED_4,
        "m",
        "xpub661MyMwAqRbcGczjuMoRm6dXaLDEhW1u34gKenbeYqAix21mdUKJyuyu5F1rzYGVxyL6tmgBUAEPrEz92mBXjByMRiJdba9wpnN37RLLAXa",
        "xprv9s21ZrQH143K48vGoLGRPxgo2JNkJ3J3fqkirQC2zVdk5Dgd5w14S7fRDyHH4dWNHUgkvsvNDCkvAwcSHNAQwhwgNMgZhLtQC63zxwhQmRv",
    ),
    (
        SEED_4,
        "m/0'",
        "xpub69AUMk3qDBi3uW1sXgjCmVjJ2G6WQoYSnNHyzkmdCHEhSZ4tBok37xfFEqHd2AddP56Tqp4o56AePAgCjYdvpW2PU2jbUPFKsav5ut6Ch1m",
        "xprv9vB7xEWwNp9kh1wQRfCCQMnZUEG21LpbR9NPCNN1dwhiZkjjeGRnaALmPXCX7SgjFTiCTT6bXes17boXtjq3xLpcDjzEuGLQBM5ohqkao9G",
    ),
    (
        SEED_4,
        "m/0'/1'",
        "xpub6BJA1jSqiukeaesWfxe6sNK9CCGaujFFSJLomWHprUL9DePQ4JDkM5d88n49sMGJxrhpjazuXYWdMf17C9T5XnxkopaeS7jGk1GyyVziaMt",
        "xprv9xJocDuwtYCMNAo3Zw76WENQeAS6WGXQ55RCy7tDJ8oALr4FWkuVoHJeHVAcAqiZLE7Je3vZJHxspZdFHfnBEjHqU5hG1Jaj32dVoS6XLT1",
    ),
]

# Test vector 5: (key, the BIP's reason). The reason is matched against our error message.
INVALID_KEYS: list[tuple[str, str]] = [
    (
        "xpub661MyMwAqRbcEYS8w7XLSVeEsBXy79zSzH1J8vCdxAZningWLdN3zgtU6LBpB85b3D2yc8sfvZU521AAwdZafEz7mnzBBsz4wKY5fTtTQBm",
        "pubkey version / prvkey mismatch",
    ),
    (
        "xprv9s21ZrQH143K24Mfq5zL5MhWK9hUhhGbd45hLXo2Pq2oqzMMo63oStZzFGTQQD3dC4H2D5GBj7vWvSQaaBv5cxi9gafk7NF3pnBju6dwKvH",
        "prvkey version / pubkey mismatch",
    ),
    (
        "xpub661MyMwAqRbcEYS8w7XLSVeEsBXy79zSzH1J8vCdxAZningWLdN3zgtU6Txnt3siSujt9RCVYsx4qHZGc62TG4McvMGcAUjeuwZdduYEvFn",
        "invalid pubkey prefix 04",
    ),
    (
        "xprv9s21ZrQH143K24Mfq5zL5MhWK9hUhhGbd45hLXo2Pq2oqzMMo63oStZzFGpWnsj83BHtEy5Zt8CcDr1UiRXuWCmTQLxEK9vbz5gPstX92JQ",
        "invalid prvkey prefix 04",
    ),
    (
        "xpub661MyMwAqRbcEYS8w7XLSVeEsBXy79zSzH1J8vCdxAZningWLdN3zgtU6N8ZMMXctdiCjxTNq964yKkwrkBJJwpzZS4HS2fxvyYUA4q2Xe4",
        "invalid pubkey prefix 01",
    ),
    (
        "xprv9s21ZrQH143K24Mfq5zL5MhWK9hUhhGbd45hLXo2Pq2oqzMMo63oStZzFAzHGBP2UuGCqWLTAPLcMtD9y5gkZ6Eq3Rjuahrv17fEQ3Qen6J",
        "invalid prvkey prefix 01",
    ),
    (
        "xprv9s2SPatNQ9Vc6GTbVMFPFo7jsaZySyzk7L8n2uqKXJen3KUmvQNTuLh3fhZMBoG3G4ZW1N2kZuHEPY53qmbZzCHshoQnNf4GvELZfqTUrcv",
        "zero depth with non-zero parent fingerprint",
    ),
    (
        "xpub661no6RGEX3uJkY4bNnPcw4URcQTrSibUZ4NqJEw5eBkv7ovTwgiT91XX27VbEXGENhYRCf7hyEbWrR3FewATdCEebj6znwMfQkhRYHRLpJ",
        "zero depth with non-zero parent fingerprint",
    ),
    (
        "xprv9s21ZrQH4r4TsiLvyLXqM9P7k1K3EYhA1kkD6xuquB5i39AU8KF42acDyL3qsDbU9NmZn6MsGSUYZEsuoePmjzsB3eFKSUEh3Gu1N3cqVUN",
        "zero depth with non-zero index",
    ),
    (
        "xpub661MyMwAuDcm6CRQ5N4qiHKrJ39Xe1R1NyfouMKTTWcguwVcfrZJaNvhpebzGerh7gucBvzEQWRugZDuDXjNDRmXzSZe4c7mnTK97pTvGS8",
        "zero depth with non-zero index",
    ),
    (
        "DMwo58pR1QLEFihHiXPVykYB6fJmsTeHvyTp7hRThAtCX8CvYzgPcn8XnmdfHGMQzT7ayAmfo4z3gY5KfbrZWZ6St24UVf2Qgo6oujFktLHdHY4",
        "unknown extended key version",
    ),
    (
        "DMwo58pR1QLEFihHiXPVykYB6fJmsTeHvyTp7hRThAtCX8CvYzgPcn8XnmdfHPmHJiEDXkTiJTVV9rHEBUem2mwVbbNfvT2MTcAqj3nesx8uBf9",
        "unknown extended key version",
    ),
    (
        "xprv9s21ZrQH143K24Mfq5zL5MhWK9hUhhGbd45hLXo2Pq2oqzMMo63oStZzF93Y5wvzdUayhgkkFoicQZcP3y52uPPxFnfoLZB21Teqt1VvEHx",
        "private key 0 not in 1..n-1",
    ),
    (
        "xprv9s21ZrQH143K24Mfq5zL5MhWK9hUhhGbd45hLXo2Pq2oqzMMo63oStZzFAzHGBP2UuGCqWLTAPLcMtD5SDKr24z3aiUvKr9bJpdrcLg1y3G",
        "not in 1..n-1",
    ),
    (
        "xpub661MyMwAqRbcEYS8w7XLSVeEsBXy79zSzH1J8vCdxAZningWLdN3zgtU6Q5JXayek4PRsn35jii4veMimro1xefsM58PgBMrvdYre8QyULY",
        "invalid pubkey 020000000000000000000000000000000000000000000000000000000000000007",
    ),
    (
        "xprv9s21ZrQH143K3QTDL4LXw2F7HEK3wJUD2nW2nRk4stbPy6cq3jPPqjiChkVvvNKmPGJxWUtg6LnF5kejMRNNU3TGtRBeJgk33yuGBxrMPHL",
        "invalid checksum",
    ),
]


@pytest.mark.parametrize(("seed", "path", "xpub", "xprv"), VALID_VECTORS)
def test_official_vectors_private_derivation(seed: str, path: str, xpub: str, xprv: str) -> None:
    key = ExtendedPrivateKey.from_seed(bytes.fromhex(seed)).derive(path)
    assert key.to_xprv() == xprv
    assert key.neuter().to_xpub() == xpub


@pytest.mark.parametrize(("seed", "path", "xpub", "xprv"), VALID_VECTORS)
def test_official_vectors_parse_round_trip(seed: str, path: str, xpub: str, xprv: str) -> None:
    private = ExtendedPrivateKey.from_xprv(xprv)
    public = ExtendedPublicKey.from_xpub(xpub)
    assert private.to_xprv() == xprv
    assert public.to_xpub() == xpub
    assert private.public_key == public.public_key
    assert private.depth == len(parse_path(path))


@pytest.mark.parametrize(("seed", "path", "xpub", "xprv"), VALID_VECTORS)
def test_ckdpub_matches_ckdpriv_on_normal_suffix(
    seed: str, path: str, xpub: str, xprv: str
) -> None:
    """From each vector node, CKDpub along normal steps equals N(CKDpriv)."""
    private = ExtendedPrivateKey.from_xprv(xprv)
    public = ExtendedPublicKey.from_xpub(xpub)
    suffix = (0, 1, 2_000_000_000)
    assert public.derive(suffix).to_xpub() == private.derive(suffix).neuter().to_xpub()


@pytest.mark.parametrize(("text", "reason"), INVALID_KEYS)
def test_vector_5_invalid_keys_refused_with_reason(text: str, reason: str) -> None:
    with pytest.raises(Bip32Error, match=reason.replace(".", r"\.")):
        parse_extended_key(text)


def test_vector_5_private_key_n_names_the_range() -> None:
    text = INVALID_KEYS[13][0]
    payload = b58check_decode(text)
    assert int.from_bytes(payload[46:], "big") == CURVE_ORDER
    with pytest.raises(Bip32Error, match=r"private key >= n"):
        parse_extended_key(text)


def test_public_key_refuses_hardened_step() -> None:
    public = ExtendedPrivateKey.from_seed(bytes.fromhex(SEED_1)).neuter()
    with pytest.raises(Bip32Error, match="normal"):
        public.derive("m/0'")


def test_from_xpub_refuses_private_and_vice_versa() -> None:
    _, _, xpub, xprv = VALID_VECTORS[0]
    with pytest.raises(Bip32Error):
        ExtendedPublicKey.from_xpub(xprv)
    with pytest.raises(Bip32Error):
        ExtendedPrivateKey.from_xprv(xpub)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("m", ()),
        ("m/0", (0,)),
        ("m/44'/0h/0H/0/7", (44 + HARDENED, HARDENED, HARDENED, 0, 7)),
        ("m/2147483647'", (0xFFFF_FFFF,)),
    ],
)
def test_parse_path(text: str, expected: tuple[int, ...]) -> None:
    assert parse_path(text) == expected


@pytest.mark.parametrize(
    "text", ["", "0/1", "m/", "m/-1", "m/2147483648", "m/1''", "m/a", "m/1/", "n/1", "m/\u0661"]
)
def test_parse_path_refuses_bad_text(text: str) -> None:
    with pytest.raises(Bip32Error):
        parse_path(text)


def test_format_path_inverts_parse_path() -> None:
    text = "m/44'/0'/0'/0/7"
    assert format_path(parse_path(text)) == text


@pytest.mark.parametrize("length", [15, 65])
def test_seed_length_checked(length: int) -> None:
    with pytest.raises(Bip32Error):
        ExtendedPrivateKey.from_seed(bytes(length))


def test_repr_hides_private_key_and_chain_code() -> None:
    key = ExtendedPrivateKey.from_seed(bytes.fromhex(SEED_1))
    text = repr(key)
    assert key.private_key.hex() not in text
    assert key.chain_code.hex() not in text
    assert "secret" in text


def test_base58check_round_trip_keeps_leading_zeros() -> None:
    payload = b"\x00\x00\x01\x02"
    assert b58check_decode(b58check_encode(payload)) == payload
    assert b58check_encode(payload).startswith("11")


def test_ckdpriv_by_the_formula() -> None:
    """One hardened and one normal step recomputed from the BIP's formulas with coincurve."""
    seed = bytes(range(32))
    master = ExtendedPrivateKey.from_seed(seed)
    digest = hmac.digest(b"Bitcoin seed", seed, "sha512")
    assert master.private_key == digest[:32]
    assert master.chain_code == digest[32:]

    hardened = master.child(HARDENED + 5)
    data = b"\x00" + master.private_key + (HARDENED + 5).to_bytes(4, "big")
    i = hmac.digest(master.chain_code, data, "sha512")
    expected = coincurve.PrivateKey(master.private_key).add(i[:32])
    assert hardened.private_key == expected.secret
    assert hardened.chain_code == i[32:]

    normal = hardened.child(9)
    pub = coincurve.PublicKey.from_secret(hardened.private_key).format(compressed=True)
    i = hmac.digest(hardened.chain_code, pub + (9).to_bytes(4, "big"), "sha512")
    assert normal.private_key == coincurve.PrivateKey(hardened.private_key).add(i[:32]).secret
    assert (
        normal.parent_fingerprint
        == hashlib.new("ripemd160", hashlib.sha256(pub).digest()).digest()[:4]
    )


def test_cross_check_with_independent_library() -> None:
    """Our derivations equal those of bip-utils (a test-only dependency, its own BIP32 code)."""
    bip_utils = pytest.importorskip("bip_utils")
    for seed_hex in (SEED_1, SEED_2, "aa" * 32, bytes(range(64)).hex()):
        seed = bytes.fromhex(seed_hex)
        other = bip_utils.Bip32Slip10Secp256k1.FromSeed(seed)
        ours = ExtendedPrivateKey.from_seed(seed)
        for path in ("m/44'/0'/0'/0/7", "m/0/1/2", "m/2147483647'/3'/12345"):
            theirs = other.DerivePath(path)
            mine = ours.derive(path)
            assert mine.to_xprv() == theirs.PrivateKey().ToExtended()
            assert mine.private_key == theirs.PrivateKey().Raw().ToBytes()
            assert mine.public_key == theirs.PublicKey().RawCompressed().ToBytes()


def test_normal_child_keys_equal_the_child_for_every_kind_of_parent() -> None:
    from sealcard.crypto.bip32 import ExtendedPrivateKey

    parent = ExtendedPrivateKey.from_seed(bytes(range(64))).derive("m/44'/0'/0'/0")
    for index in (0, 1, 7, 2**31 - 1):
        child = parent.child(index)
        assert parent.normal_child_keys(index) == (child.private_key, child.public_key)
    with pytest.raises(Bip32Error):
        parent.normal_child_keys(2**31)
