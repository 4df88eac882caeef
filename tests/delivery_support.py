"""Helpers shared by the delivery tests: cohorts and learners written straight to the
store (enrolling thousands through the conversation would take minutes), a delivery
worker talking to the local Bot API server, and outbox queries."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import bot.services.releases  # noqa: F401  (registers the delivery kinds)
from bot.clock import Clock
from bot.i18n import make_i18n
from bot.sandbox.server import BotAPIServer
from content.loader import Content, load_content
from scheduler.worker import DeliveryConfig, DeliveryWorker
from storage.db import make_engine, make_sessionmaker
from storage.models import Cohort, Learner, Outbox, User, UserSettings

T = TypeVar("T")
START = datetime(2027, 3, 8, tzinfo=UTC)

_CONTENT: list[Content] = []


def content() -> Content:
    if not _CONTENT:
        _CONTENT.append(load_content())
    return _CONTENT[0]


async def in_session(db_url: str, fn: Callable[[AsyncSession], Awaitable[T]]) -> T:
    engine = make_engine(db_url)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            return await fn(session)
    finally:
        await engine.dispose()


async def add_cohort(session: AsyncSession, **values: Any) -> Cohort:
    fields: dict[str, Any] = dict(
        name="Test cohort",
        country="LV",
        language="lv",
        timezone="Europe/Riga",
        mooc_start=date(2027, 3, 8),
        release_hour=9,
        created_at=START,
    )
    fields.update(values)
    cohort = Cohort(**fields)
    session.add(cohort)
    await session.flush()
    return cohort


async def add_learners(
    session: AsyncSession,
    cohort_id: int | None,
    ids: Iterable[int],
    *,
    language: str = "en",
    profile: str = "CECO",
    enrolled_at: datetime = START,
    consent: bool = True,
    active: bool = True,
) -> None:
    ids = list(ids)
    users: list[dict[str, Any]] = [
        dict(
            id=i,
            language=language,
            role="learner",
            is_active=active,
            consent_version=1 if consent else None,
            consent_language=language if consent else None,
            created_at=enrolled_at,
            last_seen_at=enrolled_at,
        )
        for i in ids
    ]
    learners: list[dict[str, Any]] = [
        dict(
            user_id=i,
            cohort_id=cohort_id,
            status="enrolled",
            name=f"Learner {i}",
            email=None,
            age_band="35-44",
            country="LV",
            education="master",
            employment="library",
            profession="Librarian",
            years_experience=5,
            heard_from="colleague",
            profile=profile,
            skills={},
            enrolled_at=enrolled_at,
            updated_at=enrolled_at,
        )
        for i in ids
    ]
    for chunk in range(0, len(ids), 1000):
        await session.execute(insert(User), users[chunk : chunk + 1000])
        if cohort_id is not None:
            await session.execute(insert(Learner), learners[chunk : chunk + 1000])


async def set_choices(
    session: AsyncSession,
    user_id: int,
    *,
    quiet: tuple[int, int] = (21 * 60, 8 * 60),
    muted: list[str] | None = None,
) -> None:
    session.add(
        UserSettings(user_id=user_id, muted=muted or [], quiet_start=quiet[0], quiet_end=quiet[1])
    )
    await session.flush()


def make_bot(server: BotAPIServer) -> Bot:
    return Bot(
        server.token,
        session=AiohttpSession(api=TelegramAPIServer.from_base(server.base_url)),
        default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
    )


class WorkerRig:
    """A delivery worker on its own engine, talking to `server`."""

    def __init__(self, server: BotAPIServer, db_url: str, clock: Clock, **config: Any) -> None:
        self.engine = make_engine(db_url)
        self.sessionmaker: async_sessionmaker[AsyncSession] = make_sessionmaker(self.engine)
        self.bot = make_bot(server)
        values: dict[str, Any] = dict(send_rate=1000.0, per_chat_interval=0.0, concurrency=16)
        values.update(config)
        self.worker = DeliveryWorker(
            bot=self.bot,
            sessionmaker=self.sessionmaker,
            content=content(),
            i18n=make_i18n(),
            clock=clock,
            config=DeliveryConfig(**values),
        )

    async def close(self) -> None:
        await self.bot.session.close()
        await self.engine.dispose()

    async def rows(self, *where: Any) -> list[Outbox]:
        async with self.sessionmaker() as session:
            return list(await session.scalars(select(Outbox).where(*where).order_by(Outbox.id)))

    async def user(self, user_id: int) -> User:
        async with self.sessionmaker() as session:
            user = await session.get(User, user_id)
            assert user is not None
            return user


def know(server: BotAPIServer, ids: Iterable[int], language: str = "en") -> None:
    """The users have talked to the bot, so the server lets it write to them."""
    for i in ids:
        server.user(i, language_code=language).known = True
