"""The issuer HSM service: the only processes that hold the BIP32 seed or a user private key
in clear, built like the HSM's trusted part (docs/hsm.md, "The issuer HSM service").

    python -m sealcard.hsm.issuer_service --home DIR      (SIGTERM/SIGINT stop it)

Start-up, in this order, before anything secret is read:

1. its own Unix user: as root it hands its files to ``[issuer_hsm] service_user`` and drops to
   it for good (keeping only CAP_IPC_LOCK); as anyone but that user it refuses;
2. no core dumps, no ptrace, memory locked (:mod:`sealcard.hsm.hardening`);
3. nothing it trusts may be writable by others, its secrets not readable by others, its socket
   folder its own: else it refuses and names the path;
4. ``workers`` worker processes are forked (:mod:`sealcard.hsm.issuer_worker`): each locks its
   memory, logs in to the issuer token with its own session, reads the seed, and signs;
5. the HPKE service key is made from the token's RNG (a worker's), in memory only, and the
   main process listens on the Unix socket (0600; 0660 with ``socket_group``).

The main process checks every request (layout, signature, freshness, replay, decryption;
:mod:`sealcard.hsm.protocol`), hands it to a free worker, and sends back the worker's reply,
signed by the issuer key. Every request is logged once with its id, never its content
(:mod:`sealcard.hsm.service_metrics`). If a worker dies, the service stops (exit 1) so that
its supervisor starts it afresh.
"""

from __future__ import annotations

import argparse
import base64
import logging
import os
import signal
import socket
import socketserver
import sys
import threading
import time
from contextlib import suppress
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sealcard.errors import ConfigurationError, SealcardError
from sealcard.hsm import protocol
from sealcard.hsm.config import IssuerHsmSettings, load_settings
from sealcard.hsm.errors import RequestRefused
from sealcard.hsm.hardening import (
    ServiceAccount,
    become_service_user,
    check_permissions,
    check_socket_path,
    grant_service_access,
    lock_down_process,
    require_own_user,
    service_paths,
    socket_mode,
    wipe,
)
from sealcard.hsm.issuer_core import WORKER_OPS
from sealcard.hsm.issuer_keys import pem_or_der
from sealcard.hsm.issuer_worker import WorkerGoneError, WorkerPool
from sealcard.hsm.service_metrics import RequestOutcome, ServiceMetrics

log = logging.getLogger("sealcard.hsm.service")


# ----------------------------------------------------------------------------- the server


class _Handler(socketserver.BaseRequestHandler):
    server: IssuerHsmServer

    def handle(self) -> None:
        sock: socket.socket = self.request
        while True:
            try:
                data = protocol.recv_frame(sock)
            except protocol.FrameTooLargeError as exc:
                # answer, then close: the rest of the stream cannot be framed any more
                response = self.server.refuse(str(exc))
                with suppress(OSError):
                    if response:
                        protocol.send_frame(sock, response)
                return
            except (ConnectionError, OSError):
                return
            response = self.server.process(data)
            if not response:
                return
            try:
                protocol.send_frame(sock, response)
            except OSError:
                return


class IssuerHsmServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """One thread per connection: each request checked here, carried out by a worker."""

    daemon_threads = True

    def __init__(
        self,
        socket_path: Path,
        pool: WorkerPool,
        verifier: protocol.RequestVerifier,
        metrics: ServiceMetrics,
        certificate_der: bytes,
        socket_group: str | None = None,
    ) -> None:
        self.pool = pool
        self.verifier = verifier
        self.metrics = metrics
        self.certificate_der = certificate_der
        self.failed = threading.Event()  # a worker died: the service must stop
        old_umask = os.umask(0o177)
        try:
            super().__init__(str(socket_path), _Handler)
        finally:
            os.umask(old_umask)
        socket_mode(socket_path, socket_group)
        self.socket_path = socket_path

    def process(self, data: bytes) -> bytes | None:
        """Check a request, have a worker carry it out (or sign the refusal), log it once.
        None when no worker can answer (the connection is then closed)."""
        started = time.perf_counter()
        request_id = protocol.claimed_request_id(data)
        op = "-"
        try:
            request = self.verifier.verify(data, parse_body=False)
            request_id, op = request.request_id, request.op
            if op == protocol.OP_SERVICE_KEY:
                outcome, response = self.pool.reply(
                    request_id, protocol.STATUS_OK, self._announcement()
                )
            elif op in WORKER_OPS:
                outcome, response = self.pool.op(request_id, op, request.plaintext)
            else:
                raise RequestRefused(protocol.REFUSED_UNKNOWN_OP, f"unknown operation {op!r}")
        except RequestRefused as exc:
            body = {"reason": exc.reason, "message": exc.detail}
            try:
                outcome, response = self.pool.reply(request_id, protocol.STATUS_REFUSED, body)
            except WorkerGoneError:
                self._worker_gone(request_id, op, started)
                return None
        except WorkerGoneError:
            self._worker_gone(request_id, op, started)
            return None
        self.metrics.request_done(request_id, op, outcome, time.perf_counter() - started)
        if op == "register-mailer" and outcome.status == protocol.STATUS_OK:
            self.pool.mailers_changed()
        return response

    def _worker_gone(self, request_id: bytes, op: str, started: float) -> None:
        outcome = RequestOutcome(protocol.STATUS_ERROR, "worker-gone")
        self.metrics.request_done(request_id, op, outcome, time.perf_counter() - started)
        self.failed.set()
        return None

    def refuse(self, message: str) -> bytes | None:
        """A signed ``malformed`` refusal of something that is not a request at all."""
        request_id = bytes(protocol.REQUEST_ID_LENGTH)
        body = {"reason": protocol.REFUSED_MALFORMED, "message": message}
        try:
            outcome, response = self.pool.reply(request_id, protocol.STATUS_REFUSED, body)
        except WorkerGoneError:
            self.failed.set()
            return None
        self.metrics.request_done(request_id, "-", outcome, 0.0)
        return response

    def _announcement(self) -> dict[str, object]:
        service_key = self.verifier.service_key
        if service_key is None:  # pragma: no cover - serve() always makes one
            raise RequestRefused(protocol.REFUSED_UNDECRYPTABLE, "no request-encryption key")
        return {
            **service_key.announcement(),
            "certificate_der": base64.b64encode(self.certificate_der).decode("ascii"),
        }


