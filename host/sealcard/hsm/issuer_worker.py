"""The issuer HSM service's worker processes, and how the main process talks to them.

The main process (:mod:`sealcard.hsm.issuer_service`) accepts connections and checks each
request (signature, freshness, replay, decryption); it never touches the token and never holds
the seed. It hands every verified request to a free worker over a socket pair and sends back
the worker's signed answer. Each worker is a process forked from the main process after it
dropped its privileges: it locks its own memory, opens its own PKCS#11 session (its own login),
reads the seed, derives the issuer key, and then answers jobs one at a time. Several workers
use several cores (one Python process is bound to one by its GIL).

Jobs (main -> worker), one frame each::

    kind (1) | request id (16) | mailer generation (4, BE) | status (1) | op length (1) | op
    | payload
    kind 1 OP: payload = the request's JSON body (decrypted), op = the request's op
    kind 2 REPLY: payload = a JSON body the worker only signs, with ``status`` (refusals of
        the verifier, the service-key announcement)
    kind 3 RANDOM: payload = 4-byte count; the answer is that many bytes of the token's RNG

Answers (worker -> main): ``meta length (4, BE) | meta (JSON: status, reason, cards,
card_refusals, pkcs11_s, pkcs11_calls) | response`` where response is the signed reply.

A worker reloads the mailers from the token when the job's mailer generation differs from
what it saw last (another worker registered one).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import socket
import struct
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization

from sealcard.errors import SealcardError
from sealcard.hsm import protocol
from sealcard.hsm.config import IssuerHsmSettings
from sealcard.hsm.derivation import make_deriver
from sealcard.hsm.errors import HsmError, KeyNotFoundError, RequestRefused
from sealcard.hsm.hardening import lock_down_process, wipe
from sealcard.hsm.issuer_core import (
    WORKER_OPS,
    IssuerHsm,
    Pkcs11Clock,
    SoftwareIssuerSigner,
    TokenIssuerSigner,
)
from sealcard.hsm.issuer_keys import (
    ISSUER_KEY_LABEL,
    issuer_key_from_seed,
    pem_or_der,
    read_seed,
)
from sealcard.hsm.service_metrics import RequestOutcome, ServiceMetrics
from sealcard.hsm.token import PooledSession, Token

JOB_OP = 1
JOB_REPLY = 2
JOB_RANDOM = 3
_JOB = struct.Struct(">B16sIBB")
_COUNT = struct.Struct(">I")
_READY = b"R"
_FAILED = b"E"

log = logging.getLogger("sealcard.hsm.service")


class WorkerGoneError(HsmError):
    """A worker process died (its socket closed): the service stops, a supervisor restarts it."""


@dataclass(frozen=True)
class Job:
    kind: int
    request_id: bytes
    generation: int
    status: int
    op: str
    payload: bytes


def encode_job(
    kind: int,
    request_id: bytes,
    payload: bytes,
    *,
    op: str = "",
    status: int = protocol.STATUS_OK,
    generation: int = 0,
) -> bytes:
    op_bytes = op.encode("ascii")
    return _JOB.pack(kind, request_id, generation, status, len(op_bytes)) + op_bytes + payload


def decode_job(frame: bytes) -> Job:
    kind, request_id, generation, status, op_length = _JOB.unpack_from(frame)
    start = _JOB.size
    op = frame[start : start + op_length].decode("ascii")
    return Job(kind, request_id, generation, status, op, frame[start + op_length :])


def encode_answer(outcome: RequestOutcome, response: bytes) -> bytes:
    meta = json.dumps(
        {
            "status": outcome.status,
            "reason": outcome.reason,
            "cards": outcome.cards,
            "card_refusals": outcome.card_refusals,
            "pkcs11_s": outcome.pkcs11_seconds,
            "pkcs11_calls": outcome.pkcs11_calls,
        }
    ).encode("ascii")
    return _COUNT.pack(len(meta)) + meta + response


def decode_answer(frame: bytes) -> tuple[RequestOutcome, bytes]:
    (length,) = _COUNT.unpack_from(frame)
    meta = json.loads(frame[_COUNT.size : _COUNT.size + length])
    outcome = RequestOutcome(
        status=int(meta["status"]),
        reason=meta["reason"],
        cards=int(meta["cards"]),
        card_refusals={str(k): int(v) for k, v in meta["card_refusals"].items()},
        pkcs11_seconds=float(meta["pkcs11_s"]),
        pkcs11_calls=int(meta["pkcs11_calls"]),
    )
    return outcome, frame[_COUNT.size + length :]


# ------------------------------------------------------------------------ the worker side


class WorkerCore:
    """What one worker holds: its session, the derivation, the signer; answers jobs."""

    def __init__(self, hsm: IssuerHsm) -> None:
        self.hsm = hsm

    def answer(self, job: Job) -> tuple[RequestOutcome, bytes]:
        if job.kind == JOB_RANDOM:
            (count,) = _COUNT.unpack(job.payload)
            return RequestOutcome(protocol.STATUS_OK), self.hsm.random(count)
        if job.kind == JOB_REPLY:
            body = json.loads(job.payload)
            reason = body.get("reason") if job.status != protocol.STATUS_OK else None
            return self._signed(job, job.status, body, RequestOutcome(job.status, reason))
        sealed_before = self.hsm.cards_sealed
        self.hsm.card_refusals = {}
        try:
            if job.op not in WORKER_OPS:
                raise RequestRefused(protocol.REFUSED_UNKNOWN_OP, f"unknown operation {job.op!r}")
            status, body = protocol.STATUS_OK, self.hsm.handle(job.op, _json_object(job.payload))
            reason = None
        except RequestRefused as exc:
            status, reason = protocol.STATUS_REFUSED, exc.reason
            body = {"reason": exc.reason, "message": exc.detail}
        except SealcardError as exc:
            status, reason = protocol.STATUS_ERROR, type(exc).__name__
            body = {"reason": reason, "message": str(exc)}
        except Exception as exc:  # a bug must not cost the client its answer
            # The exception text may quote request content: log its type only.
            log.error("request failed unexpectedly: %s", type(exc).__name__)
            status, reason = protocol.STATUS_ERROR, protocol.FAILED_INTERNAL
            body = {
                "reason": reason,
                "message": "the issuer HSM service failed on this request (see its log)",
            }
        outcome = RequestOutcome(
            status,
            reason,
            cards=self.hsm.cards_sealed - sealed_before,
            card_refusals=self.hsm.card_refusals,
        )
        return self._signed(job, status, body, outcome)

    def _signed(
        self, job: Job, status: int, body: dict[str, Any], outcome: RequestOutcome
    ) -> tuple[RequestOutcome, bytes]:
        try:
            response = protocol.encode_response(job.request_id, status, body, self.hsm.sign)
        except SealcardError as exc:
            log.error("cannot sign a response: %s", type(exc).__name__)
            response = b""  # the main process drops the connection: nothing can be answered
        outcome.pkcs11_seconds, outcome.pkcs11_calls = self.hsm.clock.take()
        return outcome, response


def _json_object(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise RequestRefused(protocol.REFUSED_MALFORMED, "the body is not valid JSON") from None
    if not isinstance(value, dict):
        raise RequestRefused(protocol.REFUSED_MALFORMED, "the body must be a JSON object")
    return value


def open_core(settings: IssuerHsmSettings, token: Token, session: PooledSession) -> IssuerHsm:
    """Read the seed (wiped after use), build the derivation and the signer of this worker."""
    try:
        seed = read_seed(token)
    except KeyNotFoundError:
        raise HsmError("the issuer token holds no seed: run `sealcard issuer hsm init`") from None
    try:
        deriver = make_deriver(settings.derivation, seed)
        seed_key = issuer_key_from_seed(seed)
    finally:
        wipe(seed)
    token_public = token.ec_public_key(ISSUER_KEY_LABEL)
    form = (serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    clock = Pkcs11Clock()
    signer: Callable[[bytes], bytes]
    if seed_key.public_key().public_bytes(*form) == token_public.public_bytes(*form):
        signer = SoftwareIssuerSigner(seed_key)
    else:  # an issuer key made before it came from the seed: only the token can use it
        signer = TokenIssuerSigner(session, clock)
    try:
        certificate = pem_or_der(settings.issuer_certificate.read_bytes())
    except OSError:
        raise HsmError(f"missing issuer certificate {settings.issuer_certificate}") from None
    return IssuerHsm(session, deriver, certificate, token_public, signer, clock)


def run_worker(sock: socket.socket, settings: IssuerHsmSettings) -> int:
    """A worker's life: lock its memory, open the token, answer jobs until the socket closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process decides when to stop
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        lock_down_process()  # memory locks are not inherited across fork
        # two sessions: one the core keeps, one for the seed and key look-ups at start
        token = Token.open(settings.issuer, pool_size=2)
    except SealcardError as exc:
        protocol.send_frame(sock, _FAILED + str(exc).encode("utf-8"))
        return 1
    try:
        with token.session() as session:
            try:
                hsm = open_core(settings, token, session)
            except SealcardError as exc:
                protocol.send_frame(sock, _FAILED + str(exc).encode("utf-8"))
                return 1
            signing = "service" if isinstance(hsm.sign, SoftwareIssuerSigner) else "token"
            protocol.send_frame(sock, _READY + signing.encode("ascii"))
            core = WorkerCore(hsm)
            generation = 0
            while True:
                try:
                    frame = protocol.recv_frame(sock)
                except (ConnectionError, OSError):
                    return 0
                job = decode_job(frame)
                if job.generation != generation:
                    hsm.reload_mailers()
                    generation = job.generation
                outcome, response = core.answer(job)
                protocol.send_frame(sock, encode_answer(outcome, response))
    finally:
        token.close()


