"""Store set-up for the trainer tests: trainers, cohorts and learners written directly
(the enrolment conversation has tests of its own), and small helpers to drive a bot whose
planner and delivery worker the test runs by hand."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import select

from bot.sandbox.server import BotAPIServer, FakeUser, SentMessage
from bot.services.consent import current_version
from storage.db import make_engine, make_sessionmaker
from storage.models import Cohort, CohortTrainer, Learner, LearnerStatus, Role, User
from tests.e2e.flows import drain
from tests.e2e.harness import shipped_content

T = TypeVar("T")
BOT_OPTIONS: dict[str, Any] = {"run_scheduler": False, "run_worker": False}


async def in_db(url: str, fn: Callable[[Any], Awaitable[T]]) -> T:
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            return await fn(session)
    finally:
        await engine.dispose()


async def rows(url: str, model: Any, *where: Any, order: Any = None) -> list[Any]:
    async def query(session: Any) -> list[Any]:
        stmt = select(model).where(*where)
        if order is not None:
            stmt = stmt.order_by(order)
        return list(await session.scalars(stmt))

    return await in_db(url, query)


async def add_user(
    session: Any,
    user_id: int,
    now: datetime,
    *,
    lang: str = "en",
    role: Role = Role.learner,
    consent: bool = True,
    last_seen: datetime | None = None,
    active: bool = True,
) -> None:
    version = current_version(shipped_content(), lang)
    session.add(
        User(
            id=user_id,
            language=lang,
            role=role,
            is_active=active,
            consent_version=version if consent else None,
            consent_language=lang if consent else None,
            created_at=now - timedelta(days=30),
            last_seen_at=last_seen or now,
        )
    )
    await session.flush()


async def add_cohort(
    session: Any,
    name: str,
    now: datetime,
    *,
    trainer_id: int | None = None,
    timezone: str = "Europe/Riga",
    language: str = "lv",
    country: str = "LV",
    start: date = date(2027, 1, 11),
    spec_start: date | None = None,
) -> Cohort:
    cohort = Cohort(
        name=name,
        country=country,
        language=language,
        timezone=timezone,
        mooc_start=start,
        spec_start=spec_start,
        release_hour=9,
        created_at=now,
    )
    session.add(cohort)
    await session.flush()
    if trainer_id is not None:
        session.add(CohortTrainer(cohort_id=cohort.id, trainer_id=trainer_id))
        await session.flush()
    return cohort


async def add_learner(
    session: Any,
    user_id: int,
    cohort_id: int,
    name: str,
    now: datetime,
    *,
    lang: str = "en",
    profile: str = "CECO",
    status: LearnerStatus = LearnerStatus.enrolled,
    consent: bool = True,
    last_seen: datetime | None = None,
    active: bool = True,
    email: str | None = None,
) -> None:
    await add_user(
        session, user_id, now, lang=lang, consent=consent, last_seen=last_seen, active=active
    )
    session.add(
        Learner(
            user_id=user_id,
            cohort_id=cohort_id,
            status=status,
            name=name,
            email=email,
            age_band="35-44",
            country="LV",
            education="master",
            employment="library",
            profession="Librarian",
            years_experience=10,
            heard_from="colleague",
            profile=profile,
            skills={},
            enrolled_at=now - timedelta(days=20),
            updated_at=now - timedelta(days=20),
        )
    )
    await session.flush()


def known(tg: BotAPIServer, *user_ids: int, lang: str = "en") -> list[FakeUser]:
    """Users who have talked to the bot before (the server lets the bot write to them)."""
    users = []
    for user_id in user_ids:
        user = tg.user(user_id, language_code=lang)
        user.known = True
        users.append(user)
    return users


async def say(user: FakeUser, text: str) -> list[SentMessage]:
    """Send a text; the new messages the bot answers with (edits left out)."""
    await user.send(text)
    return [m for m in await drain(user) if not m.edited]


async def tap(user: FakeUser, data: str, message_id: int | None = None) -> list[SentMessage]:
    """Press a button; the new messages the bot answers with (edits left out)."""
    await user.press(data, message_id)
    return [m for m in await drain(user) if not m.edited]


def texts(messages: list[SentMessage]) -> str:
    return "\n".join(m.text or "" for m in messages)
