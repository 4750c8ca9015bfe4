"""Can this card host the sealcard applet? A read-only look at a card in a reader.

Two sources, both read-only: the GlobalPlatform card manager (chip, GlobalPlatform version,
free memory: `sealcard.card.card_manager`) and, when the applet is installed, its SELECT
answer (capability bits probed at install) and GET DATA DO_PLATFORM (JavaCard version and
free memory as the applet sees them). Nothing is generated, written or tried: RSA-2048 key
generation, for one, is not probed here (it happens at step A; see docs/real-cards.md).

The memory the applet needs comes from `ant cap` (docs/real-cards.md): the load file is
16,270 bytes, of which about 11.0 KB stay after linking, and the instance allocates about
8.5 KB of persistent objects and about 0.6 KB of CLEAR_ON_DESELECT RAM at install.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from sealcard.card.card_manager import CardManagerInfo, read_card_manager
from sealcard.card.constants import Capability
from sealcard.card.encoding import AppletPlatform, CardStatus
from sealcard.card.errors import NotSealcardError
from sealcard.card.session import SealcardSession
from sealcard.transport.connection import Connection

LOAD_FILE_BYTES: Final = 16_270
"""Load File Data Block of build/sealcard.cap (with the Descriptor component)."""
INSTANCE_PERSISTENT_BYTES: Final = 8_700
"""Persistent objects the applet allocates at install (keys, buffers, PINs), rounded up."""
NEEDED_PERSISTENT_BYTES: Final = LOAD_FILE_BYTES + INSTANCE_PERSISTENT_BYTES
NEEDED_TRANSIENT_BYTES: Final = 1_024
"""548 bytes of the applet's own CLEAR_ON_DESELECT arrays plus room for the crypto engines."""
MIN_JAVACARD: Final = (3, 0)

REQUIRED_CAPABILITIES: Final = (
    (Capability.SECP256K1, "secp256k1 key objects (custom curve parameters): the user key"),
    (Capability.ECDSA_PRECOMPUTED, "ECDSA over a given hash (signPreComputedHash): SIGN HASH"),
)
RECOMMENDED_CAPABILITIES: Final = (
    (Capability.TRNG, "true random generator (else ALG_SECURE_RANDOM keys and serials)"),
    (Capability.EC_PLAIN_XY, "d*G on the card: the user public key readable after PERSONALIZE"),
)
OPTIONAL_CAPABILITIES: Final = (
    (Capability.RSA_OAEP_SHA256, "native OAEP-SHA256 (else the applet decodes OAEP itself)"),
)


class Verdict(StrEnum):
    OK = "ok"
    FAIL = "fail"
    WARN = "warn"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Check:
    """One requirement, how the card meets it, and why."""

    name: str
    verdict: Verdict
    detail: str
    required: bool


@dataclass
class PlatformReport:
    """Everything read, and the checks made from it."""

    atr: bytes | None
    card_manager: CardManagerInfo
    applet_status: CardStatus | None
    applet_platform: AppletPlatform | None
    checks: list[Check] = field(default_factory=list)

    @property
    def can_host(self) -> bool | None:
        """True: every required check passed; False: one failed; None: not all could be made."""
        required = [check for check in self.checks if check.required]
        if any(check.verdict is Verdict.FAIL for check in required):
            return False
        if any(check.verdict is Verdict.UNKNOWN for check in required):
            return None
        return True


def check_platform(connection: Connection, *, atr: bytes | None = None) -> PlatformReport:
    """Read the card manager, then the applet if installed, and judge the card."""
    manager = read_card_manager(connection)
    status: CardStatus | None = None
    platform: AppletPlatform | None = None
    try:
        session = SealcardSession(connection)
    except NotSealcardError:
        session = None
    if session is not None:
        status = session.status
        platform = session.platform()
    report = PlatformReport(atr, manager, status, platform)
    report.checks = _memory_checks(manager, installed=status is not None)
    report.checks += _applet_checks(status, platform)
    return report


def _memory_checks(manager: CardManagerInfo, *, installed: bool) -> list[Check]:
    if installed:
        detail = "the applet is installed: free memory is shown for information"
        return [Check("free memory", Verdict.OK, detail, required=False)]
    checks = []
    for name, free, needed in (
        ("free persistent memory", manager.free_persistent, NEEDED_PERSISTENT_BYTES),
        ("free transient memory", manager.free_transient, NEEDED_TRANSIENT_BYTES),
    ):
        if free is None:
            checks.append(
                Check(
                    name,
                    Verdict.UNKNOWN,
                    "the card manager did not say (GET DATA FF21)",
                    required=True,
                )
            )
        elif free >= needed:
            checks.append(
                Check(name, Verdict.OK, f"{free} bytes free, about {needed} needed", required=True)
            )
        else:
            checks.append(
                Check(
                    name, Verdict.FAIL, f"{free} bytes free, about {needed} needed", required=True
                )
            )
    return checks


def _applet_checks(status: CardStatus | None, platform: AppletPlatform | None) -> list[Check]:
    if status is None:
        detail = "applet not installed: install the CAP (gp --install) to probe the algorithms"
        return [Check("algorithms", Verdict.UNKNOWN, detail, required=True)]
    checks = []
    if platform is None:
        checks.append(
            Check(
                "JavaCard version",
                Verdict.UNKNOWN,
                "the applet is older than DO_PLATFORM",
                required=False,
            )
        )
    else:
        version = (platform.javacard_major, platform.javacard_minor)
        verdict = Verdict.OK if version >= MIN_JAVACARD else Verdict.FAIL
        checks.append(
            Check(
                "JavaCard version",
                verdict,
                f"JCSystem.getVersion() = {platform.javacard_version}, 3.0 or later needed",
                required=True,
            )
        )
    for group, missing, required in (
        (REQUIRED_CAPABILITIES, Verdict.FAIL, True),
        (RECOMMENDED_CAPABILITIES, Verdict.WARN, False),
        (OPTIONAL_CAPABILITIES, Verdict.OK, False),
    ):
        for capability, meaning in group:
            present = capability in status.capabilities
            checks.append(
                Check(
                    f"CAP_{capability.name}",
                    Verdict.OK if present else missing,
                    ("yes: " if present else "no: ") + meaning,
                    required=required,
                )
            )
    return checks
