"""Cohorts: the open self-paced MOOC group, and lookups."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from aiogram.utils.i18n import gettext
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.registration import N_
from storage.models import Cohort, CohortTrainer

OPEN_COHORT_NAME = N_("BIBLIO MOOC (open, self-paced)")


def cohort_title(cohort: Cohort) -> str:
    """The name shown to people: the open group's name is translated, others as typed."""
    if cohort.self_paced:
        return gettext(OPEN_COHORT_NAME)
    return cohort.name


async def open_cohort(session: AsyncSession, now: datetime) -> Cohort:
    """The MOOC is open to anyone; a plain /start offers this group (made on first use)."""
    cohort = await session.scalar(select(Cohort).where(Cohort.self_paced.is_(True)).limit(1))
    if cohort is None:
        cohort = Cohort(
            name=OPEN_COHORT_NAME,
            country="EU",
            language="en",
            timezone="Europe/Brussels",
            mooc_start=now.date(),
            self_paced=True,
            release_hour=9,
            created_at=now,
        )
        session.add(cohort)
        await session.flush()
    return cohort


async def create_cohort(
    session: AsyncSession,
    *,
    name: str,
    country: str,
    language: str,
    timezone: str,
    mooc_start: date,
    now: datetime,
    trainer_id: int | None = None,
    release_hour: int = 9,
) -> Cohort:
    ZoneInfo(timezone)  # raises for an unknown zone, before anything is stored
    cohort = Cohort(
        name=name,
        country=country.upper(),
        language=language,
        timezone=timezone,
        mooc_start=mooc_start,
        release_hour=release_hour,
        created_at=now,
    )
    session.add(cohort)
    await session.flush()
    if trainer_id is not None:
        session.add(CohortTrainer(cohort_id=cohort.id, trainer_id=trainer_id))
        await session.flush()
    return cohort


async def trainer_cohorts(session: AsyncSession, trainer_id: int) -> list[Cohort]:
    """Only the cohorts this trainer runs: the rule for every trainer view."""
    rows = await session.scalars(
        select(Cohort)
        .join(CohortTrainer, CohortTrainer.cohort_id == Cohort.id)
        .where(CohortTrainer.trainer_id == trainer_id)
        .order_by(Cohort.mooc_start.desc(), Cohort.id)
    )
    return list(rows)


async def is_trainer_of(session: AsyncSession, trainer_id: int, cohort_id: int) -> bool:
    row = await session.get(CohortTrainer, (cohort_id, trainer_id))
    return row is not None
