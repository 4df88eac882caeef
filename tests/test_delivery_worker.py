"""The planner and the delivery worker against the local Bot API server: what is planned,
how each row is rendered and checked, and every Telegram answer: 429, 403, 5xx,
network errors; expired, muted, quiet hours, withdrawn; leases."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar as ICalendar
from sqlalchemy import select, update

from bot.clock import FrozenClock
from bot.sandbox.server import BotAPIServer
from bot.services.localtime import format_day
from bot.services.releases import plan_catch_up
from scheduler.planner import run_tick
from storage.models import (
    Learner,
    LearnerStatus,
    Outbox,
    OutboxStatus,
    PlannerState,
    User,
    Webinar,
)
from tests.delivery_support import (
    WorkerRig,
    add_cohort,
    add_learners,
    content,
    in_session,
    know,
    set_choices,
)
from tests.e2e.test_foundation import tr

# Week 1 of a Riga cohort starting Monday 8 March 2027 opens at 09:00 EET = 07:00 UTC.
WEEK1 = datetime(2027, 3, 8, 7, tzinfo=UTC)


@pytest.fixture
async def tg() -> AsyncIterator[BotAPIServer]:
    server = BotAPIServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def _riga_cohort(db_url, learners: dict[int, tuple[str, str]], **cohort) -> int:
    async def make(session):
        c = await add_cohort(session, **cohort)
        for uid, (lang, profile) in learners.items():
            await add_learners(
                session,
                c.id,
                [uid],
                language=lang,
                profile=profile,
                enrolled_at=WEEK1 - timedelta(days=3),
            )
        return c.id

    return await in_session(db_url, make)


async def test_release_planned_once_and_rendered_per_learner(tg, db_url):
    cohort_id = await _riga_cohort(db_url, {11: ("lv", "CECO"), 12: ("el", "DIGY")})
    know(tg, [11, 12])
    clock = FrozenClock(WEEK1 - timedelta(minutes=5))
    rig = WorkerRig(tg, db_url, clock)
    try:
        first = await run_tick(rig.sessionmaker, content(), clock)
        assert first.added.get("releases") == 0  # not yet 09:00
        clock.advance(timedelta(minutes=6))
        tick = await run_tick(rig.sessionmaker, content(), clock)
        assert tick.added["releases"] == 2 and tick.since == WEEK1 - timedelta(minutes=5)

        # Planning the same moment again (another process, a restart) adds nothing.
        async def rewind(session):
            await session.execute(
                update(PlannerState).values(planned_until=WEEK1 - timedelta(days=1))
            )

        await in_session(db_url, rewind)
        assert (await run_tick(rig.sessionmaker, content(), clock)).total == 0
        stats = await rig.worker.drain()
        assert (stats.claimed, stats.sent) == (2, 2)
        assert (await rig.worker.drain()).claimed == 0
        rows = await rig.rows(Outbox.kind == "release")
        assert {r.key for r in rows} == {f"release:{cohort_id}:w1:11", f"release:{cohort_id}:w1:12"}
        assert all(r.status is OutboxStatus.sent and r.message_id and r.attempts == 1 for r in rows)
        assert all(r.sent_at == clock.now() and r.claimed_by == rig.worker.id for r in rows)
    finally:
        await rig.close()
    lv = tg.user(11).messages[-1]
    el = tg.user(12).messages[-1]
    assert (
        "Ievads digitalizācijā" in lv.text
        and tr("core for {profile}", "lv").format(profile="CECO") in lv.text
    )
    assert "Εισαγωγή στην ψηφιοποίηση" in el.text and "DIGY" in el.text
    assert "moodle.example.org" in lv.text
    assert [b["callback_data"] for b in lv.buttons] == ["qz:start:1", "qz:start:32", "qz:start:22"]


async def test_429_pauses_all_sends_and_does_not_count(tg, sqlite_url):
    await _riga_cohort(sqlite_url, {i: ("en", "CECO") for i in (21, 22, 23)})
    know(tg, [21, 22, 23])
    clock = FrozenClock(WEEK1 + timedelta(minutes=1))
    rig = WorkerRig(tg, sqlite_url, clock, concurrency=1)
    tg.fail_next("sendMessage", 429, "Too Many Requests: retry after 1", retry_after=1)
    try:
        await run_tick(rig.sessionmaker, content(), clock)
        stats = await rig.worker.drain()
        assert stats.sent == 2 and stats.postponed == 1
        (held,) = await rig.rows(Outbox.status == OutboxStatus.pending)
        assert held.attempts == 0 and held.not_before == clock.now() + timedelta(seconds=1)
        assert held.error.startswith("postponed: 429")
        calls = [c for c in tg.calls if c.method == "sendMessage"]
        assert calls[0].status == 429
        # Nothing was sent while Telegram asked us to wait.
        assert calls[1].time - calls[0].time >= 0.9
        clock.advance(timedelta(seconds=2))
        assert (await rig.worker.drain()).sent == 1
        (row,) = await rig.rows(Outbox.id == held.id)
        assert row.status is OutboxStatus.sent and row.attempts == 1
    finally:
        await rig.close()
    assert tg.count_429 == 1


async def test_403_marks_the_user_inactive(tg, sqlite_url):
    await _riga_cohort(sqlite_url, {31: ("en", "CECO"), 32: ("en", "DIGY")})
    know(tg, [31, 32])
    tg.block(31)
    clock = FrozenClock(WEEK1 + timedelta(minutes=1))
    rig = WorkerRig(tg, sqlite_url, clock)
    try:
        await run_tick(rig.sessionmaker, content(), clock)
        await rig.worker.drain()
        failed = await rig.rows(Outbox.recipient_id == 31)
        assert failed[0].status is OutboxStatus.failed and failed[0].error.startswith("blocked")
        assert not (await rig.user(31)).is_active and (await rig.user(32)).is_active
        # An inactive learner is not planned any more.
        clock.advance(timedelta(days=7))
        await run_tick(rig.sessionmaker, content(), clock)
        assert [r.recipient_id for r in await rig.rows(Outbox.key.like("%:w2:%"))] == [32]
    finally:
        await rig.close()


async def test_server_errors_back_off_then_give_up(tg, sqlite_url):
    await _riga_cohort(sqlite_url, {41: ("en", "CECO"), 42: ("en", "CECO")})
    know(tg, [41, 42])
    clock = FrozenClock(WEEK1 + timedelta(minutes=1))
    rig = WorkerRig(tg, sqlite_url, clock, concurrency=1, max_attempts=2, retry_base=5)
    tg.fail_next("sendMessage", 502, "Bad Gateway", count=3)
    try:
        await run_tick(rig.sessionmaker, content(), clock)
        stats = await rig.worker.drain()
        assert stats.postponed == 2
        rows = await rig.rows()
        assert all(r.status is OutboxStatus.pending and r.attempts == 1 for r in rows)
        assert all(r.not_before == clock.now() + timedelta(seconds=5) for r in rows)
        assert (await rig.worker.drain()).claimed == 0  # not before the back-off
        clock.advance(timedelta(seconds=5))
        await rig.worker.drain()
        by_user = {r.recipient_id: r for r in await rig.rows()}
        # One more 502, now at the cap of 2 attempts: failed; the other went through.
        statuses = sorted((r.status.value, r.attempts) for r in by_user.values())
        assert statuses == [("failed", 2), ("sent", 2)]
        failed = next(r for r in by_user.values() if r.status is OutboxStatus.failed)
        assert failed.error == "server error: Bad Gateway"
    finally:
        await rig.close()


async def test_network_errors_are_retried(tg, sqlite_url):
    await _riga_cohort(sqlite_url, {45: ("en", "CECO")})
    know(tg, [45])
    clock = FrozenClock(WEEK1 + timedelta(minutes=1))
    rig = WorkerRig(tg, sqlite_url, clock, send_timeout=2)
    real = tg.base_url
    try:
        await run_tick(rig.sessionmaker, content(), clock)
        rig.bot.session.api = type(rig.bot.session.api).from_base("http://127.0.0.1:9")
        await rig.worker.drain()
        (row,) = await rig.rows()
        assert row.status is OutboxStatus.pending and row.error.startswith("retry: network error")
        rig.bot.session.api = type(rig.bot.session.api).from_base(real)
        clock.advance(timedelta(seconds=5))
        assert (await rig.worker.drain()).sent == 1
    finally:
        await rig.close()


async def _webinar(db_url, cohort_id, starts_at, **kw) -> int:
    async def make(session):
        w = Webinar(
            cohort_id=cohort_id,
            starts_at=starts_at,
            join_url="https://meet.example.org/biblio-1",
            created_at=starts_at - timedelta(days=10),
            **kw,
        )
        session.add(w)
        await session.flush()
        return w.id

    return await in_session(db_url, make)


async def test_reminders_with_ics_and_expired_ones_skipped(tg, sqlite_url, caplog):
    cohort_id = await _riga_cohort(sqlite_url, {51: ("lv", "CECO")})
    know(tg, [51])
    # Thursday of week 2, 17:00 Riga (15:00 UTC); one webinar already started.
    starts = datetime(2027, 3, 18, 15, tzinfo=UTC)
    webinar_id = await _webinar(sqlite_url, cohort_id, starts)
    gone = await _webinar(sqlite_url, cohort_id, starts - timedelta(days=1, minutes=30))
    clock = FrozenClock(starts - timedelta(hours=24) + timedelta(seconds=30))
    rig = WorkerRig(tg, sqlite_url, clock)
    caplog.set_level(logging.INFO, logger="scheduler.worker")
    try:
        await run_tick(rig.sessionmaker, content(), clock)  # first tick: looks back a day
        await rig.worker.drain()
        expired = await rig.rows(Outbox.key.like(f"%:{gone}@%"))
        assert {r.kind for r in expired} == {"webinar_1h"}  # its 24 h moment was 2 days ago
        assert all(r.status is OutboxStatus.skipped and r.error == "expired" for r in expired)
        assert any("expired" in m for m in caplog.messages)
        (day_before,) = await rig.rows(Outbox.kind == "webinar_24h")
        assert day_before.status is OutboxStatus.sent and day_before.expires_at == starts
        clock.set(starts - timedelta(hours=1) + timedelta(seconds=20))
        await run_tick(rig.sessionmaker, content(), clock)
        await rig.worker.drain()
        (hour_before,) = await rig.rows(
            Outbox.kind == "webinar_1h", Outbox.key.like(f"%:{webinar_id}@%")
        )
        assert hour_before.status is OutboxStatus.sent
    finally:
        await rig.close()
    reminder = tg.user(51).messages[-1]
    assert reminder.kind == "document" and reminder.file_name.endswith(".ics")
    assert "17:00" in reminder.text and "Europe/Riga" in reminder.text
    assert "Ievads digitalizācijā" in reminder.text  # covers week 1's modules, in Latvian
    event = next(e for e in ICalendar.from_ical(reminder.file_bytes).walk("VEVENT"))
    assert event.decoded("dtstart").astimezone(UTC) == starts
    assert str(event.get("url")) == "https://meet.example.org/biblio-1"


async def test_quiet_hours_hold_non_urgent_rows_until_morning(tg, sqlite_url):
    cohort_id = await _riga_cohort(
        sqlite_url, {61: ("en", "CECO"), 62: ("en", "CECO")}, release_hour=22
    )
    know(tg, [61, 62])

    async def prefs(session):
        await set_choices(session, 62, quiet=(0, 0))  # 62 has no quiet hours

    await in_session(sqlite_url, prefs)
    release = datetime(2027, 3, 8, 20, tzinfo=UTC)  # 22:00 Riga
    clock = FrozenClock(release + timedelta(seconds=10))
    rig = WorkerRig(tg, sqlite_url, clock)
    try:
        await run_tick(rig.sessionmaker, content(), clock)
        stats = await rig.worker.drain()
        assert (stats.sent, stats.postponed) == (1, 1)
        (held,) = await rig.rows(Outbox.recipient_id == 61)
        morning = datetime(2027, 3, 9, 6, tzinfo=UTC)  # 08:00 Riga
        assert held.status is OutboxStatus.pending and held.not_before == morning
        assert held.attempts == 0

        # Urgent rows (the catch-up answering "Confirm") are not held.
        async def urgent(session):
            learner = await session.get(Learner, 61)
            learner.enrolled_at = release + timedelta(seconds=5)
            return await plan_catch_up(session, learner, content(), clock.now())

        assert await in_session(sqlite_url, urgent) == 1
        assert (await rig.worker.drain()).sent == 1
        clock.set(morning + timedelta(seconds=1))
        assert (await rig.worker.drain()).sent == 1
    finally:
        await rig.close()
    sent = [m.text for m in tg.user(61).messages]
    assert len(sent) == 2 and "already open" in sent[0] and "Week 1" in sent[1]
    assert cohort_id


async def test_muted_withdrawn_and_no_consent_are_skipped(tg, sqlite_url):
    await _riga_cohort(sqlite_url, {i: ("en", "CECO") for i in (71, 72, 73, 74)})
    know(tg, [71, 72, 73, 74])

    async def prepare(session):
        await set_choices(session, 71, muted=["release"])
        await set_choices(session, 74, muted=["catch_up", "not-a-kind"])  # not mutable
        await session.execute(
            update(Learner).where(Learner.user_id == 72).values(status=LearnerStatus.withdrawn)
        )

    await in_session(sqlite_url, prepare)
    clock = FrozenClock(WEEK1 + timedelta(minutes=1))
    rig = WorkerRig(tg, sqlite_url, clock)
    try:
        await run_tick(rig.sessionmaker, content(), clock)  # 72 is no longer planned

        async def withdraw_consent(session):
            await session.execute(update(User).where(User.id == 73).values(consent_version=None))

        await in_session(sqlite_url, withdraw_consent)
        await rig.worker.drain()
        outcome = {r.recipient_id: (r.status.value, r.error) for r in await rig.rows()}
    finally:
        await rig.close()
    assert outcome == {
        71: ("skipped", "muted"),
        73: ("skipped", "no consent"),
        74: ("sent", None),
    }


async def test_recording_notice_once(tg, sqlite_url):
    cohort_id = await _riga_cohort(sqlite_url, {81: ("it", "DIGY")})
    know(tg, [81])
    starts = datetime(2027, 3, 18, 15, tzinfo=UTC)
    webinar_id = await _webinar(sqlite_url, cohort_id, starts)
    clock = FrozenClock(starts + timedelta(hours=3))
    rig = WorkerRig(tg, sqlite_url, clock)
    try:
        await run_tick(rig.sessionmaker, content(), clock)

        async def add_link(session):
            await session.execute(
                update(Webinar)
                .where(Webinar.id == webinar_id)
                .values(recording_url="https://video.example.org/rec-1")
            )

        await in_session(sqlite_url, add_link)
        clock.advance(timedelta(minutes=1))
        assert (await run_tick(rig.sessionmaker, content(), clock)).added["webinars"] == 1
        clock.advance(timedelta(minutes=1))
        assert (await run_tick(rig.sessionmaker, content(), clock)).added["webinars"] == 0
        await rig.worker.drain()
    finally:
        await rig.close()
    notice = tg.user(81).messages[-1]
    day = format_day(starts, ZoneInfo("Europe/Riga"), "it")
    assert (
        tr("The recording of the webinar of {day} is available.", "it").format(day=day)
        in notice.text
    )
    assert tr("Watch the recording", "it") in notice.text
    assert notice.find_button is not None and "video.example.org/rec-1" in notice.raw_text


async def test_a_crashed_workers_rows_are_taken_over_after_the_lease(tg, db_url):
    await _riga_cohort(db_url, {91: ("en", "CECO"), 92: ("en", "CECO")})
    know(tg, [91, 92])
    clock = FrozenClock(WEEK1 + timedelta(minutes=1))
    rig = WorkerRig(tg, db_url, clock, lease=60)
    try:
        await run_tick(rig.sessionmaker, content(), clock)

        async def crash(session):
            for uid, lease in ((91, -1), (92, +30)):
                await session.execute(
                    update(Outbox)
                    .where(Outbox.recipient_id == uid)
                    .values(
                        status=OutboxStatus.sending,
                        claimed_by="dead-worker",
                        attempts=1,
                        lease_until=clock.now() + timedelta(seconds=lease),
                    )
                )

        await in_session(db_url, crash)
        stats = await rig.worker.drain()
        assert stats.sent == 1
        rows = {r.recipient_id: r for r in await rig.rows()}
        assert rows[91].status is OutboxStatus.sent and rows[91].attempts == 2
        assert rows[92].status is OutboxStatus.sending and rows[92].claimed_by == "dead-worker"
        clock.advance(timedelta(seconds=31))
        assert (await rig.worker.drain()).sent == 1
    finally:
        await rig.close()


async def test_catch_up_lists_released_weeks_once(sqlite_url):
    cohort_id = await _riga_cohort(sqlite_url, {})
    joined = WEEK1 + timedelta(days=15)  # after week 3 opened

    async def join(session):
        await add_learners(session, cohort_id, [99], enrolled_at=joined)
        learner = await session.get(Learner, 99)
        first = await plan_catch_up(session, learner, content(), joined)
        again = await plan_catch_up(session, learner, content(), joined + timedelta(hours=1))
        return first, again

    assert await in_session(sqlite_url, join) == (1, 0)

    async def rows(session):
        return list(await session.scalars(select(Outbox)))

    (row,) = await in_session(sqlite_url, rows)
    assert row.kind == "catch_up" and row.urgent and row.payload["weeks"] == [1, 2, 3]
    # The planner does not send weeks 1-3 again, and sends week 4 as usual.
    clock = FrozenClock(WEEK1 + timedelta(days=21, minutes=1))
    engine_rig = WorkerRig(BotAPIServer(), sqlite_url, clock)
    try:

        async def rewind(session):
            session.add(
                PlannerState(name="main", planned_until=WEEK1 - timedelta(hours=1), ticked_at=WEEK1)
            )

        await in_session(sqlite_url, rewind)
        await run_tick(engine_rig.sessionmaker, content(), clock)
        keys = sorted(r.key for r in await engine_rig.rows(Outbox.kind == "release"))
    finally:
        await engine_rig.close()
    assert keys == [f"release:{cohort_id}:w4:99"]


@pytest.mark.parametrize("lang", ["en", "lv", "it", "bg", "el"])
async def test_every_message_fits_telegram_limits(lang):
    """The longest catch-up (all eight weeks) and a reminder naming four modules, in
    every language: within 4,096 characters of text and 1,024 of caption."""
    from bot.i18n import make_i18n
    from bot.services.outbox import RENDERERS, RenderContext
    from bot.services.releases import CAPTION_LIMIT, TEXT_LIMIT
    from storage.models import Cohort

    i18n = make_i18n()
    cohort = Cohort(
        id=1,
        name="x",
        country="GR",
        language=lang,
        timezone="Europe/Athens",
        mooc_start=datetime(2027, 3, 8).date(),
        self_paced=False,
        release_hour=9,
        calendar=None,
    )
    learner = Learner(user_id=5, cohort_id=1, profile="DIGY", enrolled_at=WEEK1)
    user = User(id=5, language=lang, consent_version=1, is_active=True)
    webinar = Webinar(
        id=3,
        cohort_id=1,
        starts_at=datetime(2027, 4, 29, 15, tzinfo=UTC),
        duration_min=60,
        join_url="https://meet.example.org/" + "x" * 200,
        modules=[20, 24, 35, 38],
        created_at=WEEK1,
    )

    class Session:
        async def get(self, model, key):
            return webinar

    ctx = RenderContext(
        Session(), content(), i18n, FrozenClock(WEEK1), user, {"learner": learner, "cohort": cohort}
    )
    rows = {
        "catch_up": Outbox(
            key="c", kind="catch_up", payload={"cohort_id": 1, "weeks": list(range(1, 9))}
        ),
        "release": Outbox(key="r", kind="release", payload={"cohort_id": 1, "week": 6}),
        "webinar_24h": Outbox(
            key="w",
            kind="webinar_24h",
            payload={"webinar_id": 3, "starts_at": webinar.starts_at.isoformat()},
        ),
    }
    with i18n.use_locale(lang), i18n.context():
        for kind, row in rows.items():
            out = await RENDERERS[kind](ctx, row)
            limit = CAPTION_LIMIT if out.document else TEXT_LIMIT
            assert 0 < len(out.text) <= limit, (kind, len(out.text))
