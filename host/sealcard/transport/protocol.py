"""Processors stacked below the command layer, and the `SmartCardProtocol` that stacks them.

From the bottom up:

1. `RawProcessor` encodes one `Apdu` (short, or extended when allowed and
   needed) and hands it to the `Connection`.
2. `CommandChainingProcessor` (only when extended length is off) cuts data
   longer than 255 bytes into 255-byte chunks, every chunk but the last
   with the chaining bit (CLA | 0x10) set.
3. `ResponseChainingProcessor` collects answers that come in parts: while
   the card says 61xx it sends GET RESPONSE (00 C0 00 00 xx).

Command methods above call `SmartCardProtocol.send` once and get the whole
answer or an `ApduError`; they never see 61xx.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final, Protocol

from sealcard.transport.apdu import (
    CHAINING_BIT,
    CLA_ISO,
    EXTENDED_MAX_LE,
    INS_GET_RESPONSE,
    SHORT_MAX_DATA,
    SHORT_MAX_LE,
    Apdu,
)
from sealcard.transport.connection import Connection
from sealcard.transport.errors import ApduError, TransportError
from sealcard.transport.sw import SW, SW1_BYTES_REMAINING

INS_SELECT: Final = 0xA4
P1_SELECT_BY_NAME: Final = 0x04
MAX_GET_RESPONSE_ROUNDS: Final = 1024
"""A card that keeps saying 61xx longer than this (256 KB) is broken."""

apdu_log = logging.getLogger("sealcard.apdu")
"""Support's trace (`sealcard --debug`): every APDU's header and every status word, at DEBUG.
Never data; the Lc of a command that carries a secret is hidden too (its length would tell
a PIN's)."""


def describe_command(apdu: Apdu, *, secret: bool = False) -> str:
    """`CLA INS P1 P2 Lc=n Le=n`: what the trace shows of a command (never its data)."""
    parts = [apdu.header.hex(" ").upper()]
    if apdu.data:
        parts.append("Lc=**" if secret else f"Lc={len(apdu.data)}")
    if apdu.le:
        parts.append(f"Le={apdu.le}")
    return " ".join(parts)


def describe_answer(data: bytes, sw: int) -> str:
    """`SW (n bytes)`: what the trace shows of an answer (never its data)."""
    return f"{sw:04X} ({len(data)} bytes)"


class ApduProcessor(Protocol):
    """One layer of the stack: takes an `Apdu`, returns (data, sw)."""

    def process(self, apdu: Apdu) -> tuple[bytes, int]: ...


class RawProcessor:
    """Encodes an APDU and sends it; extended encoding only if `extended` and needed."""

    def __init__(self, connection: Connection, *, extended: bool) -> None:
        self.connection = connection
        self.extended = extended
        self.secret = False
        """Set while a command carrying a PIN or PUK is sent: the trace hides its Lc."""

    def process(self, apdu: Apdu) -> tuple[bytes, int]:
        if not self.extended and apdu.le > SHORT_MAX_LE:
            apdu = Apdu(apdu.cla, apdu.ins, apdu.p1, apdu.p2, apdu.data, SHORT_MAX_LE)
        tracing = apdu_log.isEnabledFor(logging.DEBUG)
        if tracing:
            apdu_log.debug("> %s", describe_command(apdu, secret=self.secret))
        data, sw = self.connection.send_and_receive(apdu.encode(extended=self.extended))
        if tracing:
            apdu_log.debug("< %s", describe_answer(data, sw))
        return data, sw


class CommandChainingProcessor:
    """Sends data longer than a short APDU holds as a chain of 255-byte chunks."""

    def __init__(self, inner: ApduProcessor, *, chunk_size: int = SHORT_MAX_DATA) -> None:
        if not 1 <= chunk_size <= SHORT_MAX_DATA:
            raise ValueError(f"chunk size must be 1..{SHORT_MAX_DATA}")
        self.inner = inner
        self.chunk_size = chunk_size

    def process(self, apdu: Apdu) -> tuple[bytes, int]:
        if len(apdu.data) <= self.chunk_size:
            return self.inner.process(apdu)
        size = self.chunk_size
        chunks = [apdu.data[i : i + size] for i in range(0, len(apdu.data), size)]
        for chunk in chunks[:-1]:
            link = Apdu(apdu.cla | CHAINING_BIT, apdu.ins, apdu.p1, apdu.p2, chunk)
            data, sw = self.inner.process(link)
            if sw != SW.OK:
                return data, sw
        last = Apdu(apdu.cla, apdu.ins, apdu.p1, apdu.p2, chunks[-1], apdu.le)
        return self.inner.process(last)


class ResponseChainingProcessor:
    """Fetches the rest of a long answer with GET RESPONSE while the card says 61xx."""

    def __init__(self, inner: ApduProcessor) -> None:
        self.inner = inner

    def process(self, apdu: Apdu) -> tuple[bytes, int]:
        data, sw = self.inner.process(apdu)
        answer = bytearray(data)
        rounds = 0
        while sw >> 8 == SW1_BYTES_REMAINING:
            rounds += 1
            if rounds > MAX_GET_RESPONSE_ROUNDS:
                raise TransportError("card kept answering 61xx; giving up on GET RESPONSE")
            waiting = sw & 0xFF or SHORT_MAX_LE
            data, sw = self.inner.process(Apdu(CLA_ISO, INS_GET_RESPONSE, 0, 0, b"", waiting))
            answer += data
        return bytes(answer), sw


class SmartCardProtocol:
    """The APDU layer a session talks to: one call per command, whole answers, named errors.

    `extended=True` sends long commands as one extended-length APDU and asks
    for long answers in one piece; `extended=False` (the default, works with
    every reader) chains commands and collects answers with GET RESPONSE.
    """

    def __init__(self, connection: Connection, *, extended: bool = False) -> None:
        self.connection = connection
        self._extended = extended
        self._stack: ApduProcessor = self._build()

    def _build(self) -> ApduProcessor:
        self._raw = RawProcessor(self.connection, extended=self._extended)
        raw = self._raw
        chained: ApduProcessor = raw if self._extended else CommandChainingProcessor(raw)
        return ResponseChainingProcessor(chained)

    @contextmanager
    def secret(self) -> Iterator[None]:
        """Commands sent inside carry a PIN or PUK: the --debug trace hides their Lc too."""
        self._raw.secret = True
        try:
            yield
        finally:
            self._raw.secret = False

    @property
    def extended(self) -> bool:
        return self._extended

    @extended.setter
    def extended(self, value: bool) -> None:
        self._extended = value
        self._stack = self._build()

    def transceive(self, apdu: Apdu) -> tuple[bytes, int]:
        """Send through the stack; return (whole answer, final SW) without raising on the SW."""
        return self._stack.process(apdu)

    def send(
        self, cla: int, ins: int, p1: int = 0, p2: int = 0, data: bytes = b"", *, le: int = 0
    ) -> bytes:
        """Send one command; return its whole answer, or raise `ApduError` unless SW is 9000.

        `le` is the most answer bytes expected (0: none). Up to 256 fits a short
        APDU; more uses extended length when on, else GET RESPONSE rounds.
        """
        data_out, sw = self.transceive(Apdu(cla, ins, p1, p2, data, min(le, EXTENDED_MAX_LE)))
        if sw != SW.OK:
            raise ApduError(sw, data_out)
        return data_out

    def select(self, aid: bytes) -> bytes:
        """SELECT by name (00 A4 04 00 Lc AID 00); return the applet's answer."""
        return self.send(CLA_ISO, INS_SELECT, P1_SELECT_BY_NAME, 0, aid, le=SHORT_MAX_LE)
