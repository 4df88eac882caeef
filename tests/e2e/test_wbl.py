"""Work-based learning end to end, through the local Bot API server with a frozen clock:
a trainer sets up a placement in chat, the learner links a mentor, five fortnightly
reflections, the mentor's answers, silence and escalation, support requests, and the
edge cases (no mentor yet, a mentor who blocks the bot, withdrawal and erasure, two
mentors, double presses, forged buttons).

Time moves only when a test moves it; the WBL planners run when the test says so and the
delivery worker (scheduler.worker.drain_outbox) sends what is due by that clock."""

from __future__ import annotations

import re
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select

from bot.clock import FrozenClock
from bot.sandbox.server import BotAPIServer, FakeUser, SentMessage
from bot.services import wbl
from bot.services.cohorts import create_cohort
from bot.services.planning import PLANNERS, PlanContext
from scheduler.worker import drain_outbox
from storage.db import make_engine, make_sessionmaker
from storage.models import (
    CheckIn,
    Outbox,
    OutboxStatus,
    Placement,
    Role,
    User,
)
from tests.e2e.flows import forge_press
from tests.e2e.harness import running_bot
from tests.e2e.test_foundation import tr
from tests.test_wbl_rules import add_learner, add_user

START = datetime(2027, 2, 25, 10, tzinfo=UTC)  # a Thursday
MONDAY = date(2027, 3, 1)
TRAINER, OTHER_TRAINER = 9001, 9002
ANNA, JANIS, GIULIA = 1001, 1002, 1003
LIBRARY = "Rīgas Centrālā bibliotēka"

# Catalogue messages whose translation the tests look for in non-English chats.
MENTOR_WELCOME = (
    "Welcome, {name}! You are now the workplace mentor of {learner} at {library}. "
    "Every two weeks I will send you their reflection, to confirm their hours or ask "
    "to talk. /mentees shows your learners."
)
REFLECTION_START = (
    "Reflection {number} of {count}, weeks {first}–{last}. Five short questions; "
    "you can answer the first three with text or a voice note. /cancel stops."
)
THANKS_TO_MENTOR = (
    "Thank you! Your reflection is on its way to your workplace mentor; I will tell "
    "you their answer."
)
THANKS_NO_MENTOR = (
    "Thank you! Your reflection is saved. No workplace mentor is linked yet, so it "
    "waits for them (your trainer has been told). Send /mentor_link to get a link "
    "for your mentor."
)
ASK_TALK = (
    "What would you like to tell {name}? For example when and where you could talk. "
    "They will read it."
)
TALK_SENT = (
    "Sent: the learner will hear that you would like to talk. After your talk you can "
    "still confirm the hours here."
)
CONFIRMED = "✅ Confirmed: {hours} hours of {name} (reflection {number}). They will be told."
HOURS = "Hours: {logged} logged, {confirmed} confirmed, of {planned}"
CHECKINS = (
    "Check-ins: {done} of {count} done ({confirmed} confirmed), "
    "{awaiting} awaiting the mentor, {due} due, {overdue} overdue"
)
PLACED = (
    "Your work-based learning placement is set: {weeks} weeks at {library}, from "
    "{start} to {end}, {hours} hours planned (160 h + 5 h assessment). Every two "
    "weeks I will ask you for a short reflection; the first on {first}.\n\n"
    "Send /mentor_link to get a link for your workplace mentor: once they open it, "
    "they receive your reflections and confirm your hours."
)
NOT_DUE = "No reflection is due now. The next one is on {date}."
PROMPT = (
    "Time for your reflection {number} of {count} on weeks {first}–{last} at "
    "{library}: five short questions, about five minutes. You can answer with text "
    "or voice notes."
)
TO_MENTOR = (
    "📝 Reflection {number} of {count} from <b>{name}</b> ({library}), weeks {first}–{last}."
)
OPENED = (
    "Your workplace mentor has opened your link. From now on they receive your "
    "reflections and confirm your hours."
)
_TAGS = re.compile(r"</?(?:b|i|u|s|code|pre)>")


def said(msgid: str, lang: str, **values: Any) -> str:
    """What the bot shows for msgid in lang: the translation, formatted, without HTML tags."""
    return _TAGS.sub("", tr(msgid, lang)).format(**values)


def fixed(msgid: str, lang: str) -> list[str]:
    """The fixed parts of msgid's translation in lang, between its placeholders."""
    parts = re.split(r"\{\w*\}", _TAGS.sub("", tr(msgid, lang)))
    return [part.strip() for part in parts if part.strip()]


