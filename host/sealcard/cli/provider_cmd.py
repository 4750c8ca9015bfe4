"""`sealcard provider`: the card provider's root CA and step A on blank cards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from sealcard.cli.card_cmd import cert_json, key_json, status_json
from sealcard.cli.common import (
    Decorator,
    emit,
    extended_option,
    fd_option,
    json_option,
    open_session,
    pick_reader,
    pick_readers,
    read_fd,
    reader_option,
    readers_option,
    require_terminal,
)
from sealcard.cli.outcome import CliFail
from sealcard.cli.party_cmd import (
    batch_id_option,
    certificate_file_out_option,
    home_option_for,
    output_folder,
    to_issuer_option,
)
from sealcard.files import remove_if_empty
from sealcard.formats.roles import Role
from sealcard.parties.provider_names import PASSPHRASE_ENV, ROOT_CERT_FILE, ROOT_KEY_FILE

if TYPE_CHECKING:
    from sealcard.parties.platform_check import PlatformReport

# The CA's cryptography, the card session and pyscard are imported inside the commands, so
# that `sealcard provider --help` starts without them.

CA_DIR_ENV = "SEALCARD_PROVIDER_CA_DIR"
DEFAULT_CA_DIR = "provider-ca"

passphrase_fd_option = fd_option(
    "--passphrase-fd",
    f"Read the CA passphrase from file descriptor N (first line; e.g. `--passphrase-fd 3 "
    f"3<file`). Otherwise ${PASSPHRASE_ENV}, otherwise a prompt. Never give it on the "
    "command line.",
)


def read_passphrase(fd: int | None, *, confirm: bool) -> bytes:
    """The passphrase from a file descriptor, the environment, or a hidden prompt."""
    from sealcard.parties.provider import passphrase_from_env

    if fd is not None:
        return read_fd(fd, "the CA passphrase").split(b"\n", 1)[0].rstrip(b"\r")
    from_env = passphrase_from_env()
    if from_env is not None:
        return from_env
    require_terminal(
        "provider CA passphrase",
        f"give it on a file descriptor (--passphrase-fd N, e.g. `--passphrase-fd 3 3<file`) "
        f"or in ${PASSPHRASE_ENV}",
    )
    text: str = click.prompt(
        "provider CA passphrase", hide_input=True, confirmation_prompt=confirm, err=True
    )
    return text.encode("utf-8")


ca_dir_option = click.option(
    "--ca-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_CA_DIR,
    show_default=True,
    envvar=CA_DIR_ENV,
    show_envvar=True,
    help="Provider CA directory (from `sealcard provider ca init`).",
)


@click.group(name="provider")
def provider() -> None:
    """Card provider: root CA and card initialization (step A)."""


@provider.group(name="ca")
def ca_group() -> None:
    """The provider's root CA that certifies every card it initializes."""


@ca_group.command(name="init")
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help=f"Directory for {ROOT_CERT_FILE} (public) and {ROOT_KEY_FILE} (encrypted, mode 0600).",
)
@click.option("--name", default="sealcard provider root CA", show_default=True, help="Root CN.")
@click.option("--organisation", default="sealcard card provider", show_default=True, help="Root O.")
@passphrase_fd_option
@json_option()
def ca_init(
    out_dir: Path, name: str, organisation: str, passphrase_fd: int | None, as_json: bool
) -> None:
    """Create the provider root CA: an EC P-256 key and its self-signed certificate.

    The private key is written only as encrypted PKCS#8 under a passphrase
    (from --passphrase-fd, $SEALCARD_PROVIDER_PASSPHRASE, or a prompt; at
    least 8 characters). Existing files are never overwritten. Publish
    root.pem: anyone checks a card's genuineness with it
    (`sealcard card info --root root.pem`).

    Example: sealcard provider ca init --out-dir provider-ca
    """
    from cryptography.hazmat.primitives.serialization import Encoding

    from sealcard.parties.provider import ProviderCA, check_passphrase

    created = ProviderCA.prepare_directory(out_dir)
    try:
        passphrase = read_passphrase(passphrase_fd, confirm=True)
        check_passphrase(passphrase)
        ca = ProviderCA.create(out_dir, passphrase, common_name=name, organisation=organisation)
    except BaseException:
        if created:
            remove_if_empty(out_dir)
        raise
    cert_path = out_dir / ROOT_CERT_FILE
    if as_json:
        payload = {
            "ok": True,
            "root_certificate": str(cert_path),
            "root_key": str(out_dir / ROOT_KEY_FILE),
            "subject": ca.certificate.subject.rfc4514_string(),
            "not_after": ca.certificate.not_valid_after_utc.isoformat(),
            "pem": ca.certificate.public_bytes(Encoding.PEM).decode("ascii"),
        }
        click.echo(json.dumps(payload, indent=2))
    else:
        click.echo(f"root CA created: {ca.certificate.subject.rfc4514_string()}")
        click.echo(f"  certificate  {cert_path} (publish it)")
        click.echo(f"  private key  {out_dir / ROOT_KEY_FILE} (encrypted, keep it safe)")


