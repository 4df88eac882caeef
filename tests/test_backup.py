import sqlite3
from datetime import UTC, datetime

import pytest

from bot.backup import pg_dump_command, sqlite_backup


def test_sqlite_backup_is_a_consistent_copy_while_a_writer_holds_a_transaction(tmp_path):
    source = tmp_path / "biblio.sqlite3"
    db = sqlite3.connect(source)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE t (x INTEGER)")
    db.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(1000)])
    db.commit()
    db.execute("INSERT INTO t VALUES (-1)")  # uncommitted: must not appear in the copy
    target = sqlite_backup(source, tmp_path / "backups", datetime(2027, 1, 2, 3, 4, 5, tzinfo=UTC))
    db.rollback()
    db.close()
    assert target.name == "biblio-20270102-030405.sqlite3"
    copy = sqlite3.connect(target)
    assert copy.execute("SELECT count(*), min(x), max(x) FROM t").fetchone() == (1000, 0, 999)
    copy.close()


def test_missing_database_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no database at"):
        sqlite_backup(tmp_path / "nope.sqlite3", tmp_path)


def test_pg_dump_hint():
    cmd = pg_dump_command("postgresql+asyncpg://biblio@db.internal:5433/biblio")
    assert cmd.startswith(
        "pg_dump --format=custom --host=db.internal --port=5433 --username=biblio"
    )
    assert cmd.endswith(" biblio")


def test_cli_backup_of_a_running_store(tmp_path):
    import subprocess
    import sys

    db = tmp_path / "data" / "biblio.sqlite3"
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": f"sqlite:///{db}"}
    subprocess.run(
        [sys.executable, "-m", "bot", "db", "upgrade"],
        env=env,
        check=True,
        capture_output=True,
        cwd=tmp_path,
        timeout=60,
    )
    out = subprocess.run(
        [sys.executable, "-m", "bot", "backup", "--to", str(tmp_path / "b")],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    (copy,) = (tmp_path / "b").glob("biblio-*.sqlite3")
    tables = {r[0] for r in sqlite3.connect(copy).execute("SELECT name FROM sqlite_master")}
    assert {"users", "outbox", "learners"} <= tables