def lang_of(user: FakeUser) -> str:
    return user.language_code or "en"


# --- helpers ---------------------------------------------------------------------------------


async def _in_db(url: str, fn: Any) -> Any:
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            return await fn(session)
    finally:
        await engine.dispose()


async def _rows(url: str, model: Any, *where: Any) -> list[Any]:
    async def q(session):
        return list(await session.scalars(select(model).where(*where)))

    found: list[Any] = await _in_db(url, q)
    return found


async def setup_world(url: str) -> None:
    """Two cohorts with a trainer each (Rīga: Anna and Jānis; Roma: Giulia)."""

    async def make(session):
        for trainer in (TRAINER, OTHER_TRAINER):
            await add_user(session, trainer, Role.trainer)
        riga = await create_cohort(
            session,
            name="Rīga 2027",
            country="LV",
            language="lv",
            timezone="Europe/Riga",
            mooc_start=date(2026, 11, 2),
            now=START,
            trainer_id=TRAINER,
        )
        roma = await create_cohort(
            session,
            name="Roma 2027",
            country="IT",
            language="it",
            timezone="Europe/Rome",
            mooc_start=date(2026, 11, 2),
            now=START,
            trainer_id=OTHER_TRAINER,
        )
        await add_learner(session, ANNA, riga.id, "Anna <Bērziņa>")
        await add_learner(session, JANIS, riga.id, "Jānis Kalniņš", "lv")
        await add_learner(session, GIULIA, roma.id, "Giulia Rossi", "it")

    await _in_db(url, make)


async def place(url: str, learner_id: int, trainer_id: int, start: date = MONDAY) -> int:
    async def make(session):
        placement = await wbl.create_placement(
            session,
            trainer_id=trainer_id,
            learner_id=learner_id,
            host_library=f"Library {learner_id}",
            start=start,
            now=START,
        )
        assert isinstance(placement, Placement)
        return placement.id

    placement_id: int = await _in_db(url, make)
    return placement_id


async def checkins(url: str, learner_id: int) -> list[CheckIn]:
    async def q(session):
        placement = await session.scalar(
            select(Placement)
            .where(Placement.learner_id == learner_id)
            .order_by(Placement.id.desc())
        )
        return await wbl.checkins_of(session, placement.id)

    found: list[CheckIn] = await _in_db(url, q)
    return found


class World:
    def __init__(self, tg: BotAPIServer, url: str, app: Any, clock: FrozenClock) -> None:
        self.tg, self.url, self.app, self.clock = tg, url, app, clock

    def user(self, user_id: int, lang: str = "en") -> FakeUser:
        user = self.tg.user(user_id, language_code=lang)
        user.known = True  # has talked to the bot before (set up in the store)
        return user

    async def plan(self) -> int:
        """The WBL planners on [now - 1 min, now), as the planner tick runs them."""
        now = self.clock.now()
        added = 0
        async with self.app.sessionmaker() as session, session.begin():
            ctx = PlanContext(
                session, self.app.content, self.clock, now - timedelta(minutes=1), now
            )
            for name in ("wbl_checkins", "wbl_mentors"):
                added += await PLANNERS[name](ctx)
        return added

    async def deliver(self) -> Any:
        return await drain_outbox(self.app)

    async def at(self, moment: datetime) -> None:
        """Move the clock, plan, deliver."""
        self.clock.set(moment)
        await self.plan()
        await self.deliver()


@asynccontextmanager
async def world(tg: BotAPIServer, url: str, clock: FrozenClock):
    async with running_bot(
        tg, url, clock=clock, run_scheduler=False, run_worker=False, per_chat_interval=0
    ) as app:
        yield World(tg, url, app, clock)


async def nxt(user: FakeUser, timeout: float = 5.0) -> SentMessage:
    """The next new message (edits, such as removed buttons, are skipped)."""
    while True:
        sent = await user.next_message(timeout=timeout)
        if not sent.edited:
            return sent


async def expect(user: FakeUser, *fragments: str) -> SentMessage:
    """The next new message, which must contain every fragment."""
    sent = await nxt(user)
    for fragment in fragments:
        assert fragment in (sent.text or ""), f"{fragment!r} not in {sent.text!r}"
    return sent


async def clear(user: FakeUser) -> None:
    """Skip whatever has arrived."""
    while True:
        try:
            await nxt(user, timeout=0.2)
        except TimeoutError:
            return


async def quiet(user: FakeUser) -> None:
    """Nothing new arrives (edits are fine)."""
    try:
        sent = await nxt(user, timeout=0.3)
    except TimeoutError:
        return
    raise AssertionError(f"unexpected message: {sent.summary()}")


