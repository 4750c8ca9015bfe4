"""The issuer HSM client never sends a request twice: a lost answer is reported as lost, not
turned into a misleading error (issue 7: the same request id re-sent on a new connection came
back as "replay: this request id was already used")."""

from __future__ import annotations

import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from sealcard.hsm import protocol
from sealcard.hsm.errors import AnswerLostError, ServiceUnavailableError
from sealcard.hsm.issuer_client import IssuerHsmClient

Behaviour = Callable[[socket.socket, bytes], bool]
"""What the fake service does with a frame: answer it (True: keep the connection) or not."""


class FakeService:
    """A Unix socket that reads frames and lets a test decide what happens to each."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.frames: list[bytes] = []
        self.connections = 0
        self.closed = threading.Semaphore(0)  # released each time the service closes one
        self._dir = tempfile.mkdtemp(prefix="sc-fake-")
        self.path = Path(self._dir) / "s.sock"
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(self.path))
        self._listener.listen(4)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            with conn:
                while True:
                    try:
                        frame = protocol.recv_frame(conn)
                    except (ConnectionError, OSError):
                        return
                    self.frames.append(frame)
                    if not self.behaviour(conn, frame):
                        return
        finally:
            self.closed.release()

    def close(self) -> None:
        self._listener.close()


class _Signer:
    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data, ec.ECDSA(hashes.SHA256()))


@pytest.fixture
def fake() -> Iterator[Callable[[Behaviour], FakeService]]:
    made: list[FakeService] = []

    def make(behaviour: Behaviour) -> FakeService:
        made.append(FakeService(behaviour))
        return made[-1]

    yield make
    for service in made:
        service.close()


def _message() -> bytes:
    return protocol.encode_request("ping", {}, _Signer().sign, None)


def test_an_answer_lost_after_the_request_arrived_is_reported_and_not_resent(
    fake: Callable[[Behaviour], FakeService],
) -> None:
    service = fake(lambda _conn, _frame: False)  # takes the request, dies without answering
    client = IssuerHsmClient(service.path, _Signer(), timeout_s=10)
    message = _message()
    with pytest.raises(AnswerLostError, match="answer was lost"):
        client.exchange(message)
    assert service.frames == [message]  # sent once: never again under the same request id
    assert service.connections == 1


def test_no_answer_in_time_is_a_lost_answer(fake: Callable[[Behaviour], FakeService]) -> None:
    hold = threading.Event()
    service = fake(lambda _conn, _frame: hold.wait(5) or True)  # never answers in time
    client = IssuerHsmClient(service.path, _Signer(), timeout_s=0.3)
    with pytest.raises(AnswerLostError, match=r"no answer within 0\.3 s"):
        client.exchange(_message())
    hold.set()
    assert len(service.frames) == 1


def _echo_then_close(conn: socket.socket, frame: bytes) -> bool:
    protocol.send_frame(conn, b"answer:" + frame[:8])
    return False  # then the service closes the connection (e.g. it restarted)


def test_a_connection_closed_between_requests_is_replaced_before_sending(
    fake: Callable[[Behaviour], FakeService],
) -> None:
    service = fake(_echo_then_close)
    client = IssuerHsmClient(service.path, _Signer(), timeout_s=10)
    first, second = _message(), _message()
    assert client.exchange(first).startswith(b"answer:")
    assert service.closed.acquire(timeout=10)  # the service has closed that connection
    assert client.exchange(second).startswith(b"answer:")
    assert service.frames == [first, second]  # each request exactly once
    assert service.connections == 2


def test_no_service_is_unavailable_not_lost(tmp_path: Path) -> None:
    client = IssuerHsmClient(tmp_path / "nothing.sock", _Signer(), timeout_s=1)
    with pytest.raises(ServiceUnavailableError) as info:
        client.exchange(_message())
    assert not isinstance(info.value, AnswerLostError)
