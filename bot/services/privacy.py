"""The learner's rights: a copy of everything kept about them, and erasure everywhere.

Both walk the schema rather than a hand-kept list, so a table added later is covered
the day it is added: every column that refers to users.id marks a row as theirs."""

from __future__ import annotations

import base64
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Column, Table, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Base

# Columns that hold a Telegram user id without a foreign key (state kept by aiogram).
_EXTRA_SUBJECT_COLUMNS = {("fsm_states", "user_id")}
# Tables whose rows stay for anonymous statistics: the reference is cut, the row kept.
ANONYMISE: set[str] = {"quiz_rounds"}
# Columns that say who *made* or *supervised* something of someone else's (an invite, a
# mentor's placement, a mentor's decision): cut, the other person's row stays.
_AUTHOR_COLUMNS = {
    ("invites", "created_by"),
    ("placements", "mentor_id"),
    ("placements", "created_by"),
    ("checkins", "decided_by"),
}


def subject_columns() -> dict[Table, list[Column[Any]]]:
    found: dict[Table, list[Column[Any]]] = {}
    for table in Base.metadata.sorted_tables:
        for column in table.columns:
            refers = any(fk.column.table.name == "users" for fk in column.foreign_keys)
            if (
                refers
                or (table.name == "users" and column.name == "id")
                or (table.name, column.name) in _EXTRA_SUBJECT_COLUMNS
            ):
                found.setdefault(table, []).append(column)
    return found


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if hasattr(value, "value"):  # enums
        return value.value
    return value


async def export(session: AsyncSession, user_id: int) -> dict[str, list[dict[str, Any]]]:
    data: dict[str, list[dict[str, Any]]] = {}
    for table, columns in subject_columns().items():
        own = [c for c in columns if (table.name, c.name) not in _AUTHOR_COLUMNS]
        if not own:
            continue
        rows = (
            await session.execute(select(table).where(or_(*(c == user_id for c in own))))
        ).mappings()
        items = [{k: _plain(v) for k, v in row.items()} for row in rows]
        if items:
            data[table.name] = items
    return data


async def erase(session: AsyncSession, user_id: int) -> None:
    """Delete every row that refers to the person; cut authorship and statistics links."""
    tables = subject_columns()
    # Children first (reverse dependency order), the users row last.
    for table in reversed(Base.metadata.sorted_tables):
        columns = tables.get(table, [])
        for column in columns:
            cut = (table.name, column.name) in _AUTHOR_COLUMNS or table.name in ANONYMISE
            if cut and column.nullable:
                await session.execute(
                    update(table).where(column == user_id).values({column.name: None})
                )
                continue
            await session.execute(delete(table).where(column == user_id))
    await session.flush()
