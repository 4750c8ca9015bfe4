"""The `cards` job: pcscd reachable, readers attached, cards in them (and which hold sealcard)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Final

from sealcard.card.errors import NotSealcardError
from sealcard.card.session import SealcardSession
from sealcard.doctor.model import Check, Job, Status
from sealcard.doctor.versions import find_program
from sealcard.errors import SealcardError
from sealcard.transport.errors import PcscServiceError, ReaderBusyError
from sealcard.transport.pcsc import PcscConnection, list_readers, reader_has_card

PCSCD_SOCKET_ENV: Final = "PCSCLITE_CSOCK_NAME"
PCSCD_SOCKET: Final = Path("/run/pcscd/pcscd.comm")


def pcscd_socket() -> Path:
    """Where PC/SC clients look for pcscd (libpcsclite honours $PCSCLITE_CSOCK_NAME)."""
    return Path(os.environ.get(PCSCD_SOCKET_ENV) or PCSCD_SOCKET)


def probe_reader(reader: str) -> dict[str, Any]:
    """One reader: a card in it? the sealcard applet on it? its serial and state."""
    entry: dict[str, Any] = {"reader": reader, "card": False, "sealcard": False}
    try:
        if not reader_has_card(reader):
            return entry
        entry["card"] = True
        with PcscConnection.open(reader) as connection:
            status = SealcardSession(connection).status
        entry.update(sealcard=True, serial=status.serial_hex, state=status.state_name)
    except NotSealcardError:
        entry["note"] = "not a sealcard card"
    except ReaderBusyError:
        entry["note"] = "card in use by another program"
    except SealcardError as exc:
        entry["note"] = str(exc)
    return entry


def _describe(entry: dict[str, Any]) -> str:
    if entry["sealcard"]:
        return f"{entry['reader']}: sealcard {entry['serial'] or '(no serial)'} {entry['state']}"
    return f"{entry['reader']}: {entry.get('note', 'a card')}"


def check_cards() -> list[Check]:
    """pcscd, readers, cards: a FAIL when pcscd or every reader is missing, a WARN without cards."""
    socket = pcscd_socket()
    try:
        readers = list_readers()
    except PcscServiceError as exc:
        if find_program("pcscd") is None:
            fix = "install it: apt-get install pcscd libccid (then systemctl start pcscd.socket)"
        else:
            fix = (
                "start it: systemctl start pcscd.socket (as root); for simulated cards "
                "`sealcard sim up`; if it runs elsewhere, set PCSCLITE_CSOCK_NAME to its socket"
            )
        return [
            Check(Job.CARDS, "pcscd", Status.FAIL, f"not reachable on {socket}: {exc}", fix),
            Check(Job.CARDS, "readers", Status.SKIP, "pcscd is not reachable"),
            Check(Job.CARDS, "cards", Status.SKIP, "pcscd is not reachable"),
        ]
    checks = [Check(Job.CARDS, "pcscd", Status.OK, f"reachable on {socket}")]
    if not readers:
        checks.append(
            Check(
                Job.CARDS,
                "readers",
                Status.FAIL,
                "pcscd runs but no reader is attached",
                "plug in a PC/SC reader (USB CCID readers need Debian's libccid); "
                "`sealcard sim up` attaches simulated ones",
            )
        )
        checks.append(Check(Job.CARDS, "cards", Status.SKIP, "no reader"))
        return checks
    checks.append(
        Check(
            Job.CARDS,
            "readers",
            Status.OK,
            f"{len(readers)} reader(s): {', '.join(readers)}",
            data={"readers": readers},
        )
    )
    entries = [probe_reader(name) for name in readers]
    with_card = [e for e in entries if e["card"]]
    sealcards = [e for e in with_card if e["sealcard"]]
    if not with_card:
        checks.append(
            Check(
                Job.CARDS,
                "cards",
                Status.WARN,
                "no card in any reader",
                "insert a card",
                data={"readers": entries},
            )
        )
    else:
        summary = f"{len(with_card)} card(s), {len(sealcards)} with the sealcard applet:\n"
        checks.append(
            Check(
                Job.CARDS,
                "cards",
                Status.OK,
                summary + "\n".join(_describe(e) for e in with_card),
                data={"readers": entries},
            )
        )
    return checks
