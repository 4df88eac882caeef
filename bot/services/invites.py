"""Invite links: random, unguessable tokens that may expire and be limited in uses."""

from __future__ import annotations

import enum
import secrets
from datetime import datetime, timedelta

from sqlalchemy import or_, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Invite, InviteKind

# 16 random bytes: 22 characters of A-Za-z0-9_-, well inside Telegram's 64 for a deep link.
TOKEN_BYTES = 16


class InviteProblem(enum.Enum):
    unknown = "unknown"
    expired = "expired"
    used_up = "used_up"


async def create_invite(
    session: AsyncSession,
    kind: InviteKind,
    *,
    now: datetime,
    cohort_id: int | None = None,
    learner_id: int | None = None,
    created_by: int | None = None,
    valid_for: timedelta | None = None,
    max_uses: int | None = None,
) -> Invite:
    invite = Invite(
        token=secrets.token_urlsafe(TOKEN_BYTES),
        kind=kind,
        cohort_id=cohort_id,
        learner_id=learner_id,
        created_by=created_by,
        expires_at=now + valid_for if valid_for else None,
        max_uses=max_uses,
        uses=0,
        created_at=now,
    )
    session.add(invite)
    await session.flush()
    return invite


async def peek_invite(session: AsyncSession, token: str, now: datetime) -> Invite | InviteProblem:
    """What a token is, without using it up."""
    invite = await session.get(Invite, token) if 0 < len(token) <= 64 else None
    if invite is None:
        return InviteProblem.unknown
    if invite.expires_at is not None and invite.expires_at <= now:
        return InviteProblem.expired
    if invite.max_uses is not None and invite.uses >= invite.max_uses:
        return InviteProblem.used_up
    return invite


async def use_invite(session: AsyncSession, token: str, now: datetime) -> Invite | InviteProblem:
    """Count one use, atomically: two people opening the last use at once cannot both get it."""
    found = await peek_invite(session, token, now)
    if not isinstance(found, Invite):
        return found
    result = await session.execute(
        update(Invite)
        .where(
            Invite.token == token,
            or_(Invite.max_uses.is_(None), Invite.uses < Invite.max_uses),
            or_(Invite.expires_at.is_(None), Invite.expires_at > now),
        )
        .values(uses=Invite.uses + 1)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        return InviteProblem.used_up
    await session.refresh(found)
    return found


def deep_link(bot_username: str, token: str) -> str:
    return f"https://t.me/{bot_username}?start={token}"
