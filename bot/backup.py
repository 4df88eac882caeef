"""`biblio-bot backup`: a consistent copy of the store while the bot runs.

SQLite: the online backup API copies pages under SQLite's own locking, so writers may
go on. PostgreSQL: pg_dump is the tool; we print the exact command."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit


def sqlite_backup(source: Path, target_dir: Path, now: datetime | None = None) -> Path:
    if not source.exists():
        raise FileNotFoundError(f"no database at {source}")
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / f"{source.stem}-{stamp}.sqlite3"
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        with dst:
            src.backup(dst)
    finally:
        dst.close()
        src.close()
    return target


def pg_dump_command(url: str) -> str:
    parts = urlsplit(url.replace("postgresql+asyncpg://", "postgresql://"))
    database = parts.path.lstrip("/") or "postgres"
    host = parts.hostname or "localhost"
    user = parts.username or "postgres"
    port = parts.port or 5432
    return (
        f"pg_dump --format=custom --host={host} --port={port} --username={user} "
        f"--file={database}-$(date +%Y%m%d-%H%M%S).dump {database}"
    )
