"""The `sim` job (developers): what `sealcard sim up` needs to put simulated cards behind pcscd."""

from __future__ import annotations

import os

from sealcard.doctor.model import Check, Job, Status
from sealcard.doctor.versions import find_program
from sealcard.sim.config import JAR_ENV, VPCD_DRIVER, default_jar


def check_sim() -> list[Check]:
    """Java, pcscd, the vpcd driver, the simulator jar, and root (pcscd and namespaces)."""
    checks: list[Check] = []
    for program, package in (("java", "openjdk-17-jre-headless"), ("pcscd", "pcscd")):
        found = find_program(program)
        checks.append(
            Check(Job.SIM, program, Status.OK, found)
            if found
            else Check(Job.SIM, program, Status.FAIL, "not installed", f"apt-get install {package}")
        )
    checks.append(
        Check(Job.SIM, "vpcd driver", Status.OK, str(VPCD_DRIVER))
        if VPCD_DRIVER.is_file()
        else Check(
            Job.SIM,
            "vpcd driver",
            Status.FAIL,
            f"{VPCD_DRIVER} is missing",
            "apt-get install vsmartcard-vpcd",
        )
    )
    jar = default_jar()
    checks.append(
        Check(Job.SIM, "simulator jar", Status.OK, str(jar))
        if jar.is_file()
        else Check(
            Job.SIM,
            "simulator jar",
            Status.FAIL,
            f"{jar} is missing",
            f"build it in the source tree: ant sim-jar (or set {JAR_ENV})",
        )
    )
    checks.append(
        Check(Job.SIM, "root", Status.OK, "running as root")
        if os.geteuid() == 0
        else Check(
            Job.SIM,
            "root",
            Status.FAIL,
            "sim up runs pcscd and network namespaces, which need root",
            "run it as root (sudo)",
        )
    )
    return checks
