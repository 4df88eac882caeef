"""Every migration goes up, down and up again (the stairway), on SQLite and PostgreSQL,
and the models match what the migrations build."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from storage.db import make_engine
from storage.migrate import alembic_config, downgrade_async, upgrade_async
from storage.models import Base


def _revisions(url):
    script = ScriptDirectory.from_config(alembic_config(url))
    return [r.revision for r in reversed(list(script.walk_revisions()))]


async def test_stairway(db_url):
    # db_url arrives at head; walk down to base, then each step up, down and up again.
    await downgrade_async(db_url, "base")
    previous = "base"
    for revision in _revisions(db_url):
        await upgrade_async(db_url, revision)
        await downgrade_async(db_url, previous)
        await upgrade_async(db_url, revision)
        previous = revision


async def test_models_match_migrations(db_url):
    engine = make_engine(db_url)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata)
            )
    finally:
        await engine.dispose()
    assert diff == [], f"models and migrations differ: {diff}"


def test_one_head():
    script = ScriptDirectory.from_config(alembic_config("sqlite+aiosqlite://"))
    assert len(script.get_heads()) == 1


@pytest.mark.parametrize("bad", ["sqlite+aiosqlite:///"])
def test_revisions_listed(bad):
    assert _revisions(bad)[0] == "0001"
