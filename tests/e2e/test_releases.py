"""Eight simulated weeks of four cohorts (Riga, Rome, Sofia, Athens) with learners in all
five languages and both profiles, the real bot polling the local Bot API server, the
planner and the worker driven hour by hour by a FrozenClock.

Every learner gets exactly the calendar's releases, each once, at 09:00 local time on
both sides of the daylight-saving change; webinar reminders 24 h and 1 h before; nothing
in their quiet hours; and a learner who enrols in week 3 gets one catch-up summary
instead of three old releases."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from bot.clock import FrozenClock
from bot.services.invites import create_invite
from bot.services.localtime import in_quiet_hours, quiet_until
from scheduler.planner import plan_once
from scheduler.worker import drain_outbox
from storage.models import Cohort, InviteKind, Outbox, OutboxStatus, User, Webinar
from tests.delivery_support import add_cohort, add_learners, content, in_session, know, set_choices
from tests.e2e.flows import enrol
from tests.e2e.harness import running_bot

START = date(2027, 3, 8)  # Monday; summer time begins on Sunday 28 March (week 4)
CITIES = {
    "Riga": ("Europe/Riga", "lv", "LV"),
    "Rome": ("Europe/Rome", "it", "IT"),
    "Sofia": ("Europe/Sofia", "bg", "BG"),
    "Athens": ("Europe/Athens", "el", "GR"),
}
# user id -> (city, language, profile)
LEARNERS = {
    1001: ("Riga", "lv", "CECO"),
    1002: ("Riga", "lv", "DIGY"),
    1003: ("Riga", "en", "CECO"),
    1011: ("Rome", "it", "CECO"),
    1012: ("Rome", "it", "DIGY"),
    1013: ("Rome", "en", "DIGY"),
    1021: ("Sofia", "bg", "CECO"),
    1022: ("Sofia", "bg", "DIGY"),
    1031: ("Athens", "el", "CECO"),
    1032: ("Athens", "el", "DIGY"),
}
QUIET = {1013: (22 * 60, 10 * 60)}  # everyone else: the default 21:00-08:00
DEFAULT_QUIET = (21 * 60, 8 * 60)
JOINER = 1099  # enrols in Riga on Wednesday of week 3
JOIN_AT = datetime(2027, 3, 24, 12, 0, 1, tzinfo=UTC)
LEADS = {"webinar_24h": timedelta(hours=24), "webinar_1h": timedelta(hours=1)}


def local(city: str, day: date, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=ZoneInfo(CITIES[city][0]))


def webinar_plan() -> dict[str, list[tuple[datetime, bool]]]:
    """Thursday 17:00 local of weeks 2-8; Rome's week-4 one at 09:00 (its 1 h reminder
    falls in 1013's quiet hours, which end after it starts), Athens' week-5 one at 21:00
    (the 24 h reminder falls in the default quiet hours), Sofia's week-6 one cancelled."""
    plan: dict[str, list[tuple[datetime, bool]]] = {}
    for city in CITIES:
        rows = []
        for week in range(2, 9):
            day = START + timedelta(days=7 * (week - 1) + 3)
            hour = 17
            if (city, week) == ("Rome", 4):
                hour = 9
            if (city, week) == ("Athens", 5):
                hour = 21
            rows.append((local(city, day, hour).astimezone(UTC), (city, week) == ("Sofia", 6)))
        plan[city] = rows
    return plan


