"""Outer middlewares: one DB session per update, and the user it comes from."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, User
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from storage.db import current_session
from storage.models import User as DbUser
from storage.repo import insert_ignore

# Touching last_seen_at on every update would make every update a write; activity is
# reported by day, so a coarser stamp loses nothing.
SEEN_RESOLUTION = timedelta(minutes=10)


class DbSessionMiddleware(BaseMiddleware):
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], clock: Clock) -> None:
        self.sessionmaker = sessionmaker
        self.clock = clock

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        async with self.sessionmaker() as session:
            token = current_session.set(session)
            try:
                data["session"] = session
                tg_user: User | None = data.get("event_from_user")
                if tg_user is not None and not tg_user.is_bot:
                    data["db_user"] = await self._load_user(session, tg_user.id)
                result = await handler(event, data)
                await session.commit()
                return result
            except BaseException:
                await session.rollback()
                raise
            finally:
                current_session.reset(token)

    async def _load_user(self, session: AsyncSession, user_id: int) -> DbUser:
        now = self.clock.now()
        user = await session.get(DbUser, user_id)
        if user is None:
            # Only the id: the language is stored when the person chooses one.
            await insert_ignore(
                session, DbUser, [{"id": user_id, "created_at": now, "last_seen_at": now}]
            )
            user = await session.get(DbUser, user_id)
            assert user is not None
        elif now - user.last_seen_at > SEEN_RESOLUTION:
            user.last_seen_at = now
        return user
