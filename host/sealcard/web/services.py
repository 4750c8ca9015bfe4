"""What the web app holds for its whole life: the issuer's HSM roles and settings, and one
records connection per worker thread (a database connection is never shared by threads)."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from sealcard.issuer.records import Records
from sealcard.parties.issuer.context import (
    DeviceAuthKeyService,
    IssuerContext,
    Policy,
    SealService,
    utc_now,
)

#: Worker threads that run request handlers (each holds one database connection).
DEFAULT_WORKERS = 8


@dataclass
class AppServices:
    """Opens records lazily per thread (`open_records(actor)`), shares the rest."""

    open_records: Callable[[str], Records]
    auth_keys: DeviceAuthKeyService | None = None
    hsm: SealService | None = None
    provider_roots: Sequence[x509.Certificate] = ()
    issuer_public_key: ec.EllipticCurvePublicKey | None = None
    policy: Policy = field(default_factory=Policy)
    clock: Callable[[], dt.datetime] = utc_now
    workers: int = DEFAULT_WORKERS
    secure_cookies: bool = True
    _local: threading.local = field(default_factory=threading.local, repr=False)
    _opened: list[Records] = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def context(self, actor: str = "api") -> IssuerContext:
        """An IssuerContext on this thread's connection, acting as `actor`."""
        records: Records | None = getattr(self._local, "records", None)
        if records is None:
            records = self.open_records("api")
            self._local.records = records
            with self._lock:
                self._opened.append(records)
        return IssuerContext(
            records.acting_as(actor),
            auth_keys=self.auth_keys,
            hsm=self.hsm,
            provider_roots=self.provider_roots,
            issuer_public_key=self.issuer_public_key,
            policy=self.policy,
            clock=self.clock,
        )

    def close(self) -> None:
        """Close every connection the worker threads opened."""
        with self._lock:
            for records in self._opened:
                records.close()
            self._opened.clear()
