"""Trainer tools end to end: a new cohort in conversation, its invitation link and QR code,
a week off in its calendar and a calendar file of its own."""

from __future__ import annotations

import re
import struct
from datetime import UTC, date, datetime

from bot.clock import FrozenClock
from handlers.trainer import CohortAction, NewPick
from storage.models import Cohort, CohortTrainer, Invite, InviteKind, Role
from tests.e2e.flows import drain, forge_press
from tests.e2e.harness import running_bot
from tests.e2e.trainer_seed import BOT_OPTIONS, add_cohort, add_user, in_db, known, rows, say, tap

NOW = datetime(2027, 1, 4, 10, 0, tzinfo=UTC)
TRAINER = 700


def png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(b"\x89PNG\r\n\x1a\n"), "not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


async def test_new_cohort_gets_link_and_qr(tg, sqlite_url):
    async def seed(session):
        await add_user(session, TRAINER, NOW, role=Role.trainer)

    await in_db(sqlite_url, seed)
    async with running_bot(tg, sqlite_url, clock=FrozenClock(NOW), **BOT_OPTIONS):
        (trainer,) = known(tg, TRAINER)
        got = await say(trainer, "/cohorts")
        assert "You have no groups yet." in got[0].text
        assert any(c.method == "setMyCommands" and "chat" in str(c.params) for c in tg.calls)

        await tap(trainer, CohortAction(action="new", cohort_id=0).pack())
        got = await say(trainer, "Rīga 2027 pavasaris")
        assert "Which country?" in got[0].text
        await tap(trainer, NewPick(field="country", value="LV").pack())
        got = await tap(trainer, NewPick(field="language", value="lv").pack())
        assert "Europe/Riga" in got[0].button_texts()
        got = await say(trainer, "Mars/Olympus_Mons")
        assert "I don't know the time zone Mars/Olympus_Mons" in got[0].text
        got = await say(trainer, "Europe/Riga")  # typed, validated with zoneinfo
        assert "When does the group's MOOC start?" in got[0].text
        got = await say(trainer, "2027-02-30")
        assert "YYYY-MM-DD" in got[0].text
        got = await say(trainer, "2027-01-11")

        link_message = next(m for m in got if "Invitation link" in (m.text or ""))
        match = re.search(
            r"https://t\.me/biblio_test_bot\?start=([A-Za-z0-9_-]+)", link_message.text
        )
        assert match, link_message.text
        token = match.group(1)
        photo = next(m for m in got if m.kind == "photo")
        width, height = png_size(photo.file_bytes)
        assert width == height and 200 <= width <= 2000
        assert 500 < len(photo.file_bytes) < 200_000
        assert "Rīga 2027 pavasaris" in photo.caption

    (cohort,) = await rows(sqlite_url, Cohort)
    assert (cohort.name, cohort.country, cohort.language, cohort.timezone) == (
        "Rīga 2027 pavasaris",
        "LV",
        "lv",
        "Europe/Riga",
    )
    assert cohort.mooc_start == date(2027, 1, 11)
    assert await rows(sqlite_url, CohortTrainer, CohortTrainer.trainer_id == TRAINER)
    (invite,) = await rows(sqlite_url, Invite, Invite.token == token)
    assert invite.kind is InviteKind.cohort and invite.cohort_id == cohort.id


BAD_CALENDAR = b"""name: lv-2027
weeks:
  - week: 1
    modules: [1, 32, 22]
  - week: 2
    modules: [21, 99]
  - week: 2
    modules: [4]
"""

WRONG_MODULE = b"""name: lv-2027
weeks:
  - week: 1
    modules: [1, 32, 22]
  - week: 2
    modules: [21, 99]
"""

GOOD_CALENDAR = """# Latvijas grupas kalendārs
name: lv-2027
weeks:
  - week: 1
    modules: [1, 32, 22]
  - week: 2
    modules: [21, 3, 4]
  - week: 4
    modules: [5, 6, 27]
""".encode()


async def test_calendar_shift_and_file(tg, sqlite_url):
    now = datetime(2027, 1, 20, 10, 0, tzinfo=UTC)  # week 2 of a cohort from 2027-01-11

    async def seed(session):
        await add_user(session, TRAINER, now, role=Role.trainer)
        cohort = await add_cohort(session, "Rīga 2027", now, trainer_id=TRAINER)
        return cohort.id

    cohort_id = await in_db(sqlite_url, seed)
    async with running_bot(tg, sqlite_url, clock=FrozenClock(now), **BOT_OPTIONS):
        (trainer,) = known(tg, TRAINER)
        await say(trainer, "/cohorts")
        got = await tap(trainer, CohortAction(action="cal", cohort_id=cohort_id).pack())
        assert "the recommended calendar" in got[0].text
        assert "Week 8" in got[0].text
        got = await tap(trainer, CohortAction(action="shift", cohort_id=cohort_id).pack())
        offer = got[0]
        # Weeks 1 and 2 are released: only later weeks can move.
        assert [t.split(" (")[0] for t in offer.button_texts()[:2]] == [
            "From week 3",
            "From week 4",
        ]
        got = await tap(trainer, offer.buttons[0]["callback_data"])
        assert "week 3 then opens on" in got[0].text
        confirm = got[0]
        yes = confirm.buttons[0]["callback_data"]
        got = await tap(trainer, yes)
        assert "from week 3 on, everything is one week later" in got[0].text
        # The same confirmation again (a double tap) changes nothing more.
        forge_press(tg, trainer, yes, confirm)
        await trainer.expect_silence(0.5)
        assert trainer.answered_callbacks[-1].text == "This button is no longer active."

        (cohort,) = await rows(sqlite_url, Cohort, Cohort.id == cohort_id)
        assert [w["week"] for w in cohort.calendar["weeks"]] == [1, 2, 4, 5, 6, 7, 8, 9]
        assert cohort.calendar["weeks"][2]["modules"] == [5, 6, 27]

        await tap(trainer, CohortAction(action="file", cohort_id=cohort_id).pack())
        await trainer.send_document("lv-2027.yaml", BAD_CALENDAR)
        got = await drain(trainer)
        assert "The calendar was not changed" in got[0].text
        assert "lv-2027.yaml: a week number appears twice" in got[0].text
        await trainer.send_document("lv-2027.yaml", WRONG_MODULE)
        got = await drain(trainer)
        assert "lv-2027.yaml: week 2: module 99 does not exist" in got[0].text
        await trainer.send_document("lv-2027.yaml", GOOD_CALENDAR)
        got = await drain(trainer)
        assert "now follows the calendar in lv-2027.yaml" in got[0].text
        assert "its own calendar" in got[-1].text

    (cohort,) = await rows(sqlite_url, Cohort, Cohort.id == cohort_id)
    assert cohort.calendar == {
        "name": "lv-2027",
        "weeks": [
            {"week": 1, "modules": [1, 32, 22]},
            {"week": 2, "modules": [21, 3, 4]},
            {"week": 4, "modules": [5, 6, 27]},
        ],
    }