def data_of(sent: SentMessage, text_fragment: str) -> str:
    for button in sent.buttons:
        data = str(button.get("callback_data", ""))
        if text_fragment in button["text"] or data.startswith(text_fragment):
            return data
    raise AssertionError(f"no button {text_fragment!r} in {sent.button_texts()}")


async def link_mentor(learner: FakeUser, mentor: FakeUser) -> None:
    await learner.send("/mentor_link")
    invite = await expect(learner, "https://t.me/")
    token = re.search(r"start=([A-Za-z0-9_-]+)", invite.text).group(1)
    await mentor.start(token)
    await expect(mentor, *fixed(MENTOR_WELCOME, lang_of(mentor)))


async def reflect(
    w: World,
    learner: FakeUser,
    *,
    hours: str = "32",
    support: bool = False,
    via: SentMessage | None = None,
) -> SentMessage:
    """Answer the five questions and send; returns the learner's thank-you message."""
    if via is not None:
        await learner.press(data_of(via, "wcs:"), message_id=via.message_id)
    else:
        await learner.send("/checkin")
    lang = lang_of(learner)
    await expect(learner, fixed(REFLECTION_START, lang)[0])
    await expect(learner, "1/5")
    await learner.send("Ran a coding club for teenagers & their parents")
    await expect(learner, "2/5")
    await learner.send("How to plan a <workshop>")
    await expect(learner, "3/5")
    await learner.send("none")
    ask = await expect(learner, "4/5")
    await learner.press(wbl_pick("support", "1" if support else "0"), message_id=ask.message_id)
    await expect(learner, "5/5")
    await learner.send(hours)
    summary = await expect(learner, tr("Hours this fortnight", lang))
    await learner.press(data_of(summary, "wcx:"), message_id=summary.message_id)
    thanks = await nxt(learner)
    assert thanks.text and thanks.text.startswith(
        (tr(THANKS_TO_MENTOR, lang), tr(THANKS_NO_MENTOR, lang))
    ), thanks.text
    return thanks


def wbl_pick(field: str, value: str) -> str:
    from handlers.wbl import CiPick

    return CiPick(field=field, value=value).pack()


# --- the whole placement -----------------------------------------------------------------------