async def _setup(db_url: str) -> tuple[dict[str, int], str]:
    async def make(session):
        ids: dict[str, int] = {}
        for city, (tz, lang, country) in CITIES.items():
            cohort = await add_cohort(
                session, name=f"{city} 2027", timezone=tz, language=lang, country=country
            )
            ids[city] = cohort.id
        for uid, (city, lang, profile) in LEARNERS.items():
            await add_learners(
                session,
                ids[city],
                [uid],
                language=lang,
                profile=profile,
                enrolled_at=datetime(2027, 3, 1, tzinfo=UTC),
            )
            if uid in QUIET:
                await set_choices(session, uid, quiet=QUIET[uid])
        for city, webinars in webinar_plan().items():
            for n, (starts, cancelled) in enumerate(webinars):
                session.add(
                    Webinar(
                        cohort_id=ids[city],
                        starts_at=starts,
                        join_url=f"https://meet.example.org/{city.lower()}-{n}",
                        cancelled=cancelled,
                        created_at=datetime(2027, 3, 1, tzinfo=UTC),
                    )
                )
        invite = await create_invite(
            session,
            InviteKind.cohort,
            now=datetime(2027, 3, 1, tzinfo=UTC),
            cohort_id=ids["Riga"],
            valid_for=timedelta(days=60),
        )
        return ids, invite.token

    return await in_session(db_url, make)


def _titles(numbers, lang: str) -> list[str]:
    return [content().modules[n].title.get(lang)[0] for n in numbers]


