"""Cohorts: the open self-paced MOOC group, and lookups."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Cohort

OPEN_COHORT_NAME = "BIBLIO MOOC (open, self-paced)"


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