def load_request_key(path: Path) -> ec.EllipticCurvePublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot load the request public key {path}: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ConfigurationError(f"{path}: the request key must be EC P-256")
    return key


# ---------------------------------------------------------------------------- start-up


def harden(home: Path, settings: IssuerHsmSettings) -> ServiceAccount:
    """Steps 1-3 of the start (module doc): own user, locked process, permissions."""
    account = ServiceAccount.named(settings.service_user)
    paths = service_paths(home, settings)
    if os.geteuid() == 0:
        grant_service_access(paths, account, settings.socket_group)
        become_service_user(account)
    require_own_user(account)
    lock_down_process()
    check_permissions(paths, account, settings.socket_group)
    check_socket_path(settings.socket_path, account)
    return account


def serve(home: Path) -> None:
    """Run the service until SIGTERM/SIGINT (or until a worker dies: HsmError)."""
    settings = load_settings(home)
    harden(home, settings)
    request_key = load_request_key(settings.request_public_key)
    try:
        certificate = pem_or_der(settings.issuer_certificate.read_bytes())
    except OSError:
        raise ConfigurationError(
            f"missing issuer certificate {settings.issuer_certificate}"
        ) from None
    metrics = ServiceMetrics()
    pool = WorkerPool.start(settings, settings.workers, metrics)  # before any thread starts
    server: IssuerHsmServer | None = None
    try:
        # The HPKE key requests are encrypted to: from the token's RNG, in memory only,
        # announced by the signed service-key reply (docs/hsm.md).
        random_bytes = pool.random(protocol.SERVICE_PUBLIC_KEY_LENGTH)
        try:
            service_key = protocol.ServiceKey.from_random(bytes(random_bytes))
        finally:
            wipe(random_bytes)
        verifier = protocol.RequestVerifier(request_key, settings.max_request_age_s, service_key)
        server = IssuerHsmServer(
            settings.socket_path, pool, verifier, metrics, certificate, settings.socket_group
        )
        stopping = server

        def stop(_signum: int, _frame: object) -> None:
            threading.Thread(target=stopping.shutdown, daemon=True).start()

        def watch() -> None:  # a dead worker stops the service (its supervisor restarts it)
            stopping.failed.wait()
            stopping.shutdown()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        threading.Thread(target=watch, daemon=True, name="worker-watch").start()
        threading.Thread(
            target=_reap, args=(pool, stopping), daemon=True, name="worker-reap"
        ).start()
        signing = sorted({w.signing for w in pool.workers})
        log.info(
            "issuer HSM service listening on %s (uid %d, %d workers, issuer key signs in %s,"
            " service key id %s)",
            settings.socket_path,
            os.getuid(),
            len(pool.workers),
            "/".join(signing),
            service_key.key_id.hex(),
        )
        server.serve_forever(poll_interval=0.2)
        if server.failed.is_set():
            raise WorkerGoneError("an issuer HSM worker died: the service stopped")
    finally:
        if server is not None:
            server.server_close()
        settings.socket_path.unlink(missing_ok=True)
        pool.stop()


def _reap(pool: WorkerPool, server: IssuerHsmServer) -> None:
    """Notice a worker that exits on its own (crash, OOM kill) even while it is idle."""
    pids = {w.pid for w in pool.workers}
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            return
        if pid in pids and not pool.stopping and not server.failed.is_set():
            log.error("issuer HSM worker %d exited (status %d): stopping the service", pid, status)
            server.failed.set()
            return


def main(argv: list[str] | None = None) -> int:
    """Process entry point."""
    parser = argparse.ArgumentParser(prog="python -m sealcard.hsm.issuer_service")
    parser.add_argument("command", nargs="?", default="serve", choices=["serve"])
    parser.add_argument("--home", type=Path, required=True, help="the issuer home")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(message)s")
    try:
        serve(args.home.resolve())
    except SealcardError as exc:
        log.error("%s", exc)  # errors carry no secret (house rule)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
