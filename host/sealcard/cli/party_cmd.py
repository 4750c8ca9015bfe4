"""`keys` and `party` subgroups for the provider, bureau, mailer and shipper groups.

Each party makes its key pair once (`keys init`), hands its certificate file to the parties
it works with, and registers theirs (`party add`). The issuer has its own (issuer_party_cmd).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from sealcard.cli.common import Decorator, emit, json_option
from sealcard.formats.roles import Role
from sealcard.parties.party_names import home_env

if TYPE_CHECKING:
    from sealcard.formats.party_cert import PartyBundle


def home_option_for(role: Role) -> Decorator:
    """`--home DIR`: this party's home folder (parameter `home`), default $SEALCARD_<ROLE>_HOME."""
    return click.option(
        "--home",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        envvar=home_env(role),
        show_envvar=True,
        help=f"The {role.value}'s home folder (default: ./{role.value}-home).",
    )


def to_issuer_option(help_text: str) -> Decorator:
    """`--to-issuer NAME`: the registered issuer a file goes to (parameter `issuer_name`)."""
    return click.option("--to-issuer", "issuer_name", default=None, metavar="NAME", help=help_text)


def party_file_option(help_text: str) -> Decorator:
    """`--file FILE`: the sealed party file the command reads (parameter `party_file`)."""
    return click.option(
        "--file",
        "party_file",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        required=True,
        help=help_text,
    )


def certificate_file_out_option(help_text: str = "The certificate file to write.") -> Decorator:
    """`--out FILE` of `keys export`: where this party's certificate file goes (parameter
    `out`)."""
    return click.option(
        "--out",
        type=click.Path(dir_okay=False, path_type=Path),
        required=True,
        help=help_text,
    )


def peer_role_option(roles: Sequence[Role], dest: str) -> Decorator:
    """`--role` of `party add`: the role of the party being registered (parameter `dest`)."""
    return click.option(
        "--role",
        dest,
        type=click.Choice([r.value for r in roles]),
        required=True,
        help="The other party's role (must match its certificate).",
    )


def peer_certificate_option(help_text: str) -> Decorator:
    """`--cert FILE` of `party add`: the certificate file another party handed over
    (parameter `cert_file`)."""
    return click.option(
        "--cert",
        "cert_file",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        required=True,
        help=help_text,
    )


def party_out_dir_option() -> Decorator:
    """`--out-dir DIR`: where the files a party command writes go (parameter `out_dir`)."""
    return click.option(
        "--out-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Where the outputs go (default: HOME/outbox; made if missing).",
    )


@contextmanager
def output_folder(
    out_dir: Path, *, what: str = "the output folder", option: str = "--out-dir"
) -> Iterator[Path]:
    """The folder a command writes into, made if needed and checked before any work; made
    here and still empty when the command fails, it is removed again."""
    from sealcard.files import prepare_dir, remove_if_empty

    created = prepare_dir(out_dir, what=what, fix=f"give another {option}", mode=0o750)
    try:
        yield out_dir
    except BaseException:
        if created:
            remove_if_empty(out_dir)
        raise


def certificate_out(out: Path | None) -> None:
    """Check a certificate file to write (--out) before the keys are made."""
    if out is not None:
        from sealcard.files import check_new_file

        check_new_file(out, what="the certificate file", fix="give another --out")


def _party_name(value: str) -> str:
    from sealcard.formats.party_csv import check_party_name  # when parsed, not at --help

    return check_party_name(value)


def _batch_id(value: str) -> str:
    from sealcard.formats.party_csv import check_batch_id  # when parsed, not at --help

    return check_batch_id(value)


