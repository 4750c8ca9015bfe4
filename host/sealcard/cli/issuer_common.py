"""Options and helpers that the `sealcard issuer` command modules share.

`issuer_cmd` (the group, init, user, order, status, seal) and its sibling modules (hsm,
pack, the sealed files, card, ...) all take `--home` and `--json` and print sorted-key JSON
through the same helpers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

import click

from sealcard.cli.common import JSON_HELP_ONE_OBJECT, emit, json_option
from sealcard.issuer.config import HOME_ENV, IssuerHome, load_home

if TYPE_CHECKING:
    from sealcard.issuer.records import Records

# The records (database drivers, the audit chain, cryptography) and the HSM modules are
# imported by the commands that open them, so that `sealcard issuer ... --help` starts
# without them.

F = TypeVar("F", bound=Callable[..., Any])


def home_option(func: F) -> F:
    """`--home DIR`: the issuer home folder (parameter `home`)."""
    return click.option(
        "--home",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        envvar=HOME_ENV,
        show_envvar=True,
        help="Issuer home folder (default: ./issuer-home).",
    )(func)


issuer_json_option = json_option(JSON_HELP_ONE_OBJECT)

LOG_LEVELS: Final = ("debug", "info", "warning", "error", "critical")
LOG_LEVEL_ENV: Final = "SEALCARD_LOG_LEVEL"


def log_level_option(func: F) -> F:
    """`--log-level LEVEL` of a long-running service (parameter `log_level`, in lower case
    whatever case was given), default $SEALCARD_LOG_LEVEL, else info."""
    return click.option(
        "--log-level",
        type=click.Choice(LOG_LEVELS, case_sensitive=False),
        default="info",
        show_default=True,
        envvar=LOG_LEVEL_ENV,
        show_envvar=True,
        help="How much the service logs (requests, never their content, at any level).",
    )(func)


LOG_FORMAT_ENV: Final = "SEALCARD_LOG_FORMAT"  # sealcard.service_log's (not imported here)
METRICS_ENV: Final = "SEALCARD_METRICS"  # sealcard.metrics_http's


def log_format_option(func: F) -> F:
    """`--log-format json|text` of a long-running service (parameter `log_format`, None when
    not given: the service picks text on a terminal, JSON lines elsewhere)."""
    return click.option(
        "--log-format",
        type=click.Choice(("json", "text"), case_sensitive=False),
        default=None,
        envvar=LOG_FORMAT_ENV,
        show_envvar=True,
        help="json: one JSON object a line (time, level, event, request_id, outcome, "
        "duration_ms, ...; docs/operations.md); text: for a person. "
        "[default: text on a terminal, else json]",
    )(func)


def metrics_option(func: F) -> F:
    """`--metrics [HOST:]PORT` of a long-running service (parameter `metrics`, None: off)."""
    return click.option(
        "--metrics",
        default=None,
        metavar="[HOST:]PORT",
        envvar=METRICS_ENV,
        show_envvar=True,
        help="Serve Prometheus metrics at http://HOST:PORT/metrics (a port alone: 127.0.0.1; "
        "no TLS, no sign-in: keep it on loopback or a management network). [default: off]",
    )(func)


def issuer_emit(as_json: bool, payload: dict[str, Any], text: str) -> None:
    """A success of an issuer command: sorted-key JSON, or `text` for a person."""
    emit(as_json, payload, text, sort_keys=True)


def open_records(home_dir: Path | None) -> tuple[IssuerHome, Records]:
    """The issuer home and its records (database opened, actor from the config)."""
    from sealcard.issuer.records import Records

    home = load_home(home_dir)
    return home, Records.open(home.database_url, home.default_actor())


@contextmanager
def hsm_client(home: Path | None) -> Iterator[Any]:
    """A client of the running issuer HSM service, signing with the issuer-system token."""
    from sealcard.hsm.config import load_settings
    from sealcard.hsm.issuer_client import IssuerHsmClient
    from sealcard.hsm.system_hsm import RequestSigner
    from sealcard.hsm.token import Token

    issuer_home = load_home(home)
    settings = load_settings(issuer_home.root, issuer_home.raw_config())
    token = Token.open(settings.system)
    try:
        client = IssuerHsmClient.for_settings(settings, RequestSigner(token))
        try:
            yield client
        finally:
            client.close()
    finally:
        token.close()
