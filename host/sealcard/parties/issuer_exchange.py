"""The issuer's side of the party files: its key in the issuer-system HSM, the parties it knows
(in its records), taking in provider packs, exporting batches to a bureau and PIN letters to
mailers, and applying what comes back (bureau results and shipping data, mailer and shipper
confirmations). Each file taken in is one database transaction: all of it or nothing.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key

from sealcard.errors import ConfigurationError
from sealcard.files import prepare_dir
from sealcard.formats.attestation import CardPublicData, verify_card
from sealcard.formats.party_cert import (
    PartyBundle,
    PartyCertificateError,
    fingerprint,
    make_party_certificate,
)
from sealcard.formats.party_csv import (
    FileHeader,
    FileKind,
    PartyFileContentError,
    PartyName,
    Role,
    a,
    b64,
    check_party_name,
    parse_serial,
    serial_hex,
    unb64,
)
from sealcard.formats.sealed_file import KeyHolder
from sealcard.hsm.config import load_settings
from sealcard.hsm.party_keys import TokenPartyKey
from sealcard.hsm.token import Token
from sealcard.issuer import exchange_records as xr
from sealcard.issuer.config import IssuerHome, load_home
from sealcard.issuer.db import Tx
from sealcard.issuer.errors import DuplicateRecordError
from sealcard.issuer.lifecycle import OrderState
from sealcard.issuer.records import CardInit, Records
from sealcard.parties.exchange import (
    FileRefusedError,
    Identity,
    Peer,
    read_party_file,
    write_party_file,
)
from sealcard.parties.party_home import PartyError, read_bundle, save_bundle

IDENTITY_FILE: Final = "identity.pem"
DEFAULT_BATCH_SIZE: Final = 1000
STREAMING_CACHE_MIB: Final = 8
RETURN_KINDS: Final = (
    FileKind.RESULTS,
    FileKind.SHIPPING,
    FileKind.MAIL_CONFIRMATION,
    FileKind.SHIP_CONFIRMATION,
)


def identity_path(home: IssuerHome) -> Path:
    return home.root / "party" / IDENTITY_FILE


def issuer_keys_init(home_dir: Path | None, name: str) -> PartyBundle:
    """The issuer's party key in the issuer-system HSM, its certificate, and the bundle
    (party certificate + issuer HSM certificate) for the other parties."""
    home = load_home(home_dir)
    check_party_name(name)
    path = identity_path(home)
    if path.exists():
        raise PartyError(f"the issuer already has its party keys ({path})")
    settings = load_settings(home.root, home.raw_config())
    try:
        hsm_cert = x509.load_pem_x509_certificate(settings.issuer_certificate.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigurationError(
            f"cannot read the issuer HSM certificate {settings.issuer_certificate}: run"
            " `sealcard issuer hsm init` first"
        ) from exc
    token = Token.open(settings.system, pool_size=1)
    try:
        key = TokenPartyKey(token)
        certificate = make_party_certificate(key.generate(), key.sign, Role.ISSUER, name)
    finally:
        token.close()
    bundle = PartyBundle(certificate, Role.ISSUER, name, hsm_cert)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    save_bundle(path, bundle)
    return bundle


def issuer_bundle(home: IssuerHome) -> PartyBundle:
    path = identity_path(home)
    if not path.exists():
        raise PartyError(
            "the issuer has no party keys yet: run `sealcard issuer keys init --name NAME`"
        )
    return read_bundle(path)


@dataclass
class DbPeers:
    """The parties registered in the issuer's records (a snapshot for one command)."""

    peers: list[Peer] = field(default_factory=list)

    @classmethod
    def load(cls, records: Records) -> DbPeers:
        return cls([Peer(PartyBundle.parse(row.bundle)) for row in xr.parties(records)])

    def find(self, party: PartyName) -> Peer | None:
        return next((p for p in self.peers if p.party == party), None)

    def find_certificate(self, certificate: x509.Certificate) -> Peer | None:
        wanted = fingerprint(certificate)
        return next((p for p in self.peers if p.bundle.fingerprint == wanted), None)

    def one(self, role: Role, name: str | None) -> Peer:
        of_role = [p for p in self.peers if p.role is role]
        if name is not None:
            found = self.find(PartyName(role, name))
            if found is None:
                known = ", ".join(p.name for p in of_role) or "none"
                raise PartyError(f"no {role.value} named {name!r} is registered (known: {known})")
            return found
        if len(of_role) == 1:
            return of_role[0]
        if not of_role:
            raise PartyError(
                f"no {role.value} is registered: `sealcard issuer party add --role {role.value}"
                " --cert FILE`"
            )
        raise PartyError(f"several {role.value}s are registered: name one")


