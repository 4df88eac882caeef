"""A trainer sees and reaches only their own cohorts: every trainer command refuses
learners, and every button of every trainer command, forged with another trainer's
cohort, webinar, broadcast or learner, does nothing but say it is no longer active."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.clock import FrozenClock
from bot.services.trainer_tools import MessageLearner
from handlers.trainer import CohortAction, CohortLink, ShiftWeek, calendar_signature
from handlers.trainer_broadcast import Aud, BcDrop, BcReport, BcSend
from handlers.trainer_common import CohortPick
from handlers.trainer_webinars import ImportSave, WebinarAction, WebinarMenu
from storage.models import Broadcast, Cohort, Invite, Outbox, Role, Webinar
from tests.e2e.flows import drain, forge_press
from tests.e2e.harness import running_bot, shipped_content, wait_for
from tests.e2e.trainer_seed import (
    BOT_OPTIONS,
    add_cohort,
    add_learner,
    add_user,
    in_db,
    known,
    rows,
    say,
)

NOW = datetime(2027, 1, 20, 10, 0, tzinfo=UTC)
OWNER, INTRUDER, LEARNER, OWNERS_LEARNER, INTRUDERS_LEARNER = 760, 770, 780, 961, 971
COMMANDS = ("/cohorts", "/webinars", "/broadcast", "/stats", "/export", "/cohort_link")


async def _seed(session):
    await add_user(session, OWNER, NOW, role=Role.trainer)
    await add_user(session, INTRUDER, NOW, role=Role.trainer)
    mine = await add_cohort(session, "Rīga 2027", NOW, trainer_id=OWNER)
    theirs = await add_cohort(session, "Αθήνα 2027", NOW, trainer_id=INTRUDER)
    await add_learner(session, OWNERS_LEARNER, mine.id, "Anna Bērziņa", NOW, lang="lv")
    await add_learner(session, INTRUDERS_LEARNER, theirs.id, "Νίκος Γεωργίου", NOW, lang="el")
    await add_learner(session, LEARNER, mine.id, "Jānis Ozols", NOW)
    webinar = Webinar(
        cohort_id=mine.id,
        starts_at=NOW + timedelta(days=5),
        duration_min=60,
        join_url="https://meet.example.org/riga",
        modules=[],
        cancelled=False,
        created_at=NOW,
    )
    broadcast = Broadcast(
        trainer_id=OWNER,
        audience={"cohorts": [mine.id]},
        text="Only for Rīga",
        variants={},
        status="draft",
        recipients=2,
        created_at=NOW,
    )
    session.add_all([webinar, broadcast])
    await session.flush()
    return mine.id, theirs.id, webinar.id, broadcast.id


async def test_learners_get_the_refusal(tg, sqlite_url):
    await in_db(sqlite_url, _seed)
    async with running_bot(tg, sqlite_url, clock=FrozenClock(NOW), **BOT_OPTIONS):
        (learner,) = known(tg, LEARNER)
        for command in COMMANDS:
            got = await say(learner, command)
            assert got[0].text == f"{command} is for trainers only."


async def test_forged_buttons_reach_nothing(tg, sqlite_url):
    mine, _theirs, webinar_id, broadcast_id = await in_db(sqlite_url, _seed)
    (cohort,) = await rows(sqlite_url, Cohort, Cohort.id == mine)
    sig = calendar_signature(shipped_content().calendar)
    forged = [
        CohortLink(cohort_id=mine),
        *(
            CohortAction(action=a, cohort_id=mine)
            for a in ("link", "cal", "shift", "file", "reset")
        ),
        ShiftWeek(cohort_id=mine, week=5, sig=sig, go=1),
        *(CohortPick(purpose=p, cohort_id=mine) for p in ("wb", "st", "ex")),
        *(WebinarMenu(cohort_id=mine, action=a) for a in ("add", "import")),
        *(
            WebinarAction(webinar_id=webinar_id, action=a)
            for a in ("open", "time", "link", "modules", "recording", "cancel", "cancel_yes")
        ),
        ImportSave(cohort_id=mine),
        BcSend(broadcast_id=broadcast_id),
        BcReport(broadcast_id=broadcast_id),
        BcDrop(broadcast_id=broadcast_id),
        MessageLearner(learner_id=OWNERS_LEARNER),
    ]
    async with running_bot(tg, sqlite_url, clock=FrozenClock(NOW), **BOT_OPTIONS):
        intruder, learner = known(tg, INTRUDER, LEARNER)
        (anchor,) = await say(intruder, "/help")
        for data in forged:
            forge_press(tg, intruder, data.pack(), anchor)
        await wait_for(
            lambda: len(intruder.answered_callbacks) == len(forged), what="all presses answered"
        )
        await intruder.expect_silence(0.5)
        assert {a.text for a in intruder.answered_callbacks} == {"This button is no longer active."}

        # In the broadcast conversation: another trainer's cohort cannot be ticked.
        await say(intruder, "/broadcast")
        (panel,) = await say(intruder, "Hello")
        assert "Groups: Αθήνα 2027" in panel.text and "Recipients now: 1" in panel.text
        forge_press(tg, intruder, Aud(f="c", v=str(mine)).pack(), panel)
        await wait_for(lambda: len(intruder.answered_callbacks) == len(forged) + 1)
        assert intruder.answered_callbacks[-1].text == "This button is no longer active."
        await intruder.press(Aud(f="go").pack())
        got = [m for m in await drain(intruder) if not m.edited]
        assert "Recipients: 1. Send it now?" in got[-1].text

        # A learner pressing trainer buttons gets the same answer.
        (help_message,) = await say(learner, "/help")
        for data in (
            CohortAction(action="link", cohort_id=mine),
            BcSend(broadcast_id=broadcast_id),
        ):
            forge_press(tg, learner, data.pack(), help_message)
        await wait_for(lambda: len(learner.answered_callbacks) == 2)
        await learner.expect_silence(0.3)

    (after,) = await rows(sqlite_url, Cohort, Cohort.id == mine)
    assert after.calendar is None and after.calendar == cohort.calendar
    (webinar,) = await rows(sqlite_url, Webinar, Webinar.id == webinar_id)
    assert not webinar.cancelled and webinar.recording_url is None
    (broadcast,) = await rows(sqlite_url, Broadcast, Broadcast.id == broadcast_id)
    assert broadcast.status == "draft"
    assert not await rows(sqlite_url, Invite, Invite.cohort_id == mine)
    assert not await rows(sqlite_url, Outbox)


async def test_a_trainer_without_groups(tg, sqlite_url):
    async def seed(session):
        await add_user(session, 790, NOW, role=Role.trainer)

    await in_db(sqlite_url, seed)
    async with running_bot(tg, sqlite_url, clock=FrozenClock(NOW), **BOT_OPTIONS):
        (trainer,) = known(tg, 790)
        for command in ("/webinars", "/stats", "/export", "/broadcast"):
            got = await say(trainer, command)
            assert got[0].text == "You have no groups yet. Send /cohorts to create one."
        got = await say(trainer, "/help")
        assert "Your tools as a trainer:" in got[0].text and "/broadcast — " in got[0].text
