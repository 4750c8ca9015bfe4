"""The operator console: server-rendered HTML pages for bank staff, from the same app as the
API and over the same use cases (`sealcard.parties.issuer`).

Sign-in sets a session cookie (HttpOnly, Secure, SameSite=Strict, path /console). Every form
carries a CSRF token derived from the session (`access.csrf_token`) and every POST also has
to come from this origin; roles are checked by the use cases on the server, whatever the page
showed. Pages: overview, customers, a customer, orders, an order (with its actions: cancel,
mark lost, order a replacement, approve a PIN reset), stock by pack, a card's history, the
audit log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Cookie, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from sealcard.errors import SealcardError
from sealcard.issuer.accounts import STAFF_ROLES, Account, Role
from sealcard.issuer.lifecycle import TRANSITIONS, OrderState
from sealcard.issuer.records import Order
from sealcard.parties.issuer import access, cardlife, views
from sealcard.parties.issuer.context import IssuerContext, NotSignedInError, RefusedError
from sealcard.web.errors import status_of
from sealcard.web.services import AppServices

COOKIE = "sealcard_session"
HERE = Path(__file__).resolve().parent
_templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    auto_reload=False,
)
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self';"
    " frame-ancestors 'none'; base-uri 'none'"
)
FLASH = {
    "cancelled": "The order was cancelled.",
    "lost": "The card is marked lost; if it turns up it is terminated.",
    "replacement": "A replacement was ordered with the same derivation element.",
    "pin-reset": "A PIN reset is approved for 24 hours.",
    "signed-out": "You are signed out.",
}


Token = Annotated[str | None, Cookie(alias=COOKIE)]


def _page(name: str, http_status: int = 200, **values: Any) -> HTMLResponse:
    html = _templates.get_template(name).render(**values)
    return HTMLResponse(html, http_status, headers={"Content-Security-Policy": CSP})


def _same_origin(request: Request) -> bool:
    """A POST must come from a page of this site (Origin, else Referer, must name it)."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source:
        return False
    host = request.headers.get("host", "")
    return urlsplit(source).netloc == host


