"""Wycheproof (C2SP) vectors through the host's own checks (tests/vectors/wycheproof, Apache-2.0).

The card's paths (OAEP decoding, the issuer-signature check, low-S normalization) run the
same vectors in-JVM: `ant assurance-vectors` (docs/assurance.md, suite 5). Here: the host's
check of the card's secp256k1 signatures, `sealcard.card.secp256k1.verify_hash_signature`,
which must take exactly what Bitcoin takes (the `_bitcoin` file: high S is invalid).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from sealcard.card.secp256k1 import is_low_s, verify_hash_signature
from sealcard.errors import VerificationError

VECTORS = Path(__file__).parents[1] / "vectors" / "wycheproof"


def _cases(name: str) -> list[tuple[bytes, dict[str, Any]]]:
    data = json.loads((VECTORS / name).read_text())
    return [
        (bytes.fromhex(group["publicKey"]["uncompressed"]), test)
        for group in data["testGroups"]
        for test in group["tests"]
    ]


BITCOIN = _cases("ecdsa_secp256k1_sha256_bitcoin_test.json")


def test_every_bitcoin_vector_is_judged_as_bitcoin_does() -> None:
    checked = 0
    wrong: list[str] = []
    for point, test in BITCOIN:
        if test["result"] == "acceptable":
            continue
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), point)
        digest = hashlib.sha256(bytes.fromhex(test["msg"])).digest()
        try:
            verify_hash_signature(key, digest, bytes.fromhex(test["sig"]))
            accepted = True
        except VerificationError:
            accepted = False
        if accepted != (test["result"] == "valid"):
            wrong.append(f"tcId {test['tcId']} ({test['comment']}): accepted={accepted}")
        checked += 1
    assert checked > 400
    assert not wrong, wrong[:10]


@pytest.mark.parametrize(
    ("flag", "low"), [("SignatureMalleabilityBitcoin", False), ("ValidSignature", True)]
)
def test_is_low_s_matches_the_malleability_flag(flag: str, low: bool) -> None:
    tagged = [t for _, t in BITCOIN if flag in t["flags"]]
    assert tagged
    assert all(is_low_s(bytes.fromhex(t["sig"])) is low for t in tagged)