async def test_ten_week_placement_with_five_confirmed_reflections(tg, sqlite_url):
    await setup_world(sqlite_url)
    clock = FrozenClock(START)
    async with world(tg, sqlite_url, clock) as w:
        trainer, anna = w.user(TRAINER), w.user(ANNA)
        mentor = w.tg.user(2001, language_code="lv", first_name="Ilze")

        # The trainer sets it up in chat.
        await trainer.send("/placement")
        menu = await expect(trainer, "for which learner")
        assert menu.button_texts() == ["Anna <Bērziņa>", "Jānis Kalniņš"]  # not Giulia
        await trainer.press("Anna <Bērziņa>")
        await expect(trainer, "Which library")
        await trainer.send(LIBRARY)
        dates = await expect(trainer, "YYYY-MM-DD")
        assert len(dates.buttons) == 4
        await trainer.press(f"wps:{MONDAY.isoformat()}")
        summary = await expect(trainer, LIBRARY, "165", "Fri, Mar 12, 2027", "Fri, May 7, 2027")
        await trainer.press("wpd:save", message_id=summary.message_id)
        await expect(trainer, "Saved")
        forge_press(w.tg, trainer, "wpd:save", summary)  # pressed twice
        await quiet(trainer)
        (placement,) = await _rows(sqlite_url, Placement, Placement.learner_id == ANNA)
        assert (placement.host_library, placement.start_date, placement.weeks) == (
            LIBRARY,
            MONDAY,
            10,
        )
        await w.deliver()
        await expect(anna, "Your work-based learning placement is set", LIBRARY)

        # Anna links her mentor, who has never used the bot.
        await link_mentor(anna, mentor)
        (mentor_row,) = await _rows(sqlite_url, User, User.id == 2001)
        assert (mentor_row.role, mentor_row.language) == (Role.mentor, "lv")
        await w.deliver()
        await expect(anna, "opened your link")

        hours = [33, 31, 35, 34, 32]  # 165, exactly the plan
        for number, due in enumerate(wbl.schedule(MONDAY, 10, "Europe/Riga", 9), start=1):
            await w.at(due - timedelta(minutes=1))
            await quiet(anna)
            await w.at(due)
            prompt = await expect(anna, f"reflection {number} of 5")
            thanks = await reflect(w, anna, hours=str(hours[number - 1]), via=prompt)
            assert "mentor" in thanks.text
            await w.deliver()
            reflection = await expect(
                mentor, tr("Please confirm the hours, or ask to talk.", "lv"), "Anna <Bērziņa>"
            )
            assert "&" in reflection.text and "<workshop>" in reflection.text  # shown as typed
            if number == 2:
                await mentor.press(f"wma:{reflection_id(reflection)}:talk")
                await expect(mentor, said(ASK_TALK, "lv", name="Anna <Bērziņa>"))
                await mentor.send("Let's meet on Tuesday at 10 <by the desk>")
                after_talk = await expect(mentor, tr(TALK_SENT, "lv"))
                await w.deliver()
                await expect(
                    anna, "would like to talk", "Let's meet on Tuesday at 10 <by the desk>"
                )
                await mentor.press(
                    f"wma:{reflection_id(reflection)}:confirm", message_id=after_talk.message_id
                )
            else:
                await mentor.press(f"wma:{reflection_id(reflection)}:confirm")
            await expect(
                mentor,
                said(
                    CONFIRMED, "lv", hours=hours[number - 1], name="Anna <Bērziņa>", number=number
                ),
            )
            await w.deliver()
            told = await expect(anna, f"confirmed reflection {number}")
            assert f"{sum(hours[:number])} of 165" in told.text

        await anna.send("/wbl")
        view = await expect(
            anna, "Hours confirmed: 165 of 165 (165 logged)", "All your reflections are sent"
        )
        assert view.text.count("confirmed by your mentor") == 5
        assert "Let's meet on Tuesday" in view.text
        await mentor.send("/mentees")
        listing = await expect(mentor, "Anna <Bērziņa>")
        assert said(HOURS, "lv", logged=165, confirmed=165, planned=165) in listing.text
        assert said(CHECKINS, "lv", done=5, count=5, confirmed=5, awaiting=0, due=0, overdue=0) in (
            listing.text
        )
        await trainer.send("/mentees")
        assert "165 logged, 165 confirmed, of 165" in (await nxt(trainer)).text
        await anna.send("/checkin")
        await expect(anna, "All your reflections are sent")
    rows = await checkins(sqlite_url, ANNA)
    assert [(c.status, c.hours) for c in rows] == [("confirmed", h) for h in hours]
    assert rows[1].mentor_comment == "Let's meet on Tuesday at 10 <by the desk>"
    assert all(c.decided_by == 2001 for c in rows)


def reflection_id(sent: SentMessage) -> int:
    for button in sent.buttons:
        data = str(button.get("callback_data", ""))
        if data.startswith("wma:"):
            return int(data.split(":")[1])
    raise AssertionError(f"no mentor buttons in {sent.button_texts()}")


# --- the conversation --------------------------------------------------------------------------


