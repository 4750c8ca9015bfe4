"""`sealcard doctor`: check this machine for a job and say how to fix what is missing."""

from __future__ import annotations

import textwrap
from pathlib import Path

import click

from sealcard.cli.common import JSON_HELP_ONE_OBJECT, emit, json_option
from sealcard.cli.issuer_common import home_option
from sealcard.cli.outcome import CliFail
from sealcard.doctor import Check, Job, Report, Status, default_jobs, run_checks

_WRAP = 100
_MARK = {Status.OK: "ok", Status.WARN: "warn", Status.FAIL: "FAIL", Status.SKIP: "skip"}


def _line(check: Check, width: int) -> str:
    name = f"{check.job.value}/{check.name}"
    indent = f"\n  {'':<5} {'':<{width}}  "
    text = f"  {_MARK[check.status]:<5} {name:<{width}}  " + indent.join(check.detail.splitlines())
    if check.fix and check.status in (Status.FAIL, Status.WARN):
        text += f"{indent}fix: {check.fix}"
    return text


def render(report: Report) -> str:
    """The report for a person: one line per check, its fix under it, then the versions."""
    width = max((len(f"{c.job.value}/{c.name}") for c in report.checks), default=0)
    lines = [f"sealcard doctor: checking for {', '.join(j.value for j in report.jobs)}"]
    lines += [_line(check, width) for check in report.checks]
    shown = [f"{name} {value or 'not installed'}" for name, value in report.versions.items()]
    lines += textwrap.wrap("versions: " + ", ".join(shown), _WRAP, subsequent_indent="  ")
    return "\n".join(lines)


@click.command(name="doctor")
@click.option(
    "--for",
    "jobs",
    multiple=True,
    type=click.Choice([job.value for job in Job]),
    help="The job this machine is for (repeatable): cards (pcscd, readers, cards: provider, "
    "bureau, card holder), issuer (issuer home, database, PKCS#11 tokens, issuer HSM "
    "service), sim (simulated cards). Default: cards, and issuer when an issuer home exists.",
)
@home_option
@json_option(JSON_HELP_ONE_OBJECT)
def doctor(jobs: tuple[str, ...], home: Path | None, as_json: bool) -> None:
    """Check this machine for the job at hand; say what is missing and how to fix it.

    \b
    Reads only: it writes no database row and no token object, tries no PIN (the issuer
    job opens the issuer-system token, as every issuer command does, to sign one ping to
    the issuer HSM service), and writes no file but the empty hsm/token-open.lock that
    any token user makes once in a home older than that lock (docs/hsm.md). Versions of
    sealcard, Python, its packages, pcscd, SoftHSM2, Java and OpenSSL are listed at the
    end.

    Exit code 0 when every check passes (warnings allowed), 1 when one fails.
    """
    wanted = tuple(Job(j) for j in jobs) or default_jobs(home)
    report = run_checks(wanted, home)
    if report.ok:
        emit(as_json, report.to_json(), render(report), sort_keys=True)
        return
    failed = ", ".join(f"{c.job.value}/{c.name}" for c in report.failed)
    if not as_json:
        click.echo(render(report))
    raise CliFail(
        f"{len(report.failed)} check(s) failed: {failed}",
        kind="CheckFailed",
        payload=report.to_json(),
    )
