"""Per-primitive timings of the issuer HSM path on SoftHSM2 (a script, not a test).

    python bench/primitives.py [--n 2000] [--cards 10000] [--batch 256]

Creates a throw-away issuer home (SoftHSM2 tokens in a temp dir), then prints microseconds
per operation for each primitive, and sealed cards per second through the issuer HSM
service (a real subprocess on its Unix socket).
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import coincurve
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from pkcs11 import Mechanism, ObjectClass

from sealcard.crypto import sealed_blob
from sealcard.crypto.bip32 import ExtendedPrivateKey, parse_path
from sealcard.hsm.config import load_settings
from sealcard.hsm.issuer_client import IssuerHsmClient, SealRequest
from sealcard.hsm.issuer_keys import ISSUER_KEY_LABEL, pem_or_der, read_seed
from sealcard.hsm.pin_letter import PinLetterData, SignerCertificate, build_pin_letter
from sealcard.hsm.setup import setup_hsms
from sealcard.hsm.system_hsm import DeviceAuthKeys, RequestSigner
from sealcard.hsm.token import Token, raw_to_der


def per_op(name: str, n: int, fn: Callable[[int], object]) -> float:
    fn(0)
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    micros = (time.perf_counter() - start) / n * 1e6
    print(f"{name:<48} {micros:9.1f} us/op  {1e6 / micros:10.0f} /s")
    return micros


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--cards", type=int, default=10000)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    n = args.n
    home = Path(tempfile.mkdtemp(prefix="sealcard-bench-"))
    setup_hsms(home)
    settings = load_settings(home)
    issuer = Token.open(settings.issuer, pool_size=2)
    system = Token.open(settings.system, pool_size=3)
    auth = DeviceAuthKeys(system)
    signer = RequestSigner(system)

    print(f"== primitives, {n} ops each (SoftHSM2 tokens in {home}) ==")
    digest = hashlib.sha256(b"message").digest()
    with issuer.session() as s:
        key = s.key(ObjectClass.PRIVATE_KEY, ISSUER_KEY_LABEL)
        per_op(
            "ECDSA P-256 sign in token (raw C_Sign)",
            n,
            lambda i: key.sign(digest, mechanism=Mechanism.ECDSA),
        )
    per_op(
        "ECDSA P-256 sign in token (sha256 + DER)",
        n,
        lambda i: issuer.sign_ecdsa_sha256(ISSUER_KEY_LABEL, b"message"),
    )
    soft = ec.generate_private_key(ec.SECP256R1())
    per_op(
        "ECDSA P-256 sign, cryptography (direct)",
        n,
        lambda i: soft.sign(b"message", ec.ECDSA(hashes.SHA256())),
    )
    per_op("EC keygen + wrap in token (device auth key)", n, lambda i: auth.generate())
    start = time.perf_counter()
    auth.generate_many(n)
    micros = (time.perf_counter() - start) / n * 1e6
    print(
        f"{'EC keygen + wrap, generate_many (3 sessions)':<48} {micros:9.1f} us/op  "
        f"{1e6 / micros:10.0f} /s"
    )
    per_op("EC keygen, cryptography (direct)", n, lambda i: ec.generate_private_key(ec.SECP256R1()))
    _, wrapped = auth.generate()
    per_op("unwrap + sign + destroy in token", min(n, 500), lambda i: auth.sign(wrapped, b"x"))

    seed = read_seed(issuer)
    master = ExtendedPrivateKey.from_seed(seed)
    parent = master.derive("m/44'/0'/0'/0")
    per_op("BIP32 child from cached parent (+pubkey)", n, lambda i: parent.child(i).public_key)
    per_op(
        "BIP32 full path m/44'/0'/0'/0/i from seed",
        n // 4,
        lambda i: master.derive(parse_path(f"m/44'/0'/0'/0/{i}")).public_key,
    )
    per_op(
        "secp256k1 pubkey, coincurve (direct)",
        n,
        lambda i: coincurve.PublicKey.from_valid_secret(digest).format(),
    )

    device = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    per_op(
        "RSA-2048 OAEP-SHA256 encrypt, cryptography",
        n,
        lambda i: device.encrypt(b"\x01" * 129, oaep),
    )
    point = auth.generate()[0]
    payload = sealed_blob.SealedPayload(parent.child(1).private_key, point, b"123456", b"12345678")

    def token_sign(data: bytes) -> bytes:
        return raw_to_der(issuer_key.sign(hashlib.sha256(data).digest(), mechanism=Mechanism.ECDSA))

    with issuer.session() as s:
        issuer_key = s.key(ObjectClass.PRIVATE_KEY, ISSUER_KEY_LABEL)
        per_op(
            "sealed blob (OAEP + token signature)",
            n,
            lambda i: sealed_blob.seal(payload, b"12345678", device, token_sign),
        )
        mailer = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
        cert = SignerCertificate.load(pem_or_der(settings.issuer_certificate.read_bytes()))
        letter = PinLetterData(b"12345678", "A User", "1 Street, Town", b"123456", b"12345678")
        per_op(
            "CMS PIN letter (OAEP env + token signature)",
            n,
            lambda i: build_pin_letter(letter, mailer, token_sign, cert),
        )

    print(f"\n== issuer HSM service: {args.cards} cards, batches of {args.batch} ==")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sealcard.hsm.issuer_service",
            "--home",
            str(home),
            "--log-level",
            "WARNING",
        ]
    )
    try:
        while not settings.socket_path.exists():
            time.sleep(0.05)
        client = IssuerHsmClient(settings.socket_path, signer)
        client.register_mailer("bench", mailer)
        der = device.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        points = [p for p, _ in auth.generate_many(args.cards)]
        for pin_source in ("none", "hsm"):
            requests = [
                SealRequest(
                    str(i),
                    i.to_bytes(8, "big"),
                    der,
                    points[i],
                    f"m/44'/0'/0'/0/{i}",
                    "A User",
                    "1 Street",
                    pin_source,
                    "bench" if pin_source == "hsm" else None,
                )
                for i in range(args.cards)
            ]
            start = time.perf_counter()
            for k in range(0, args.cards, args.batch):
                client.seal_batch(requests[k : k + args.batch])
            elapsed = time.perf_counter() - start
            print(
                f"seal_batch, pin_source={pin_source:<5}  {args.cards / elapsed:10.0f} cards/s "
                f"({elapsed / args.cards * 1e6:.0f} us/card)"
            )
        start = time.perf_counter()
        pairs = auth.generate_many(args.cards)
        elapsed = time.perf_counter() - start
        print(f"device auth keys, generate_many  {len(pairs) / elapsed:10.0f} keys/s")
        client.close()
    finally:
        proc.terminate()
        proc.wait()
    issuer.close()
    system.close()
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