@dataclass
class IssuerParty:
    """The issuer with its records and its system token open, for one command."""

    home: IssuerHome | None
    records: Records
    key: KeyHolder
    bundle: PartyBundle
    peers: DbPeers

    @property
    def identity(self) -> Identity:
        return Identity(PartyName(Role.ISSUER, self.bundle.name), self.key)


@contextmanager
def open_issuer(home_dir: Path | None) -> Iterator[IssuerParty]:
    home = load_home(home_dir)
    bundle = issuer_bundle(home)
    settings = load_settings(home.root, home.raw_config())
    records = Records.open(home.database_url, home.default_actor())
    records.db.set_cache_size(STREAMING_CACHE_MIB)  # memory flat from 1,000 to 100,000 cards
    try:
        token = Token.open(settings.system, pool_size=2)
        try:
            key = TokenPartyKey(token, bundle.party)
            yield IssuerParty(home, records, key, bundle, DbPeers.load(records))
        finally:
            token.close()
    finally:
        records.close()


def add_party(
    home_dir: Path | None,
    certificate_file: Path,
    role: Role,
    register_letter_key: Callable[[str, rsa.RSAPublicKey], list[str]] | None = None,
) -> tuple[PartyBundle, bool]:
    """Register another party's certificate file; a mailer's letter key also goes to the
    issuer HSM (under the mailer's name, which orders give as --mailer), and the records note
    that mailer as `issuer hsm mailer add` does, so orders may name it."""
    home = load_home(home_dir)
    try:
        bundle = PartyBundle.parse(certificate_file.read_bytes())
    except OSError as exc:
        raise ConfigurationError(f"cannot read {certificate_file}: {exc.strerror}") from None
    except PartyCertificateError as exc:
        raise ConfigurationError(f"{certificate_file}: {exc}") from None
    if bundle.role is not role:
        raise PartyError(f"the certificate is {a(bundle.role)}'s, not {a(role)}'s")
    if role is Role.ISSUER:
        raise PartyError("the issuer does not register itself")
    records = Records.open(home.database_url, home.default_actor())
    try:
        fields = (role.value, bundle.name, bundle.fingerprint, bundle.pem())
        # checked before the HSM hears of it: a second certificate under a registered
        # mailer's name must not replace the letter key the HSM encrypts PIN letters to
        xr.check_new_party(records, *fields)
        mailers: list[str] = []
        if role is Role.MAILER:
            if register_letter_key is None:
                raise ConfigurationError("a mailer's letter key goes to the issuer HSM: start it")
            letter = bundle.extra
            assert letter is not None  # PartyBundle.parse checked it
            key = letter.public_key()
            assert isinstance(key, rsa.RSAPublicKey)
            mailers = register_letter_key(bundle.name, key)
        added = xr.add_party(records, *fields, mailers=mailers)
    finally:
        records.close()
    return bundle, added


# -- provider packs -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PackImportReport:
    pack: str
    cards: int
    provider: str
    file_id: str


