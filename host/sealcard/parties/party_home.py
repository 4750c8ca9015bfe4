"""The home folder of a provider, bureau, mailer or shipper: its token, its certificate, the
parties it knows, and the files it took in.

    HOME/config.toml          [party] role, name; [token] module, token_label, pin_file, ..
    HOME/hsm/, HOME/secrets/  SoftHSM2 token and its PIN (0600), unless [token] names another
    HOME/party/identity.pem   our party certificate (and the mailer's letter certificate)
    HOME/peers/ROLE-NAME.pem  the certificate files other parties handed us (`party add`)
    HOME/received.log         one JSON line per file taken in (file id: replays are refused)

The home is --home, else $SEALCARD_<ROLE>_HOME, else ./<role>-home. The issuer keeps the same
things in its own home and records (parties/issuer_exchange.py).
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from sealcard.errors import ConfigurationError
from sealcard.files import prepare_dir
from sealcard.formats.party_cert import (
    PartyBundle,
    PartyCertificateError,
    fingerprint,
    load_certificates,
    make_letter_certificate,
    make_party_certificate,
)
from sealcard.formats.party_csv import (
    FileHeader,
    FileKind,
    PartyName,
    Role,
    a,
    check_party_name,
    utc_now,
)
from sealcard.hsm.config import HsmConfig, default_softhsm_module
from sealcard.hsm.party_keys import TokenLetterKey, TokenPartyKey
from sealcard.hsm.softhsm import init_softhsm
from sealcard.hsm.token import Token
from sealcard.issuer.config import render_section
from sealcard.parties.exchange import Identity, Peer, Received, read_party_file
from sealcard.parties.party_names import home_env

T = TypeVar("T")

CONFIG_NAME: Final = "config.toml"
IDENTITY_FILE: Final = "identity.pem"
JOURNAL_FILE: Final = "received.log"
_DIR_MODE: Final = 0o700


def default_home(role: Role) -> Path:
    env = os.environ.get(home_env(role))
    return Path(env) if env else Path(f"{role.value}-home")


def token_label(role: Role) -> str:
    return f"sealcard-{role.value}"


class PartyError(ConfigurationError):
    """A party home that is missing, of another role, or inconsistent."""


def save_bundle(path: Path, bundle: PartyBundle) -> None:
    path.write_bytes(bundle.pem())


def read_bundle(path: Path, *, own: bool = False) -> PartyBundle:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return PartyBundle.parse(data, own=own)
    except PartyCertificateError as exc:
        raise ConfigurationError(f"{path}: {exc}") from None


@dataclass
class FolderPeers:
    """The registered parties of a home: one certificate file each in HOME/peers."""

    directory: Path
    _peers: list[Peer] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.directory.is_dir():
            for path in sorted(self.directory.glob("*.pem")):
                self._peers.append(Peer(read_bundle(path)))

    def all(self) -> list[Peer]:
        return list(self._peers)

    def find(self, party: PartyName) -> Peer | None:
        return next((p for p in self._peers if p.party == party), None)

    def find_certificate(self, certificate: x509.Certificate) -> Peer | None:
        wanted = fingerprint(certificate)
        return next((p for p in self._peers if p.bundle.fingerprint == wanted), None)

    def of_role(self, role: Role) -> list[Peer]:
        return [p for p in self._peers if p.role is role]

    def add(self, bundle: PartyBundle, role: Role) -> tuple[Peer, bool]:
        """Register a party; (peer, False) when exactly this certificate is already there."""
        if bundle.role is not role:
            raise PartyError(f"the certificate is {a(bundle.role)}'s, not {a(role)}'s")
        known = self.find(PartyName(bundle.role, bundle.name))
        if known is not None:
            if (
                known.bundle.fingerprint == bundle.fingerprint
                and known.bundle.pem() == bundle.pem()
            ):
                return known, False
            raise PartyError(
                f"{role.value} {bundle.name} is already registered with another certificate"
                f" ({known.bundle.fingerprint[:16]})"
            )
        self.directory.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
        path = self.directory / f"{role.value}-{bundle.name}.pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "wb") as handle:
            handle.write(bundle.pem())
        peer = Peer(bundle)
        self._peers.append(peer)
        return peer, True


@dataclass
class Journal:
    """The file ids a home took in (append-only, one JSON line each, synced)."""

    path: Path

    def seen(self, file_id: str) -> bool:
        if not self.path.exists():
            return False
        with self.path.open(encoding="utf-8") as handle:
            return any(
                json.loads(line).get("file_id") == file_id for line in handle if line.strip()
            )

    def record(self, header: FileHeader, **extra: Any) -> None:
        entry = {
            "file_id": header.file_id,
            "kind": header.kind.value,
            "batch": header.batch,
            "sender": str(header.sender),
            "rows": header.count,
            "at": utc_now(),
            **extra,
        }
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())


@dataclass(frozen=True)
class PartyHome:
    """Paths and settings of one party's home."""

    root: Path
    role: Role
    name: str
    token: HsmConfig

    @property
    def identity_path(self) -> Path:
        return self.root / "party" / IDENTITY_FILE

    @property
    def peers(self) -> FolderPeers:
        return FolderPeers(self.root / "peers")

    @property
    def journal(self) -> Journal:
        return Journal(self.root / JOURNAL_FILE)

    @property
    def party(self) -> PartyName:
        return PartyName(self.role, self.name)


