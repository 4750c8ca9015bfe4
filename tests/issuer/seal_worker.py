"""A sealing run in its own process, for the kill-and-resume tests (not a test module).

    python seal_worker.py URL SEED_HEX ISSUER_KEY_PEM CHUNK DELAY_S [IN_FLIGHT [ACTOR]]

Seals every requested order with the software HSM stand-ins, sleeping DELAY_S in each HSM
call so the parent can SIGKILL it part way. Prints "sealed N" after each commit point B and
"done N" at the end. Several of them on one PostgreSQL stand for several sealing hosts, each
with its own issuer HSM (the same seed and issuer key, as restored from the same shares).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

from software_hsm import SoftwareDeviceAuthKeys, SoftwareIssuerHsm

from sealcard.hsm.issuer_client import SealRequest, SealResult
from sealcard.issuer.batch import seal_orders
from sealcard.issuer.records import Records


class SlowHsm:
    def __init__(self, inner: SoftwareIssuerHsm, delay: float) -> None:
        self.inner = inner
        self.delay = delay

    def seal_batch(self, requests: Sequence[SealRequest]) -> list[SealResult]:
        time.sleep(self.delay)
        return self.inner.seal_batch(requests)


def main(argv: list[str]) -> int:
    url, seed_hex, key_pem, chunk, delay = argv[:5]
    in_flight = int(argv[5]) if len(argv) > 5 else 2
    actor = argv[6] if len(argv) > 6 else "seal-worker"
    key = serialization.load_pem_private_key(Path(key_pem).read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    hsm = SlowHsm(SoftwareIssuerHsm(bytes.fromhex(seed_hex), key), float(delay))
    records = Records.open(url, actor)
    report = seal_orders(
        records,
        SoftwareDeviceAuthKeys(),
        hsm,
        chunk_size=int(chunk),
        chunks_in_flight=in_flight,
        progress=lambda done, _total: print(f"sealed {done}", flush=True),
    )
    print(f"done {report.sealed}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
