"""`sealcard issuer serve`: the issuer's HTTPS API and operator console (registered on the
`issuer` group by issuer_cmd)."""

from __future__ import annotations

from pathlib import Path

import click

from sealcard.cli.common import ROOT_ENV
from sealcard.cli.issuer_common import home_option, log_level_option


@click.command(name="serve")
@home_option
@click.option(
    "--listen",
    default=None,
    metavar="HOST:PORT",
    help="Address to listen on [default: [api] listen of config.toml, 127.0.0.1:8443].",
)
@click.option(
    "--root",
    "provider_roots",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar=ROOT_ENV,
    show_envvar=True,
    help="A card provider's root certificate that activation trusts (repeat; added to "
    "[api] provider_roots; in the environment, several separated by ':').",
)
@click.option(
    "--no-hsm",
    is_flag=True,
    help="Run without the HSMs: accounts, intake and the console work; activation and "
    "issuer commands answer 503.",
)
@click.option(
    "--workers", type=click.IntRange(1, 64), default=8, show_default=True,
    help="Threads serving requests (each with its own database connection).",
)  # fmt: skip
@log_level_option
def serve_cmd(
    home: Path | None,
    listen: str | None,
    provider_roots: tuple[Path, ...],
    no_hsm: bool,
    workers: int,
    log_level: str,
) -> None:
    """Serve the HTTPS API (/v1, OpenAPI at /openapi.json) and the operator console
    (/console/) until Ctrl-C or SIGTERM.

    \b
    Needs `sealcard issuer init` (TLS certificate, [api] section) and, unless --no-hsm,
    the issuer HSM service (`sealcard issuer hsm serve`). Staff accounts come from
    `sealcard issuer operator add`, customers' from `sealcard issuer user import`.
    """
    from sealcard.issuer.api_config import ApiSettings, certificate_fingerprint
    from sealcard.web.server import serve

    def ready(settings: ApiSettings, host: str, port: int) -> None:
        shown = f"[{host}]" if ":" in host else host
        fingerprint = certificate_fingerprint(settings.tls_cert)
        click.echo(
            f"sealcard issuer API on https://{shown}:{port}/ (console /console/); TLS"
            f" certificate {settings.tls_cert} SHA-256 {fingerprint}",
            err=True,
        )

    serve(
        home,
        listen=listen,
        provider_roots=provider_roots,
        with_hsm=not no_hsm,
        workers=workers,
        log_level=log_level,
        ready=ready,
    )
