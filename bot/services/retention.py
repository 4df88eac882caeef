"""Retention: a learner's personal data is erased a set time after their group's course
ends (the privacy notice says 12 months); only anonymous statistics remain."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services import privacy
from bot.services.planning import PlanContext, planner
from storage.fsm import forget_user
from storage.models import Cohort, Learner

DEFAULT_RETENTION = timedelta(days=365)
MOOC_WEEKS = 8


def course_end(cohort: Cohort, learner: Learner | None = None) -> date:
    """The end of the course: the specialisation course when the group has one, else the
    8-week MOOC. In the open self-paced group each learner's MOOC starts at enrolment."""
    if cohort.spec_end is not None:
        return cohort.spec_end
    start = cohort.mooc_start
    if cohort.self_paced and learner is not None:
        start = learner.enrolled_at.date()
    return start + timedelta(weeks=MOOC_WEEKS)


async def expired_learners(
    session: AsyncSession, now: datetime, retention: timedelta = DEFAULT_RETENTION
) -> list[int]:
    rows = await session.execute(
        select(Learner, Cohort).join(Cohort, Cohort.id == Learner.cohort_id)
    )
    today = now.date()
    return [
        learner.user_id
        for learner, cohort in rows
        if course_end(cohort, learner) + retention <= today
    ]


async def erase_expired(
    session: AsyncSession, now: datetime, retention: timedelta = DEFAULT_RETENTION
) -> int:
    user_ids = await expired_learners(session, now, retention)
    for user_id in user_ids:
        await forget_user(session, user_id)
        await privacy.erase(session, user_id)
    return len(user_ids)


@planner("retention")
async def plan_retention(ctx: PlanContext) -> int:
    # Runs with every tick; the query is one join over learners and cheap to repeat.
    await erase_expired(ctx.session, ctx.until)
    return 0
