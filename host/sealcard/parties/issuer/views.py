"""Read-only overviews for the console and the API: customers, orders, stock, a card's
history, the audit log. Staff see everything; a customer sees only their own orders."""

from __future__ import annotations

from dataclasses import dataclass

from sealcard.issuer.accounts import STAFF_ROLES, Account, Role
from sealcard.issuer.errors import RecordNotFoundError
from sealcard.issuer.lifecycle import OrderState
from sealcard.issuer.records import AuditEntry, CardRecord, Order, PackStock, Status, User
from sealcard.parties.issuer.access import require
from sealcard.parties.issuer.context import BadRequestError, IssuerContext, NotFoundError


def orders(ctx: IssuerContext, state: str | None, limit: int = 100) -> list[Order]:
    """Orders, oldest first, optionally in one state."""
    wanted = None
    if state:
        try:
            wanted = OrderState(state)
        except ValueError:
            raise BadRequestError(f"no order state {state!r}") from None
    return ctx.records.list_orders(wanted, limit=limit)


def order(ctx: IssuerContext, account: Account, order_id: int) -> Order:
    """One order, if this account may see it."""
    try:
        found = ctx.records.get_order(order_id)
    except RecordNotFoundError:
        raise NotFoundError(f"no order {order_id}") from None
    if account.role is Role.CUSTOMER and found.user_id != account.user_id:
        raise NotFoundError(f"no order {order_id}")
    return found


@dataclass(frozen=True)
class CustomerPage:
    """One customer, their account's login and their orders."""

    user: User
    login: str | None
    orders: list[Order]


def customer(ctx: IssuerContext, account: Account, user_id: int) -> CustomerPage:
    require(account, *STAFF_ROLES)
    try:
        user = ctx.records.get_user(user_id)
    except RecordNotFoundError:
        raise NotFoundError(f"no customer {user_id}") from None
    login = ctx.accounts.of_user(user_id)
    return CustomerPage(
        user, None if login is None else login.login, ctx.records.orders_of_user(user_id)
    )


def customers(ctx: IssuerContext, account: Account, search: str, offset: int) -> list[User]:
    require(account, *STAFF_ROLES)
    return ctx.records.list_users(offset=max(0, offset), limit=50, search=search.strip()[:64])


@dataclass(frozen=True)
class CardHistory:
    """A card: its stock record, the order that holds it, and every audit entry about it."""

    card: CardRecord
    order: Order | None
    entries: list[AuditEntry]


def card_history(ctx: IssuerContext, account: Account, serial: bytes) -> CardHistory:
    require(account, *STAFF_ROLES)
    card = ctx.records.card(serial)
    if card is None:
        raise NotFoundError(f"no card {serial.hex().upper()} in the records")
    try:
        held = ctx.records.order_for_card(serial)
    except RecordNotFoundError:
        held = None
    entries = ctx.records.audit_entries(card_serial=serial, limit=500)
    return CardHistory(card, held, entries)


def stock(ctx: IssuerContext, account: Account) -> list[PackStock]:
    require(account, *STAFF_ROLES)
    return ctx.records.packs()


def overview(ctx: IssuerContext, account: Account) -> Status:
    require(account, *STAFF_ROLES)
    return ctx.records.status()


def audit_log(
    ctx: IssuerContext, account: Account, before_id: int | None, limit: int = 100
) -> list[AuditEntry]:
    require(account, *STAFF_ROLES)
    return ctx.records.audit_entries(limit=limit, before_id=before_id, newest_first=True)
