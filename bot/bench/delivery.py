"""`biblio-bot bench delivery`: how fast the outbox goes out, within and without limits.

- limited_rate: 1,000 release messages through the local Bot API server limited like
  Telegram (30 messages/s overall, 1/s per chat), the worker at its default 30/s:
  messages per second from the first claim to the last outcome committed. Goal >= 28.5
  (95 % of the limit) with count_429 == 0.
- ceiling_sqlite / ceiling_postgres: the same with the server's limits lifted and the
  worker's raised: the worker's own ceiling (claim, check, render, send, record), 5,000
  messages. Goal >= 1,000/s on each (what paid broadcasts allow).
- plan_10k_s: seconds for one planner tick that plans a week's release for 10,000
  learners. Goal < 1.

The server runs in a process of its own (as Telegram is elsewhere), the worker in this
one; each figure uses a scratch database (SQLite in a temporary folder; PostgreSQL at
BENCH_POSTGRES_URL, default postgresql+asyncpg://postgres@127.0.0.1:5432/test, a
database created and dropped; ceiling_postgres is null when PostgreSQL is not there).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

LIMIT = 30
FIRST_USER = 1_000_000
PG_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


# --- the Bot API server in its own process -----------------------------------------------


def _serve(users: int, global_rate: float | None, per_chat_rate: float | None) -> None:
    from bot.sandbox.server import BotAPIServer

    async def main() -> None:
        server = BotAPIServer(global_rate=global_rate, per_chat_rate=per_chat_rate)
        await server.start()
        for uid in range(FIRST_USER, FIRST_USER + users):
            server.user(uid).known = True
        print(json.dumps({"base_url": server.base_url, "token": server.token}), flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)  # until the bench closes stdin
        await server.stop()

    asyncio.run(main())


@asynccontextmanager
async def _server(
    users: int, global_rate: float | None = None, per_chat_rate: float | None = None
) -> AsyncIterator[dict[str, str]]:
    args = [sys.executable, "-m", "bot.bench.delivery", "--serve", str(users)]
    if global_rate is not None:
        args += ["--global-rate", str(global_rate)]
    if per_chat_rate is not None:
        args += ["--per-chat-rate", str(per_chat_rate)]
    proc = await asyncio.create_subprocess_exec(
        *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        line = await proc.stdout.readline()
        if not line:
            raise RuntimeError("the Bot API server process did not start")
        yield json.loads(line)
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def _server_stats(base_url: str) -> dict[str, Any]:
    import aiohttp

    async with aiohttp.ClientSession() as http, http.get(f"{base_url}/_control/stats") as r:
        data: dict[str, Any] = await r.json()
        return data


# --- scratch databases ---------------------------------------------------------------------


@asynccontextmanager
async def _sqlite() -> AsyncIterator[str]:
    from storage.migrate import upgrade_async

    with tempfile.TemporaryDirectory(prefix="bench-delivery-") as folder:
        url = f"sqlite+aiosqlite:///{Path(folder) / 'bench.sqlite3'}"
        await upgrade_async(url)
        yield url


async def _postgres_problem() -> str | None:
    import asyncpg

    try:
        conn = await asyncio.wait_for(
            asyncpg.connect(PG_URL.replace("postgresql+asyncpg://", "postgresql://")), 3
        )
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


@asynccontextmanager
async def _postgres() -> AsyncIterator[str]:
    import asyncpg

    from storage.migrate import upgrade_async

    admin = PG_URL.replace("postgresql+asyncpg://", "postgresql://")
    name = f"bench_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = f"{PG_URL.rsplit('/', 1)[0]}/{name}"
    try:
        await upgrade_async(url)
        yield url
    finally:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


async def _seed(url: str, count: int, *, plan_rows: bool) -> int:
    """A cohort of `count` learners (every language, both profiles, no quiet hours);
    with plan_rows, a week-1 release due now for each. Returns the cohort id."""
    from sqlalchemy import insert

    from bot.services.outbox import Planned, enqueue_many
    from storage.db import make_engine, make_sessionmaker
    from storage.models import Cohort, Learner, User, UserSettings

    languages = ("en", "lv", "it", "bg", "el")
    now = datetime.now(UTC)
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            cohort = Cohort(
                name="Bench",
                country="LV",
                language="lv",
                timezone="Europe/Riga",
                mooc_start=date(2027, 3, 8),
                release_hour=9,
                created_at=now,
            )
            session.add(cohort)
            await session.flush()
            ids = range(FIRST_USER, FIRST_USER + count)
            for start in range(0, count, 2000):
                chunk = ids[start : start + 2000]
                await session.execute(
                    insert(User),
                    [
                        dict(
                            id=i,
                            language=languages[i % 5],
                            consent_version=1,
                            consent_language=languages[i % 5],
                            created_at=now,
                            last_seen_at=now,
                        )
                        for i in chunk
                    ],
                )
                await session.execute(
                    insert(Learner),
                    [
                        dict(
                            user_id=i,
                            cohort_id=cohort.id,
                            name=f"Learner {i}",
                            age_band="35-44",
                            country="LV",
                            education="master",
                            employment="library",
                            profession="Librarian",
                            years_experience=5,
                            heard_from="colleague",
                            profile=("CECO", "DIGY")[i % 2],
                            skills={},
                            enrolled_at=now - timedelta(days=30),
                            updated_at=now,
                        )
                        for i in chunk
                    ],
                )
                await session.execute(
                    insert(UserSettings),
                    [dict(user_id=i, muted=[], quiet_start=0, quiet_end=0) for i in chunk],
                )
            if plan_rows:
                await enqueue_many(
                    session,
                    (
                        Planned(
                            kind="release",
                            reference=f"{cohort.id}:w1",
                            recipient_id=i,
                            not_before=now - timedelta(seconds=1),
                            payload={"cohort_id": cohort.id, "week": 1},
                        )
                        for i in ids
                    ),
                )
            return cohort.id
    finally:
        await engine.dispose()


# --- the measurements ----------------------------------------------------------------------


async def _throughput(
    url: str, count: int, *, limited: bool, concurrency: int = 48
) -> tuple[float, int]:
    """Messages per second for `count` rows; and the server's 429 count."""
    from bot.clock import SystemClock
    from bot.features import load_features
    from bot.i18n import make_i18n
    from bot.settings import load_settings
    from content.loader import load_content
    from scheduler.worker import DeliveryConfig, DeliveryWorker, make_sender
    from storage.db import make_engine, make_sessionmaker

    load_features()
    await _seed(url, count, plan_rows=True)
    server_limits = (float(LIMIT), 1.0) if limited else (None, None)
    async with _server(count, *server_limits) as server:
        engine = make_engine(url)
        bot = make_sender(
            load_settings(bot_token=server["token"], telegram_api_url=server["base_url"])
        )
        config = (
            DeliveryConfig(send_rate=LIMIT, per_chat_interval=1.0)
            if limited
            else DeliveryConfig(
                send_rate=100_000, per_chat_interval=1.0, concurrency=concurrency, batch_size=200
            )
        )
        worker = DeliveryWorker(
            bot=bot,
            sessionmaker=make_sessionmaker(engine),
            content=load_content(),
            i18n=make_i18n(),
            clock=SystemClock(),
            config=config,
        )
        try:
            began = time.perf_counter()
            sent = 0
            while sent < count:
                stats = await worker.drain()
                if stats.claimed == 0:
                    await asyncio.sleep(0.05)
                sent += stats.sent
                if time.perf_counter() - began > 600:
                    raise TimeoutError("the delivery benchmark did not finish")
            elapsed = time.perf_counter() - began
        finally:
            await bot.session.close()
            await engine.dispose()
        stats_after = await _server_stats(server["base_url"])
    return count / elapsed, int(stats_after["count_429"])


