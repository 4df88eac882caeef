"""The learner's commands for delivery through the real bot: /settings (mute, quiet
hours), /schedule (this week and the next webinar, local time), /calendar (an .ics of
the whole schedule); and blocking / unblocking the bot (my_chat_member)."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from icalendar import Calendar as ICalendar
from sqlalchemy import select

from bot.clock import FrozenClock
from bot.services.localtime import format_moment
from storage.models import User, UserSettings, Webinar
from tests.delivery_support import add_cohort, add_learners, in_session, know
from tests.e2e.flows import drain
from tests.e2e.harness import running_bot
from tests.e2e.test_foundation import tr

RIGA = ZoneInfo("Europe/Riga")
NOW = datetime(2027, 3, 16, 10, tzinfo=UTC)  # Tuesday of week 2 (12:00 in Riga)
WEBINAR = datetime(2027, 3, 18, 15, tzinfo=UTC)  # Thursday 17:00 in Riga


async def _setup(db_url):
    async def make(session):
        cohort = await add_cohort(session, name="Rīga 2027")
        await add_learners(
            session, cohort.id, [2001], language="lv", enrolled_at=datetime(2027, 3, 1, tzinfo=UTC)
        )
        await add_learners(session, None, [2002], language="en", consent=False)
        session.add(
            Webinar(
                cohort_id=cohort.id,
                starts_at=WEBINAR,
                join_url="https://meet.example.org/riga",
                created_at=NOW,
            )
        )

    await in_session(db_url, make)


async def _read(db_url, model, key):
    async def get(session):
        return await session.get(model, key)

    return await in_session(db_url, get)


async def test_schedule_calendar_settings_and_blocking(tg, sqlite_url):
    await _setup(sqlite_url)
    know(tg, [2001, 2002])
    learner = tg.user(2001, language_code="lv")
    stranger = tg.user(2002, language_code="en")
    async with running_bot(tg, sqlite_url, clock=FrozenClock(NOW)):
        # /schedule: this week's modules in Latvian and the next webinar, Riga time.
        await learner.send("/schedule")
        (schedule,) = await drain(learner)
        assert tr("Times are in {zone} time.", "lv").format(zone="Europe/Riga") in schedule.text
        week2 = format_moment(datetime(2027, 3, 15, 7, tzinfo=UTC), RIGA, "lv")
        assert (
            tr("This week: week {week}, open since {when}", "lv").format(week=2, when=week2)
            in schedule.text
        )
        assert "Iespēju saskatīšana" in schedule.text  # module 21, week 2
        week3 = format_moment(datetime(2027, 3, 22, 7, tzinfo=UTC), RIGA, "lv")
        assert "17:00" in schedule.text
        assert tr("Next: week {week} on {when}.", "lv").format(week=3, when=week3) in schedule.text
        assert [b["callback_data"] for b in schedule.buttons] == [
            "qz:start:21",
            "qz:start:3",
            "qz:start:4",
        ]

        # /calendar: every week and the webinar, as a calendar file.
        await learner.send("/calendar")
        (calendar,) = await drain(learner)
        assert calendar.kind == "document" and calendar.file_name == "biblio-schedule.ics"
        events = list(ICalendar.from_ical(calendar.file_bytes).walk("VEVENT"))
        weeks = sorted(
            e.decoded("dtstart")
            for e in events
            if isinstance(e.decoded("dtstart"), date)
            and not isinstance(e.decoded("dtstart"), datetime)
        )
        assert weeks[0] == date(2027, 3, 8) and len(weeks) == 8
        timed = [e for e in events if isinstance(e.decoded("dtstart"), datetime)]
        assert [e.decoded("dtstart").astimezone(UTC) for e in timed] == [WEBINAR]

        # /settings: mute a kind, move the quiet hours, turn them off.
        await learner.send("/settings")
        (panel,) = await drain(learner)
        assert "21:00–08:00" in panel.text
        await learner.press("st:mute:release")
        edited = (await drain(learner))[-1]
        assert edited.edited and "🔕" in edited.button_texts()[0]
        await learner.press("st:qs:+")
        assert "22:00–08:00" in (await drain(learner))[-1].text
        choices = await _read(sqlite_url, UserSettings, 2001)
        assert choices.muted == ["release"] and (choices.quiet_start, choices.quiet_end) == (
            22 * 60,
            8 * 60,
        )
        await learner.press("st:qoff:")
        assert tr("Quiet hours: off.", "lv") in (await drain(learner))[-1].text
        await learner.press("st:mute:release")  # unmute
        await drain(learner)
        choices = await _read(sqlite_url, UserSettings, 2001)
        assert choices.muted == [] and choices.quiet_start == choices.quiet_end

        # Without consent or enrolment there is nothing to set or show.
        await stranger.send("/settings")
        assert "privacy notice" in (await drain(stranger))[0].text
        await stranger.send("/schedule")
        assert "not enrolled" in (await drain(stranger))[0].text

        # Blocking the bot marks the learner inactive; unblocking brings them back.
        tg.block(2001)
        for _ in range(100):
            if not (await _read(sqlite_url, User, 2001)).is_active:
                break
            await asyncio.sleep(0.05)
        assert not (await _read(sqlite_url, User, 2001)).is_active
        tg.unblock(2001)
        for _ in range(100):
            if (await _read(sqlite_url, User, 2001)).is_active:
                break
            await asyncio.sleep(0.05)
        assert (await _read(sqlite_url, User, 2001)).is_active

    async def settings_rows(session):
        return list(await session.scalars(select(UserSettings)))

    assert [s.user_id for s in await in_session(sqlite_url, settings_rows)] == [2001]
