"""aiogram FSM storage over the SQL store, so conversations survive restarts.

Inside an update the writes go through the update's own session (see `current_session`):
the step and the data it produced commit together, and SQLite never sees two writers
from one handler. Outside an update each call uses a short session of its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, DefaultKeyBuilder, KeyBuilder, StorageKey
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.db import current_session
from storage.models import FsmState

StateType = str | State | None


class SQLStorage(BaseStorage):
    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], key_builder: KeyBuilder | None = None
    ) -> None:
        self.sessionmaker = sessionmaker
        self.key_builder = key_builder or DefaultKeyBuilder(with_destiny=True)

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[AsyncSession]:
        session = current_session.get()
        if session is not None:
            yield session
            return
        async with self.sessionmaker() as own, own.begin():
            yield own

    async def _row(self, session: AsyncSession, key: StorageKey) -> FsmState | None:
        return await session.get(FsmState, self.key_builder.build(key))

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        value = state.state if isinstance(state, State) else state
        async with self._session() as session:
            row = await self._row(session, key)
            if row is None:
                if value is None:
                    return
                session.add(
                    FsmState(
                        key=self.key_builder.build(key), user_id=key.user_id, state=value, data={}
                    )
                )
            else:
                row.state = value
            await session.flush()

    async def get_state(self, key: StorageKey) -> str | None:
        async with self._session() as session:
            row = await self._row(session, key)
            return row.state if row else None

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        async with self._session() as session:
            row = await self._row(session, key)
            if row is None:
                if not data:
                    return
                session.add(
                    FsmState(key=self.key_builder.build(key), user_id=key.user_id, data=dict(data))
                )
            else:
                row.data = dict(data)  # a new object, so the JSON column is seen as changed
            await session.flush()

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        async with self._session() as session:
            row = await self._row(session, key)
            return dict(row.data) if row else {}

    async def close(self) -> None:
        pass


async def forget_user(session: AsyncSession, user_id: int) -> None:
    """Drop every conversation state of one user (erasure, withdrawal)."""
    await session.execute(delete(FsmState).where(FsmState.user_id == user_id))
