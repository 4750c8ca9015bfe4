"""The JSON API (``/v1``), described in its OpenAPI document (``/openapi.json``, docs/api.md).

Every handler authenticates (``Authorization: Bearer <token>``), calls one use case of
`sealcard.parties.issuer` and shapes its answer. Refusals are mapped to HTTP statuses in
`sealcard.web.errors`. Secrets travel only in request and response bodies, never in a URL.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from sealcard.formats.card_upload import CardUploadError, b64, card_from_wire, parse_serial
from sealcard.issuer.accounts import STAFF_ROLES, Account, Role
from sealcard.issuer.records import Order
from sealcard.parties.issuer import access, activation, cardlife, intake, views
from sealcard.parties.issuer.context import BadRequestError, RefusedError
from sealcard.web.errors import code_of
from sealcard.web.services import AppServices

MAX_IMPORT_BYTES = 32 * 1024 * 1024


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SignInBody(Strict):
    login: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class SessionOut(BaseModel):
    token: str
    expires_at: str
    role: str
    login: str


class PasswordBody(Strict):
    old_password: str = Field(min_length=1, max_length=256)
    new_password: str = Field(min_length=1, max_length=256)


class ChallengeBody(Strict):
    purpose: Literal["activation", "card-command"]


class ChallengeOut(BaseModel):
    challenge_id: str
    challenge: str
    expires_at: str


class ActivationBody(Strict):
    challenge_id: str = Field(min_length=1, max_length=64)
    card: dict[str, Any]
    signature: str = Field(min_length=1, max_length=200)


class ActivationOut(BaseModel):
    order_id: int
    serial: str
    blob: str
    pin: Literal["user", "mailed"]
    user_public_key: str


class ActivationReport(Strict):
    personalized: bool
    reason: str = Field(default="", max_length=200)


class NoteBody(Strict):
    note: str = Field(default="", max_length=200)


class ReplacementBody(Strict):
    channel: Literal["bureau", "activation"] = "bureau"
    pin_source: Literal["hsm", "none"] = "hsm"
    mailer: str | None = Field(default=None, max_length=64)


class CardCommandBody(Strict):
    challenge_id: str = Field(min_length=1, max_length=64)
    serial: str = Field(min_length=8, max_length=32)
    signature: str = Field(min_length=1, max_length=200)
    card_challenge: str = Field(min_length=1, max_length=64)
    command: Literal["check", "reset-pin", "terminate"]
    new_pin: str | None = Field(default=None, max_length=12)


class CardCommandOut(BaseModel):
    command: str | None
    signature: str | None
    reason: str


class CardCommandReport(Strict):
    serial: str = Field(min_length=8, max_length=32)
    command: Literal["reset-pin", "terminate"]
    done: bool
    reason: str = Field(default="", max_length=200)


class OrderOut(BaseModel):
    id: int
    user_id: int
    state: str
    channel: str
    pin_source: str
    mailer_id: str | None
    card_serial: str | None
    derivation_index: int | None
    replaces_order_id: int | None
    created_at: str
    updated_at: str
    held: bool = False  # the issuer HSM refused to seal it; an operator retries or cancels it
    failure_reason: str | None = None  # why it is held, or was cancelled


def order_out(order: Order) -> OrderOut:
    return OrderOut(
        id=order.id,
        user_id=order.user_id,
        state=order.state.value,
        channel=order.channel,
        pin_source=order.pin_source,
        mailer_id=order.mailer_id,
        card_serial=None if order.card_serial is None else order.card_serial.hex().upper(),
        derivation_index=order.derivation_index,
        replaces_order_id=order.replaces_order_id,
        created_at=order.created_at,
        updated_at=order.updated_at,
        held=order.held,
        failure_reason=order.failure_reason,
    )


def _unb64(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequestError(f"{what}: not base64") from None


def _bearer(authorization: str | None) -> str | None:
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def signed_in(request: Request, authorization: Annotated[str | None, Header()] = None) -> Account:
    """The account of the bearer token (or NotSignedInError)."""
    services: AppServices = request.app.state.services
    return access.session_account(services.context(), _bearer(authorization))


#: The signed-in account. FastAPI may run a dependency and its endpoint on different worker
#: threads, and a database connection belongs to one thread: each endpoint opens its context
#: itself (`services.context(account.actor)`), never takes one from a dependency.
Auth = Annotated[Account, Depends(signed_in)]


def build_router(services: AppServices) -> APIRouter:
    """The /v1 routes over `services`."""
    router = APIRouter(prefix="/v1")

    @router.get("/health", tags=["service"])
    def health() -> dict[str, Any]:
        """Whether the service runs (no sign-in needed)."""
        return {"ok": True, "hsm": services.hsm is not None}

    @router.post("/session", tags=["accounts"], response_model=SessionOut)
    def sign_in(body: SignInBody, request: Request) -> SessionOut:
        """Sign in; the token goes in ``Authorization: Bearer`` of every later call.

        429 with Retry-After after too many failures for this login or from this address."""
        address = request.client.host if request.client else "unknown"
        try:
            grant = access.sign_in(services.context(), body.login, body.password, address)
        except RefusedError as exc:
            services.sign_in_failed(code_of(exc))
            raise
        return SessionOut(
            token=grant.token,
            expires_at=grant.expires_at,
            role=grant.account.role.value,
            login=grant.account.login,
        )

    @router.delete("/session", tags=["accounts"])
    def sign_out(authorization: Annotated[str | None, Header()] = None) -> dict[str, Any]:
        """End this session."""
        token = _bearer(authorization)
        ctx = services.context()
        access.session_account(ctx, token)
        assert token is not None
        return {"ok": access.sign_out(ctx, token)}

    @router.get("/me", tags=["accounts"])
    def me(auth: Auth) -> dict[str, Any]:
        """The signed-in account; a customer also sees their orders."""
        account = auth
        ctx = services.context(account.actor)
        out: dict[str, Any] = {"login": account.login, "role": account.role.value}
        if account.user_id is not None:
            out["orders"] = [order_out(o) for o in ctx.records.orders_of_user(account.user_id)]
        return out

    @router.post("/me/password", tags=["accounts"])
    def change_password(body: PasswordBody, auth: Auth) -> dict[str, Any]:
        """Choose a new password (12+ characters); ends the account's sessions."""
        account = auth
        ctx = services.context(account.actor)
        access.change_password(ctx, account, body.old_password, body.new_password)
        return {"ok": True}

    @router.post("/customers/import", tags=["intake"])
    async def import_customers(request: Request, auth: Auth) -> dict[str, Any]:
        """Operators: a customers.csv as the body (``text/csv``), taken whole or not at all.
        The answer holds each new customer's first credentials: the only copy."""
        account = auth
        access.require(account, Role.OPERATOR)
        text = await _csv_body(request)
        # a connection belongs to one thread: open the context in the thread that uses it
        result = await run_in_threadpool(
            lambda: intake.import_customers_csv(services.context(account.actor), text)
        )
        return {
            "customers": result.users,
            "credentials": [
                {"customer_ref": c.customer_ref, "login": c.login, "password": c.password}
                for c in result.credentials
            ],
        }

    @router.post("/orders/import", tags=["intake"])
    async def import_orders(request: Request, auth: Auth) -> dict[str, Any]:
        """Operators: an orders.csv as the body (``text/csv``), taken whole or not at all."""
        account = auth
        access.require(account, Role.OPERATOR)
        text = await _csv_body(request)
        result = await run_in_threadpool(
            lambda: intake.import_orders_csv(services.context(account.actor), text)
        )
        return {"orders": len(result.orders), "first": result.orders[0], "last": result.orders[-1]}

    @router.get("/orders", tags=["orders"])
    def list_orders(auth: Auth, state: str | None = None, limit: int = 100) -> dict[str, Any]:
        """Staff: orders, oldest first (optionally in one state)."""
        account = auth
        ctx = services.context(account.actor)
        access.require(account, *STAFF_ROLES)
        return {"orders": [order_out(o) for o in views.orders(ctx, state, min(limit, 1000))]}

    @router.get("/orders/{order_id}", tags=["orders"])
    def get_order(order_id: int, auth: Auth) -> OrderOut:
        """One order (a customer sees only their own)."""
        account = auth
        ctx = services.context(account.actor)
        return order_out(views.order(ctx, account, order_id))

    @router.post("/orders/{order_id}/lost", tags=["card life"])
    def report_lost(order_id: int, body: NoteBody, auth: Auth) -> OrderOut:
        """The customer (own card) or an operator: the card is lost or stolen."""
        account = auth
        ctx = services.context(account.actor)
        return order_out(cardlife.report_lost(ctx, account, order_id, body.note))

    @router.post("/orders/{order_id}/cancel", tags=["card life"])
    def cancel(order_id: int, body: NoteBody, auth: Auth) -> OrderOut:
        """Operators: cancel an order not yet personalized."""
        account = auth
        ctx = services.context(account.actor)
        return order_out(cardlife.cancel_order(ctx, account, order_id, body.note))

    @router.post("/orders/{order_id}/replacement", tags=["card life"])
    def replacement(order_id: int, body: ReplacementBody, auth: Auth) -> OrderOut:
        """Operators: a new card for a lost or terminated one, same user key."""
        account = auth
        ctx = services.context(account.actor)
        order = cardlife.order_replacement(
            ctx, account, order_id, channel=body.channel, pin_source=body.pin_source,
            mailer_id=body.mailer,
        )  # fmt: skip
        return order_out(order)

    @router.post("/orders/{order_id}/pin-reset-approval", tags=["card life"])
    def approve_pin_reset(order_id: int, auth: Auth) -> dict[str, Any]:
        """Operators: allow one issuer PIN reset through the customer's computer."""
        account = auth
        ctx = services.context(account.actor)
        return {"expires_at": cardlife.approve_pin_reset(ctx, account, order_id)}

    @router.post("/challenges", tags=["cards"], response_model=ChallengeOut)
    def challenge(body: ChallengeBody, auth: Auth) -> ChallengeOut:
        """Customers: a single-use issuer challenge for the card to answer (2 minutes)."""
        account = auth
        ctx = services.context(account.actor)
        made = activation.new_challenge(ctx, account, body.purpose)
        return ChallengeOut(
            challenge_id=made.id, challenge=b64(made.challenge), expires_at=made.expires_at
        )

    @router.post("/activation", tags=["cards"], response_model=ActivationOut)
    def activate(body: ActivationBody, auth: Auth) -> ActivationOut:
        """Customers: the card's public data and its answer to the challenge; the sealed
        blob for that card. Refusals (422) carry a code: replayed, other_provider, altered,
        other_issuer, already_used."""
        account = auth
        ctx = services.context(account.actor)
        try:
            card = card_from_wire(body.card)
        except CardUploadError as exc:
            raise BadRequestError(str(exc)) from None
        signature = _unb64(body.signature, "signature")
        try:
            done = activation.activate(ctx, account, body.challenge_id, card, signature)
        except RefusedError as exc:
            services.activation_done(code_of(exc))
            raise
        services.activation_done("sealed_blob_sent")
        return ActivationOut(
            order_id=done.order_id,
            serial=done.serial.hex().upper(),
            blob=b64(done.blob),
            pin="mailed" if done.pin == "mailed" else "user",
            user_public_key=done.user_public_key.hex(),
        )

    @router.post("/activation/{order_id}/result", tags=["cards"])
    def activation_result(order_id: int, body: ActivationReport, auth: Auth) -> dict[str, Any]:
        """Customers: whether the card took the blob."""
        account = auth
        ctx = services.context(account.actor)
        state = activation.report_activation(ctx, account, order_id, body.personalized, body.reason)
        if services.metrics is not None:
            services.metrics.activation_reports.labels(str(body.personalized).lower()).inc()
        return {"order_id": order_id, "state": state.value}

    @router.post("/card-commands", tags=["cards"], response_model=CardCommandOut)
    def card_command(body: CardCommandBody, auth: Auth) -> CardCommandOut:
        """Customers: the card proves itself; the issuer signs the command the card then
        gets (a lost card: terminate, whatever was asked)."""
        account = auth
        ctx = services.context(account.actor)
        try:
            serial = parse_serial(body.serial.lower())
        except CardUploadError as exc:
            raise BadRequestError(str(exc)) from None
        signed = cardlife.card_command(
            ctx,
            account,
            challenge_id=body.challenge_id,
            serial=serial,
            signature=_unb64(body.signature, "signature"),
            card_challenge=_unb64(body.card_challenge, "card_challenge"),
            wanted=body.command,
            new_pin=None if body.new_pin is None else body.new_pin.encode("ascii", "replace"),
        )
        return CardCommandOut(
            command=signed.command,
            signature=b64(signed.signature) if signed.command else None,
            reason=signed.reason,
        )

    @router.post("/card-commands/result", tags=["cards"])
    def card_command_result(body: CardCommandReport, auth: Auth) -> OrderOut:
        """Customers: whether the card accepted the relayed command."""
        account = auth
        ctx = services.context(account.actor)
        try:
            serial = parse_serial(body.serial.lower())
        except CardUploadError as exc:
            raise BadRequestError(str(exc)) from None
        order = cardlife.report_card_command(
            ctx, account, serial, body.command, body.done, body.reason
        )
        return order_out(order)

    @router.get("/audit", tags=["audit"])
    def audit(auth: Auth, limit: int = 100, before_id: int | None = None) -> dict[str, Any]:
        """Staff: the audit log, newest first."""
        account = auth
        ctx = services.context(account.actor)
        access.require(account, *STAFF_ROLES)
        entries = ctx.records.audit_entries(
            limit=min(limit, 1000), before_id=before_id, newest_first=True
        )
        return {
            "entries": [
                {
                    "id": e.id, "at": e.at, "actor": e.actor, "action": e.action,
                    "order_id": e.order_id,
                    "card_serial": None if e.card_serial is None else e.card_serial.hex().upper(),
                    "detail": e.detail,
                }
                for e in entries
            ]
        }  # fmt: skip

    return router


async def _csv_body(request: Request) -> str:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_IMPORT_BYTES:
        raise BadRequestError(f"the file is larger than {MAX_IMPORT_BYTES // 2**20} MiB")
    body = await request.body()
    if len(body) > MAX_IMPORT_BYTES:
        raise BadRequestError(f"the file is larger than {MAX_IMPORT_BYTES // 2**20} MiB")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequestError("the file is not UTF-8 text") from None
