"""The operator console in a real browser: Debian's chromium, headless, driven by playwright
(never `playwright install`), against `sealcard issuer serve` over TLS as a subprocess.

Every page is visited and screenshotted; each screenshot is checked (a PNG of the viewport's
size that is not blank) and kept in the test's folder (SEALCARD_SCREENSHOT_DIR keeps them
elsewhere). The operator's actions (approve a PIN reset, mark lost, order a replacement,
cancel) change the records and appear in the audit log under the operator's name; an auditor
sees no action and a forged action is refused by the server; a form without its CSRF token
or from another origin is refused; a customer cannot use the console."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from software_hsm import SoftwareDeviceAuthKeys, SoftwareIssuerHsm

from sealcard.issuer.accounts import Role
from sealcard.issuer.api_config import init_api
from sealcard.issuer.batch import seal_orders
from sealcard.issuer.config import init_home
from sealcard.issuer.db import Database
from sealcard.issuer.fake import import_fake_pack
from sealcard.issuer.lifecycle import OrderState
from sealcard.issuer.migrations import apply_migrations
from sealcard.issuer.records import Records
from sealcard.parties.issuer.access import add_staff
from sealcard.parties.issuer.context import IssuerContext
from sealcard.parties.issuer.intake import import_customers_csv

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
VIEWPORT = {"width": 1200, "height": 900}
OPERATOR = ("olivia", "operator password 1")
AUDITOR = ("arthur", "auditor password 1")


def check_screenshot(path: Path, width: int, height: int) -> None:
    """A PNG of width x height whose pixels are not all alike (a page was drawn)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    w, h = struct.unpack(">II", data[16:24])
    assert (w, h) == (width, height), f"{path} is {w}x{h}"
    chunks, pos = [], 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if kind == b"IDAT":
            chunks.append(data[pos + 8 : pos + 8 + length])
        pos += 12 + length
    pixels = zlib.decompress(b"".join(chunks))
    assert len(set(pixels[::97])) > 16, f"{path} looks blank"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    pytest.importorskip("playwright")
    root = tmp_path_factory.mktemp("console") / "home"
    home, _ = init_home(root)
    init_api(root)
    db = Database(home.database_url)
    apply_migrations(db)
    records = Records(db, "setup")
    records.initialize()
    records.record_mailers(["post"])  # as `issuer hsm mailer add` records it
    ctx = IssuerContext(records)
    add_staff(ctx, OPERATOR[0], Role.OPERATOR, OPERATOR[1])
    add_staff(ctx, AUDITOR[0], Role.AUDITOR, AUDITOR[1])
    intake = import_customers_csv(
        ctx,
        "customer_ref,name,address\nC1,Ada Lovelace,12 St James's Sq\nC2,Bob Byron,2 Main St\n"
        "C3,Cy Young,3 Main St\n",
    )
    ids = {c.customer_ref: c.user_id for c in intake.credentials}
    import_fake_pack(records, 4, "PACK-2026-A", rsa_pool=1)
    personalized = records.request_orders(ids["C1"], pin_source="none")[0].id
    records.request_orders(ids["C2"], pin_source="hsm", mailer_id="post")
    waiting = records.request_orders(ids["C3"], pin_source="none", channel="activation")[0].id
    seal_orders(records, SoftwareDeviceAuthKeys(), SoftwareIssuerHsm(bytes(32)))
    records.advance_order(personalized, OrderState.SENT_TO_BUREAU)
    records.advance_order(personalized, OrderState.PERSONALIZED)
    card = records.get_order(personalized).card_serial
    assert card is not None
    db.close()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "sealcard.cli.main", "issuer", "serve", "--home", str(root),
         "--no-hsm", "--listen", f"127.0.0.1:{port}", "--workers", "2", "--log-level",
         "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    url = f"https://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        try:
            httpx.get(f"{url}/v1/health", verify=False)
            break
        except httpx.HTTPError:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    shots = Path(os.environ.get("SEALCARD_SCREENSHOT_DIR") or tmp_path_factory.mktemp("shots"))
    shots.mkdir(parents=True, exist_ok=True)
    yield {
        "url": url, "home": root, "db": home.database_url, "personalized": personalized,
        "waiting": waiting, "card": card.hex().upper(), "shots": shots,
        "customer": (intake.credentials[0].login, intake.credentials[0].password),
    }  # fmt: skip
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def browser(server: dict[str, Any]) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield chromium
        chromium.close()


def _context(browser: Any) -> Any:
    return browser.new_context(ignore_https_errors=True, viewport=VIEWPORT)


def _shot(page: Any, server: dict[str, Any], name: str) -> None:
    path = server["shots"] / f"{name}.png"
    page.screenshot(path=str(path))
    check_screenshot(path, VIEWPORT["width"], VIEWPORT["height"])


def _sign_in(page: Any, server: dict[str, Any], login: str, password: str) -> None:
    page.goto(f"{server['url']}/console/login")
    page.fill("#login", login)
    page.fill("#password", password)
    page.click("button[type=submit]")


def _state(server: dict[str, Any], order_id: int) -> str:
    records = Records.open(server["db"], "test")
    try:
        return records.get_order(order_id).state.value
    finally:
        records.close()