async def test_checkin_reasks_keeps_voice_survives_restart_and_waits_for_a_mentor(tg, sqlite_url):
    await setup_world(sqlite_url)
    await place(sqlite_url, JANIS, TRAINER)
    first = (await checkins(sqlite_url, JANIS))[0]
    clock = FrozenClock(first.due_at)
    async with world(tg, sqlite_url, clock) as w:
        janis = w.user(JANIS, "lv")
        await w.deliver()
        await expect(janis, fixed(PLACED, "lv")[0])
        clock.set(first.due_at - timedelta(minutes=1))
        await janis.send("/checkin")  # a minute early: not due yet
        await expect(janis, fixed(NOT_DUE, "lv")[0])
        await w.at(first.due_at)
        weeks = {"number": 1, "count": 5, "first": 1, "last": 2}
        prompt = await expect(janis, said(PROMPT, "lv", library="Library 1002", **weeks))
        await janis.press(data_of(prompt, "wcs:"), message_id=prompt.message_id)
        await expect(janis, said(REFLECTION_START, "lv", **weeks))
        await expect(janis, "1/5")
        forge_press(w.tg, janis, data_of(prompt, "wcs:"), prompt)  # the start pressed twice
        await quiet(janis)
        await janis.send_voice(duration=42)
        await expect(janis, tr("🎤 Voice note kept.", "lv"))
        await expect(janis, "2/5")
        await janis.send_sticker()
        await expect(janis, tr("Please answer with text or a voice note.", "lv"))
        await expect(janis, "2/5")
        await janis.send("Learned to run a <b>story</b> hour")
        await expect(janis, "3/5")
        await janis.send("The scanner broke")
        ask = await expect(janis, "4/5")
        await janis.send("maybe")  # a button is wanted here
        await expect(janis, tr("Please choose one of the buttons below.", "lv"))
        await expect(janis, "4/5")
        await janis.press(wbl_pick("support", "0"), message_id=ask.message_id)
        await expect(janis, "5/5")
        for typed, reason in (
            ("-3", "Hours cannot be negative. Please send a number from 0 to 80."),
            ("a lot", "Please send the hours as a number from 0 to 80, e.g. 16."),
            ("81", "That is more than 80 hours in two weeks. Please check the number (0 to 80)."),
            ("7.5", "Please round to whole hours, e.g. 16."),
        ):
            await janis.send(typed)
            await expect(janis, tr(reason, "lv"))
            await expect(janis, "5/5")
    # A new process: the unfinished reflection is in the store, not in memory.
    async with world(tg, sqlite_url, clock) as w:
        await janis.send("/checkin")
        await expect(janis, tr("Let's continue where you stopped.", "lv"))
        await expect(janis, "5/5")
        await janis.send("20 st")
        summary = await expect(janis, "🎤", "(42 s)", "<b>story</b>", "20")
        await janis.press("wce:hours", message_id=summary.message_id)
        hours_ask = await expect(janis, "5/5")
        await janis.press(wbl_pick("hours", "24"), message_id=hours_ask.message_id)
        summary = await expect(janis, "24")
        await janis.press(data_of(summary, "wcx:"), message_id=summary.message_id)
        thanks = await expect(janis, tr(THANKS_NO_MENTOR, "lv"), "/mentor_link")
        forge_press(w.tg, janis, data_of(summary, "wcx:"), summary)  # send pressed twice
        await quiet(janis)
        assert janis.answered_callbacks[-1].text == tr("This button is no longer active.", "lv")
        assert thanks
        # The reflection waits; the trainer is told.
        trainer = w.user(TRAINER)
        await w.deliver()
        await expect(trainer, "Jānis Kalniņš", "no workplace mentor is linked")
        # The mentor links later and gets the reflection that waited, voice note included.
        mentor = w.tg.user(2002, language_code="it")
        await link_mentor(janis, mentor)
        await w.deliver()
        reflection = await expect(
            mentor,
            said(TO_MENTOR, "it", name="Jānis Kalniņš", library="Library 1002", **weeks),
            "(42 s)",
        )
        await mentor.press(data_of(reflection, "wvn:"), message_id=reflection.message_id)
        voice = await nxt(mentor)
        assert voice.kind == "voice"
        await expect(janis, tr(OPENED, "lv"))
    (row,) = [c for c in await checkins(sqlite_url, JANIS) if c.number == 1]
    assert (row.status, row.hours, row.needs_support) == ("submitted", 24, False)
    assert row.answers["did"]["voice"] == voice.file_id
    assert row.answers["learned"] == {"text": "Learned to run a <b>story</b> hour"}


# --- silence, reminders, escalation, support ---------------------------------------------------


async def test_reminders_overdue_mentor_silence_and_escalation(tg, sqlite_url):
    await setup_world(sqlite_url)
    await place(sqlite_url, ANNA, TRAINER)
    rows = await checkins(sqlite_url, ANNA)
    clock = FrozenClock(START)
    async with world(tg, sqlite_url, clock) as w:
        anna, trainer = w.user(ANNA), w.user(TRAINER)
        mentor = w.tg.user(2003, language_code="en")
        await w.deliver()
        await expect(anna, "placement is set")
        await link_mentor(anna, mentor)
        await w.deliver()
        await expect(anna, "opened your link")

        # Check-in 1: sent on time; the mentor goes silent.
        due = rows[0].due_at
        await w.at(due)
        await expect(anna, "reflection 1 of 5")
        await reflect(w, anna, hours="30")
        await w.deliver()
        assert "Reflection 1 of 5" in (await nxt(mentor, timeout=1)).text
        await w.at(due + timedelta(days=3) - timedelta(minutes=1))
        await quiet(mentor)
        await w.at(due + timedelta(days=3))
        reminder = await expect(mentor, "A reminder", "waiting for your answer")
        await w.at(due + timedelta(days=5))
        await expect(trainer, "has not answered reflection 1", "Anna <Bērziņa>")
        await w.at(due + timedelta(days=5, hours=1))
        await quiet(trainer)
        await mentor.press(f"wma:{reflection_id(reminder)}:confirm", message_id=reminder.message_id)
        await expect(mentor, "Confirmed: 30 hours")
        await w.deliver()
        await expect(anna, "confirmed reflection 1", "30 of 165")

        # Check-in 2: the learner goes silent: two reminders, then overdue and the trainer.
        due = rows[1].due_at
        await w.at(due)
        await expect(anna, "reflection 2 of 5")
        await w.at(due + timedelta(days=2))
        await expect(anna, "A reminder: your reflection 2")
        await w.at(due + timedelta(days=4))
        second = await expect(anna, "A reminder: your reflection 2")
        await quiet(trainer)
        await w.at(due + timedelta(days=6))
        await expect(trainer, "Anna <Bērziņa>", "reflection 2", "overdue")
        await quiet(anna)
        await anna.send("/wbl")
        await expect(anna, "Reflection 2 is due now")
        await w.at(due + timedelta(days=7))
        await reflect(w, anna, hours="28", via=second)  # late is still accepted
        await w.deliver()
        await expect(mentor, "Reflection 2 of 5")
    states = [c.status for c in await checkins(sqlite_url, ANNA)]
    assert states == ["confirmed", "submitted", "open", "open", "open"]


