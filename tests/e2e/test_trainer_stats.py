"""The dashboard, the CSV export and the weekly digest, against figures the test computes
from its own seed; and writing to a learner from the digest."""

from __future__ import annotations

import csv
import io
import struct
from datetime import UTC, date, datetime, timedelta

from bot.clock import FrozenClock
from scheduler.planner import plan_once
from scheduler.worker import drain_outbox
from storage.models import CheckIn, LearnerStatus, Outbox, Placement, QuizRound, Role
from tests.e2e.flows import drain
from tests.e2e.harness import running_bot, shipped_content
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

# Monday 15 February 2027, 10:00 in Riga: the digest's morning; week 6 of a cohort from 11 January.
NOW = datetime(2027, 2, 15, 8, 0, tzinfo=UTC)
TRAINER, OTHER_TRAINER = 740, 741
NAMES = {
    901: "Ēriks Bērziņš",
    902: "Иван Петров",
    903: "Ελένη Παπαδοπούλου",
    904: "Līga Kalniņa",
    905: "Pēteris Ozols",
    906: "Mārtiņš Liepa",
    950: "Other Cohort",
}
# (user, module, score, total, kind, status)
ROUNDS = [
    (901, 1, 5, 6, "scored", "finished"),
    (901, 32, 3, 6, "scored", "finished"),
    (901, 32, 4, 6, "scored", "finished"),
    (902, 1, 2, 6, "scored", "finished"),
    (902, 1, 3, 6, "scored", "finished"),
    (902, 1, 4, 6, "scored", "finished"),
    (903, 1, 6, 6, "scored", "finished"),
    (903, 32, 5, 6, "scored", "finished"),
    (904, 1, 1, 6, "scored", "finished"),  # withdrew: not counted
    (906, 1, 6, 6, "review", "finished"),  # a review round: not an attempt
    (906, 1, 0, 6, "scored", "active"),  # not finished
    (950, 1, 0, 6, "scored", "finished"),  # another trainer's cohort
]
# (number, days from NOW to due, status, needs support)
CHECKINS = [
    (1, -30, "confirmed", False),
    (2, -16, "submitted", True),
    (3, -8, "overdue", False),
    (4, -1, "open", False),
    (5, 6, "open", False),
]


async def _seed(session):
    await add_user(session, TRAINER, NOW, role=Role.trainer)
    await add_user(session, OTHER_TRAINER, NOW, role=Role.trainer)
    mine = await add_cohort(session, "Rīga 2027", NOW, trainer_id=TRAINER)
    theirs = await add_cohort(session, "Atēnas 2027", NOW, trainer_id=OTHER_TRAINER)
    old = NOW - timedelta(days=10)
    await add_learner(session, 901, mine.id, NAMES[901], NOW, lang="lv", email="eriks@biblio.lv")
    await add_learner(session, 902, mine.id, NAMES[902], NOW, lang="bg", last_seen=old)
    await add_learner(session, 903, mine.id, NAMES[903], NOW, lang="el", active=False)
    await add_learner(
        session,
        904,
        mine.id,
        NAMES[904],
        NOW,
        status=LearnerStatus.withdrawn,
        consent=False,
        last_seen=old,
    )
    await add_learner(session, 905, mine.id, NAMES[905], NOW, consent=False)
    await add_learner(session, 906, mine.id, NAMES[906], NOW)
    await add_learner(session, 950, theirs.id, NAMES[950], NOW, last_seen=old)
    for user_id, module, score, total, kind, status in ROUNDS:
        session.add(
            QuizRound(
                user_id=user_id,
                cohort_id=mine.id if user_id != 950 else theirs.id,
                module=module,
                kind=kind,
                attempt_no=None,
                status=status,
                position=total,
                score=score,
                total=total,
                started_at=NOW - timedelta(days=3),
                active_at=NOW - timedelta(days=3),
                finished_at=NOW - timedelta(days=3) if status == "finished" else None,
            )
        )
    placement = Placement(
        learner_id=903,
        host_library="Δημοτική Βιβλιοθήκη",
        start_date=date(2027, 1, 4),
        weeks=10,
        planned_hours=165,
        status="active",
        created_at=NOW - timedelta(days=45),
    )
    session.add(placement)
    await session.flush()
    for number, days, status, support in CHECKINS:
        session.add(
            CheckIn(
                placement_id=placement.id,
                number=number,
                due_at=NOW + timedelta(days=days),
                status=status,
                answers={},
                needs_support=support,
            )
        )
    return mine.id


