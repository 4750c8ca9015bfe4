"""`sealcard issuer serve`: the web app under uvicorn, over TLS, from an issuer home."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path

from sealcard import __version__, service_log
from sealcard.errors import ConfigurationError
from sealcard.issuer.api_config import ApiSettings, load_api_settings, parse_listen
from sealcard.issuer.config import load_home
from sealcard.issuer.migrations import require_current
from sealcard.issuer.records import Records
from sealcard.metrics_http import MetricsServer, parse_metrics_address
from sealcard.parties.issuer.context import Policy
from sealcard.parties.issuer.home import open_hsm_roles
from sealcard.parties.provider import load_root_certificate
from sealcard.web.services import DEFAULT_WORKERS, AppServices

log = logging.getLogger("sealcard.web")


def serve(
    home_dir: Path | None,
    *,
    listen: str | None = None,
    provider_roots: Sequence[Path] = (),
    with_hsm: bool = True,
    workers: int = DEFAULT_WORKERS,
    log_level: str = "info",
    log_format: str | None = None,
    metrics_address: str | None = None,
    ready: Callable[[ApiSettings, str, int], None] | None = None,
) -> None:
    """Run the HTTPS API and console until SIGINT/SIGTERM. `ready(settings, host, port)` is
    called once everything is open, before the socket is bound. The log goes to stderr as
    JSON lines or text (:mod:`sealcard.service_log`), one line per request
    (:mod:`sealcard.web.observe`); with `metrics_address`, Prometheus metrics are served
    there (:mod:`sealcard.web.metrics`)."""
    import uvicorn

    from sealcard.web.app import create_app

    if metrics_address is not None:
        parse_metrics_address(metrics_address)  # refused before anything opens
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
        if metrics_address is not None:
            from sealcard.web.metrics import ApiMetrics  # prometheus-client, only when asked

            services.metrics = ApiMetrics()
        if with_hsm:
            roles = stack.enter_context(open_hsm_roles(home, sessions=workers + 1))
            services.auth_keys = roles.auth_keys
            services.hsm = roles.hsm
            services.issuer_public_key = roles.issuer_public_key
        service_log.configure(log_level, log_format)
        if ready is not None:
            ready(settings, host, port)
        exporter: MetricsServer | None = None
        if services.metrics is not None and metrics_address is not None:
            exporter = MetricsServer.start(metrics_address, services.metrics.registry)
            stack.callback(exporter.close)
        log.info(
            "issuer API starting on %s:%d (metrics %s)",
            host,
            port,
            f"on http://{exporter.address}/metrics" if exporter else "off",
            extra={
                "event": "service.start",
                "listen": f"{host}:{port}",
                "metrics": exporter.address if exporter else None,
                "version": __version__,
            },
        )
        uvicorn.run(
            create_app(services),
            host=host,
            port=port,
            ssl_certfile=str(settings.tls_cert),
            ssl_keyfile=str(settings.tls_key),
            log_level=log_level,
            log_config=None,  # the handler service_log set up, not uvicorn's own format
            server_header=False,
            access_log=False,  # sealcard.web.observe logs each request (no path values)
        )