async def test_support_request_reaches_mentor_and_trainer_at_once(tg, sqlite_url):
    await setup_world(sqlite_url)
    await place(sqlite_url, ANNA, TRAINER)
    first = (await checkins(sqlite_url, ANNA))[0]
    clock = FrozenClock(first.due_at)
    async with world(tg, sqlite_url, clock) as w:
        anna, trainer = w.user(ANNA), w.user(TRAINER)
        mentor = w.tg.user(2004, language_code="en")
        await link_mentor(anna, mentor)
        await w.deliver()
        await clear(anna)
        # 22:30 in Rīga, 21:30 in Brussels: quiet hours for everybody, yet this goes at once.
        clock.set(first.due_at + timedelta(hours=13, minutes=30))
        thanks = await reflect(w, anna, support=True)
        assert "told that you would like support" in thanks.text
        stats = await w.deliver()
        assert stats.postponed == 0
        reflection = await expect(mentor, "would like support", "Reflection 1 of 5")
        alert = await expect(trainer, "Anna <Bērziņa>", "would like support", "none")
        assert reflection.time and alert.time

    async def urgent(session):
        return [
            (r.kind, r.urgent, r.not_before)
            for r in await session.scalars(
                select(Outbox).where(Outbox.kind.in_([wbl.KIND_SUPPORT, wbl.KIND_REFLECTION]))
            )
        ]

    moments = await _in_db(sqlite_url, urgent)
    assert {(k, u) for k, u, _ in moments} == {
        (wbl.KIND_REFLECTION, True),
        (wbl.KIND_SUPPORT, True),
    }
    assert len({n for _, _, n in moments}) == 1  # planned at the same moment


# --- edge cases ---------------------------------------------------------------------------------


async def test_mentor_who_blocks_the_bot_flags_the_placement(tg, sqlite_url):
    await setup_world(sqlite_url)
    await place(sqlite_url, ANNA, TRAINER)
    first = (await checkins(sqlite_url, ANNA))[0]
    clock = FrozenClock(first.due_at)
    async with world(tg, sqlite_url, clock) as w:
        anna, trainer = w.user(ANNA), w.user(TRAINER)
        mentor = w.tg.user(2005, language_code="en")
        await link_mentor(anna, mentor)
        w.tg.block(2005)
        await reflect(w, anna)
        # Telegram tells the bot (my_chat_member), or the send meets a 403: either way the
        # mentor is inactive and the reflection is not delivered.
        await w.deliver()
        (row,) = await _rows(sqlite_url, Outbox, Outbox.kind == wbl.KIND_REFLECTION)
        assert row.status in (OutboxStatus.skipped, OutboxStatus.failed)
        await clear(anna)
        await w.at(first.due_at + timedelta(minutes=1))
        await expect(trainer, "Anna <Bērziņa>", "blocked the bot")
        await expect(anna, "no longer receives your reflections")
        (placement,) = await _rows(sqlite_url, Placement, Placement.learner_id == ANNA)
        assert (placement.status, placement.flag_reason) == ("flagged", "mentor_blocked")
        await trainer.send("/mentees")
        await expect(trainer, "Anna <Bērziņa>", "blocked the bot")
        await w.at(first.due_at + timedelta(minutes=2))
        await quiet(trainer)  # told once
        # A new mentor clears the flag and gets the reflection that was not delivered.
        successor = w.tg.user(2006, language_code="en")
        await link_mentor(anna, successor)
        await w.deliver()
        await expect(successor, "Reflection 1 of 5")
    (placement,) = await _rows(sqlite_url, Placement, Placement.learner_id == ANNA)
    assert (placement.status, placement.mentor_id) == ("active", 2006)


