from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select

from bot.services.cohorts import create_cohort, open_cohort
from bot.services.retention import course_end, erase_expired
from storage.db import make_engine, make_sessionmaker
from storage.models import Learner, User

NOW = datetime(2028, 6, 1, 9, tzinfo=UTC)


def _learner(user_id: int, cohort_id: int) -> Learner:
    return Learner(
        user_id=user_id,
        cohort_id=cohort_id,
        name=f"L{user_id}",
        age_band="25-34",
        country="LV",
        education="master",
        employment="library",
        profession="Librarian",
        years_experience=3,
        heard_from="web",
        profile="CECO",
        skills={},
    )


async def test_erases_only_after_the_course_plus_retention(db_url):
    engine = make_engine(db_url)
    sessionmaker = make_sessionmaker(engine)
    async with sessionmaker() as session, session.begin():
        old = await create_cohort(
            session,
            name="2026",
            country="LV",
            language="lv",
            timezone="Europe/Riga",
            mooc_start=date(2027, 1, 4),
            now=NOW,
        )
        recent = await create_cohort(
            session,
            name="2027",
            country="LV",
            language="lv",
            timezone="Europe/Riga",
            mooc_start=date(2027, 9, 6),
            now=NOW,
        )
        recent.spec_end = date(2028, 3, 1)
        openc = await open_cohort(session, NOW - timedelta(days=900))
        for uid, cohort in ((1, old), (2, recent), (3, openc), (4, openc)):
            session.add(User(id=uid, created_at=NOW, last_seen_at=NOW))
            await session.flush()
            learner = _learner(uid, cohort.id)
            # Self-paced: 3 enrolled long ago (erased), 4 recently (kept).
            learner.enrolled_at = NOW - timedelta(days=900 if uid == 3 else 30)
            session.add(learner)
    assert course_end(old) == date(2027, 3, 1)
    async with sessionmaker() as session, session.begin():
        # 1: MOOC ended 2027-03-01, + 365 days <= 2028-06-01; 3: own MOOC ended long ago.
        assert await erase_expired(session, NOW) == 2
    async with sessionmaker() as session:
        left = sorted(await session.scalars(select(Learner.user_id)))
        users = sorted(await session.scalars(select(User.id)))
    assert left == [2, 4] and users == [2, 4]
    await engine.dispose()