def expected_figures() -> dict[str, int]:
    """Counted from the seed above, without the bot's code."""
    enrolled = [901, 902, 903, 905, 906]
    released: list[int] = []
    for week in shipped_content().calendar.weeks:
        opens = datetime(2027, 1, 11, 7, 0, tzinfo=UTC) + timedelta(weeks=week.week - 1)
        if opens <= NOW:
            released += [m for m in week.modules if m not in released]
    return {
        "Learners enrolled": len(enrolled),
        "With consent": 4,  # not 905
        "Active in the last 7 days": 4,  # not 902
        "Blocked the bot": 1,  # 903
        "Modules released": len(released),
        "Learners with three failed attempts": 1,  # 902 in module 1
    }


def png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


async def test_dashboard_export_and_digest(tg, sqlite_url):
    await in_db(sqlite_url, _seed)
    async with running_bot(tg, sqlite_url, clock=FrozenClock(NOW), **BOT_OPTIONS) as app:
        trainer, learner = known(tg, TRAINER, 902)
        got = await say(trainer, "/stats")
        text = got[0].text
        chart = got[1] if len(got) > 1 else await trainer.next_message(timeout=20)
        for label, value in expected_figures().items():
            assert f"{label}: {value}\n" in text + "\n", (label, value, text)
        assert (
            "WBL check-ins: 1 due, 1 submitted (awaiting the mentor), 1 confirmed, 1 overdue"
            in text
        )
        # Module 1: 901 5/6 pass, 902 best 4/6 fail, 903 6/6 pass -> 2 of 3; mean 15/18.
        assert "Module 1: taken by 3, passed 67 %, mean best score 83 %" in text
        # Module 32: 901 best 4/6, 903 5/6 -> 1 of 2; mean 9/12.
        assert "Module 32: taken by 2, passed 50 %, mean best score 75 %" in text
        assert chart.kind == "photo"
        width, height = png_size(chart.file_bytes)
        assert width >= 600 and height >= 300

        got = await say(trainer, "/export")
        (document,) = got
        assert document.kind == "document" and document.file_name.endswith(".csv")
        raw = document.file_bytes
        assert raw.startswith(b"\xef\xbb\xbf")  # the BOM spreadsheets look for
        table = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
        header, body = table[0], table[1:]
        names = {row[header.index("Name")] for row in body}
        assert names == {NAMES[901], NAMES[902], NAMES[903], NAMES[906]}
        assert NAMES[904] not in raw.decode("utf-8-sig")  # withdrew consent
        by_name = {row[header.index("Name")]: row for row in body}
        best_1 = header.index("Module 1: best score %")
        assert [by_name[NAMES[n]][best_1] for n in (901, 902, 903, 906)] == ["83", "67", "100", ""]
        assert by_name[NAMES[901]][header.index("E-mail")] == "eriks@biblio.lv"
        assert by_name[NAMES[903]][header.index("Blocked the bot")] == "1"

        # The weekly digest: planned once for the week, through the outbox.
        await plan_once(app)
        await plan_once(app)
        digests = await rows(sqlite_url, Outbox, Outbox.kind == "trainer_digest")
        assert sorted((d.recipient_id, d.key) for d in digests) == [
            (t, f"trainer_digest:2027-W07:{t}") for t in (TRAINER, OTHER_TRAINER)
        ]
        await drain_outbox(app)
        (digest,) = [m for m in await drain(trainer) if "may need your help" in (m.text or "")]
        assert f"{NAMES[902]}: not active for 7 days, three failed attempts" in digest.text
        assert f"{NAMES[903]}: overdue check-in, asked for support" in digest.text
        for quiet in (901, 904, 905, 906):
            assert NAMES[quiet] not in digest.text
        assert sorted(digest.button_texts()) == sorted(f"✉️ {NAMES[n]}" for n in (902, 903))

        button = digest.find_button(f"✉️ {NAMES[902]}")["callback_data"]
        got = await tap(trainer, button)
        assert f"Your message to {NAMES[902]}?" in got[0].text
        got = await say(trainer, "Shall we talk on Friday about module 1?")
        assert got[0].text == f"Sent to {NAMES[902]}."
        await drain_outbox(app)
        # Learner 902 reads Bulgarian; the trainer's full name is "Test".
        greeting = tr("✉️ <b>A message from your trainer {name}</b>", "bg").format(name="Test")
        assert greeting != "✉️ <b>A message from your trainer Test</b>"
        (message,) = [m for m in await drain(learner) if m.raw_text and greeting in m.raw_text]
        assert message.raw_text == f"{greeting}\n\nShall we talk on Friday about module 1?"
