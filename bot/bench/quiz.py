"""`biblio-bot bench quiz`: poll answers handled per second, end to end.

On each backend (SQLite, PostgreSQL) a local Bot API server is started and N learners
(1,000; 200 with --quick) each get a practice round from the real bot (polling, every
middleware, the SQL store). Then they all answer their current question at once, a few
times over ("waves"); an answer counts as handled when the bot has sent the next question.

Beside it, on the same server in the same run, a bare aiogram bot whose poll_answer
handler only sends one message: the same learners answer the same number of polls (once
before the real bot and once after; its rate is the mean). The
ratio of the two rates is the cost of recording an answer in the store and choosing the
next question. Goal: ratio >= 0.5 on both backends.

PostgreSQL: BENCH_POSTGRES_URL (default postgresql+asyncpg://postgres@127.0.0.1:5432/test);
a scratch database is made and dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiogram import Bot, Dispatcher, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import PollAnswer
from sqlalchemy import insert

from bot.sandbox.server import BotAPIServer, FakeUser, SentMessage

log = logging.getLogger(__name__)

PG_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
FIRST_USER = 10_000_000
MODULE = 1
START = f"qz:start:{MODULE}"
GOAL = 0.5
SETUP_CHUNK = 100


async def run(quick: bool) -> dict[str, Any]:
    learners = 200 if quick else 1000
    waves = 2 if quick else 5  # at most 5: the sixth answer ends the round
    result: dict[str, Any] = {}
    for backend in ("sqlite", "postgres"):
        try:
            async with _database(backend) as url:
                result[backend] = await _measure(url, learners, waves)
        except OSError as exc:  # PostgreSQL not running here
            result[backend] = {"error": f"{type(exc).__name__}: {exc}"}
    result["learners"] = learners
    result["waves"] = waves
    return result


def describe(result: dict[str, Any]) -> str:
    lines = [
        f"{result['learners']} learners answering at once, {result['waves']} answers each "
        "(local Bot API server, polling)"
    ]
    for backend in ("sqlite", "postgres"):
        figures = result.get(backend, {})
        if "error" in figures:
            lines.append(f"{backend:>9}: not measured ({figures['error']})")
            continue
        verdict = "ok" if figures["ratio"] >= GOAL else f"below the goal of {GOAL}"
        lines.append(
            f"{backend:>9}: {figures['answers_per_s']:8.1f} answers/s  "
            f"(bare aiogram echo {figures['echo_answers_per_s']:8.1f}/s)  "
            f"ratio {figures['ratio']:.2f}: {verdict}"
        )
    return "\n".join(lines)


# --- databases ----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _database(backend: str) -> AsyncIterator[str]:
    from storage.migrate import upgrade_async

    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="bench-quiz-") as folder:
            url = f"sqlite+aiosqlite:///{Path(folder) / 'bench.sqlite3'}"
            await upgrade_async(url)
            yield url
        return
    import asyncpg

    admin = PG_URL.replace("postgresql+asyncpg://", "postgresql://")
    name = f"bench_quiz_{uuid.uuid4().hex[:10]}"
    conn = await asyncio.wait_for(asyncpg.connect(admin), timeout=5)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        url = f"{PG_URL.rsplit('/', 1)[0]}/{name}"
        await upgrade_async(url)
        yield url
    finally:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


async def _seed(url: str, user_ids: list[int], now: datetime) -> None:
    """Enrolled learners of a cohort whose first week is out."""
    from storage.db import make_engine, make_sessionmaker
    from storage.models import Cohort, Learner, User

    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            cohort = Cohort(
                name="bench",
                country="LV",
                language="en",
                timezone="UTC",
                mooc_start=(now - timedelta(days=1)).date(),
                release_hour=0,
                created_at=now,
            )
            session.add(cohort)
            await session.flush()
            await session.execute(
                insert(User),
                [
                    {"id": uid, "language": "en", "consent_version": 1, "consent_language": "en"}
                    for uid in user_ids
                ],
            )
            await session.execute(
                insert(Learner),
                [
                    {
                        "user_id": uid,
                        "cohort_id": cohort.id,
                        "name": f"Learner {uid}",
                        "age_band": "35-44",
                        "country": "LV",
                        "education": "master",
                        "employment": "library",
                        "profession": "Librarian",
                        "years_experience": 5,
                        "heard_from": "web",
                        "profile": "CECO",
                        "enrolled_at": now - timedelta(days=1),
                    }
                    for uid in user_ids
                ],
            )
    finally:
        await engine.dispose()


# --- measuring ----------------------------------------------------------------------------


async def _wait(predicate: Callable[[], bool], what: str, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"bench: timed out waiting for {what}")
        await asyncio.sleep(0.005)


def _latest_poll_id(user: FakeUser) -> str:
    for sent in reversed(user.messages):
        if sent.kind == "poll" and sent.poll is not None:
            return str(sent.poll["id"])
    raise LookupError(f"no poll for {user.user_id}")


async def _answer_waves(server: BotAPIServer, users: list[FakeUser], waves: int) -> float:
    """Every user answers their latest poll at once, `waves` times; each wave is done when
    every answer got its one message back. Returns the seconds taken."""
    started = time.perf_counter()
    for _wave in range(waves):
        target = len(server.sent) + len(users)
        for user in users:
            poll_id = _latest_poll_id(user)
            await user.answer_poll([0], poll_id=poll_id)
        await _wait(_sent_reaches(server, target), "the answers")
    return time.perf_counter() - started


def _all_have(users: list[FakeUser], test: Callable[[SentMessage], bool]) -> Callable[[], bool]:
    return lambda: all(any(test(m) for m in u.messages) for u in users)


def _sent_reaches(server: BotAPIServer, target: int) -> Callable[[], bool]:
    return lambda: len(server.sent) >= target


async def _polling(dp: Dispatcher, bot: Bot) -> asyncio.Task[None]:
    task = asyncio.create_task(
        dp.start_polling(
            bot,
            handle_signals=False,
            polling_timeout=1,
            close_bot_session=False,
            allowed_updates=dp.resolve_used_update_types(),
        )
    )
    await asyncio.sleep(0.2)
    if task.done():
        task.result()
    return task


async def _stop(dp: Dispatcher, task: asyncio.Task[None]) -> None:
    with contextlib.suppress(RuntimeError):
        await dp.stop_polling()
    await asyncio.gather(task, return_exceptions=True)


async def _real_bot(server: BotAPIServer, url: str, users: list[FakeUser], waves: int) -> float:
    from bot.app import build_app
    from bot.settings import load_settings

    settings = load_settings(
        bot_token=server.token,
        telegram_api_url=server.base_url,
        database_url=url,
        run_scheduler=False,
        run_worker=False,
        log_level="WARNING",
    )
    app = build_app(settings)
    task = await _polling(app.dp, app.bot)
    try:
        # Set-up, not measured: each learner starts a round of module 1 from /quiz (a
        # hundred at a time, so that the set-up itself does not flood the store).
        for start in range(0, len(users), SETUP_CHUNK):
            chunk = users[start : start + SETUP_CHUNK]
            for user in chunk:
                await user.send("/quiz")
            await _wait(_all_have(chunk, lambda m: bool(m.find_button(START))), "module lists")
            for user in chunk:
                await user.press(START)
            await _wait(_all_have(chunk, lambda m: m.kind == "poll"), "first polls")
        await asyncio.sleep(0.5)  # the first polls' ids are being recorded
        return await _answer_waves(server, users, waves)
    finally:
        await asyncio.sleep(0.2)  # the last polls' ids are being recorded
        await _stop(app.dp, task)
        await app.close()


async def _echo_bot(server: BotAPIServer, users: list[FakeUser], waves: int) -> float:
    bot = Bot(
        server.token, session=AiohttpSession(api=TelegramAPIServer.from_base(server.base_url))
    )
    router = Router()

    @router.poll_answer()
    async def answered(answer: PollAnswer, bot: Bot) -> None:
        if answer.user is not None:
            await bot.send_message(answer.user.id, "ok")

    dp = Dispatcher()
    dp.include_router(router)
    try:
        # Set-up, not measured: `waves` open quiz polls per learner.
        sem = asyncio.Semaphore(64)

        async def send(user_id: int) -> None:
            async with sem:
                await bot.send_poll(
                    user_id,
                    question="Which option?",
                    options=["a", "b", "c"],
                    type="quiz",
                    is_anonymous=False,
                    correct_option_ids=[0],
                )

        for _wave in range(waves):
            await asyncio.gather(*(send(u.user_id) for u in users))
        task = await _polling(dp, bot)
        try:
            return await _echo_waves(server, users, waves)
        finally:
            await _stop(dp, task)
    finally:
        await bot.session.close()


async def _echo_waves(server: BotAPIServer, users: list[FakeUser], waves: int) -> float:
    """As _answer_waves, over the polls sent ahead (wave k answers each user's k-th)."""
    polls = {
        u.user_id: [str(m.poll["id"]) for m in u.messages if m.kind == "poll" and m.poll][-waves:]
        for u in users
    }
    started = time.perf_counter()
    for wave in range(waves):
        target = len(server.sent) + len(users)
        for user in users:
            await user.answer_poll([0], poll_id=polls[user.user_id][wave])
        await _wait(_sent_reaches(server, target), "the echoes")
    return time.perf_counter() - started


async def _measure(url: str, learners: int, waves: int) -> dict[str, float]:
    server = BotAPIServer()
    await server.start()
    try:
        now = datetime.now(UTC)
        ids = list(range(FIRST_USER, FIRST_USER + learners))
        await _seed(url, ids, now)
        users = [server.user(uid) for uid in ids]
        for user in users:
            user.known = True  # they have talked to the bot before (enrolment)
        # The bare bot before and after the real one, so that a machine getting busier or
        # quieter during the run does not tilt the comparison.
        echo_before = await _echo_bot(server, users, waves)
        real_seconds = await _real_bot(server, url, users, waves)
        echo_after = await _echo_bot(server, users, waves)
    finally:
        await server.stop()
    answers = learners * waves
    real = answers / real_seconds
    echo = answers / ((echo_before + echo_after) / 2)
    return {
        "answers_per_s": round(real, 1),
        "echo_answers_per_s": round(echo, 1),
        "ratio": round(real / echo, 3),
    }