@provider.command(name="init-card")
@reader_option()
@click.option(
    "--issuer-key",
    "issuer_key_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The issuer's public key, EC P-256 (PEM, DER or a raw 65-byte point), injected into "
    "the card.",
)
@click.option(
    "--serial",
    metavar="HEX",
    help="Card serial, 4 to 16 bytes as hex (e.g. 00A1B2C3D4E5F607). Default: the card draws "
    "8 random bytes.",
)
@ca_dir_option
@click.option(
    "--device-cert/--no-device-cert",
    default=True,
    show_default=True,
    help="Root-sign the device key (X.509 leaf).",
)
@click.option(
    "--signed-device-key/--no-signed-device-key",
    default=True,
    show_default=True,
    help="Have the card sign its device key with its issuer authentication key.",
)
@extended_option()
@passphrase_fd_option
@json_option()
def init_card(
    reader: str | None,
    issuer_key_path: Path,
    serial: str | None,
    ca_dir: Path,
    device_cert: bool,
    signed_device_key: bool,
    extended: bool,
    passphrase_fd: int | None,
    as_json: bool,
) -> None:
    """Initialize one blank card (step A) and close its initialization.

    On the card: generate the device key pair (RSA-2048) and the issuer
    authentication key pair (EC P-256), set the serial, inject the issuer's
    public key, store the root-signed X.509 certificates of both public keys
    (serial in the subject) and the card-signed device key, check the whole
    chain against the root, then close: nothing of this can change afterwards.

    Example: sealcard provider init-card --reader "Virtual PCD 00 00"
    --issuer-key issuer.pub.pem --serial 0000000000000001
    """
    from sealcard.crypto.keys import load_p256_public_key
    from sealcard.parties.provider import ProviderCA, initialize_card

    serial_bytes = None
    if serial is not None:
        try:
            serial_bytes = bytes.fromhex(serial)
        except ValueError as exc:
            raise click.BadParameter("not hex", param_hint="--serial") from exc
    try:
        issuer_key = load_p256_public_key(issuer_key_path.read_bytes())
    except (ValueError, TypeError) as exc:
        raise click.BadParameter(
            f"{issuer_key_path}: {exc}; give the issuer's public key "
            "(sealcard issuer hsm issuer-key --out FILE)",
            param_hint="--issuer-key",
        ) from None
    ProviderCA.check_directory(ca_dir)  # before anyone is asked for its passphrase
    ca = ProviderCA.load(ca_dir, read_passphrase(passphrase_fd, confirm=False))
    with open_session(reader, extended=extended) as (name, session):
        result = initialize_card(
            session,
            ca,
            issuer_key,
            serial_bytes,
            certify_device_key=device_cert,
            sign_device_key=signed_device_key,
        )
    traffic = result.traffic
    if as_json:
        payload: dict[str, Any] = {"ok": True, "reader": name, **status_json(result.status)}
        payload.update(
            {
                "device_public_key": key_json(result.device_public_key),
                "issuer_auth_public_key": key_json(result.issuer_auth_public_key),
                "device_key_certificate": cert_json(result.device_key_certificate),
                "issuer_auth_key_certificate": cert_json(result.issuer_auth_key_certificate),
                "signed_device_key": None
                if result.signed_device_key is None
                else result.signed_device_key.hex(),
                "keygen_seconds": round(result.keygen_seconds, 4),
                "total_seconds": round(result.total_seconds, 4),
                "apdus": traffic.apdus,
                "bytes_sent": traffic.bytes_sent,
                "bytes_received": traffic.bytes_received,
            }
        )
        click.echo(json.dumps(payload, indent=2))
    else:
        click.echo(f"card in {name!r} initialized and closed")
        click.echo(f"  serial  {result.serial.hex().upper()}")
        click.echo(f"  state   {result.status.state_name}")
        click.echo(
            f"  took    {result.total_seconds:.3f} s (key generation {result.keygen_seconds:.3f} s)"
        )
        click.echo(
            f"  traffic {traffic.apdus} APDUs, {traffic.bytes_sent} bytes out, "
            f"{traffic.bytes_received} bytes in"
        )