async def _plan_time(url: str, count: int) -> float:
    from bot.clock import FrozenClock
    from bot.features import load_features
    from content.loader import load_content
    from scheduler.planner import run_tick
    from storage.db import make_engine, make_sessionmaker
    from storage.models import PlannerState

    load_features()
    await _seed(url, count, plan_rows=False)
    release = datetime(2027, 3, 8, 7, tzinfo=UTC)  # week 1, 09:00 in Riga
    engine = make_engine(url)
    try:
        sessionmaker = make_sessionmaker(engine)
        async with sessionmaker() as session, session.begin():
            session.add(
                PlannerState(
                    name="main",
                    planned_until=release - timedelta(minutes=1),
                    ticked_at=release - timedelta(minutes=1),
                )
            )
        content = load_content()
        clock = FrozenClock(release + timedelta(seconds=30))
        began = time.perf_counter()
        result = await run_tick(sessionmaker, content, clock)
        elapsed = time.perf_counter() - began
        if result.added.get("releases") != count:
            raise RuntimeError(f"planned {result.added} for {count} learners")
        return elapsed
    finally:
        await engine.dispose()


async def run(quick: bool) -> dict[str, Any]:
    limited_n, ceiling_n, plan_n = (300, 1500, 2000) if quick else (1000, 5000, 10_000)
    async with _sqlite() as url:
        limited_rate, count_429 = await _throughput(url, limited_n, limited=True)
    async with _sqlite() as url:
        ceiling_sqlite, _ = await _throughput(url, ceiling_n, limited=False)
    ceiling_postgres: float | None = None
    if await _postgres_problem() is None:
        async with _postgres() as url:
            ceiling_postgres, _ = await _throughput(url, ceiling_n, limited=False)
    async with _sqlite() as url:
        plan_s = await _plan_time(url, plan_n)
    return {
        "limit": LIMIT,
        "limited_rate": round(limited_rate, 1),
        "count_429": count_429,
        "ceiling_sqlite": round(ceiling_sqlite),
        "ceiling_postgres": round(ceiling_postgres) if ceiling_postgres is not None else None,
        "plan_10k_s": round(plan_s, 3),
    }


def describe(result: dict[str, Any]) -> str:
    pg = result["ceiling_postgres"]
    return "\n".join(
        [
            f"limited to {result['limit']}/s by the server: {result['limited_rate']} messages/s "
            f"(goal >= {0.95 * result['limit']:.1f}), {result['count_429']} answers 429 (goal 0)",
            f"worker ceiling, SQLite:     {result['ceiling_sqlite']} messages/s (goal >= 1000)",
            "worker ceiling, PostgreSQL: "
            + (f"{pg} messages/s (goal >= 1000)" if pg is not None else "not measured (no server)"),
            f"planning one release for 10,000 learners: {result['plan_10k_s']} s (goal < 1)",
        ]
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="the Bot API server of the delivery bench")
    parser.add_argument("--serve", type=int, required=True, help="how many users it knows")
    parser.add_argument("--global-rate", type=float)
    parser.add_argument("--per-chat-rate", type=float)
    options = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        _serve(options.serve, options.global_rate, options.per_chat_rate)
