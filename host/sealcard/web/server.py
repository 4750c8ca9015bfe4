"""`sealcard issuer serve`: the web app under uvicorn, over TLS, from an issuer home."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path

from sealcard.errors import ConfigurationError
from sealcard.issuer.api_config import ApiSettings, load_api_settings, parse_listen
from sealcard.issuer.config import load_home
from sealcard.issuer.migrations import require_current
from sealcard.issuer.records import Records
from sealcard.parties.issuer.context import Policy
from sealcard.parties.issuer.home import open_hsm_roles
from sealcard.parties.provider import load_root_certificate
from sealcard.web.services import DEFAULT_WORKERS, AppServices


def serve(
    home_dir: Path | None,
    *,
    listen: str | None = None,
    provider_roots: Sequence[Path] = (),
    with_hsm: bool = True,
    workers: int = DEFAULT_WORKERS,
    log_level: str = "info",
    ready: Callable[[ApiSettings, str, int], None] | None = None,
) -> None:
    """Run the HTTPS API and console until SIGINT/SIGTERM. `ready(settings, host, port)` is
    called once everything is open, before the socket is bound."""
    import uvicorn

    from sealcard.web.app import create_app

    home = load_home(home_dir)
    settings = load_api_settings(home.root, home.raw_config())
    host, port = parse_listen(listen) if listen else (settings.host, settings.port)
    for path in (settings.tls_cert, settings.tls_key):
        if not path.is_file():
            raise ConfigurationError(f"missing TLS file {path}: run `sealcard issuer init`")
    roots = [load_root_certificate(p) for p in (*settings.provider_roots, *provider_roots)]
    records = Records.open(home.database_url, "api")  # the schema must be current to start
    try:
        require_current(records.db)
    finally:
        records.close()
    policy = Policy(
        session_minutes=settings.session_minutes,
        account_failures=settings.account_failures,
        address_failures=settings.address_failures,
        failure_window_minutes=settings.failure_window_minutes,
    )
    with ExitStack() as stack:
        services = AppServices(
            open_records=lambda actor: Records.open(home.database_url, actor),
            provider_roots=roots,
            policy=policy,
            workers=workers,
        )
        if with_hsm:
            roles = stack.enter_context(open_hsm_roles(home, sessions=workers + 1))
            services.auth_keys = roles.auth_keys
            services.hsm = roles.hsm
            services.issuer_public_key = roles.issuer_public_key
        if ready is not None:
            ready(settings, host, port)
        logging.getLogger("sealcard").setLevel(log_level.upper())
        uvicorn.run(
            create_app(services),
            host=host,
            port=port,
            ssl_certfile=str(settings.tls_cert),
            ssl_keyfile=str(settings.tls_key),
            log_level=log_level,
            server_header=False,
            access_log=True,
        )
