"""The PC/SC adapter: the only module in sealcard that imports pyscard.

Everything above this module sees a `Connection` (`send_and_receive`), so a
real reader, a simulated card behind pcscd/vpcd and a test fake are the same
to it. pyscard's result codes become the typed errors of
`sealcard.transport.errors`.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Final

from smartcard import scard

from sealcard.transport.errors import (
    CardRemovedError,
    CardResetError,
    NoCardError,
    PcscServiceError,
    ReaderBusyError,
    ReaderNotFoundError,
    TransportError,
)

_MASK: Final = 0xFFFFFFFF
_STATUS_TIMEOUT_MS: Final = 0
_SW_LENGTH: Final = 2


def _code(hresult: int) -> int:
    return hresult & _MASK


_NO_SERVICE: Final = frozenset(
    _code(c) for c in (scard.SCARD_E_NO_SERVICE, scard.SCARD_E_SERVICE_STOPPED)
)
_NOT_FOUND: Final = frozenset(
    _code(c) for c in (scard.SCARD_E_UNKNOWN_READER, scard.SCARD_E_READER_UNAVAILABLE)
)
_NO_CARD: Final = frozenset(
    _code(c)
    for c in (
        scard.SCARD_E_NO_SMARTCARD,
        scard.SCARD_W_UNPOWERED_CARD,
        scard.SCARD_W_UNRESPONSIVE_CARD,
    )
)
_REMOVED: Final = frozenset(_code(c) for c in (scard.SCARD_W_REMOVED_CARD,))
_RESET: Final = frozenset(_code(c) for c in (scard.SCARD_W_RESET_CARD,))
_BUSY_RETRY_S: Final = 0.2
_BUSY: Final = frozenset(_code(c) for c in (scard.SCARD_E_SHARING_VIOLATION,))
_NO_READERS: Final = _code(scard.SCARD_E_NO_READERS_AVAILABLE)


def _check(hresult: int, action: str, reader: str | None = None) -> None:
    """Raise the typed error that matches a PC/SC result code (nothing on success)."""
    code = _code(hresult)
    if code == scard.SCARD_S_SUCCESS:
        return
    where = f" on reader {reader!r}" if reader is not None else ""
    text = f"{action}{where}: {scard.SCardGetErrorMessage(hresult)} (0x{code:08X})"
    if code in _NO_SERVICE:
        raise PcscServiceError(f"{text}; is pcscd running?")
    if code in _NOT_FOUND:
        raise ReaderNotFoundError(text)
    if code in _NO_CARD:
        raise NoCardError(text)
    if code in _REMOVED:
        raise CardRemovedError(text)
    if code in _RESET:
        raise CardResetError(text)
    if code in _BUSY:
        raise ReaderBusyError(text)
    raise TransportError(text)


class _Context:
    """A PC/SC context, released on exit."""

    def __init__(self) -> None:
        hresult, handle = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        _check(hresult, "connecting to the PC/SC service")
        self.handle = handle

    def release(self) -> None:
        scard.SCardReleaseContext(self.handle)

    def __enter__(self) -> _Context:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _list(context: _Context) -> list[str]:
    hresult, names = scard.SCardListReaders(context.handle, [])
    if _code(hresult) == _NO_READERS:
        return []
    _check(hresult, "listing readers")
    return [str(n) for n in names]


def list_readers() -> list[str]:
    """Names of every PC/SC reader attached now (empty list when there is none).

    Raises PcscServiceError when pcscd is not running.
    """
    with _Context() as context:
        return _list(context)


def _presence(context: _Context, names: list[str]) -> dict[str, bool]:
    if not names:
        return {}
    hresult, states = scard.SCardGetStatusChange(
        context.handle, _STATUS_TIMEOUT_MS, [(n, scard.SCARD_STATE_UNAWARE) for n in names]
    )
    _check(hresult, "reading the readers' state")
    return {str(s[0]): bool(int(s[1]) & scard.SCARD_STATE_PRESENT) for s in states}


def reader_has_card(name: str) -> bool:
    """Whether a card sits in the reader `name` (ReaderNotFoundError if no such reader)."""
    with _Context() as context:
        if name not in _list(context):
            raise ReaderNotFoundError(f"no reader named {name!r}")
        return _presence(context, [name])[name]


def readers_with_card() -> list[str]:
    """Names of the readers that hold a card now."""
    with _Context() as context:
        presence = _presence(context, _list(context))
    return [name for name, present in presence.items() if present]


class PcscConnection:
    """A connection to the card in one PC/SC reader; implements `Connection`.

    Open with `PcscConnection.open(name)`; shared mode by default (other
    programs may talk to the card between our APDUs), `exclusive=True` keeps
    the card for us until `close()`.
    """

    def __init__(self, context: _Context, card: int, protocol: int, reader: str) -> None:
        self._context: _Context | None = context
        self._card = card
        self._protocol = protocol
        self.reader = reader

    @classmethod
    def open(
        cls, reader_name: str, *, exclusive: bool = False, busy_wait: float = 0.0
    ) -> PcscConnection:
        """Connect to the card in `reader_name` (T=0 or T=1, whichever the card offers).

        `busy_wait`: seconds to keep trying while another connection holds the card (pcscd
        frees the connections of a process that died only once it notices)."""
        deadline = time.monotonic() + busy_wait
        while True:
            try:
                return cls._open(reader_name, exclusive)
            except ReaderBusyError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(_BUSY_RETRY_S)

    @classmethod
    def _open(cls, reader_name: str, exclusive: bool) -> PcscConnection:
        context = _Context()
        try:
            if reader_name not in _list(context):
                raise ReaderNotFoundError(f"no reader named {reader_name!r}")
            mode = scard.SCARD_SHARE_EXCLUSIVE if exclusive else scard.SCARD_SHARE_SHARED
            hresult, card, protocol = scard.SCardConnect(
                context.handle,
                reader_name,
                mode,
                scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1,
            )
            _check(hresult, "connecting to the card", reader_name)
        except BaseException:
            context.release()
            raise
        return cls(context, int(card), int(protocol), reader_name)

    @property
    def atr(self) -> bytes:
        """The card's answer to reset."""
        hresult, _reader, _state, _protocol, atr = scard.SCardStatus(self._card)
        _check(hresult, "reading the card's status", self.reader)
        return bytes(atr)

    def send_and_receive(self, apdu: bytes) -> tuple[bytes, int]:
        """Send one encoded APDU, return (response data, status word)."""
        if self._context is None:
            raise TransportError(f"connection to {self.reader!r} is closed")
        hresult, response = scard.SCardTransmit(self._card, self._protocol, list(apdu))
        _check(hresult, "sending an APDU", self.reader)
        raw = bytes(response)
        if len(raw) < _SW_LENGTH:
            raise TransportError(f"{self.reader!r} answered {len(raw)} bytes, no status word")
        return raw[:-2], (raw[-2] << 8) | raw[-1]

    def reset(self) -> None:
        """Warm-reset the card (it forgets its selection and any pending answer)."""
        if self._context is None:
            raise TransportError(f"connection to {self.reader!r} is closed")
        hresult, protocol = scard.SCardReconnect(
            self._card,
            scard.SCARD_SHARE_SHARED,
            scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1,
            scard.SCARD_RESET_CARD,
        )
        _check(hresult, "resetting the card", self.reader)
        self._protocol = int(protocol)

    def close(self) -> None:
        """Disconnect (leaving the card powered) and release the PC/SC context."""
        if self._context is None:
            return
        scard.SCardDisconnect(self._card, scard.SCARD_LEAVE_CARD)
        self._context.release()
        self._context = None

    def __enter__(self) -> PcscConnection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