def test_operator_pages_and_actions(browser: Any, server: dict[str, Any]) -> None:
    context = _context(browser)
    page = context.new_page()
    page.goto(f"{server['url']}/console/")
    assert page.url.endswith("/console/login")  # no session: to the sign-in page
    _shot(page, server, "01-login")
    _sign_in(page, server, OPERATOR[0], "wrong password")
    assert "wrong login or password" in page.inner_text("[role=alert]")
    _sign_in(page, server, *OPERATOR)
    assert page.url.endswith("/console/")
    assert "Orders by state" in page.content() and "PACK-2026-A" in page.content()
    cookie = next(c for c in context.cookies() if c["name"] == "sealcard_session")
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
    _shot(page, server, "02-overview")

    page.click("text=Customers")
    page.fill("input[name=q]", "ada")
    page.click("text=Search")
    assert "Ada Lovelace" in page.content() and "Bob Byron" not in page.content()
    _shot(page, server, "03-customers")
    page.click("table a >> nth=0")
    assert page.url.endswith("/console/customers/1")
    assert "12 St James" in page.content() and "personalized" in page.content()
    _shot(page, server, "04-customer")

    page.goto(f"{server['url']}/console/orders?state=personalized")
    assert page.locator("table tr").count() == 2  # header and the one personalized order
    _shot(page, server, "05-orders")

    order = server["personalized"]
    page.goto(f"{server['url']}/console/orders/{order}")
    _shot(page, server, "06-order")
    page.click("#reset-pin")
    assert "PIN reset is approved" in page.inner_text("[role=status]")
    page.fill("input[aria-label='lost note']", "stolen on the train")
    page.click("#mark-lost")
    assert "marked lost" in page.inner_text("[role=status]")
    assert _state(server, order) == "lost"
    _shot(page, server, "07-order-lost")
    page.select_option("select[name=channel]", "activation")
    page.select_option("select[name=pin_source]", "none")
    page.click("#replace")
    assert "replacement was ordered" in page.inner_text("[role=status]")
    assert f">{order}</a>" in page.inner_html("table")  # the new order names the one it replaces
    _shot(page, server, "08-order-replaced")

    page.goto(f"{server['url']}/console/orders")
    rows = page.inner_text("table")
    assert "lost" in rows and "cancelled" not in rows
    new_order = max(int(t) for t in page.locator("table tr td:first-child a").all_inner_texts())
    records = Records.open(server["db"], "test")
    try:
        replacement = records.get_order(new_order)
        old = records.get_order(order)
        assert replacement.replaces_order_id == order
        assert replacement.derivation_index == old.derivation_index  # the same user key
    finally:
        records.close()

    page.goto(f"{server['url']}/console/orders/{server['waiting']}")
    page.click("#cancel")
    assert _state(server, server["waiting"]) == "cancelled"

    page.goto(f"{server['url']}/console/stock")
    assert "PACK-2026-A" in page.content()
    _shot(page, server, "09-stock")
    page.goto(f"{server['url']}/console/cards/{server['card']}")
    history = page.inner_text("main")
    assert "order.card_assigned" in history and "order.lost" in history
    _shot(page, server, "10-card")
    page.goto(f"{server['url']}/console/audit")
    audit = page.inner_text("table")
    assert "operator:olivia" in audit and "order.lost" in audit and "order.cancelled" in audit
    assert "card.pin_reset_approved" in audit
    _shot(page, server, "11-audit")

    # a form without its CSRF token, or from another origin, changes nothing
    forged = context.request.post(
        f"{server['url']}/console/orders/{new_order}/cancel", form={"csrf": "x"},
        headers={"Origin": server["url"]},
    )  # fmt: skip
    assert forged.status == 403
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    cross = context.request.post(
        f"{server['url']}/console/orders/{new_order}/cancel", form={"csrf": csrf},
        headers={"Origin": "https://evil.example"},
    )  # fmt: skip
    assert cross.status == 403
    assert _state(server, new_order) == "requested"
    page.click("text=Sign out")
    assert page.url.endswith("/console/login?done=signed-out")
    context.close()


def test_auditor_reads_but_cannot_act(browser: Any, server: dict[str, Any]) -> None:
    context = _context(browser)
    page = context.new_page()
    _sign_in(page, server, *AUDITOR)
    records = Records.open(server["db"], "test")
    try:
        target = records.request_orders(2, pin_source="none")[0].id
    finally:
        records.close()
    page.goto(f"{server['url']}/console/orders/{target}")
    assert page.locator("#cancel").count() == 0 and "Actions" not in page.inner_text("main")
    _shot(page, server, "12-auditor-order")
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    forged = context.request.post(
        f"{server['url']}/console/orders/{target}/cancel", form={"csrf": csrf},
        headers={"Origin": server["url"]},
    )  # fmt: skip
    assert forged.status == 403 and "operator role" in forged.text()
    assert _state(server, target) == "requested"
    context.close()


def test_customers_cannot_use_the_console(browser: Any, server: dict[str, Any]) -> None:
    context = _context(browser)
    page = context.new_page()
    _sign_in(page, server, *server["customer"])
    assert "operator or auditor role" in page.inner_text("[role=alert]")
    _shot(page, server, "13-customer-refused")
    assert not any(c["name"] == "sealcard_session" for c in context.cookies())
    context.close()


def test_every_page_was_screenshotted(server: dict[str, Any]) -> None:
    shots = sorted(p.stem for p in server["shots"].glob("*.png"))
    assert len(shots) == 13, shots  # the page tests above ran first and checked each one