def build_console(services: AppServices) -> APIRouter:
    """The /console routes."""
    router = APIRouter(prefix="/console", include_in_schema=False)

    def who(token: str | None) -> tuple[IssuerContext, Account]:
        ctx = services.context()
        account = access.session_account(ctx, token)
        access.require(account, *STAFF_ROLES)
        return ctx.acting_as(account.actor), account

    def render(
        name: str, token: str | None, account: Account | None, **values: Any
    ) -> HTMLResponse:
        csrf = access.csrf_token(token) if token else ""
        return _page(name, account=account, csrf=csrf, **values)

    def guarded(token: str | None, build: Any, title: str) -> Response:
        """Run a page: to the sign-in page without a session, a problem page on refusal."""
        try:
            ctx, account = who(token)
            return build(ctx, account)  # type: ignore[no-any-return]
        except NotSignedInError:
            return RedirectResponse("/console/login", status_code=303)
        except SealcardError as exc:
            return _page(
                "problem.html", status_of(exc), title="Not possible", message=str(exc),
                account=None, csrf="",
            )  # fmt: skip

    @router.get("/static/console.css")
    def css() -> FileResponse:
        return FileResponse(HERE / "static" / "console.css", media_type="text/css")

    @router.get("/login")
    def login_page(done: str | None = None) -> HTMLResponse:
        return _page(
            "login.html", title="Sign in", account=None, csrf="", flash=FLASH.get(done or "")
        )

    @router.post("/login")
    def login(
        request: Request,
        login: Annotated[str, Form(max_length=64)],
        password: Annotated[str, Form(max_length=256)],
    ) -> Response:
        if not _same_origin(request):
            return _page("problem.html", 403, title="Refused", message="cross-site form",
                         account=None, csrf="")  # fmt: skip
        address = request.client.host if request.client else "unknown"
        ctx = services.context()
        try:
            grant = access.sign_in(ctx, login, password, address)
            if grant.account.role not in STAFF_ROLES:
                access.sign_out(ctx, grant.token)  # no console session for a customer
                access.require(grant.account, *STAFF_ROLES)
        except RefusedError as exc:
            return _page("login.html", status_of(exc), title="Sign in", account=None, csrf="",
                         error=str(exc))  # fmt: skip
        response = RedirectResponse("/console/", status_code=303)
        response.set_cookie(
            COOKIE, grant.token, httponly=True, secure=services.secure_cookies,
            samesite="strict", path="/console",
            max_age=services.policy.session_minutes * 60,
        )  # fmt: skip
        return response

    @router.post("/logout")
    def logout(
        request: Request, csrf: Annotated[str, Form(max_length=128)], token: Token = None
    ) -> Response:
        if token and _same_origin(request) and access.csrf_ok(token, csrf):
            access.sign_out(services.context(), token)
        response = RedirectResponse("/console/login?done=signed-out", status_code=303)
        response.delete_cookie(COOKIE, path="/console")
        return response

    @router.get("/")
    def overview(token: Token = None, done: str | None = None) -> Response:
        def build(ctx: IssuerContext, account: Account) -> Response:
            return render(
                "overview.html", token, account, title="Overview",
                status=views.overview(ctx, account), packs=views.stock(ctx, account),
                flash=FLASH.get(done or ""),
            )  # fmt: skip

        return guarded(token, build, "Overview")

    @router.get("/customers")
    def customers(token: Token = None, q: str = "", offset: int = 0) -> Response:
        def build(ctx: IssuerContext, account: Account) -> Response:
            users = views.customers(ctx, account, q, offset)
            return render("customers.html", token, account, title="Customers", users=users,
                          q=q, offset=max(0, offset))  # fmt: skip

        return guarded(token, build, "Customers")

    @router.get("/customers/{user_id}")
    def customer(user_id: int, token: Token = None) -> Response:
        def build(ctx: IssuerContext, account: Account) -> Response:
            page = views.customer(ctx, account, user_id)
            return render("customer.html", token, account, title=page.user.name, page=page)

        return guarded(token, build, "Customer")

    @router.get("/orders")
    def orders(token: Token = None, state: str = "") -> Response:
        def build(ctx: IssuerContext, account: Account) -> Response:
            access.require(account, *STAFF_ROLES)
            found = views.orders(ctx, state or None, limit=500)
            return render("orders.html", token, account, title="Orders", orders=found,
                          state=state, states=[s.value for s in OrderState])  # fmt: skip

        return guarded(token, build, "Orders")

    @router.get("/orders/{order_id}")
    def order(order_id: int, token: Token = None, done: str | None = None) -> Response:
        def build(ctx: IssuerContext, account: Account) -> Response:
            found = views.order(ctx, account, order_id)
            entries = ctx.records.audit_entries(order_id=order_id, limit=500)
            return render(
                "order.html", token, account, title=f"Order {order_id}", order=found,
                entries=entries, can_act=account.role is Role.OPERATOR,
                next_states={s.value for s in TRANSITIONS[found.state]},
                flash=FLASH.get(done or ""),
            )  # fmt: skip

        return guarded(token, build, "Order")

    @router.get("/stock")
    def stock(token: Token = None) -> Response:
        def build(ctx: IssuerContext, account: Account) -> Response:
            return render("stock.html", token, account, title="Stock",
                          packs=views.stock(ctx, account))  # fmt: skip

        return guarded(token, build, "Stock")

    @router.get("/cards/{serial}")
    def card(serial: str, token: Token = None) -> Response:
        def build(ctx: IssuerContext, account: Account) -> Response:
            try:
                raw = bytes.fromhex(serial)
            except ValueError:
                raw = b""
            history = views.card_history(ctx, account, raw)
            return render("card.html", token, account, title=f"Card {serial}", history=history)

        return guarded(token, build, "Card")

    @router.get("/audit")
    def audit(token: Token = None, before: int | None = None) -> Response:
        def build(ctx: IssuerContext, account: Account) -> Response:
            entries = views.audit_log(ctx, account, before)
            return render("audit.html", token, account, title="Audit log", entries=entries)

        return guarded(token, build, "Audit log")

    def action(
        request: Request, order_id: int, csrf: str, token: str | None, done: str, run: Any
    ) -> Response:
        """A form's POST: same origin, CSRF token of this session, then the use case (which
        checks the role)."""
        if not token or not _same_origin(request) or not access.csrf_ok(token, csrf):
            return _page("problem.html", 403, title="Refused",
                         message="the form is stale or came from another site: reload the page",
                         account=None, csrf="")  # fmt: skip

        def build(ctx: IssuerContext, account: Account) -> Response:
            result = run(ctx, account)
            shown = result.id if isinstance(result, Order) and result.id != order_id else order_id
            return RedirectResponse(f"/console/orders/{shown}?done={quote(done)}", status_code=303)

        return guarded(token, build, "Action")

    @router.post("/orders/{order_id}/cancel")
    def cancel(
        request: Request, order_id: int, csrf: Annotated[str, Form(max_length=128)],
        note: Annotated[str, Form(max_length=200)] = "", token: Token = None,
    ) -> Response:  # fmt: skip
        return action(request, order_id, csrf, token, "cancelled",
                      lambda c, a: cardlife.cancel_order(c, a, order_id, note))  # fmt: skip

    @router.post("/orders/{order_id}/lost")
    def lost(
        request: Request, order_id: int, csrf: Annotated[str, Form(max_length=128)],
        note: Annotated[str, Form(max_length=200)] = "", token: Token = None,
    ) -> Response:  # fmt: skip
        return action(request, order_id, csrf, token, "lost",
                      lambda c, a: cardlife.report_lost(c, a, order_id, note))  # fmt: skip

    @router.post("/orders/{order_id}/replacement")
    def replacement(
        request: Request, order_id: int, csrf: Annotated[str, Form(max_length=128)],
        channel: Annotated[str, Form(max_length=16)] = "bureau",
        pin_source: Annotated[str, Form(max_length=8)] = "hsm",
        mailer: Annotated[str, Form(max_length=64)] = "", token: Token = None,
    ) -> Response:  # fmt: skip
        def run(c: IssuerContext, a: Account) -> Order:  # shows the new order
            return cardlife.order_replacement(
                c, a, order_id, channel=channel, pin_source=pin_source, mailer_id=mailer or None
            )

        return action(request, order_id, csrf, token, "replacement", run)

    @router.post("/orders/{order_id}/pin-reset")
    def pin_reset(
        request: Request, order_id: int, csrf: Annotated[str, Form(max_length=128)],
        token: Token = None,
    ) -> Response:  # fmt: skip
        return action(request, order_id, csrf, token, "pin-reset",
                      lambda c, a: cardlife.approve_pin_reset(c, a, order_id))  # fmt: skip

    return router
