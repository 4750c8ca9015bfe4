"""SoftHSM2-backed fixtures: one issuer home per test session, the issuer HSM service as a
real subprocess, the issuer-system token in this process."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hsm_helpers import ServiceProcess, softhsm_available

from sealcard.hsm.config import IssuerHsmSettings, load_settings
from sealcard.hsm.issuer_client import IssuerHsmClient
from sealcard.hsm.setup import setup_hsms
from sealcard.hsm.system_hsm import DeviceAuthKeys, RequestSigner
from sealcard.hsm.token import Token


@pytest.fixture(scope="session")
def hsm_home(service_dirs: Callable[[str], Path]) -> IssuerHsmSettings:
    if not softhsm_available():
        pytest.skip("SoftHSM2 is not installed")
    home = service_dirs("issuer-home") / "home"
    setup_hsms(home)
    return load_settings(home)


@pytest.fixture(scope="session")
def home_path(hsm_home: IssuerHsmSettings) -> Path:
    return hsm_home.socket_path.parent.parent


@pytest.fixture(scope="session")
def service(hsm_home: IssuerHsmSettings, home_path: Path) -> Iterator[ServiceProcess]:
    running = ServiceProcess(home_path, hsm_home.socket_path)
    yield running
    running.stop()


@pytest.fixture(scope="session")
def system_token(hsm_home: IssuerHsmSettings) -> Iterator[Token]:
    token = Token.open(hsm_home.system, pool_size=3)
    yield token
    token.close()


@pytest.fixture(scope="session")
def issuer_token(hsm_home: IssuerHsmSettings) -> Iterator[Token]:
    """The issuer token opened by the test (as a second application; SoftHSM allows it)."""
    token = Token.open(hsm_home.issuer, pool_size=1)
    yield token
    token.close()


@pytest.fixture(scope="session")
def signer(system_token: Token) -> RequestSigner:
    return RequestSigner(system_token)


@pytest.fixture(scope="session")
def auth_keys(system_token: Token) -> DeviceAuthKeys:
    return DeviceAuthKeys(system_token)


@pytest.fixture(scope="session")
def client(
    service: ServiceProcess, hsm_home: IssuerHsmSettings, signer: RequestSigner
) -> Iterator[IssuerHsmClient]:
    """Trust on first use (no anchor given): the issuer key of the first service-key reply."""
    with IssuerHsmClient(hsm_home.socket_path, signer) as c:
        yield c


@pytest.fixture(scope="session")
def openssl() -> str:
    path = shutil.which("openssl")
    if path is None:
        pytest.skip("openssl is not installed")
    return path