def _card_from_row(row: list[str], root: x509.Certificate, when: dt.datetime) -> CardInit:
    serial = parse_serial(row[0])
    device_der = unb64(row[1], f"card {row[0]}: device_public_key")
    auth_der = unb64(row[2], f"card {row[0]}: issuer_auth_public_key")
    device_cert_der = unb64(row[3], f"card {row[0]}: device_key_certificate") if row[3] else None
    auth_cert_der = unb64(row[4], f"card {row[0]}: issuer_auth_key_certificate")
    signed = unb64(row[5], f"card {row[0]}: signed_device_key") if row[5] else None
    try:
        device_key = load_der_public_key(device_der)
        auth_key = load_der_public_key(auth_der)
        data = CardPublicData(
            serial=serial,
            device_public_key=device_key,  # type: ignore[arg-type]
            issuer_auth_public_key=auth_key,  # type: ignore[arg-type]
            device_key_certificate=None
            if device_cert_der is None
            else x509.load_der_x509_certificate(device_cert_der),
            issuer_auth_key_certificate=x509.load_der_x509_certificate(auth_cert_der),
            signed_device_key=signed,
        )
    except ValueError as exc:
        raise PartyFileContentError(
            f"card {row[0]}: unreadable key or certificate ({exc})"
        ) from None
    if not isinstance(device_key, rsa.RSAPublicKey) or not isinstance(
        auth_key, ec.EllipticCurvePublicKey
    ):
        raise PartyFileContentError(f"card {row[0]}: wrong key types")
    report = verify_card(root, data, now=when)
    if not report.genuine:
        reasons = "; ".join(f"{f.name}: {f.reason}" for f in report.failures)
        raise PartyFileContentError(f"card {row[0]} is not genuine: {reasons}")
    return CardInit(serial, device_der, auth_der, device_cert_der, auth_cert_der, signed, True)


def import_pack_file(
    issuer: IssuerParty, path: Path, *, progress: Callable[[int, int], None] | None = None
) -> PackImportReport:
    """Take a provider's device initialization file into stock: signer, every card's
    attestation against that provider's root, serial uniqueness; all cards or none."""
    records = issuer.records
    when = dt.datetime.now(dt.UTC)
    with records.db.transaction() as tx:

        def consume(header: FileHeader, rows: Iterator[list[str]]) -> int:
            provider = issuer.peers.find(header.sender)
            assert provider is not None  # read_party_file checked the sender
            root = provider.bundle.extra
            if root is None:
                raise PartyFileContentError(f"provider {provider.name} has no root certificate")
            pack = PackImportRows(records, tx, header.batch, provider.name)
            done = 0
            for chunk in xr.chunked(_card_from_row(row, root, when) for row in rows):
                pack.add(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, header.count)
            return pack.finish(header)

        received, count = read_party_file(
            path,
            issuer.identity,
            issuer.peers,
            [FileKind.DEVICE_INIT],
            consume,
            seen=lambda file_id: xr.file_seen(tx, file_id),
        )
        _record_file(tx, received.header)
    return PackImportReport(
        received.header.batch, count, received.sender.name, received.header.file_id
    )


class PackImportRows:
    """Stage a pack's cards inside the import transaction (duplicates named by serial)."""

    def __init__(self, records: Records, tx: Tx, pack: str, provider: str) -> None:
        try:
            self.inner = xr.PackImport(records, tx, pack, source="import")
        except DuplicateRecordError as exc:
            raise FileRefusedError(str(exc)) from None
        self.provider = provider

    def add(self, cards: list[CardInit]) -> None:
        self.inner.add(cards)

    def finish(self, header: FileHeader) -> int:
        return self.inner.finish(
            {"provider": self.provider, "file_id": header.file_id, "verified": True}
        )


def _record_file(tx: Tx, header: FileHeader) -> None:
    xr.record_received(
        tx, header.file_id, header.kind.value, header.batch, str(header.sender), header.count
    )


# -- export to the bureau and the mailers ---------------------------------------------------------


