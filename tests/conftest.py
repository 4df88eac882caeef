"""Shared fixtures: databases (SQLite always, PostgreSQL where it runs) and the settings."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

PG_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


async def _pg_reachable() -> str | None:
    import asyncpg

    dsn = PG_ADMIN_URL.replace("postgresql+asyncpg://", "postgresql://")
    try:
        conn = await asyncio.wait_for(asyncpg.connect(dsn), timeout=3)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


_PG_PROBLEM: str | bool | None = False  # False = not probed yet


async def pg_problem() -> str | None:
    global _PG_PROBLEM
    if _PG_PROBLEM is False:
        _PG_PROBLEM = await _pg_reachable()
    return _PG_PROBLEM  # type: ignore[return-value]


async def require_postgres() -> None:
    problem = await pg_problem()
    if problem is None:
        return
    message = f"PostgreSQL is not reachable at {PG_ADMIN_URL} ({problem})"
    if IN_CI:
        pytest.fail(message + "; CI must run the PostgreSQL tests")
    pytest.skip(message)


async def create_pg_database() -> tuple[str, str]:
    """A fresh database per test: returns (its URL, its name)."""
    import asyncpg

    name = f"bb_{uuid.uuid4().hex[:12]}"
    admin = PG_ADMIN_URL.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{name}", name


async def drop_pg_database(name: str) -> None:
    import asyncpg

    admin = PG_ADMIN_URL.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty, migrated database on each backend."""
    from storage.migrate import upgrade_async

    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'test.sqlite3'}"
        await upgrade_async(url)
        yield url
        return
    await require_postgres()
    url, name = await create_pg_database()
    try:
        await upgrade_async(url)
        yield url
    finally:
        await drop_pg_database(name)


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Migrated once per run; each test gets a copy (migrating per test costs seconds)."""
    from storage.migrate import upgrade

    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path, _sqlite_template: Path) -> Iterator[str]:
    """A migrated, empty SQLite database of this test's own."""
    target = tmp_path / "test.sqlite3"
    shutil.copyfile(_sqlite_template, target)
    yield f"sqlite+aiosqlite:///{target}"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests never read a developer's .env or real token."""
    for name in list(os.environ):
        if name in {
            "BOT_TOKEN",
            "TELEGRAM_API_URL",
            "DATABASE_URL",
            "REDIS_URL",
            "WEBHOOK_URL",
            "WEBHOOK_SECRET",
            "LOG_LEVEL",
            "CONTENT_DIR",
        }:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
