"""Small queries shared by services."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Base


async def insert_ignore(
    session: AsyncSession, model: type[Base], rows: list[dict[str, Any]]
) -> int:
    """INSERT ... ON CONFLICT DO NOTHING on both backends; returns how many rows were new.

    The store's unique keys make planning and user creation idempotent, so two
    concurrent handlers or two planners may try the same row and only one wins."""
    if not rows:
        return 0
    table = model.__table__
    assert isinstance(table, Table)
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    stmt: Any
    if dialect == "postgresql":
        stmt = postgresql.insert(table).values(rows).on_conflict_do_nothing()
    else:
        stmt = sqlite.insert(table).values(rows).on_conflict_do_nothing()
    result = await session.execute(stmt)
    return int(getattr(result, "rowcount", 0) or 0)