@provider.command(name="check-platform")
@reader_option()
@json_option()
def check_platform_cmd(reader: str | None, as_json: bool) -> None:
    """Say whether the card in a reader can host the sealcard applet (read-only).

    Reads the GlobalPlatform card manager (chip and OS from the CPLC,
    GlobalPlatform version, free persistent and transient memory by GET DATA
    FF21) and, when the applet is installed, its capability bits (probed at
    install) and DO_PLATFORM (JavaCard version, free memory as the applet sees
    it). Writes nothing, generates no key, tries no PIN.

    Exit code 0 when the card can host the applet or not everything could be
    checked yet (install the CAP and run again), 1 when a required check
    failed. docs/real-cards.md explains every line.

    Example: sealcard provider check-platform --reader "Identiv uTrust 3700 F 00 00"
    """
    from sealcard.parties.platform_check import Verdict, check_platform
    from sealcard.transport.pcsc import PcscConnection

    name = pick_reader(reader)
    with PcscConnection.open(name, exclusive=False) as connection:
        report = check_platform(connection, atr=connection.atr)
    payload = {"reader": name, **platform_json(report)}
    if report.can_host is not False:
        emit(as_json, payload, platform_text(name, report), indent=2)
        return
    if not as_json:
        click.echo(platform_text(name, report))
    failed = [c.name for c in report.checks if c.required and c.verdict == Verdict.FAIL]
    raise CliFail(
        f"the card in {name!r} can NOT host the sealcard applet: failed {', '.join(failed)} "
        "(docs/real-cards.md explains each check)",
        kind="CannotHost",
        payload=payload,
    )


def platform_json(report: PlatformReport) -> dict[str, Any]:
    """The report as JSON fields (None where the card did not say)."""
    manager = report.card_manager
    cplc = manager.cplc
    platform = report.applet_platform
    return {
        "can_host": report.can_host,
        "atr": None if report.atr is None else report.atr.hex().upper(),
        "card_manager": {
            "aid": None if manager.isd_aid is None else manager.isd_aid.hex().upper(),
            "globalplatform_version": manager.gp_version,
            "secure_channels": list(manager.secure_channels),
            "cplc": None
            if cplc is None
            else {
                "ic_fabricator": cplc.ic_fabricator,
                "ic_type": cplc.ic_type,
                "os_id": cplc.os_id,
                "os_release_date": cplc.os_release_date,
                "os_release_level": cplc.os_release_level,
            },
            "applications": manager.applications,
            "free_persistent_bytes": manager.free_persistent,
            "free_transient_bytes": manager.free_transient,
            "unanswered": manager.unanswered,
        },
        "applet": None
        if report.applet_status is None
        else {
            **status_json(report.applet_status),
            "javacard_version": None if platform is None else platform.javacard_version,
            "free_persistent_bytes": None if platform is None else platform.free_persistent,
            "free_transient_reset_bytes": None
            if platform is None
            else platform.free_transient_reset,
            "free_transient_deselect_bytes": None
            if platform is None
            else platform.free_transient_deselect,
        },
        "checks": [
            {"name": c.name, "verdict": c.verdict.value, "required": c.required, "detail": c.detail}
            for c in report.checks
        ],
    }


