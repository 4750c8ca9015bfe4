"""`issuer party add` for a mailer: its letter key goes to the issuer HSM and its name joins the
records' mailers (schema 5), so orders may name it; a name or certificate registered with
another certificate is refused before the HSM hears of it (the HSM would otherwise encrypt PIN
letters to the newcomer's key). The HSM is a recording stand-in: only what it is told counts."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from soft_party import SoftPartyKey

from sealcard.formats.party_cert import PartyBundle, make_letter_certificate
from sealcard.formats.party_csv import Role
from sealcard.issuer.config import init_home, load_home
from sealcard.issuer.db import Database
from sealcard.issuer.errors import DuplicateRecordError, RecordNotFoundError
from sealcard.issuer.migrations import apply_migrations
from sealcard.issuer.records import Records
from sealcard.parties.issuer_exchange import add_party

LETTER_KEY = rsa.generate_private_key(65537, 2048)  # one for the module: RSA is slow to make


def mailer_file(folder: Path, name: str) -> Path:
    mailer = SoftPartyKey(Role.MAILER, name)
    letter = make_letter_certificate(LETTER_KEY.public_key(), mailer.certificate, mailer.sign)
    path = folder / f"{name}-{mailer.certificate.serial_number}.pem"
    path.write_bytes(PartyBundle(mailer.certificate, Role.MAILER, name, letter).pem())
    return path


class RecordingHsm:
    """Stands in for the issuer HSM's `register-mailer`: keeps what it was told."""

    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPublicKey] = {}

    def register_mailer(self, mailer_id: str, key: rsa.RSAPublicKey) -> list[str]:
        self.keys[mailer_id] = key
        return sorted(self.keys)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    issuer_home, _ = init_home(tmp_path / "home")
    db = Database(issuer_home.database_url)
    apply_migrations(db)
    records = Records(db, "tester")
    records.initialize(issuer_home.derivation_base)
    db.close()
    return issuer_home.root


def open_records(home: Path) -> Records:
    return Records(Database(load_home(home).database_url), "tester")


def test_a_registered_mailer_is_one_orders_may_name(home: Path, tmp_path: Path) -> None:
    records = open_records(home)
    user = records.add_user("Ada", "1 Main St")
    with pytest.raises(
        RecordNotFoundError,
        match=r"no mailer 'post': register it with `sealcard issuer party add --role mailer",
    ):
        records.request_orders(user.id, mailer_id="post")

    hsm = RecordingHsm()
    bundle, added = add_party(home, mailer_file(tmp_path, "post"), Role.MAILER, hsm.register_mailer)
    assert added and bundle.name == "post"
    assert list(hsm.keys) == ["post"]
    assert records.mailers() == ["post"]
    (order,) = records.request_orders(user.id, mailer_id="post")
    assert order.mailer_id == "post"


def test_another_certificate_under_a_mailers_name_never_reaches_the_hsm(
    home: Path, tmp_path: Path
) -> None:
    hsm = RecordingHsm()
    first = mailer_file(tmp_path, "post")
    add_party(home, first, Role.MAILER, hsm.register_mailer)
    registered = hsm.keys["post"]

    told: list[str] = []

    def must_not_be_told(mailer_id: str, key: rsa.RSAPublicKey) -> list[str]:
        told.append(mailer_id)
        return hsm.register_mailer(mailer_id, key)

    with pytest.raises(DuplicateRecordError, match="already registered with another certificate"):
        add_party(home, mailer_file(tmp_path, "post"), Role.MAILER, must_not_be_told)
    assert told == [] and hsm.keys["post"] is registered
    # the same file again is no news, and tells the HSM the same key again (harmless)
    assert add_party(home, first, Role.MAILER, hsm.register_mailer)[1] is False