@dataclass(frozen=True)
class BatchFiles:
    batch: str
    orders: int
    personalization: Path | None
    """None for a batch of activation orders' PIN letters (nothing for a bureau)."""
    letters: dict[str, Path]


@dataclass(frozen=True)
class ExportReport:
    bureau: str
    batches: list[BatchFiles]
    """The bureau's batches (personalization file, and the PIN letters of their cards)."""
    activation_letters: list[BatchFiles] = field(default_factory=list)
    """The PIN letters of activation orders whose card took its blob on the customer's
    computer: to the mailer only, never to a bureau."""

    @property
    def orders(self) -> int:
        return sum(b.orders for b in self.batches)

    @property
    def letters_after_activation(self) -> int:
        return sum(b.orders for b in self.activation_letters)


def new_batch_id(sequence: int = 1, prefix: str = "B") -> str:
    """B<time>-<n>-<random>: batches of one export sort in the order they were made (prefix
    A for the letters of activation orders)."""
    stamp = dt.datetime.now(dt.UTC).strftime(f"{prefix}%Y%m%dT%H%M%S")
    return f"{stamp}-{sequence:03d}-{secrets.token_hex(3).upper()}"


def personalization_path(out_dir: Path, batch: str) -> Path:
    return out_dir / f"personalization-{batch}.p7m"


def letters_path(out_dir: Path, batch: str, mailer: str) -> Path:
    return out_dir / f"pin-letters-{batch}-{mailer}.p7m"