_VERDICT_MARK = {"ok": "ok", "fail": "FAIL", "warn": "warn", "unknown": "?"}
"""How platform_text marks each `Verdict` (by value: platform_check is imported when used)."""


def platform_text(name: str, report: PlatformReport) -> str:
    """The report for a person: what was read, then one line per check."""
    fields = platform_json(report)
    manager = fields["card_manager"]
    applet = fields["applet"]
    lines = [f"reader: {name}"]
    if fields["atr"]:
        lines.append(f"  {'ATR':<28} {fields['atr']}")
    if manager["aid"] is None:
        lines.append(f"  {'card manager':<28} not answering SELECT (no GlobalPlatform ISD)")
    else:
        lines.append(
            f"  {'card manager':<28} {manager['aid']}, GlobalPlatform "
            f"{manager['globalplatform_version'] or '?'}"
            + (f", {', '.join(manager['secure_channels'])}" if manager["secure_channels"] else "")
        )
        cplc = manager["cplc"]
        if cplc:
            lines.append(
                f"  {'chip (CPLC)':<28} fabricator {cplc['ic_fabricator']}, IC type "
                f"{cplc['ic_type']}, OS {cplc['os_id']} release "
                f"{cplc['os_release_date']} level {cplc['os_release_level']}"
            )
        for key, label in (
            ("free_persistent_bytes", "free persistent (FF21)"),
            ("free_transient_bytes", "free transient (FF21)"),
        ):
            value = manager[key]
            lines.append(f"  {label:<28} {'not reported' if value is None else f'{value} B'}")
    if applet is None:
        lines.append(f"  {'sealcard applet':<28} not installed")
    else:
        lines.append(
            f"  {'sealcard applet':<28} version {applet['version']}, state {applet['state']}"
        )
        lines.append(f"  {'JavaCard (getVersion)':<28} {applet['javacard_version'] or '?'}")
        if applet["free_persistent_bytes"] is not None:
            lines.append(
                f"  {'free, as the applet sees it':<28} persistent "
                f"{applet['free_persistent_bytes']} B, RAM (reset) "
                f"{applet['free_transient_reset_bytes']} B, RAM (deselect) "
                f"{applet['free_transient_deselect_bytes']} B (32767 = or more)"
            )
        lines.append(f"  {'capabilities':<28} {', '.join(applet['capabilities']) or 'none'}")
    lines.append("checks:")
    for check in report.checks:
        need = "required" if check.required else "optional"
        lines.append(
            f"  [{_VERDICT_MARK[check.verdict.value]:>4}] {check.name:<26} ({need}) {check.detail}"
        )
    verdict = {
        True: "can host the sealcard applet",
        False: "can NOT host the sealcard applet",
        None: "not decided: see the checks marked ?",
    }[report.can_host]
    lines.append(f"verdict: {verdict}")
    return "\n".join(lines)


# -- sealed files: keys, parties, a whole pack ------------------------------------------------


def _provider_keys_export(home_option: Decorator) -> click.Command:
    @click.command(name="export")
    @home_option
    @ca_dir_option
    @certificate_file_out_option(
        "The certificate file to write (party certificate and root CA certificate)."
    )
    @json_option()
    def keys_export(home: Path | None, ca_dir: Path, out: Path, as_json: bool) -> None:
        """Write the provider's certificate file for the issuer: the party certificate and the
        root CA certificate that every card's attestation chains to."""
        from sealcard.cli.party_cmd import bundle_json, certificate_out
        from sealcard.parties.party_home import export_bundle, load_home
        from sealcard.parties.provider import ProviderCA, load_root_certificate

        certificate_out(out)
        party_home = load_home(Role.PROVIDER, home)
        ProviderCA.check_directory(ca_dir)
        bundle = export_bundle(party_home, load_root_certificate(ca_dir / ROOT_CERT_FILE))
        out.write_bytes(bundle.pem())
        emit(as_json, {"out": str(out), **bundle_json(bundle)}, f"certificate file {out}")

    return keys_export