def _checked(check: Callable[[str], str]) -> Callable[[click.Context, click.Parameter, str], str]:
    def callback(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
        if value is None:
            return value
        try:
            return check(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None

    return callback


def party_name_option(help_text: str) -> Decorator:
    """`--name`: a party name as files and certificates carry it (checked: usage error)."""
    return click.option("--name", required=True, callback=_checked(_party_name), help=help_text)


def batch_id_option(name: str, dest: str, help_text: str) -> Decorator:
    """A pack or batch id option (checked: usage error)."""
    return click.option(name, dest, required=True, callback=_checked(_batch_id), help=help_text)


def bundle_json(bundle: PartyBundle) -> dict[str, Any]:
    return {
        "role": bundle.role.value,
        "name": bundle.name,
        "fingerprint": bundle.fingerprint,
        "subject": bundle.party.subject.rfc4514_string(),
        "extra": None if bundle.extra is None else bundle.extra.subject.rfc4514_string(),
    }


def make_keys_group(
    role: Role,
    peers: tuple[Role, ...],
    extra_export: Callable[[Decorator], click.Command] | None = None,
) -> click.Group:
    """`<role> keys init` and `<role> keys export`."""
    home_option = home_option_for(role)

    @click.group(name="keys")
    def keys() -> None:
        """This party's key pair for sealed files (in its PKCS#11 token)."""

    keys.help = (
        f"The {role.value}'s key pair for sealed files, in its own PKCS#11 token (SoftHSM2 by"
        " default): it signs the files the "
        f"{role.value} sends and opens the files sent to it."
    )

    @keys.command(name="init")
    @home_option
    @party_name_option(
        "This party's name, as others will know it (lower-case letters, digits, . _ -)."
    )
    @click.option(
        "--module",
        "module_path",
        default=None,
        envvar="SEALCARD_PKCS11_MODULE",
        show_envvar=True,
        help="PKCS#11 module for the new SoftHSM2 token (default: SoftHSM2's, found).",
    )
    @click.option(
        "--out",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Also write the certificate file to hand to the other parties here.",
    )
    @json_option()
    def keys_init(
        home: Path | None, name: str, module_path: str | None, out: Path | None, as_json: bool
    ) -> None:
        from sealcard.parties.party_home import init_keys

        if out is not None and extra_export is not None:
            raise click.UsageError(
                f"the {role.value}'s certificate file is written by `sealcard {role.value} keys"
                " export --out FILE` (it carries more than the key's certificate)"
            )
        certificate_out(out)
        made = init_keys(role, name, home, module_path=module_path)
        exported = None
        if out is not None:
            shutil.copyfile(made.home.identity_path, out)
            exported = str(out)
        emit(
            as_json,
            {
                "home": str(made.home.root),
                "certificate": str(made.home.identity_path),
                "exported": exported,
                **bundle_json(made.bundle),
            },
            f"{role.value} {name}: key pair made in token {made.home.token.token_label!r}\n"
            f"  certificate  {made.home.identity_path} (hand it to: "
            f"{', '.join(p.value for p in peers)})\n"
            f"  fingerprint  {made.bundle.fingerprint}",
        )

    keys_init.help = (
        f"Make the {role.value}'s key pair (EC P-256) in a new SoftHSM2 token in its home, and"
        " its self-signed certificate. Done once; the private key never leaves the token.\n\n"
        f"Example: sealcard {role.value} keys init --name acme --out {role.value}.pem"
    )

    if extra_export is None:

        @keys.command(name="export")
        @home_option
        @certificate_file_out_option()
        @json_option()
        def keys_export(home: Path | None, out: Path, as_json: bool) -> None:
            """Write this party's certificate file (for `party add` on the other side)."""
            from sealcard.parties.party_home import load_home, own_bundle

            certificate_out(out)
            bundle = own_bundle(load_home(role, home))
            out.write_bytes(bundle.pem())
            emit(as_json, {"out": str(out), **bundle_json(bundle)}, f"certificate file {out}")
    else:
        keys.add_command(extra_export(home_option))
    return keys


def make_party_group(role: Role, peers: tuple[Role, ...]) -> click.Group:
    """`<role> party add` and `<role> party list`."""
    home_option = home_option_for(role)

    @click.group(name="party")
    def party() -> None:
        """The parties this one exchanges files with (their certificates)."""

    @party.command(name="add")
    @home_option
    @peer_role_option(peers, "peer_role")
    @peer_certificate_option(
        "The certificate file the other party handed over (from its `keys init`)."
    )
    @json_option()
    def party_add(home: Path | None, peer_role: str, cert_file: Path, as_json: bool) -> None:
        """Register another party's certificate (once, exchanged out of band: compare the
        fingerprint with the one the other party reads out)."""
        from sealcard.parties.party_home import add_peer

        peer, added = add_peer(role, home, cert_file, Role(peer_role))
        emit(
            as_json,
            {"added": added, **bundle_json(peer.bundle)},
            f"{peer_role} {peer.name} {'registered' if added else 'was already registered'}"
            f" (fingerprint {peer.bundle.fingerprint})",
        )

    @party.command(name="list")
    @home_option
    @json_option()
    def party_list(home: Path | None, as_json: bool) -> None:
        """The registered parties."""
        from sealcard.parties.party_home import load_home

        peers_now = load_home(role, home).peers.all()
        lines = [f"{p.role.value:9} {p.name:24} {p.bundle.fingerprint}" for p in peers_now]
        emit(
            as_json,
            {"parties": [bundle_json(p.bundle) for p in peers_now]},
            "\n".join(lines) or "no parties registered",
        )

    return party
