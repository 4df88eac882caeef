"""The outbox: every notification the bot owes someone, planned once and sent once.

Features plan rows with `enqueue` (idempotent: the key is kind, reference and
recipient) and register a renderer for their kind; the delivery worker
(scheduler/worker.py) claims due rows, renders each in the recipient's language at
send time, sends it within Telegram's limits and records the outcome.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.i18n import I18n
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from content.loader import Content
from storage.models import Outbox, User
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