def _register_party_groups() -> None:
    from sealcard.cli.party_cmd import make_keys_group, make_party_group

    provider.add_command(
        make_keys_group(Role.PROVIDER, (Role.ISSUER,), extra_export=_provider_keys_export)
    )
    provider.add_command(make_party_group(Role.PROVIDER, (Role.ISSUER,)))


_register_party_groups()


@provider.command(name="init-pack")
@home_option_for(Role.PROVIDER)
@batch_id_option("--pack", "pack", "Pack id, e.g. PACK-2026-0001 (letters, digits, . _ -).")
@readers_option(
    "A reader to use: its name, a unique part of it, or its number (repeat). Default: every "
    "reader holding a card, all at once."
)
@to_issuer_option("The registered issuer the pack goes to (default: the only one).")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The pack file (default: HOME/outbox/device-init-PACK.p7m).",
)
@ca_dir_option
@extended_option()
@passphrase_fd_option
@json_option()
def init_pack(
    home: Path | None,
    pack: str,
    readers: tuple[str, ...],
    issuer_name: str | None,
    out: Path | None,
    ca_dir: Path,
    extended: bool,
    passphrase_fd: int | None,
    as_json: bool,
) -> None:
    """Initialize every blank card present, all readers at once, and write the pack file.

    Step A on each blank card (keys made on the card, serial, the issuer's key from its
    certificate file, root-signed certificates, closed), then the device initialization
    data file for the issuer: CSV in CMS, signed by the provider, encrypted to the issuer.
    Run it again with the same --pack to add the cards of another round (or after an
    interruption): cards already in the pack are kept, and the file is written anew with
    all of them. Exit code 1 when a reader failed (its card is not in the pack).

    \b
    Example:
      sealcard provider init-pack --pack PACK-1 --out device-init-PACK-1.p7m
    """
    from sealcard.files import check_new_file
    from sealcard.parties.party_home import find_peer, load_home, open_party
    from sealcard.parties.provider import ProviderCA
    from sealcard.parties.provider_pack import ReaderOutcome
    from sealcard.parties.provider_pack import init_pack as run_init_pack

    provider_home = load_home(Role.PROVIDER, home)
    target = out or provider_home.root / "outbox" / f"device-init-{pack}.p7m"
    ProviderCA.check_directory(ca_dir)  # before anyone is asked for its passphrase
    with output_folder(target.parent, what="the folder of the pack file", option="--out"):
        check_new_file(target, what="the pack file", fix="give another --out")
        find_peer(provider_home, Role.ISSUER, issuer_name)  # before the token is opened
        with open_party(Role.PROVIDER, home) as party:
            issuer = party.peer(Role.ISSUER, issuer_name)
            names = pick_readers(readers)
            ca = ProviderCA.load(ca_dir, read_passphrase(passphrase_fd, confirm=False))

            def show(outcome: ReaderOutcome) -> None:
                if not as_json:
                    serial = outcome.serial.hex().upper() if outcome.serial else "?"
                    click.echo(
                        f"{outcome.outcome:20} {serial:18} {outcome.reader}: {outcome.reason}",
                        err=True,
                    )

            report = run_init_pack(
                party, ca, pack, names, issuer, target, extended=extended, on_card=show
            )
    failed = [o for o in report.outcomes if o.outcome == "failed"]
    payload = {
        "pack": report.pack,
        "file": str(report.path),
        "file_id": report.file_id,
        "cards": report.cards,
        "issuer": issuer.name,
        "readers": [
            {
                "reader": o.reader,
                "serial": o.serial.hex().upper() if o.serial else None,
                "outcome": o.outcome,
                "reason": o.reason,
                "seconds": round(o.seconds, 3),
            }
            for o in report.outcomes
        ],
    }
    summary = f"pack {report.pack}: {report.cards} cards in {report.path} (for {issuer.name})"
    if failed:
        raise CliFail(
            f"{summary}; {len(failed)} reader(s) failed (each reason is above): their cards are"
            " not in the pack; run again with the same --pack to add them",
            kind="CardsFailed",
            payload=payload,
        )
    emit(as_json, payload, summary)