def _token_section(root: Path, cfg: HsmConfig) -> dict[str, str | int | bool]:
    values: dict[str, str | int | bool] = {
        "module": cfg.module_path,
        "token_label": cfg.token_label,
    }
    if cfg.pin_env:
        values["pin_env"] = cfg.pin_env
    for key, path in (("pin_file", cfg.pin_file), ("softhsm_conf", cfg.softhsm_conf)):
        if path is not None:
            values[key] = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
    return values


def load_home(role: Role, root: Path | None = None) -> PartyHome:
    """Read a party home; refuses a missing one, or one of another role."""
    root = (root or default_home(role)).expanduser()
    path = root / CONFIG_NAME
    try:
        with path.open("rb") as handle:
            config = tomllib.load(handle)
    except FileNotFoundError:
        raise PartyError(
            f"no {role.value} home at {root} (missing {CONFIG_NAME}): run"
            f" `sealcard {role.value} keys init --name NAME`"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise PartyError(f"{path}: not valid TOML: {exc}") from None
    party = config.get("party", {})
    token = config.get("token", {})
    if party.get("role") != role.value:
        raise PartyError(
            f"{root} is the home of {a(str(party.get('role', '?')))}, not of {a(role)}"
        )

    def rel(value: Any) -> Path | None:
        if value is None:
            return None
        candidate = Path(str(value)).expanduser()
        return candidate if candidate.is_absolute() else root / candidate

    cfg = HsmConfig(
        module_path=str(token.get("module") or default_softhsm_module()),
        token_label=str(token.get("token_label", token_label(role))),
        pin_env=token.get("pin_env"),
        pin_file=rel(token.get("pin_file")),
        softhsm_conf=rel(token.get("softhsm_conf")),
    )
    return PartyHome(root, role, check_party_name(str(party.get("name", ""))), cfg)


@dataclass(frozen=True)
class KeysMade:
    """What `keys init` made: the home and the bundle to hand to the other parties."""

    home: PartyHome
    bundle: PartyBundle
    created_token: bool


def init_keys(
    role: Role, name: str, root: Path | None = None, *, module_path: str | None = None
) -> KeysMade:
    """Create the home (if needed), a SoftHSM2 token, the party key pair and its certificate
    (and the mailer's letter key). Keys are made once: refused when the home has them."""
    if role is Role.ISSUER:
        raise PartyError("the issuer's keys live in its issuer home: `sealcard issuer keys init`")
    check_party_name(name)
    root = (root or default_home(role)).expanduser()
    if (root / CONFIG_NAME).exists():
        home = load_home(role, root)
        if home.identity_path.exists():
            raise PartyError(f"{root} already has its keys ({home.identity_path})")
        created = False
    else:
        prepare_dir(root, what=f"the {role.value} home", fix="give another --home", mode=_DIR_MODE)
        configs = init_softhsm(root, [token_label(role)], module_path)
        cfg = configs[token_label(role)]
        text = (
            f"# sealcard {role.value} home (written by `sealcard {role.value} keys init`)\n"
            + render_section("party", {"role": role.value, "name": name})
            + "\n"
            + render_section("token", _token_section(root, cfg))
        )
        fd = os.open(root / CONFIG_NAME, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        home = load_home(role, root)
        created = True
    token = Token.open(home.token, pool_size=1)
    try:
        key = TokenPartyKey(token)
        public = key.generate()
        certificate = make_party_certificate(public, key.sign, role, name)
        extra = None
        if role is Role.MAILER:
            letter = TokenLetterKey(token)
            extra = make_letter_certificate(letter.generate(), certificate, key.sign)
    finally:
        token.close()
    bundle = PartyBundle(certificate, role, name, extra)
    home.identity_path.parent.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
    save_bundle(home.identity_path, bundle)
    return KeysMade(home, bundle, created)


def own_bundle(home: PartyHome) -> PartyBundle:
    """Our own certificates (`keys init` wrote them)."""
    if not home.identity_path.exists():
        raise PartyError(
            f"{home.root} has no keys yet: run `sealcard {home.role.value} keys init --name NAME`"
        )
    return read_bundle(home.identity_path, own=True)


def export_bundle(home: PartyHome, extra: x509.Certificate | None = None) -> PartyBundle:
    """The bundle to hand to others; the provider adds its root CA certificate here."""
    bundle = own_bundle(home)
    if extra is not None:
        bundle = PartyBundle.parse(bundle.pem() + extra.public_bytes(Encoding.PEM))
    return bundle


@dataclass
class OpenParty:
    """A party home with its token open: who we are, whom we know, what we took in."""

    home: PartyHome
    token: Token
    key: TokenPartyKey
    peers: FolderPeers
    journal: Journal

    @property
    def identity(self) -> Identity:
        return Identity(self.home.party, self.key)

    def peer(self, role: Role, name: str | None) -> Peer:
        """The registered party of `role` named `name`, or the only one of that role."""
        return find_peer(self.home, role, name)

    def read_file(
        self,
        path: Path,
        kind: FileKind,
        consume: Callable[[FileHeader, Iterator[list[str]]], T],
    ) -> tuple[Received, T]:
        """A sealed file of `kind` for this party from one it registered, refused when its
        journal shows the file was taken in before (read_party_file)."""
        return read_party_file(
            path, self.identity, self.peers, [kind], consume, seen=self.journal.seen
        )


def find_peer(home: PartyHome, role: Role, name: str | None) -> Peer:
    """The registered party of `role` named `name`, or the only one of that role.

    Reads the home's folder only (no token), so a command can check it before opening one.
    """
    peers = home.peers
    candidates = peers.of_role(role)
    if name is not None:
        found = peers.find(PartyName(role, name))
        if found is None:
            known = ", ".join(p.name for p in candidates) or "none"
            raise PartyError(f"no {role.value} named {name!r} is registered (known: {known})")
        return found
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise PartyError(
            f"no {role.value} is registered: `sealcard {home.role.value} party add"
            f" --role {role.value} --cert FILE`"
        )
    names = ", ".join(p.name for p in candidates)
    raise PartyError(f"several {role.value}s are registered ({names}): name one")


@contextmanager
def open_party(role: Role, root: Path | None = None) -> Iterator[OpenParty]:
    """Open a party home and its token for one command."""
    home = load_home(role, root)
    bundle = own_bundle(home)
    token = Token.open(home.token, pool_size=2)
    try:
        key = TokenPartyKey(token, bundle.party)
        yield OpenParty(home, token, key, home.peers, home.journal)
    finally:
        token.close()


def add_peer(
    role: Role, root: Path | None, certificate_file: Path, peer_role: Role
) -> tuple[Peer, bool]:
    """Register another party's certificate file in this home (`party add`)."""
    home = load_home(role, root)
    bundle = read_bundle(certificate_file)
    if bundle.role is role and bundle.name == home.name:
        raise PartyError("that is our own certificate")
    return home.peers.add(bundle, peer_role)


def certificates_in(path: Path) -> list[x509.Certificate]:
    try:
        return load_certificates(path.read_bytes())
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror}") from None
    except PartyCertificateError as exc:
        raise ConfigurationError(f"{path}: {exc}") from None
