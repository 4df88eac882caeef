"""Work-based learning rules: the check-in schedule, what people type, status transitions,
totals, who may see and decide what; then the planners and renderers on a real store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import FrozenClock
from bot.i18n import make_i18n
from bot.services import wbl
from bot.services.cohorts import create_cohort
from bot.services.invites import create_invite
from bot.services.outbox import RENDERERS, RenderContext, Skip
from bot.services.planning import PLANNERS, PlanContext
from bot.services.registration import Invalid
from storage.db import make_engine, make_sessionmaker
from storage.models import CheckIn, InviteKind, Learner, Outbox, Placement, Role, User
from tests.e2e.harness import shipped_content

MONDAY = date(2027, 3, 1)

# --- plain rules -----------------------------------------------------------------------------


def test_checkins_fall_on_the_friday_of_weeks_2_4_6_8_10():
    days = [wbl.checkin_day(MONDAY, n) for n in range(1, 6)]
    assert days == [
        date(2027, 3, 12),
        date(2027, 3, 26),
        date(2027, 4, 9),
        date(2027, 4, 23),
        date(2027, 5, 7),
    ]
    for start in (date(2027, 3, 3), date(2027, 3, 6), date(2027, 3, 7)):  # Wed, Sat, Sun
        for n in range(1, 6):
            day = wbl.checkin_day(start, n)
            assert day.weekday() == 4
            # inside the placement's week 2n, counted from the start date
            assert 14 * n - 7 <= (day - start).days < 14 * n
    assert wbl.end_date(MONDAY, 10) == date(2027, 5, 9)
    assert wbl.checkin_count(10) == 5
    assert wbl.weeks_of(3) == (5, 6)
    with pytest.raises(ValueError):
        wbl.checkin_day(MONDAY, 0)


@pytest.mark.parametrize(
    ("tz", "before", "after"),
    [
        # 09:00 local before and after the spring change (last Sunday of March 2027: 28th)
        ("Europe/Riga", 7, 6),
        ("Europe/Rome", 8, 7),
        ("Europe/Sofia", 7, 6),
        ("Europe/Athens", 7, 6),
    ],
)
def test_schedule_is_local_morning_across_daylight_saving(tz, before, after):
    due = wbl.schedule(date(2027, 3, 15), 10, tz, 9)
    assert len(due) == 5
    assert due[0] == datetime(2027, 3, 26, before, tzinfo=UTC)  # before the change
    assert due[1] == datetime(2027, 4, 9, after, tzinfo=UTC)  # after it
    assert all(d.tzinfo is UTC or d.utcoffset() == timedelta(0) for d in due)


def test_next_mondays():
    assert wbl.next_mondays(date(2027, 3, 1)) == [
        date(2027, 3, 1),
        date(2027, 3, 8),
        date(2027, 3, 15),
        date(2027, 3, 22),
    ]
    assert wbl.next_mondays(date(2027, 3, 3), 2) == [date(2027, 3, 8), date(2027, 3, 15)]


@pytest.mark.parametrize(
    ("text", "hours"),
    [
        ("0", 0),
        ("16", 16),
        (" 80 ", 80),
        ("16 h", 16),
        ("16h", 16),
        ("16 ore", 16),
        ("24 ч", 24),
        ("32,0", 32),
    ],
)
def test_hours_accepted(text, hours):
    assert wbl.parse_hours(text) == hours


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("-5", "negative"),
        ("−3", "negative"),
        ("81", "more than 80"),
        ("500", "more than 80"),
        ("7.5", "whole hours"),
        ("abc", "as a number"),
        ("", "as a number"),
        ("16-20", "as a number"),
        ("1e3", "as a number"),
    ],
)
def test_hours_refused_with_a_clear_reason(text, reason):
    result = wbl.parse_hours(text)
    assert isinstance(result, Invalid)
    assert reason in result.reason


def test_typed_answers():
    assert wbl.check_answer("  catalogued 40 books ") == "catalogued 40 books"
    assert isinstance(wbl.check_answer("   "), Invalid)
    assert isinstance(wbl.check_answer("x" * 1001), Invalid)
    assert wbl.check_library("  Rīgas   Centrālā bibliotēka ") == "Rīgas Centrālā bibliotēka"
    assert isinstance(wbl.check_library("x"), Invalid)
    assert isinstance(wbl.check_library("x" * 201), Invalid)
    assert isinstance(wbl.check_comment(""), Invalid)
    today = date(2027, 3, 3)
    assert wbl.parse_start("2027-03-08", today) == date(2027, 3, 8)
    assert wbl.parse_start("2027-02-24", today) == date(2027, 2, 24)  # a week ago is fine
    for bad in ("2027-02-23", "2027-02-30", "8.3.2027", "2028-03-10", "soon"):
        assert isinstance(wbl.parse_start(bad, today), Invalid), bad


def test_status_transitions():
    S, E = wbl.CheckInStatus, wbl.CheckInEvent
    assert wbl.next_status("open", E.submit) is S.submitted
    assert wbl.next_status("overdue", E.submit) is S.submitted  # late is still accepted
    assert wbl.next_status("open", E.overdue) is S.overdue
    assert wbl.next_status("submitted", E.confirm) is S.confirmed
    assert wbl.next_status("submitted", E.talk) is S.talk
    assert wbl.next_status("talk", E.confirm) is S.confirmed  # confirmed after the talk
    for status in ("confirmed", "submitted", "talk"):
        assert wbl.next_status(status, E.submit) is None  # sent once
    for event in E:
        assert wbl.next_status("confirmed", event) is None  # final
    assert wbl.next_status("open", E.confirm) is None  # nothing to confirm yet
    assert wbl.next_status("nonsense", E.submit) is None
    assert wbl.sources(E.confirm) == ["submitted", "talk"]
    assert wbl.sources(E.submit) == ["open", "overdue"]


def _checkin(number: int, status: str, hours: int | None, due: datetime) -> CheckIn:
    return CheckIn(number=number, status=status, hours=hours, due_at=due, answers={})


def test_totals_add_up_exactly():
    now = datetime(2027, 4, 30, tzinfo=UTC)
    items = [
        _checkin(1, "confirmed", 33, now - timedelta(days=40)),
        _checkin(2, "confirmed", 31, now - timedelta(days=30)),
        _checkin(3, "talk", 40, now - timedelta(days=20)),
        _checkin(4, "submitted", 12, now - timedelta(days=7)),
        _checkin(5, "open", None, now + timedelta(days=7)),
    ]
    sums = wbl.totals(items, now)
    assert (sums.logged, sums.confirmed, sums.planned) == (116, 64, 165)
    assert (sums.count, sums.done, sums.confirmed_count, sums.awaiting) == (5, 4, 2, 2)
    assert (sums.due, sums.overdue) == (0, 0)
    items[4].due_at = now - timedelta(hours=1)
    assert wbl.totals(items, now).due == 1
    items[4].status = "overdue"
    assert (wbl.totals(items, now).due, wbl.totals(items, now).overdue) == (0, 1)


def test_mentor_sees_and_decides_only_their_own():
    placement = Placement(id=1, learner_id=10, mentor_id=20, status="active")
    assert wbl.mentor_may_see(20, placement) and wbl.may_decide(20, placement)
    assert not wbl.mentor_may_see(21, placement) and not wbl.may_decide(21, placement)
    placement.status = "ended"
    assert not wbl.mentor_may_see(20, placement) and not wbl.may_decide(20, placement)
    assert not wbl.may_decide(20, None)


def test_chunks_stay_under_the_limit():
    blocks = ["x" * 1000] * 9
    out = wbl.chunks(blocks, limit=3800)
    assert all(len(c) <= 3800 for c in out)
    assert "".join(out).count("x") == 9000


# --- on a real store -------------------------------------------------------------------------

T0 = datetime(2027, 2, 25, 10, tzinfo=UTC)


async def _session(url: str) -> AsyncIterator[AsyncSession]:
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as s:
            yield s
    finally:
        await engine.dispose()


@pytest.fixture
async def session(sqlite_url: str) -> AsyncIterator[AsyncSession]:
    async for s in _session(sqlite_url):
        yield s


@pytest.fixture
async def both_session(db_url: str) -> AsyncIterator[AsyncSession]:
    """On SQLite and on PostgreSQL: the queries and conditional updates matter on both."""
    async for s in _session(db_url):
        yield s


async def add_user(
    session: AsyncSession, user_id: int, role: Role = Role.learner, language: str | None = "en"
) -> User:
    user = User(
        id=user_id,
        language=language,
        role=role,
        is_active=True,
        consent_version=1 if role is Role.learner and language else None,
        consent_language=language if role is Role.learner and language else None,
        created_at=T0,
        last_seen_at=T0,
    )
    session.add(user)
    await session.flush()
    return user


async def add_learner(
    session: AsyncSession, user_id: int, cohort_id: int, name: str, language: str = "en"
) -> Learner:
    await add_user(session, user_id, Role.learner, language)
    learner = Learner(
        user_id=user_id,
        cohort_id=cohort_id,
        name=name,
        email=None,
        age_band="35-44",
        country="LV",
        education="master",
        employment="library",
        profession="Librarian",
        years_experience=10,
        heard_from="colleague",
        profile="CECO",
        skills={},
        enrolled_at=T0,
        updated_at=T0,
    )
    session.add(learner)
    await session.flush()
    return learner


async def world(session: AsyncSession) -> dict[str, Any]:
    """Two cohorts with a trainer each; three learners; two mentors."""
    t1 = await add_user(session, 100, Role.trainer)
    t2 = await add_user(session, 200, Role.trainer)
    riga = await create_cohort(
        session,
        name="Rīga",
        country="LV",
        language="lv",
        timezone="Europe/Riga",
        mooc_start=date(2026, 11, 2),
        now=T0,
        trainer_id=t1.id,
    )
    roma = await create_cohort(
        session,
        name="Roma",
        country="IT",
        language="it",
        timezone="Europe/Rome",
        mooc_start=date(2026, 11, 2),
        now=T0,
        trainer_id=t2.id,
    )
    await add_learner(session, 1, riga.id, "Anna <b>&</b> Co")
    await add_learner(session, 2, riga.id, "Jānis")
    await add_learner(session, 3, roma.id, "Giulia")
    m1 = await add_user(session, 50, Role.mentor)
    m2 = await add_user(session, 60, Role.mentor, "lv")
    placements = {}
    for learner_id, trainer, mentor in ((1, t1, m1), (2, t1, m2), (3, t2, m1)):
        p = await wbl.create_placement(
            session,
            trainer_id=trainer.id,
            learner_id=learner_id,
            host_library=f"Library of {learner_id}",
            start=MONDAY,
            now=T0,
        )
        assert isinstance(p, Placement)
        p.mentor_id = mentor.id
        placements[learner_id] = p
    await session.flush()
    return {"t1": t1, "t2": t2, "m1": m1, "m2": m2, "riga": riga, "roma": roma, "p": placements}


async def outbox(session: AsyncSession, kind: str | None = None) -> list[Outbox]:
    query = select(Outbox).order_by(Outbox.id)
    if kind:
        query = query.where(Outbox.kind == kind)
    return list(await session.scalars(query))


async def plan(session: AsyncSession, now: datetime) -> int:
    ctx = PlanContext(session, shipped_content(), FrozenClock(now), now - timedelta(minutes=1), now)
    return await PLANNERS["wbl_checkins"](ctx) + await PLANNERS["wbl_mentors"](ctx)


_I18N = make_i18n()


async def render(session: AsyncSession, row: Outbox, now: datetime, locale: str = "en"):
    recipient = await session.get(User, row.recipient_id)
    ctx = RenderContext(session, shipped_content(), _I18N, FrozenClock(now), recipient)
    with _I18N.use_locale(locale):
        return await RENDERERS[row.kind](ctx, row)


def answers(
    support: bool = False, hours: int = 30, did: str = "Catalogued <i>old</i> maps & atlases"
) -> dict[str, Any]:
    return {
        "did": wbl.text_answer(did),
        "learned": wbl.voice_answer("voice-file-1", 12),
        "difficulties": wbl.text_answer("none"),
        "support": support,
        "hours": hours,
    }


async def test_placement_creates_the_schedule_and_tells_the_learner(session):
    w = await world(session)
    checkins = await wbl.checkins_of(session, w["p"][1].id)
    assert [c.number for c in checkins] == [1, 2, 3, 4, 5]
    assert [c.due_at for c in checkins] == wbl.schedule(MONDAY, 10, "Europe/Riga", 9)
    assert {c.status for c in checkins} == {"open"}
    placed = await outbox(session, wbl.KIND_PLACED)
    assert [r.recipient_id for r in placed] == [1, 2, 3]
    text = (await render(session, placed[0], T0)).text
    assert "Library of 1" in text and "/mentor_link" in text and "165" in text


async def test_a_trainer_places_only_their_own_learners_once(session):
    w = await world(session)
    other = await wbl.create_placement(
        session, trainer_id=w["t2"].id, learner_id=2, host_library="X", start=MONDAY, now=T0
    )
    assert other is wbl.SetupProblem.not_your_learner
    again = await wbl.create_placement(
        session, trainer_id=w["t1"].id, learner_id=2, host_library="X", start=MONDAY, now=T0
    )
    assert again is wbl.SetupProblem.already_placed
    assert [x.user_id for x in await wbl.candidate_learners(session, w["t1"].id)] == []


async def test_who_sees_which_placements(both_session):
    session = both_session
    w = await world(session)

    async def names(user: User) -> list[str]:
        return [v.learner_name for v in await wbl.visible_placements(session, user)]

    assert await names(w["m1"]) == ["Anna <b>&</b> Co", "Giulia"]  # two learners, two cohorts
    assert await names(w["m2"]) == ["Jānis"]
    assert await names(w["t1"]) == ["Anna <b>&</b> Co", "Jānis"]
    assert await names(w["t2"]) == ["Giulia"]
    stranger = await add_user(session, 70, Role.mentor)
    assert await names(stranger) == []
    assert await wbl.may_see(session, w["t1"], w["p"][1])
    assert not await wbl.may_see(session, w["t2"], w["p"][1])
    assert not await wbl.may_see(session, w["m2"], w["p"][1])
    w["p"][1].status = "ended"
    await session.flush()
    assert await names(w["m1"]) == ["Giulia"]
    assert await names(w["t1"]) == ["Jānis"]


async def test_submit_once_and_decide_once(both_session):
    session = both_session
    w = await world(session)
    first = (await wbl.checkins_of(session, w["p"][1].id))[0]
    now = first.due_at + timedelta(hours=2)
    # Not the learner's own check-in: nothing happens.
    assert (
        await wbl.submit_checkin(
            session, checkin_id=first.id, learner_id=2, answers=answers(), now=now
        )
        is wbl.SubmitResult.not_open
    )
    assert (
        await wbl.submit_checkin(
            session, checkin_id=first.id, learner_id=1, answers={"did": {}}, now=now
        )
        is wbl.SubmitResult.not_open
    )
    assert (
        await wbl.submit_checkin(
            session, checkin_id=first.id, learner_id=1, answers=answers(), now=now
        )
        is wbl.SubmitResult.to_mentor
    )
    assert (
        await wbl.submit_checkin(
            session, checkin_id=first.id, learner_id=1, answers=answers(hours=80), now=now
        )
        is wbl.SubmitResult.not_open
    )
    await session.refresh(first)
    assert (first.status, first.hours, first.mentor_asked_at) == ("submitted", 30, now)
    assert first.answers["learned"] == {"voice": "voice-file-1", "duration": 12}
    (row,) = await outbox(session, wbl.KIND_REFLECTION)
    assert row.recipient_id == w["m1"].id and row.payload == {"checkin_id": first.id}

    def decide(mentor: User, event: wbl.CheckInEvent, comment: str | None = None):
        return wbl.decide(
            session, checkin_id=first.id, mentor_id=mentor.id, event=event, now=now, comment=comment
        )

    assert await decide(w["m2"], wbl.CheckInEvent.confirm) is wbl.DecideResult.not_yours
    assert (
        await decide(w["m1"], wbl.CheckInEvent.talk, "Let's meet on Monday")
        is wbl.DecideResult.done
    )
    assert await decide(w["m1"], wbl.CheckInEvent.confirm) is wbl.DecideResult.done
    assert await decide(w["m1"], wbl.CheckInEvent.confirm) is wbl.DecideResult.already
    assert await decide(w["m1"], wbl.CheckInEvent.talk) is wbl.DecideResult.already
    await session.refresh(first)
    assert (first.status, first.decided_by, first.mentor_comment) == (
        "confirmed",
        50,
        "Let's meet on Monday",
    )
    told = await outbox(session, wbl.KIND_ANSWER)
    assert [r.payload["event"] for r in told] == ["talk", "confirm"]
    assert {r.recipient_id for r in told} == {1}
    confirm_text = (await render(session, told[1], now)).text
    assert "30 hours" in confirm_text and "30 of 165" in confirm_text
    talk_text = (await render(session, told[0], now)).text
    assert "Let&#x27;s meet on Monday" in talk_text or "Let's meet on Monday" in talk_text
    with pytest.raises(ValueError):
        await decide(w["m1"], wbl.CheckInEvent.submit)


async def test_reflection_is_escaped_and_in_the_mentors_language(session):
    w = await world(session)
    second_learner_first = (await wbl.checkins_of(session, w["p"][2].id))[0]
    now = second_learner_first.due_at
    await wbl.submit_checkin(
        session,
        checkin_id=second_learner_first.id,
        learner_id=2,
        answers=answers(did="<script>alert(1)</script> & more"),
        now=now,
    )
    (row,) = await outbox(session, wbl.KIND_REFLECTION)
    out = await render(session, row, now, locale="lv")
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in out.text
    assert "<script>" not in out.text
    assert _I18N.gettext("Please confirm the hours, or ask to talk.", locale="lv") in out.text
    data = [b.callback_data for row_ in out.reply_markup.inline_keyboard for b in row_]
    assert wbl.MentorAnswer(checkin_id=row.payload["checkin_id"], event="confirm").pack() in data
    assert wbl.VoiceNote(checkin_id=row.payload["checkin_id"], field="learned").pack() in data
    # The learner's name is escaped too.
    first = (await wbl.checkins_of(session, w["p"][1].id))[0]
    await wbl.submit_checkin(session, checkin_id=first.id, learner_id=1, answers=answers(), now=now)
    row = (await outbox(session, wbl.KIND_REFLECTION))[-1]
    assert "Anna &lt;b&gt;&amp;&lt;/b&gt; Co" in (await render(session, row, now)).text


async def test_learner_side_planner_timeline(both_session):
    session = both_session
    w = await world(session)
    first = (await wbl.checkins_of(session, w["p"][1].id))[0]
    due = first.due_at
    assert await plan(session, due - timedelta(minutes=1)) == 0
    assert await plan(session, due) == 2  # the two Rīga learners; Rome is an hour later
    assert await plan(session, due) == 0  # idempotent
    prompts = await outbox(session, wbl.KIND_PROMPT)
    mine = [r for r in prompts if r.payload["checkin_id"] == first.id]
    assert (
        len(mine) == 1
        and mine[0].not_before == due
        and mine[0].expires_at == due + timedelta(days=6)
    )
    out = await render(session, mine[0], due)
    assert (
        out.reply_markup.inline_keyboard[0][0].callback_data
        == wbl.CheckinStart(checkin_id=first.id).pack()
    )
    await plan(session, due + timedelta(days=2))
    await plan(session, due + timedelta(days=4, hours=1))
    reminders = [
        r for r in await outbox(session, wbl.KIND_REMINDER) if r.payload["checkin_id"] == first.id
    ]
    assert [r.payload["step"] for r in reminders] == [1, 2]
    assert reminders[0].not_before == due + timedelta(days=2)
    assert reminders[0].expires_at == due + timedelta(days=4)
    assert await outbox(session, wbl.KIND_OVERDUE) == []
    await plan(session, due + timedelta(days=6))
    await session.refresh(first)
    assert first.status == "overdue"
    overdue = [
        r for r in await outbox(session, wbl.KIND_OVERDUE) if r.payload["checkin_id"] == first.id
    ]
    assert [r.recipient_id for r in overdue] == [w["t1"].id]
    assert "Anna &lt;b&gt;" in (await render(session, overdue[0], due + timedelta(days=6))).text
    # A late reflection is still accepted; the reminder no longer renders.
    assert (
        await wbl.submit_checkin(
            session,
            checkin_id=first.id,
            learner_id=1,
            answers=answers(),
            now=due + timedelta(days=7),
        )
        is wbl.SubmitResult.to_mentor
    )
    with pytest.raises(Skip):
        await render(session, reminders[1], due + timedelta(days=7))
    with pytest.raises(Skip):
        await render(session, overdue[0], due + timedelta(days=7))


async def test_planner_after_downtime_sends_the_latest_step_only(session):
    w = await world(session)
    first = (await wbl.checkins_of(session, w["p"][2].id))[0]
    await plan(session, first.due_at + timedelta(days=5))
    mine = [r for r in await outbox(session) if r.payload.get("checkin_id") == first.id]
    assert [(r.kind, r.payload.get("step")) for r in mine] == [(wbl.KIND_REMINDER, 2)]


async def test_mentor_side_planner(both_session):
    session = both_session
    w = await world(session)
    first = (await wbl.checkins_of(session, w["p"][1].id))[0]
    at = first.due_at + timedelta(hours=1)
    await wbl.submit_checkin(session, checkin_id=first.id, learner_id=1, answers=answers(), now=at)
    await plan(session, at + timedelta(days=3) - timedelta(minutes=1))
    assert await outbox(session, wbl.KIND_MENTOR_REMINDER) == []
    await plan(session, at + timedelta(days=3))
    (reminder,) = await outbox(session, wbl.KIND_MENTOR_REMINDER)
    assert reminder.recipient_id == w["m1"].id
    assert (
        "waiting for your answer" in (await render(session, reminder, at + timedelta(days=3))).text
    )
    assert await outbox(session, wbl.KIND_MENTOR_SILENT) == []
    await plan(session, at + timedelta(days=5))
    await plan(session, at + timedelta(days=5, minutes=1))
    (silent,) = await outbox(session, wbl.KIND_MENTOR_SILENT)
    assert silent.recipient_id == w["t1"].id
    # The mentor answers: the escalation no longer renders.
    await wbl.decide(
        session,
        checkin_id=first.id,
        mentor_id=w["m1"].id,
        event=wbl.CheckInEvent.confirm,
        now=at + timedelta(days=5),
    )
    with pytest.raises(Skip):
        await render(session, silent, at + timedelta(days=5))


async def test_support_tells_mentor_and_trainer_at_once(session):
    w = await world(session)
    first = (await wbl.checkins_of(session, w["p"][3].id))[0]
    now = first.due_at + timedelta(minutes=5)
    await wbl.submit_checkin(
        session, checkin_id=first.id, learner_id=3, answers=answers(support=True), now=now
    )
    (support,) = await outbox(session, wbl.KIND_SUPPORT)
    (reflection,) = await outbox(session, wbl.KIND_REFLECTION)
    assert (support.recipient_id, support.urgent, support.not_before) == (w["t2"].id, True, now)
    assert (reflection.recipient_id, reflection.urgent, reflection.not_before) == (
        w["m1"].id,
        True,
        now,
    )
    assert "would like support" in (await render(session, reflection, now)).text
    assert "Giulia" in (await render(session, support, now)).text


async def test_no_mentor_yet_then_mentor_links(session):
    w = await world(session)
    placement = w["p"][2]
    placement.mentor_id = None
    first = (await wbl.checkins_of(session, placement.id))[0]
    now = first.due_at
    assert (
        await wbl.submit_checkin(
            session, checkin_id=first.id, learner_id=2, answers=answers(), now=now
        )
        is wbl.SubmitResult.waiting_for_mentor
    )
    (waiting,) = await outbox(session, wbl.KIND_NO_MENTOR)
    assert waiting.recipient_id == w["t1"].id
    assert await outbox(session, wbl.KIND_REFLECTION) == []
    await plan(session, now + timedelta(days=6))  # no mentor: no mentor reminders
    assert await outbox(session, wbl.KIND_MENTOR_REMINDER) == []
    invite = await create_invite(session, InviteKind.mentor, now=now, learner_id=2, max_uses=1)
    newcomer = await add_user(session, 80, Role.learner, None)
    later = now + timedelta(days=7)
    outcome = await wbl.link_mentor(
        session, invite=invite, mentor=newcomer, now=later, language="it"
    )
    assert outcome.result is wbl.LinkResult.linked and outcome.learner_name == "Jānis"
    assert (newcomer.role, newcomer.language, placement.mentor_id) == (Role.mentor, "it", 80)
    (reflection,) = await outbox(session, wbl.KIND_REFLECTION)
    assert reflection.recipient_id == 80 and reflection.not_before == later
    with pytest.raises(Skip):  # the trainer's "waiting" notice is stale now
        await render(session, waiting, later)
    # The learner opening their own link does not use it up.
    own = await create_invite(session, InviteKind.mentor, now=now, learner_id=2, max_uses=1)
    own.uses = 1
    learner_user = await session.get(User, 2)
    assert (
        await wbl.link_mentor(session, invite=own, mentor=learner_user, now=later, language="en")
    ).result is wbl.LinkResult.own_link
    assert own.uses == 0 and learner_user.role is Role.learner


async def test_blocked_mentor_flags_the_placement_and_unblocking_clears_it(session):
    w = await world(session)
    w["m2"].is_active = False
    await session.flush()
    now = T0 + timedelta(days=3)
    await plan(session, now)
    await plan(session, now + timedelta(minutes=1))
    await session.refresh(w["p"][2])
    assert (w["p"][2].status, w["p"][2].flag_reason) == ("flagged", "mentor_blocked")
    gone = await outbox(session, wbl.KIND_MENTOR_GONE)
    assert [r.recipient_id for r in gone] == [w["t1"].id]
    assert "blocked the bot" in (await render(session, gone[0], now)).text
    (learner_notice,) = await outbox(session, wbl.KIND_MENTOR_GONE_LEARNER)
    assert learner_notice.recipient_id == 2
    listing = [
        v for v in await wbl.visible_placements(session, w["t1"]) if v.placement.learner_id == 2
    ]
    with _I18N.context():
        assert "blocked the bot" in wbl.placement_lines(listing[0], now)
    w["m2"].is_active = True
    await session.flush()
    await plan(session, now + timedelta(days=1))
    await session.refresh(w["p"][2])
    assert (w["p"][2].status, w["p"][2].flag_reason) == ("active", None)
    with pytest.raises(Skip):
        await render(session, learner_notice, now)


async def test_withdrawal_ends_placements_and_tells_the_mentor_nothing_else(session):
    w = await world(session)
    first = (await wbl.checkins_of(session, w["p"][1].id))[0]
    await wbl.submit_checkin(
        session, checkin_id=first.id, learner_id=1, answers=answers(), now=first.due_at
    )
    (reflection,) = await outbox(session, wbl.KIND_REFLECTION)
    assert await wbl.end_placements_for(session, 1, first.due_at) == 1
    assert w["p"][1].status == "ended"
    (ended,) = await outbox(session, wbl.KIND_ENDED)
    assert (ended.recipient_id, ended.payload) == (w["m1"].id, {})
    text = (await render(session, ended, first.due_at)).text
    assert "Anna" not in text and "Library of 1" not in text
    with pytest.raises(Skip):  # the pending reflection is not sent after the withdrawal
        await render(session, reflection, first.due_at)
    assert await wbl.end_placements_for(session, 1, first.due_at) == 0


async def test_a_mentor_leaving_flags_their_placements(session):
    w = await world(session)
    assert await wbl.end_placements_for(session, w["m1"].id, T0) == 2
    for learner_id in (1, 3):
        p = w["p"][learner_id]
        assert (p.status, p.flag_reason, p.mentor_id) == ("flagged", "mentor_left", None)
    gone = await outbox(session, wbl.KIND_MENTOR_GONE)
    assert sorted(r.recipient_id for r in gone) == [w["t1"].id, w["t2"].id]
    assert "left the bot" in (await render(session, gone[0], T0)).text