async def test_eight_weeks_of_releases_and_reminders(tg, sqlite_url):
    _ids, token = await _setup(sqlite_url)
    know(tg, LEARNERS)
    for uid, (_city, lang, _p) in LEARNERS.items():
        tg.user(uid).language_code = lang
    clock = FrozenClock(datetime(2027, 3, 7, 0, 0, 1, tzinfo=UTC))
    # Time moves from one moment where something may be due to the next (a second after
    # it, as a minute tick would): every release hour and reminder moment of the domain,
    # the joiner's arrival, and whatever the outbox holds back (quiet hours). A row due
    # at another moment is sent late and fails the timing checks below.
    moments = {JOIN_AT}
    for city in CITIES:
        for week in range(1, 9):
            moments.add(
                local(city, START + timedelta(days=7 * (week - 1)), 9) + timedelta(seconds=1)
            )
        for starts, _cancelled in webinar_plan()[city]:
            moments |= {starts - lead + timedelta(seconds=1) for lead in LEADS.values()}
    began = time.monotonic()
    steps = 0
    # Weeks pass in seconds here: the real-time spacing per chat would only slow it down.
    async with running_bot(tg, sqlite_url, clock=clock, per_chat_interval=0) as app:
        while True:
            async with app.sessionmaker() as session:
                held = await session.scalar(
                    select(func.min(Outbox.not_before)).where(Outbox.status == OutboxStatus.pending)
                )
            ahead = [m for m in moments if m > clock.now()]
            if held is not None and held >= clock.now():
                ahead.append(held + timedelta(seconds=1))
            if not ahead:
                break
            clock.set(min(ahead))
            if clock.now() == JOIN_AT:
                joiner = tg.user(JOINER, language_code="lv")
                await enrol(joiner, "lv", payload=token, profile="DIGY")
            await plan_once(app)
            await drain_outbox(app)
            steps += 1
        clock.set(datetime(2027, 5, 8, tzinfo=UTC))
        await plan_once(app)
        assert (await drain_outbox(app)).claimed == 0
    print(f"\n{steps} steps over 8 simulated weeks in {time.monotonic() - began:.1f} s")

    async def read(session):
        rows = list(await session.scalars(select(Outbox).order_by(Outbox.id)))
        users = {u.id: u for u in await session.scalars(select(User))}
        cohorts = {c.id: c for c in await session.scalars(select(Cohort))}
        return rows, users, cohorts

    rows, users, _cohorts = await in_session(sqlite_url, read)
    calendar = content().calendar
    by_user: dict[int, list[Outbox]] = {}
    for row in rows:
        by_user.setdefault(row.recipient_id, []).append(row)
    webinars = webinar_plan()

    # Nothing left behind, nothing failed.
    assert {r.status for r in rows} <= {OutboxStatus.sent, OutboxStatus.skipped}
    assert all(users[uid].is_active for uid in LEARNERS)

    for uid, (city, lang, profile) in LEARNERS.items():
        tz = ZoneInfo(CITIES[city][0])
        quiet = QUIET.get(uid, DEFAULT_QUIET)
        mine = by_user[uid]
        releases = [r for r in mine if r.kind == "release"]
        # Exactly the calendar's releases, each once, at the release hour (or when the
        # learner's quiet hours end), local time, before and after the clocks change.
        assert sorted(r.payload["week"] for r in releases) == list(range(1, 9)), uid
        for r in releases:
            week = r.payload["week"]
            due = local(city, START + timedelta(days=7 * (week - 1)), 9)
            expected = quiet_until(due, tz, *quiet) or due
            assert r.status is OutboxStatus.sent, (uid, week, r.error)
            assert expected <= r.sent_at <= expected + timedelta(minutes=1), (uid, week)
            assert r.sent_at.astimezone(tz).hour == (10 if uid in QUIET else 9)
        # Reminders 24 h and 1 h before each webinar that is not cancelled.
        reminders = {(r.kind, r.payload["starts_at"]): r for r in mine if r.kind in LEADS}
        expected_keys = {
            (kind, starts.isoformat())
            for starts, cancelled in webinars[city]
            if not cancelled
            for kind in LEADS
        }
        assert set(reminders) == expected_keys, uid
        for (kind, starts_iso), r in reminders.items():
            starts = datetime.fromisoformat(starts_iso)
            due = starts - LEADS[kind]
            held_until = quiet_until(due, tz, *quiet)
            if held_until is not None and held_until >= starts:
                assert r.status is OutboxStatus.skipped and r.error.startswith("expired"), r.key
                continue
            expected = held_until or due
            assert r.status is OutboxStatus.sent, (r.key, r.error)
            assert expected <= r.sent_at <= expected + timedelta(minutes=1), r.key
        # Nothing that can wait was sent in the learner's quiet hours.
        for r in mine:
            if r.status is OutboxStatus.sent and not r.urgent:
                assert not in_quiet_hours(r.sent_at, tz, *quiet), (r.key, r.sent_at)
        # What the learner's chat shows: one message per row sent, no duplicates, in
        # their language, with their profile.
        chat = tg.user(uid).messages
        sent_rows = [r for r in mine if r.status is OutboxStatus.sent]
        assert len(chat) == len(sent_rows)
        assert sorted(m.message_id for m in chat) == sorted(r.message_id or 0 for r in sent_rows)
        by_id = {m.message_id: m for m in chat}
        for r in releases:
            text = by_id[r.message_id].text
            for title in _titles(calendar.modules_of_week(r.payload["week"]), lang):
                assert title in text, (uid, title)
            assert profile in text

    # The special cases did happen.
    skipped = [r for r in by_user[1013] if r.status is OutboxStatus.skipped]
    assert [r.kind for r in skipped] == ["webinar_1h"]  # Rome 09:00: quiet until 10:00
    athens_24h = [
        r
        for r in by_user[1031]
        if r.kind == "webinar_24h"
        and r.payload["starts_at"] == webinars["Athens"][3][0].isoformat()
    ]
    assert athens_24h[0].sent_at.astimezone(ZoneInfo("Europe/Athens")).hour == 8

    # The mid-course joiner: one catch-up with weeks 1-3, then weeks 4-8 as they open.
    joiner_rows = by_user[JOINER]
    catch_up = [r for r in joiner_rows if r.kind == "catch_up"]
    assert len(catch_up) == 1 and catch_up[0].payload["weeks"] == [1, 2, 3]
    assert catch_up[0].status is OutboxStatus.sent
    assert JOIN_AT <= catch_up[0].sent_at < JOIN_AT + timedelta(minutes=5)
    assert sorted(r.payload["week"] for r in joiner_rows if r.kind == "release") == [4, 5, 6, 7, 8]
    summary = next(m for m in tg.user(JOINER).messages if m.message_id == catch_up[0].message_id)
    for week in (1, 2, 3):
        for title in _titles(calendar.modules_of_week(week), "lv"):
            assert title in summary.text
    counts = Counter(r.message_id for r in joiner_rows if r.message_id)
    assert max(counts.values()) == 1