def export_batches(
    issuer: IssuerParty,
    bureau_name: str | None,
    out_dir: Path,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    limit: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> ExportReport:
    """Every sealed bureau order, in batches of `batch_size`: one personalization file per
    batch for the bureau and one PIN-letter file per batch and mailer. A batch's orders move
    to sent_to_bureau only after its files are on disk; an interrupted export writes the
    batches it had started again (same orders, fresh files) before taking new ones.

    Activation orders never go to a bureau (their blob went to the customer's computer); once
    the card took it (`personalized`), their PIN letters go to the mailers, in batches of
    their own, each letter once."""
    prepare_dir(out_dir, what="the export folder", fix="give another --out-dir", mode=0o750)
    bureau = issuer.peers.one(Role.BUREAU, bureau_name)
    records = issuer.records
    done: list[BatchFiles] = []
    letters_only: list[BatchFiles] = []
    exported = 0
    for pending in xr.batches(records, xr.BATCH_WRITING):
        if pending.bureau is None:
            letters_only.append(
                _write_batch(issuer, None, pending.batch_id, pending.orders, out_dir)
            )
            continue
        if pending.bureau != bureau.name:
            continue
        done.append(_write_batch(issuer, bureau, pending.batch_id, pending.orders, out_dir))
        exported += pending.orders
        if progress is not None:
            progress(exported)
    while limit is None or exported < limit:
        size = batch_size if limit is None else min(batch_size, limit - exported)
        batch_id = new_batch_id(len(done) + 1)
        count = xr.reserve_batch(records, batch_id, bureau.name, size)
        if count == 0:
            break
        done.append(_write_batch(issuer, bureau, batch_id, count, out_dir))
        exported += count
        if progress is not None:
            progress(exported)
    while True:
        batch_id = new_batch_id(len(letters_only) + 1, prefix="A")
        count = xr.reserve_batch(records, batch_id, None, batch_size)
        if count == 0:
            break
        letters_only.append(_write_batch(issuer, None, batch_id, count, out_dir))
    return ExportReport(bureau.name, done, letters_only)


def _write_batch(
    issuer: IssuerParty, bureau: Peer | None, batch_id: str, count: int, out_dir: Path
) -> BatchFiles:
    """A batch's files: the PIN letters per mailer, and for a bureau the personalization file
    (written last: the bureau starts on it); then its orders move on."""
    records = issuer.records
    mailers = {m: issuer.peers.one(Role.MAILER, m) for m, _ in xr.batch_mailers(records, batch_id)}
    letters: dict[str, Path] = {}
    for mailer_id, letter_count in xr.batch_mailers(records, batch_id):
        path = letters_path(out_dir, batch_id, mailer_id)
        rows = (
            [serial_hex(r.serial), b64(r.pin_letter)]
            for r in xr.batch_rows(records, batch_id)
            if r.pin_letter is not None and r.mailer_id == mailer_id
        )
        write_party_file(
            path,
            issuer.identity,
            [mailers[mailer_id]],
            FileKind.PIN_LETTERS,
            batch_id,
            letter_count,
            rows,
        )
        letters[mailer_id] = path
    if bureau is None:
        names = {f"letters_{m}": p.name for m, p in letters.items()}
        return BatchFiles(batch_id, xr.finish_batch(records, batch_id, names), None, letters)
    path = personalization_path(out_dir, batch_id)
    write_party_file(
        path,
        issuer.identity,
        [bureau],
        FileKind.PERSONALIZATION,
        batch_id,
        count,
        (
            [
                str(r.position),
                serial_hex(r.serial),
                b64(r.sealed_blob),
                "hsm" if r.pin_source == "hsm" else "bureau",
                r.mailer_id or "",
                r.name,
                r.address,
            ]
            for r in xr.batch_rows(records, batch_id)
        ),
    )
    files = {"personalization": path.name, **{f"letters_{m}": p.name for m, p in letters.items()}}
    moved = xr.finish_batch(records, batch_id, files)
    return BatchFiles(batch_id, moved, path, letters)


# -- what comes back ------------------------------------------------------------------------------


@dataclass
class ApplyReport:
    """What a returning file did to the orders."""

    kind: str
    batch: str
    sender: str
    file_id: str
    rows: int
    counts: dict[str, int] = field(default_factory=dict)

    def count(self, what: str, n: int = 1) -> None:
        self.counts[what] = self.counts.get(what, 0) + n


@dataclass(frozen=True)
class _ReturnFile:
    """A returning file being applied inside its one transaction: what every applier uses."""

    records: Records
    tx: Tx
    header: FileHeader
    sender: Peer
    report: ApplyReport

    @property
    def file_id(self) -> str:
        return self.header.file_id

    def count(self, what: str) -> None:
        """One more card under `what` in the file's report."""
        self.report.count(what)

    def move(
        self, moves: Sequence[tuple[int, bytes, OrderState, OrderState, dict[str, Any]]]
    ) -> None:
        xr.move(self.records, self.tx, moves)

    def audit(self, action: str, rows: Sequence[tuple[int, bytes, dict[str, Any]]]) -> None:
        self.records.audit_rows_in(self.tx, action, rows)

    def add_events(self, kind: str, order_ids: Sequence[int]) -> None:
        """Note `kind` happened to these orders, by this file."""
        xr.add_events(self.tx, kind, self.file_id, order_ids)

    def chunks(
        self, rows: Iterator[list[str]], serial_column: int
    ) -> Iterator[tuple[list[list[str]], list[bytes], dict[bytes, xr.CardState]]]:
        """The rows a chunk at a time, with each row's card serial and the orders of these
        serials (one query a chunk, not one a card)."""
        for chunk in xr.chunked(rows):
            serials = [parse_serial(row[serial_column]) for row in chunk]
            yield chunk, serials, xr.orders_by_serial(self.tx, serials)


_OUTCOMES: Final = ("personalized", "already_personalized", "refused", "not_reached")
_PAST_PERSONALIZED: Final = frozenset(
    {OrderState.PERSONALIZED, OrderState.SHIPPED, OrderState.PIN_MAILED}
)


def _apply_results(file: _ReturnFile, rows: Iterator[list[str]]) -> None:
    """Bureau results: personalized (or already personalized) moves sent_to_bureau or failed
    to personalized (a later success repairs a failure); refused moves sent_to_bureau to
    failed; an order already personalized never moves back; not reached changes nothing."""
    for chunk in xr.chunked(rows):
        parsed = []
        for row in chunk:
            serial = parse_serial(row[0])
            outcome = row[1]
            if outcome not in _OUTCOMES:
                raise PartyFileContentError(f"card {row[0]}: unknown outcome {outcome!r}")
            user_key = bytes.fromhex(row[3]) if row[3] else None
            parsed.append((serial, outcome, row[2][:200], user_key))
        known = xr.orders_by_serial(file.tx, [p[0] for p in parsed])
        moves = []
        for serial, outcome, reason, user_key in parsed:
            card = known.get(serial)
            if card is None or card.bureau != file.sender.name:
                file.count("unknown")
                continue
            detail: dict[str, Any] = {"file_id": file.file_id, "outcome": outcome}
            if outcome in ("personalized", "already_personalized"):
                # PERSONALIZE answered 9000: the card is personalized even when the read of
                # its user key failed afterwards (empty); another key than ours is refused.
                if user_key is not None and user_key != card.user_public_key:
                    raise PartyFileContentError(
                        f"card {serial_hex(serial)} reports another user key than the one"
                        " sealed for it"
                    )
                detail["user_key_confirmed"] = user_key is not None
                if card.state in (OrderState.SENT_TO_BUREAU, OrderState.FAILED):
                    moves.append(
                        (card.order_id, serial, card.state, OrderState.PERSONALIZED, detail)
                    )
                    file.count("repaired" if card.state is OrderState.FAILED else "personalized")
                else:
                    file.count("already")
            elif outcome == "refused":
                if card.state is OrderState.SENT_TO_BUREAU:
                    moves.append(
                        (
                            card.order_id,
                            serial,
                            card.state,
                            OrderState.FAILED,
                            {**detail, "note": reason},
                        )
                    )
                    file.count("failed")
                else:
                    file.count("kept" if card.state in _PAST_PERSONALIZED else "already")
            else:
                file.count("not_reached")
        file.move(moves)


class ResultsFirstError(PartyFileContentError):
    """A shipping step (the bureau's shipping data, the shipper's confirmation) for a card
    whose batch's results the issuer has not taken in: the records say it is at the bureau."""


def _results_first(card: xr.CardState, serial: bytes, what: str) -> ResultsFirstError:
    batch = card.batch or "?"
    return ResultsFirstError(
        f"the bureau's results for batch {batch} were not taken in yet: take in"
        f" results-{batch}.p7m first (`sealcard issuer receive --file results-{batch}.p7m`),"
        f" then this file again (card {serial_hex(serial)} is {what} but its order is"
        " sent_to_bureau)"
    )


def waits_for_results(error: BaseException) -> bool:
    """Whether a refused file only came before its batch's results (taken in, it goes in)."""
    return isinstance(error, ResultsFirstError) or isinstance(error.__cause__, ResultsFirstError)


def _apply_shipping(file: _ReturnFile, rows: Iterator[list[str]]) -> None:
    for _chunk, serials, known in file.chunks(rows, serial_column=1):
        ids = []
        audit = []
        for serial in serials:
            card = known.get(serial)
            if card is None or card.bureau != file.sender.name:
                file.count("unknown")
                continue
            if card.state is OrderState.SENT_TO_BUREAU:
                raise _results_first(card, serial, "in the shipping data")
            if card.state not in _PAST_PERSONALIZED:
                raise PartyFileContentError(
                    f"card {serial_hex(serial)} is in the shipping data but not personalized"
                )
            ids.append(card.order_id)
            audit.append((card.order_id, serial, {"file_id": file.file_id}))
            file.count("handed_to_shipper")
        file.add_events("handed_to_shipper", ids)
        file.audit("order.handed_to_shipper", audit)


def _apply_shipped(file: _ReturnFile, rows: Iterator[list[str]]) -> None:
    for chunk, serials, known in file.chunks(rows, serial_column=0):
        mailed_early = xr.has_event(file.tx, "pin_mailed", [c.order_id for c in known.values()])
        shipped = []
        then_mailed = []
        for serial, row in zip(serials, chunk, strict=True):
            card = known.get(serial)
            if card is None:
                file.count("unknown")
                continue
            detail = {"file_id": file.file_id, "tracking": row[1][:64]}
            if card.state is OrderState.PERSONALIZED:
                shipped.append((card.order_id, serial, card.state, OrderState.SHIPPED, detail))
                file.count("shipped")
                if card.order_id in mailed_early:
                    then_mailed.append(
                        (card.order_id, serial, OrderState.SHIPPED, OrderState.PIN_MAILED, detail)
                    )
                    file.count("pin_mailed")
            elif card.state in (OrderState.SHIPPED, OrderState.PIN_MAILED):
                file.count("already")
            elif card.state is OrderState.SENT_TO_BUREAU:
                raise _results_first(card, serial, "shipped")
            else:
                raise PartyFileContentError(
                    f"card {serial_hex(serial)} is shipped but its order is {card.state.value}"
                )
        file.move(shipped)
        file.move(then_mailed)


def _apply_mailed(file: _ReturnFile, rows: Iterator[list[str]]) -> None:
    for chunk, serials, known in file.chunks(rows, serial_column=0):
        moves = []
        early = []
        for serial, row in zip(serials, chunk, strict=True):
            card = known.get(serial)
            if card is None:
                file.count("unknown")
                continue
            if row[1] != "mailed":
                file.count("not_mailed")
                why = {"file_id": file.file_id, "reason": row[2][:200]}
                file.audit("order.pin_not_mailed", [(card.order_id, serial, why)])
                continue
            detail = {"file_id": file.file_id}
            activated = card.channel == "activation" and card.state is OrderState.PERSONALIZED
            if card.state is OrderState.SHIPPED or activated:  # activation: nothing is shipped
                moves.append((card.order_id, serial, card.state, OrderState.PIN_MAILED, detail))
                file.count("pin_mailed")
            elif card.state is OrderState.PIN_MAILED:
                file.count("already")
            else:  # mailed before the card was shipped: recorded, applied when it ships
                early.append(card.order_id)
                file.audit("order.pin_mailed_before_shipping", [(card.order_id, serial, detail)])
                file.count("pin_mailed_before_shipping")
        file.move(moves)
        file.add_events("pin_mailed", early)


_APPLY: Final = {
    FileKind.RESULTS: _apply_results,
    FileKind.SHIPPING: _apply_shipping,
    FileKind.SHIP_CONFIRMATION: _apply_shipped,
    FileKind.MAIL_CONFIRMATION: _apply_mailed,
}


def receive_file(
    issuer: IssuerParty, path: Path, kinds: tuple[FileKind, ...] = RETURN_KINDS
) -> ApplyReport:
    """Apply one returning file (all of it in one transaction, or nothing)."""
    records = issuer.records
    with records.db.transaction() as tx:

        def consume(header: FileHeader, rows: Iterator[list[str]]) -> ApplyReport:
            sender = issuer.peers.find(header.sender)
            assert sender is not None
            report = ApplyReport(
                header.kind.value, header.batch, str(header.sender), header.file_id, header.count
            )
            _APPLY[header.kind](_ReturnFile(records, tx, header, sender, report), rows)
            return report

        received, report = read_party_file(
            path,
            issuer.identity,
            issuer.peers,
            list(kinds),
            consume,
            seen=lambda file_id: xr.file_seen(tx, file_id),
        )
        _record_file(tx, received.header)
        records.audit_rows_in(
            tx,
            f"file.{received.header.kind.value}",
            [(None, None, {"file_id": report.file_id, "batch": report.batch, **report.counts})],
        )
    return report