async def test_withdrawal_and_erasure_tell_the_mentor_only_that_it_ended(tg, sqlite_url):
    await setup_world(sqlite_url)
    for learner in (ANNA, JANIS):
        await place(sqlite_url, learner, TRAINER)
    first = (await checkins(sqlite_url, ANNA))[0]
    clock = FrozenClock(first.due_at)
    async with world(tg, sqlite_url, clock) as w:
        anna, janis = w.user(ANNA), w.user(JANIS, "lv")
        mentor = w.tg.user(2007, language_code="en")
        await link_mentor(anna, mentor)
        await link_mentor(janis, mentor)  # one mentor, two learners
        await w.deliver()
        for learner in (anna, janis):
            await nxt(learner)  # placement set
            await nxt(learner)  # mentor linked
        await reflect(w, anna)
        await reflect(w, janis)
        await w.deliver()
        from_anna = await expect(mentor, "Anna <Bērziņa>")
        await expect(mentor, "Jānis Kalniņš")

        await anna.send("/withdraw")
        await expect(anna, "withdrawn")
        await janis.send("/delete")
        await nxt(janis)
        await janis.press("er:1")
        await expect(
            janis,
            tr(
                "Done: everything I kept about you is erased. If you write to me again, I will start afresh.",
                "lv",
            ).split(":")[0],
        )
        await w.deliver()
        for _ in range(2):
            ended = await expect(mentor, "placement you mentored has ended")
            assert "Anna" not in ended.text and "Jānis" not in ended.text
            assert "Library" not in ended.text
        await quiet(mentor)
        # The old reflection can no longer be answered; nothing of theirs is listed.
        await mentor.press(
            f"wma:{reflection_id(from_anna)}:confirm", message_id=from_anna.message_id
        )
        await quiet(mentor)
        assert mentor.answered_callbacks[-1].text == "This reflection is no longer available."
        await mentor.send("/mentees")
        await expect(mentor, "There are no learners in work-based learning")
        # No more prompts for either of them.
        await w.at(wbl.schedule(MONDAY, 10, "Europe/Riga", 9)[1])
        await quiet(anna)
        await quiet(janis)

    async def leftovers(session):
        ended = list(await session.scalars(select(Outbox).where(Outbox.kind == wbl.KIND_ENDED)))
        anna_placement = await session.scalar(select(Placement).where(Placement.learner_id == ANNA))
        return ended, anna_placement

    ended_rows, anna_placement = await _in_db(sqlite_url, leftovers)
    assert [r.recipient_id for r in ended_rows] == [2007, 2007]
    assert all(r.payload == {} and str(JANIS) not in r.key for r in ended_rows)
    assert (anna_placement.status, anna_placement.flag_reason) == ("ended", "withdrawn")
    # Erasure left nothing that refers to Jānis, and none of his words.
    from tests.e2e.test_enrolment import _all_text

    dump = await _all_text(sqlite_url)
    assert "Jānis" not in dump and "Kalniņš" not in dump
    assert not await _rows(sqlite_url, Placement, Placement.learner_id == JANIS)
    assert not await _rows(sqlite_url, Outbox, Outbox.recipient_id == JANIS)