# -------------------------------------------------------------------------- the main side


class WorkerHandle:
    """The main process's end of one worker."""

    def __init__(self, pid: int, sock: socket.socket) -> None:
        self.pid = pid
        self.sock = sock
        self.signing = "?"

    def call(self, job: bytes) -> tuple[RequestOutcome, bytes]:
        try:
            protocol.send_frame(self.sock, job)
            return decode_answer(protocol.recv_frame(self.sock))
        except (ConnectionError, OSError):
            raise WorkerGoneError(f"issuer HSM worker {self.pid} is gone") from None


class WorkerPool:
    """Worker processes and a queue of the idle ones: a request waits for a free worker."""

    def __init__(self, workers: list[WorkerHandle], metrics: ServiceMetrics) -> None:
        self.workers = workers
        self.metrics = metrics
        self._idle: queue.Queue[WorkerHandle] = queue.Queue()
        for worker in workers:
            self._idle.put(worker)
        self.mailer_generation = 0
        self.stopping = False

    @classmethod
    def start(cls, settings: IssuerHsmSettings, count: int, metrics: ServiceMetrics) -> WorkerPool:
        """Fork ``count`` workers (call before any thread starts), one after the other (SoftHSM
        processes that initialize at the same moment can miss a token: seen with 4), each
        ready before the next; HsmError with the worker's reason if one cannot start."""
        workers: list[WorkerHandle] = []
        pool = cls(workers, metrics)
        for _ in range(count):
            parent_end, child_end = socket.socketpair()
            pid = os.fork()
            if pid == 0:  # the worker: never returns into the main process's code
                code = 1
                try:
                    parent_end.close()
                    for other in workers:
                        other.sock.close()
                    code = run_worker(child_end, settings)
                except BaseException as exc:  # a worker must end here, whatever happens
                    log.error("issuer HSM worker failed: %s", type(exc).__name__)
                    with suppress(OSError):
                        reason = f"an issuer HSM worker failed: {type(exc).__name__}"
                        protocol.send_frame(child_end, _FAILED + reason.encode("ascii"))
                finally:
                    os._exit(code)
            child_end.close()
            worker = WorkerHandle(pid, parent_end)
            workers.append(worker)
            try:
                first = protocol.recv_frame(worker.sock)
            except (ConnectionError, OSError):
                first = _FAILED + b"the worker exited during start"
            if not first.startswith(_READY):
                pool.stop()
                raise HsmError(first[1:].decode("utf-8", "replace"))
            worker.signing = first[1:].decode("ascii")
            pool._idle.put(worker)
        return pool

    def call(self, job: bytes) -> tuple[RequestOutcome, bytes]:
        """Run a job on the next free worker (waiting for one if all are busy)."""
        self.metrics.waiting(+1)
        try:
            worker = self._idle.get()
        finally:
            self.metrics.waiting(-1)
        try:
            return worker.call(job)
        finally:
            self._idle.put(worker)

    def op(self, request_id: bytes, op: str, body: bytes) -> tuple[RequestOutcome, bytes]:
        job = encode_job(JOB_OP, request_id, body, op=op, generation=self.mailer_generation)
        return self.call(job)

    def reply(
        self, request_id: bytes, status: int, body: dict[str, Any]
    ) -> tuple[RequestOutcome, bytes]:
        payload = json.dumps(body, separators=(",", ":")).encode("utf-8")
        job = encode_job(
            JOB_REPLY, request_id, payload, status=status, generation=self.mailer_generation
        )
        return self.call(job)

    def random(self, count: int) -> bytearray:
        job = encode_job(JOB_RANDOM, bytes(protocol.REQUEST_ID_LENGTH), _COUNT.pack(count))
        _outcome, data = self.call(job)
        if len(data) != count:
            raise HsmError("the issuer HSM worker sent no random bytes")
        return bytearray(data)

    def mailers_changed(self) -> None:
        """A mailer was registered: every worker reloads them before its next job."""
        self.mailer_generation = (self.mailer_generation + 1) & 0xFFFFFFFF

    def stop(self, timeout_s: float = 10.0) -> None:
        """Close every worker's socket (it exits at EOF); kill those that do not."""
        self.stopping = True
        for worker in self.workers:
            worker.sock.close()
        deadline = time.monotonic() + timeout_s
        for worker in self.workers:
            while time.monotonic() < deadline:
                try:
                    pid, _status = os.waitpid(worker.pid, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid:
                    break
                time.sleep(0.05)
            else:
                try:
                    os.kill(worker.pid, signal.SIGKILL)
                    os.waitpid(worker.pid, 0)
                except (ProcessLookupError, ChildProcessError):
                    pass
