"""Measure personalization and use on simulated (or real) cards: the numbers issue 3 asks for.

Prints JSON with, for one reader:
- PERSONALIZE (the command alone, success), median of --runs, chained and extended,
  with APDUs and bytes per personalization (PUT PIN PUK not included);
- the same command refused after the signature check (a blob signed by another issuer:
  framing + serial + ECDSA P-256 verify) and refused after decryption (a blob sealed to
  another device key: + RSA-2048 private-key operation and OAEP decoding), which splits
  PERSONALIZE into its parts;
- SIGN HASH, VERIFY, INTERNAL AUTHENTICATE and GET DATA (small APDU round trip),
  median of --runs each.

Each personalization needs an initialized card: the card is blanked (sealcard.sim.reset_card,
or --reset-command with {index}/{reader}) and step A is run before every timed PERSONALIZE.

Example (after `sealcard sim up`):
  python bench/personalize.py --runs 20
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import coincurve
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sealcard import sim
from sealcard.card.errors import BadSignatureError, BlobDataInvalidError
from sealcard.card.session import SealcardSession
from sealcard.crypto.sealed_blob import SealedPayload, seal
from sealcard.parties.provider import InitResult, ProviderCA, initialize_card
from sealcard.transport.pcsc import PcscConnection, readers_with_card

PIN = b"123456"
PUK = b"12345678"
MS = 1000.0


def reset(template: str | None, reader: str) -> None:
    if template is None:
        sim.reset_card(sim.card_index(reader))
        return
    subprocess.run(shlex.split(template.format(reader=reader)), check=True, capture_output=True)


def signer(key: ec.EllipticCurvePrivateKey) -> Callable[[bytes], bytes]:
    return lambda message: key.sign(message, ec.ECDSA(hashes.SHA256()))


def payload() -> SealedPayload:
    auth = ec.generate_private_key(ec.SECP256R1()).public_key()
    point = auth.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return SealedPayload(coincurve.PrivateKey().secret, point, PIN, PUK)


def fresh_card(
    reader: str, args: argparse.Namespace, ca: ProviderCA, issuer: ec.EllipticCurvePrivateKey
) -> InitResult:
    reset(args.reset_command, reader)
    with PcscConnection.open(reader, exclusive=True) as connection:
        return initialize_card(SealcardSession(connection), ca, issuer.public_key())


def timed(action: Callable[..., object], *args: Any) -> float:
    start = time.perf_counter()
    action(*args)
    return time.perf_counter() - start


def timed_refusal(action: Callable[[bytes], object], blob: bytes, error: type[Exception]) -> float:
    start = time.perf_counter()
    try:
        action(blob)
    except error:
        return time.perf_counter() - start
    raise RuntimeError(f"expected {error.__name__}")


def bench_personalize(
    reader: str, args: argparse.Namespace, ca: ProviderCA, issuer: ec.EllipticCurvePrivateKey
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    other_issuer = ec.generate_private_key(ec.SECP256R1())
    other_device = rsa.generate_private_key(65537, 2048).public_key()
    for extended in (False, True):
        mode = "extended" if extended else "chained"
        ok: list[float] = []
        bad_sig: list[float] = []
        bad_ct: list[float] = []
        traffic: dict[str, int] = {}
        for _ in range(args.runs):
            init = fresh_card(reader, args, ca, issuer)
            blob = seal(payload(), init.serial, init.device_public_key, signer(issuer))
            foreign = seal(payload(), init.serial, init.device_public_key, signer(other_issuer))
            undecryptable = seal(payload(), init.serial, other_device, signer(issuer))
            with PcscConnection.open(reader, exclusive=True) as connection:
                session = SealcardSession(connection, extended=extended)
                bad_sig.append(timed_refusal(session.personalize, foreign, BadSignatureError))
                bad_ct.append(
                    timed_refusal(session.personalize, undecryptable, BlobDataInvalidError)
                )
                session.connection.reset_count()
                ok.append(timed(session.personalize, blob))
                count = session.connection.reset_count()
                traffic = {
                    "apdus": count.apdus,
                    "bytes_sent": count.bytes_sent,
                    "bytes_received": count.bytes_received,
                    "blob_bytes": len(blob),
                }
        out[mode] = {
            "personalize_median_ms": statistics.median(ok) * MS,
            "refused_after_signature_check_median_ms": statistics.median(bad_sig) * MS,
            "refused_after_decryption_median_ms": statistics.median(bad_ct) * MS,
            "traffic_per_personalize": traffic,
        }
    return out


def bench_use(
    reader: str, args: argparse.Namespace, ca: ProviderCA, issuer: ec.EllipticCurvePrivateKey
) -> dict[str, Any]:
    init = fresh_card(reader, args, ca, issuer)
    blob = seal(payload(), init.serial, init.device_public_key, signer(issuer))
    with PcscConnection.open(reader, exclusive=True) as connection:
        session = SealcardSession(connection)
        session.personalize(blob)
        verify = [timed(session.verify_pin, PIN) for _ in range(args.runs)]
        digests = [hashlib.sha256(bytes([i % 256])).digest() for i in range(args.runs)]
        sign = [timed(session.sign_hash, d) for d in digests]
        challenge = bytes(32)
        auth = [timed(session.internal_authenticate, challenge) for _ in range(args.runs)]
        small = [timed(session.read_serial) for _ in range(args.runs * 10)]
    return {
        "sign_hash_median_ms": statistics.median(sign) * MS,
        "verify_pin_median_ms": statistics.median(verify) * MS,
        "internal_authenticate_median_ms": statistics.median(auth) * MS,
        "small_apdu_rtt_median_ms": statistics.median(small) * MS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--reader", help="reader to measure (default: the last with a card)")
    parser.add_argument("--runs", type=int, default=20, help="samples per median")
    parser.add_argument("--reset-command", help="makes the card in {reader} blank")
    args = parser.parse_args()
    readers = sorted(readers_with_card())
    if not readers:
        raise SystemExit("no reader holds a card (sealcard sim up?)")
    reader = args.reader or readers[-1]
    issuer = ec.generate_private_key(ec.SECP256R1())
    with tempfile.TemporaryDirectory() as tmp:
        ca = ProviderCA.create(Path(tmp) / "ca", b"bench passphrase only")
        result = {
            "reader": reader,
            "runs": args.runs,
            "personalize": bench_personalize(reader, args, ca, issuer),
            "use": bench_use(reader, args, ca, issuer),
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