async def test_mentors_see_and_answer_only_their_own_learners(tg, sqlite_url):
    await setup_world(sqlite_url)
    await place(sqlite_url, ANNA, TRAINER)
    await place(sqlite_url, GIULIA, OTHER_TRAINER)
    first = (await checkins(sqlite_url, ANNA))[0]
    clock = FrozenClock(first.due_at)
    async with world(tg, sqlite_url, clock) as w:
        anna, giulia = w.user(ANNA), w.user(GIULIA, "it")
        trainer, other_trainer = w.user(TRAINER), w.user(OTHER_TRAINER)
        first_mentor = w.tg.user(2010, language_code="en")
        giulias_mentor = w.tg.user(2011, language_code="it")
        await link_mentor(anna, first_mentor)
        await link_mentor(giulia, giulias_mentor)
        await reflect(w, anna, hours="33")
        await w.deliver()
        await clear(anna)
        await clear(giulia)
        reflection = await expect(first_mentor, "Anna <Bērziņa>")
        rid = reflection_id(reflection)

        # Each sees only their own; trainers only their cohort's.
        await giulias_mentor.send("/mentees")
        listing = await expect(giulias_mentor, "Giulia Rossi")
        assert "Anna" not in listing.text
        await first_mentor.send("/mentees")
        listing = await expect(first_mentor, "Anna <Bērziņa>")
        assert "Giulia" not in listing.text
        await other_trainer.send("/mentees")
        listing = await expect(other_trainer, "Giulia Rossi")
        assert "Anna" not in listing.text

        # Another mentor's forged presses change nothing and show nothing.
        await giulias_mentor.send("/help")
        help_msg = await nxt(giulias_mentor)
        for data in (f"wma:{rid}:confirm", f"wma:{rid}:talk", f"wvn:{rid}:did"):
            forge_press(w.tg, giulias_mentor, data, help_msg)
            await quiet(giulias_mentor)
        # The learner cannot confirm her own hours either.
        forge_press(w.tg, anna, f"wma:{rid}:confirm", reflection)
        await quiet(anna)
        assert (await checkins(sqlite_url, ANNA))[0].status == "submitted"

        # Anna links a new mentor: the reflection goes to them; the old one can't answer it.
        second_mentor = w.tg.user(2012, language_code="en")
        await link_mentor(anna, second_mentor)
        await w.deliver()
        again = await expect(second_mentor, "Anna <Bērziņa>")
        await first_mentor.press(f"wma:{rid}:confirm", message_id=reflection.message_id)
        await quiet(first_mentor)
        assert first_mentor.answered_callbacks[-1].text == (
            "Only the learner's workplace mentor can answer this reflection."
        )
        # Two presses on one reflection: it counts once.
        await second_mentor.press(f"wma:{rid}:confirm", message_id=again.message_id)
        forge_press(w.tg, second_mentor, f"wma:{rid}:confirm", again)
        await expect(second_mentor, "Confirmed: 33 hours")
        await quiet(second_mentor)
        assert (
            second_mentor.answered_callbacks[-1].text
            == "This reflection has been answered already."
        )
        await w.deliver()
        await expect(anna, "confirmed reflection 1", "33 of 165")
        await quiet(anna)

        # Trainers: /placement only lists and accepts their own cohorts' learners.
        await other_trainer.send("/placement")
        await expect(other_trainer, "None of the learners")  # Giulia is placed already
        await trainer.send("/placement")
        menu = await expect(trainer, "for which learner")
        assert menu.button_texts() == ["Jānis Kalniņš"]
        forge_press(w.tg, trainer, f"wpl:{GIULIA}", menu)  # another trainer's learner
        await quiet(trainer)
        await trainer.press(f"wpl:{JANIS}", message_id=menu.message_id)
        await expect(trainer, "Which library")
        await trainer.send("x")
        await expect(trainer, "Please type the name of the host library.")
        await expect(trainer, "Which library")
        await trainer.send("Library of <Valmiera>")
        await expect(trainer, "YYYY-MM-DD")
        for typed, reason in (("8.3.2027", "YYYY-MM-DD"), ("2027-02-30", "does not exist")):
            await trainer.send(typed)
            await expect(trainer, reason)
            await expect(trainer, "Choose a Monday")
        await trainer.send("2027-03-10")  # a Wednesday, typed
        summary = await expect(trainer, "Library of <Valmiera>", "Wed, Mar 10, 2027")
        await trainer.press("wpd:cancel", message_id=summary.message_id)
        await expect(trainer, "Cancelled")
        assert not await _rows(sqlite_url, Placement, Placement.learner_id == JANIS)
        # Learners are refused the role commands.
        await anna.send("/mentees")
        await expect(anna, "/mentees is not available to you.")
        await anna.send("/placement")
        await expect(anna, "/placement is for trainers only.")
    (row,) = [c for c in await checkins(sqlite_url, ANNA) if c.number == 1]
    assert (row.status, row.decided_by) == ("confirmed", 2012)

    async def told(session):
        return list(await session.scalars(select(Outbox).where(Outbox.kind == wbl.KIND_ANSWER)))

    assert len(await _in_db(sqlite_url, told)) == 1


async def test_staff_receive_without_consent(tg, sqlite_url):
    """Mentors and trainers join by invitation and never consent as learners do; their
    service messages reach them all the same."""
    await setup_world(sqlite_url)
    await place(sqlite_url, ANNA, TRAINER)
    first = (await checkins(sqlite_url, ANNA))[0]
    clock = FrozenClock(first.due_at)
    async with world(tg, sqlite_url, clock) as w:
        anna = w.user(ANNA)
        mentor = w.tg.user(2020, language_code="en")
        await link_mentor(anna, mentor)
        await reflect(w, anna)
        await w.deliver()
        assert "Reflection 1 of 5" in (await nxt(mentor, timeout=1)).text
