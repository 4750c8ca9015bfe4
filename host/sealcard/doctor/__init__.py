"""`sealcard doctor`: is this machine ready for the job at hand, and if not, what to do.

Each job has its own checks (`cards`, `issuer`, `sim`); every check reads and never changes
anything. The CLI (cli/doctor_cmd.py) prints the report and picks the exit code.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from sealcard.doctor.model import Check, Job, Report, Status
from sealcard.doctor.versions import versions

__all__ = ["Check", "Job", "Report", "Status", "default_jobs", "run_checks"]


def default_jobs(issuer_home: Path | None) -> tuple[Job, ...]:
    """Without --for: cards, plus the issuer when an issuer home is configured here."""
    from sealcard.doctor.issuer import issuer_home_present

    return (Job.CARDS, Job.ISSUER) if issuer_home_present(issuer_home) else (Job.CARDS,)


def run_checks(jobs: Iterable[Job], issuer_home: Path | None = None) -> Report:
    """Run the checks of every job (each job once, in Job order) and collect the versions."""
    wanted = tuple(job for job in Job if job in set(jobs))
    checks: list[Check] = []
    for job in wanted:
        if job is Job.CARDS:
            from sealcard.doctor.cards import check_cards

            checks += check_cards()
        elif job is Job.ISSUER:
            from sealcard.doctor.issuer import check_issuer

            checks += check_issuer(issuer_home)
        else:
            from sealcard.doctor.sim import check_sim

            checks += check_sim()
    return Report(wanted, tuple(checks), versions())
