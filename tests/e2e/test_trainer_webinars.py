"""Webinars in chat: an .ics import (time zones, a weekly series across the change to
summer time, an excluded date, an Outlook zone, a malformed event named in the answer),
adding one, cancelling one (reminded learners are told), adding the recording link."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from bot.clock import FrozenClock
from bot.services.trainer_tools import webinar_time
from handlers.trainer_webinars import ImportSave, WebinarAction, WebinarDefault, WebinarMenu
from scheduler.planner import plan_once
from scheduler.worker import drain_outbox
from storage.models import Cohort, Outbox, OutboxStatus, Role, Webinar
from tests.e2e.flows import drain, forge_press
from tests.e2e.harness import running_bot
from tests.e2e.test_foundation import tr
from tests.e2e.trainer_seed import (
    BOT_OPTIONS,
    add_cohort,
    add_learner,
    add_user,
    in_db,
    known,
    rows,
    say,
    tap,
)

TRAINER, LEARNER_1, LEARNER_2 = 710, 711, 712
NOW = datetime(2027, 2, 1, 10, 0, tzinfo=UTC)
START = date(2027, 3, 1)  # the MOOC's week 1

# As Moodle and Outlook write them: CRLF lines, a folded line, VTIMEZONE blocks (one
# with a Windows zone name), a weekly series until a UTC moment with one date excluded,
# and one event whose start cannot be read.
MOODLE_ICS = "\r\n".join(
    [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//Moodle Pty Ltd//NONSGML Moodle Version 2024100700//EN",
        "METHOD:PUBLISH",
        "BEGIN:VTIMEZONE",
        "TZID:Europe/Riga",
        "BEGIN:DAYLIGHT",
        "TZOFFSETFROM:+0200",
        "TZOFFSETTO:+0300",
        "TZNAME:EEST",
        "DTSTART:19700329T030000",
        "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU",
        "END:DAYLIGHT",
        "BEGIN:STANDARD",
        "TZOFFSETFROM:+0300",
        "TZOFFSETTO:+0200",
        "TZNAME:EET",
        "DTSTART:19701025T040000",
        "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU",
        "END:STANDARD",
        "END:VTIMEZONE",
        "BEGIN:VTIMEZONE",
        "TZID:FLE Standard Time",
        "BEGIN:STANDARD",
        "DTSTART:16010101T040000",
        "TZOFFSETFROM:+0300",
        "TZOFFSETTO:+0200",
        "RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10",
        "END:STANDARD",
        "BEGIN:DAYLIGHT",
        "DTSTART:16010101T030000",
        "TZOFFSETFROM:+0200",
        "TZOFFSETTO:+0300",
        "RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3",
        "END:DAYLIGHT",
        "END:VTIMEZONE",
        "BEGIN:VEVENT",
        "UID:series-1@moodle.example.org",
        "SUMMARY:BIBLIO weekly webinar",
        "DESCRIPTION:Join the expert webinar: https://meet.example.org/biblio-riga\\n(c",
        " amera optional)",
        "DTSTART;TZID=Europe/Riga:20270322T170000",
        "DTEND;TZID=Europe/Riga:20270322T180000",
        "RRULE:FREQ=WEEKLY;UNTIL=20270419T150000Z",
        "EXDATE;TZID=Europe/Riga:20270405T170000",
        "DTSTAMP:20270101T100000Z",
        "END:VEVENT",
        "BEGIN:VEVENT",
        "UID:outlook-1",
        "SUMMARY:Guest expert (Outlook)",
        "LOCATION:Microsoft Teams Meeting",
        "X-MICROSOFT-SKYPETEAMSMEETINGURL:https://teams.example.com/l/meetup-join/abc",
        "DTSTART;TZID=FLE Standard Time:20270303T160000",
        "DTEND;TZID=FLE Standard Time:20270303T173000",
        "DTSTAMP:20270101T100000Z",
        "END:VEVENT",
        "BEGIN:VEVENT",
        "UID:broken-1",
        "SUMMARY:Broken webinar",
        "DTSTART;TZID=Europe/Riga:2027-03-10 17:00",
        "URL:https://meet.example.org/x",
        "DTSTAMP:20270101T100000Z",
        "END:VEVENT",
        "BEGIN:VEVENT",
        "UID:allday-1",
        "SUMMARY:Library open day",
        "DTSTART;VALUE=DATE:20270312",
        "DTSTAMP:20270101T100000Z",
        "END:VEVENT",
        "END:VCALENDAR",
        "",
    ]
).encode()

EXPECTED_STARTS = [
    datetime(2027, 3, 3, 14, 0, tzinfo=UTC),  # 16:00 FLE (+02:00)
    datetime(2027, 3, 22, 15, 0, tzinfo=UTC),  # 17:00 Riga, winter time
    datetime(2027, 3, 29, 14, 0, tzinfo=UTC),  # 17:00 Riga, summer time from 28 March
    # 5 April excluded (EXDATE)
    datetime(2027, 4, 12, 14, 0, tzinfo=UTC),
    datetime(2027, 4, 19, 14, 0, tzinfo=UTC),  # UNTIL is inclusive
]


async def _seed(session):
    await add_user(session, TRAINER, NOW, role=Role.trainer)
    cohort = await add_cohort(session, "Rīga 2027", NOW, trainer_id=TRAINER, start=START)
    await add_learner(session, LEARNER_1, cohort.id, "Anna Bērziņa", NOW, lang="lv")
    await add_learner(session, LEARNER_2, cohort.id, "Jānis Ozols", NOW, lang="en")
    return cohort.id


async def test_ics_import_with_preview(tg, sqlite_url):
    cohort_id = await in_db(sqlite_url, _seed)
    async with running_bot(tg, sqlite_url, clock=FrozenClock(NOW), **BOT_OPTIONS):
        (trainer,) = known(tg, TRAINER)
        got = await say(trainer, "/webinars")
        assert "No webinars planned." in got[0].text
        await tap(trainer, WebinarMenu(cohort_id=cohort_id, action="import").pack())

        await trainer.send_document("notes.ics", b"these are my notes, not a calendar")
        got = await drain(trainer)
        assert "I could not take any webinar from notes.ics" in got[0].text
        assert "notes.ics: it is not a calendar file (.ics)" in got[0].text

        await trainer.send_document("biblio-webinars.ics", MOODLE_ICS)
        (preview,) = await drain(trainer)
        assert "Webinars found in biblio-webinars.ics for Rīga 2027: 5" in preview.text
        assert "Broken webinar: the start time cannot be read" in preview.text
        assert "2027-03-10 17:00" in preview.text
        assert "Library open day: it is an all-day event" in preview.text
        # Times in the cohort's zone; the series keeps 17:00 across the change of time.
        assert preview.text.count("17:00: BIBLIO weekly webinar") == 4
        assert "16:00: Guest expert (Outlook)" in preview.text  # FLE = Riga time
        # Modules default to those released the week before (week 4 -> week 3's).
        assert "BIBLIO weekly webinar, modules 5, 6, 27" in preview.text
        assert not await rows(sqlite_url, Webinar)  # nothing saved before the button

        save = ImportSave(cohort_id=cohort_id).pack()
        got = await tap(trainer, save)
        assert "Webinars saved for Rīga 2027: 5." in got[0].text
        forge_press(tg, trainer, save, preview)  # a second press saves nothing more
        await trainer.expect_silence(0.5)

        # The same file again, sent without /webinars: recognised, nothing doubled.
        await trainer.send_document("biblio-webinars.ics", MOODLE_ICS)
        (again,) = await drain(trainer)
        assert again.text.count("(already planned: skipped)") == 5
        got = await tap(trainer, save)
        assert got[0].text == "Webinars saved for Rīga 2027: 0. Already planned, so skipped: 5."

    webinars = await rows(sqlite_url, Webinar, order=Webinar.starts_at)
    assert [w.starts_at for w in webinars] == EXPECTED_STARTS
    assert {w.join_url for w in webinars} == {
        "https://meet.example.org/biblio-riga",
        "https://teams.example.com/l/meetup-join/abc",
    }
    assert webinars[0].duration_min == 90 and webinars[1].duration_min == 60
    assert all(w.cohort_id == cohort_id and w.modules == [] for w in webinars)


async def test_add_cancel_and_recording(tg, sqlite_url):
    cohort_id = await in_db(sqlite_url, _seed)
    clock = FrozenClock(NOW)
    async with running_bot(tg, sqlite_url, clock=clock, **BOT_OPTIONS) as app:
        trainer, learner_1, learner_2 = known(tg, TRAINER, LEARNER_1, LEARNER_2)
        await say(trainer, "/webinars")
        await tap(trainer, WebinarMenu(cohort_id=cohort_id, action="add").pack())
        got = await say(trainer, "2026-12-01 17:00")
        assert "That moment has passed" in got[0].text
        await say(trainer, "2027-03-08 17:00")
        got = await say(trainer, "not a link")
        assert "https://" in got[0].text
        got = await say(trainer, "https://meet.example.org/week2")
        assert got[0].button_texts()[0] == "✅ Modules 1, 32, 22"
        got = await tap(trainer, WebinarDefault().pack())
        assert "Saved: webinar on" in got[0].text and "modules 1, 32, 22" in got[0].text
        (webinar,) = await rows(sqlite_url, Webinar)
        assert webinar.starts_at == datetime(2027, 3, 8, 15, 0, tzinfo=UTC)
        assert webinar.join_url == "https://meet.example.org/week2"

        # Learner 1 was reminded a day before; learner 2 was not (yet).
        async def reminded(session):
            session.add(
                Outbox(
                    key=f"webinar_24h:{webinar.id}@20270308T1500Z:{LEARNER_1}",
                    kind="webinar_24h",
                    recipient_id=LEARNER_1,
                    payload={"webinar_id": webinar.id},
                    not_before=NOW - timedelta(hours=1),
                    status=OutboxStatus.sent,
                    sent_at=NOW - timedelta(hours=1),
                    created_at=NOW - timedelta(hours=1),
                )
            )

        await in_db(sqlite_url, reminded)
        await tap(trainer, WebinarAction(webinar_id=webinar.id, action="open").pack())
        await tap(trainer, WebinarAction(webinar_id=webinar.id, action="cancel").pack())
        got = await tap(trainer, WebinarAction(webinar_id=webinar.id, action="cancel_yes").pack())
        assert "Learners told (they had been reminded): 1." in got[0].text
        await drain_outbox(app)
        told = await drain(learner_1)
        # Learner 1 reads Latvian: the notice in her language, with the moment in Riga time.
        (cohort,) = await rows(sqlite_url, Cohort, Cohort.id == cohort_id)
        notice = tr(
            "The webinar on {when} is cancelled. Sorry for the change; "
            "your trainer will tell you about the next one.",
            "lv",
        ).format(when=webinar_time(webinar, cohort, "lv"))
        assert "is cancelled" not in notice
        assert len(told) == 1 and told[0].text == notice
        await learner_2.expect_silence(0.2)

        # A webinar that took place: its recording link goes to the cohort.
        await say(trainer, "/webinars")
        await tap(trainer, WebinarMenu(cohort_id=cohort_id, action="add").pack())
        await say(trainer, "2027-03-15 17:00")
        await say(trainer, "https://meet.example.org/week3")
        await say(trainer, "5, 6")
        (_, held) = await rows(sqlite_url, Webinar, order=Webinar.id)
        assert held.modules == [5, 6]
        clock.set(datetime(2027, 3, 15, 17, 30, tzinfo=UTC))
        await say(trainer, "/webinars")
        await tap(trainer, WebinarAction(webinar_id=held.id, action="open").pack())
        await tap(trainer, WebinarAction(webinar_id=held.id, action="recording").pack())
        got = await say(trainer, "https://video.example.org/recording-week3")
        assert "Recording: https://video.example.org/recording-week3" in "\n".join(
            m.text or "" for m in got
        )
        await plan_once(app)
        await drain_outbox(app)
        for learner in (learner_1, learner_2):
            got = await drain(learner)
            assert any("recording-week3" in (m.raw_text or "") for m in got), [m.text for m in got]
