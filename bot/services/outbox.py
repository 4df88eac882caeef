"""The outbox: every notification the bot owes someone, planned once and sent once.

Features plan rows with `enqueue` (idempotent: the key is kind, reference and
recipient) and register a renderer for their kind; the delivery worker
(scheduler/worker.py) claims due rows, renders each in the recipient's language at
send time, sends it within Telegram's limits and records the outcome.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.i18n import I18n
from sqlalchemy import Select, String, Table, cast, literal, select, true
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from content.loader import Content
from storage.models import Outbox, OutboxStatus, User
from storage.repo import insert_ignore


def outbox_key(kind: str, reference: str | int, recipient_id: int) -> str:
    return f"{kind}:{reference}:{recipient_id}"


async def enqueue(
    session: AsyncSession,
    *,
    kind: str,
    reference: str | int,
    recipient_id: int,
    not_before: datetime,
    payload: dict[str, Any] | None = None,
    expires_at: datetime | None = None,
    urgent: bool = False,
    broadcast_id: int | None = None,
) -> bool:
    """Plan one notification; False when the same (kind, reference, recipient) exists."""
    row = dict(
        key=outbox_key(kind, reference, recipient_id),
        kind=kind,
        recipient_id=recipient_id,
        payload=payload or {},
        not_before=not_before,
        expires_at=expires_at,
        urgent=urgent,
        broadcast_id=broadcast_id,
        created_at=not_before,
    )
    return await insert_ignore(session, Outbox, [row]) == 1


@dataclass
class Outgoing:
    """What a renderer produces: one Telegram message."""

    text: str
    reply_markup: InlineKeyboardMarkup | None = None
    # An attachment sent as a document (name, bytes), with `text` as its caption.
    document: tuple[str, bytes] | None = None
    photo: bytes | None = None


@dataclass
class RenderContext:
    session: AsyncSession
    content: Content
    i18n: I18n  # already set to the recipient's language when the renderer runs
    clock: Clock
    recipient: User
    extra: dict[str, Any] = field(default_factory=dict)


class Skip(Exception):
    """Raised by a renderer when the row must not be sent after all (the reason is kept)."""


Renderer = Callable[[RenderContext, Outbox], Awaitable[Outgoing]]
RENDERERS: dict[str, Renderer] = {}
# Kinds a learner may mute in /settings (the rest are service messages).
MUTABLE_KINDS: dict[str, str] = {}


def renderer(kind: str, *, mutable_label: str | None = None) -> Callable[[Renderer], Renderer]:
    """Register how rows of `kind` are rendered. `mutable_label` (an English msgid) lists
    the kind in /settings, where learners can mute it."""

    def register(fn: Renderer) -> Renderer:
        RENDERERS[kind] = fn
        if mutable_label is not None:
            MUTABLE_KINDS[kind] = mutable_label
        return fn

    return register


@dataclass(frozen=True)
class Planned:
    """One notification to plan with `enqueue_many` (the arguments of `enqueue`)."""

    kind: str
    reference: str | int
    recipient_id: int
    not_before: datetime
    payload: dict[str, Any] = field(default_factory=dict)
    expires_at: datetime | None = None
    urgent: bool = False
    broadcast_id: int | None = None


async def enqueue_many(session: AsyncSession, items: Iterable[Planned]) -> int:
    """Plan many notifications in a few statements (a release for 10,000 learners);
    returns how many were new. Idempotent like `enqueue`."""
    rows = [
        dict(
            key=outbox_key(item.kind, item.reference, item.recipient_id),
            kind=item.kind,
            recipient_id=item.recipient_id,
            payload=item.payload,
            not_before=item.not_before,
            expires_at=item.expires_at,
            urgent=item.urgent,
            broadcast_id=item.broadcast_id,
            created_at=item.not_before,
            status=OutboxStatus.pending,
            attempts=0,
        )
        for item in items
    ]
    if not rows:
        return 0
    table = Outbox.__table__
    assert isinstance(table, Table)
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    # One statement per page of rows (SQLAlchemy's "insertmanyvalues"); RETURNING tells
    # which rows were new, on both backends.
    stmt = insert(table).on_conflict_do_nothing().returning(table.c.id)
    result = await session.execute(stmt, rows)
    return len(result.all())


async def enqueue_select(
    session: AsyncSession,
    *,
    kind: str,
    reference: str | int,
    recipients: Select[tuple[int]],
    not_before: datetime,
    payload: dict[str, Any] | None = None,
    expires_at: datetime | None = None,
    urgent: bool = False,
    broadcast_id: int | None = None,
) -> int:
    """Plan the same notification for every user id `recipients` selects, in one
    INSERT ... SELECT (no row travels through Python: a release to 10,000 learners is
    one statement). Idempotent like `enqueue`; returns how many rows were new."""
    table = Outbox.__table__
    assert isinstance(table, Table)
    ids = recipients.subquery()
    user_id = ids.c[0]
    prefix = outbox_key(kind, reference, 0)[:-1]  # "kind:reference:"
    columns = {
        "key": literal(prefix, String()) + cast(user_id, String()),
        "kind": literal(kind, String()),
        "recipient_id": user_id,
        "payload": literal(payload or {}, table.c.payload.type),
        "not_before": literal(not_before, table.c.not_before.type),
        "expires_at": literal(expires_at, table.c.expires_at.type),
        "urgent": literal(urgent, table.c.urgent.type),
        "broadcast_id": literal(broadcast_id, table.c.broadcast_id.type),
        "created_at": literal(not_before, table.c.created_at.type),
        "status": literal(OutboxStatus.pending, table.c.status.type),
        "attempts": literal(0, table.c.attempts.type),
    }
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (
        insert(table)
        # SQLite needs a WHERE in an INSERT ... SELECT ... ON CONFLICT (a parsing rule).
        .from_select(list(columns), select(*columns.values()).select_from(ids).where(true()))
        .on_conflict_do_nothing()
    )
    result = await session.execute(stmt)
    return int(getattr(result, "rowcount", 0) or 0)
