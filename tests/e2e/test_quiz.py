"""Practice quizzes end to end through the local Bot API server: native quiz polls, scoring,
attempts, the trainer told after a third failed attempt, review rounds, spaced review on an
injected clock, /progress, and every way a poll answer can go wrong."""

from __future__ import annotations

import dataclasses
import random
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.clock import FrozenClock
from bot.i18n import make_i18n
from bot.services import quiz as q
from bot.services.cohorts import create_cohort
from bot.services.consent import current_version
from bot.services.outbox import RENDERERS, RenderContext
from bot.services.planning import PlanContext
from storage.db import make_engine, make_sessionmaker
from storage.models import (
    Learner,
    Outbox,
    QuizItem,
    QuizRound,
    ReviewItem,
    Role,
    User,
)
from tests.e2e.flows import enrol, forge_press
from tests.e2e.harness import running_bot, shipped_content
from tests.e2e.test_foundation import I18N, tr

# Monday 2 March 2026, 13:00 in Riga: week 1 of a cohort starting that day is out (09:00),
# and it is outside the default quiet hours.
T0 = datetime(2026, 3, 2, 11, 0, tzinfo=UTC)
START = date(2026, 3, 2)
WEEK1 = [1, 32, 22]


# --- set-up and helpers -------------------------------------------------------------------


async def _db(url, fn):
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as session:
            result = await fn(session)
            await session.commit()
            return result
    finally:
        await engine.dispose()


async def _rows(url, model, *where, order=None):
    async def fetch(session):
        stmt = select(model).where(*where)
        if order is not None:
            stmt = stmt.order_by(order)
        return list(await session.scalars(stmt))

    return await _db(url, fetch)


async def make_cohort(url, *, trainer_id=None, calendar=None, start=START):
    async def make(session):
        if trainer_id is not None:
            session.add(
                User(
                    id=trainer_id,
                    language="en",
                    role=Role.trainer,
                    consent_version=current_version(shipped_content(), "en"),
                    consent_language="en",
                )
            )
            await session.flush()
        cohort = await create_cohort(
            session,
            name="Rīga 2026",
            country="LV",
            language="lv",
            timezone="Europe/Riga",
            mooc_start=start,
            now=T0,
            trainer_id=trainer_id,
        )
        cohort.calendar = calendar
        return cohort.id

    return await _db(url, make)


async def seed_learner(url, user_id, cohort_id, lang="en", profile="CECO", name="Anna Bērziņa"):
    """A learner enrolled as the enrolment conversation leaves them (that conversation has
    its own tests; here it would only cost seconds)."""
    content = shipped_content()

    async def seed(session):
        session.add(
            User(
                id=user_id,
                language=lang,
                consent_version=current_version(content, lang),
                consent_language=lang,
            )
        )
        await session.flush()
        session.add(
            Learner(
                user_id=user_id,
                cohort_id=cohort_id,
                name=name,
                age_band="35-44",
                country="LV",
                education="master",
                employment="library",
                profession="Librarian",
                years_experience=12,
                heard_from="colleague",
                profile=profile,
                enrolled_at=T0,
            )
        )

    await _db(url, seed)


async def next_poll(user, timeout=5.0):
    """The next poll the bot sends to `user` (texts before it are skipped)."""
    while True:
        sent = await user.next_message(timeout=timeout)
        if sent.kind == "poll":
            return sent


def correct_of(poll):
    return poll.poll["correct_option_ids"][0]


async def answer(user, poll, right=True):
    correct = correct_of(poll)
    choice = correct if right else (correct + 1) % len(poll.poll["options"])
    await user.answer_poll([choice], poll_id=poll.poll["id"])


async def result_messages(user, timeout=5.0):
    """The texts up to the message with the quiz buttons (the end of a round)."""
    got = []
    while True:
        sent = await user.next_message(timeout=timeout)
        assert sent.kind != "poll", f"a poll came where the result was expected: {sent.text}"
        got.append(sent)
        if any(str(b.get("callback_data", "")).startswith("qz:") for b in sent.buttons):
            return got


async def play(user, pattern, first=None):
    """Answer one poll per entry of `pattern` (True: the right option); returns the polls
    and the result messages."""
    polls = []
    poll = first or await next_poll(user)
    for index, right in enumerate(pattern):
        polls.append(poll)
        await answer(user, poll, right)
        if index < len(pattern) - 1:
            poll = await next_poll(user)
    return polls, await result_messages(user)


async def start_module(user, module=1, action="start"):
    """Press a module's button in /quiz (as a release message's "Practise" does)."""
    await user.send("/quiz")
    await _until(user, lambda m: m.find_button(f"qz:{action}:{module}") is not None)
    await user.press(f"qz:{action}:{module}")
    return await next_poll(user)


async def _until(user, predicate, timeout=5.0):
    while True:
        sent = await user.next_message(timeout=timeout)
        if predicate(sent):
            return sent


def fmt(msgid, lang="en", **values):
    return tr(msgid, lang).format(**values)


def score_text(score, total, lang="en"):
    return fmt(
        "{score} of {total} ({percent} %)",
        lang,
        score=score,
        total=total,
        percent=q.percent(score, total),
    )


async def rounds_of(url, user_id):
    return await _rows(url, QuizRound, QuizRound.user_id == user_id, order=QuizRound.id)


async def render(url, app, row, lang="en"):
    """What the delivery worker would send for an outbox row."""
    i18n = make_i18n()

    async def run(session):
        recipient = await session.get(User, row.recipient_id)
        with i18n.use_locale(lang), i18n.context():
            ctx = RenderContext(session, app.content, i18n, app.clock, recipient)
            return await RENDERERS[row.kind](ctx, row)

    return await _db(url, run)


async def plan(url, app, planner, since, until):
    async def run(session):
        return await planner(PlanContext(session, app.content, app.clock, since, until))

    return await _db(url, run)


# --- a full round -------------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["lv", "el"])
async def test_full_round_in_the_learners_language(tg, sqlite_url, lang):
    clock = FrozenClock(T0)
    async with running_bot(tg, sqlite_url, clock=clock) as app:
        app.dp["quiz_rng"] = random.Random(5)
        user = tg.user(600, language_code="en")
        await enrol(user, lang)  # the real conversation: the open MOOC group
        await user.send("/quiz")
        listing = await _until(user, lambda m: bool(m.buttons))
        assert {f"qz:start:{m}" for m in WEEK1} <= {b["callback_data"] for b in listing.buttons}
        await user.press("qz:start:1")
        polls, result = await play(user, [True] * 6)
    content = shipped_content()
    (rnd,) = await rounds_of(sqlite_url, 600)
    items = await _rows(sqlite_url, QuizItem, QuizItem.round_id == rnd.id, order=QuizItem.index)
    assert (rnd.kind, rnd.status, rnd.score, rnd.total, rnd.attempt_no) == (
        "scored",
        "finished",
        6,
        6,
        1,
    )
    assert len(polls) == len(items) == 6
    assert len({i.question_id for i in items}) == 6
    for index, (poll, item) in enumerate(zip(polls, items, strict=True)):
        text = content.question(item.question_id).text[lang]
        question = content.question(item.question_id)
        assert poll.poll["type"] == "quiz" and poll.poll["is_anonymous"] is False
        assert poll.text == f"{index + 1}/6 · {text.question}"
        assert [o["text"] for o in poll.poll["options"]] == [
            text.options[i] for i in item.option_order
        ]
        assert poll.poll["options"][correct_of(poll)]["text"] == text.options[question.answer]
        assert poll.poll["explanation"] == text.explanation
        assert item.poll_id == poll.poll["id"] and item.correct is True
    assert score_text(6, 6, lang) in result[-1].text or any(
        score_text(6, 6, lang) in m.text for m in result
    )
    # The options really are shuffled across the round.
    assert len({tuple(i.option_order) for i in items}) > 1


async def test_english_fallback_is_marked_on_the_poll(tg, sqlite_url):
    content = shipped_content()
    quiz = content.quizzes[1]
    english_only = [qn.model_copy(update={"text": {"en": qn.text["en"]}}) for qn in quiz.questions]
    partial = dataclasses.replace(
        content, quizzes={**content.quizzes, 1: quiz.model_copy(update={"questions": english_only})}
    )
    cohort = await make_cohort(sqlite_url)
    await seed_learner(sqlite_url, 601, cohort, lang="bg")
    async with running_bot(tg, sqlite_url, clock=FrozenClock(T0), content=partial):
        user = tg.user(601, language_code="bg")
        poll = await start_module(user)
    assert poll.text.startswith("1/6 · " + q.FALLBACK_MARK)
    assert poll.text.removeprefix("1/6 · " + q.FALLBACK_MARK) in {
        qn.text["en"].question for qn in quiz.questions
    }


# --- scoring, attempts, the trainer -------------------------------------------------------


def _texts(messages):
    return "\n".join(m.text or "" for m in messages)


def _data(message):
    return {b.get("callback_data") for b in message.buttons}


async def test_a_fail_then_a_pass(tg, sqlite_url):
    cohort = await make_cohort(sqlite_url)
    await seed_learner(sqlite_url, 610, cohort)
    content = shipped_content()
    async with running_bot(tg, sqlite_url, clock=FrozenClock(T0)) as app:
        app.dp["quiz_rng"] = random.Random(1)
        user = tg.user(610)
        first = await start_module(user)
        _polls, result = await play(user, [True] * 4 + [False] * 2, first)
        text = _texts(result)
        assert (
            fmt(
                "Not passed yet: {score}; you need {percent} %.",
                score=score_text(4, 6),
                percent=75,
            )
            in text
        )
        assert (
            fmt(
                "Attempt {attempt} of {attempts}; your best: {best}.",
                attempt=1,
                attempts=3,
                best=score_text(4, 6),
            )
            in text
        )
        (rnd,) = await rounds_of(sqlite_url, 610)
        missed = await _rows(
            sqlite_url, QuizItem, QuizItem.round_id == rnd.id, QuizItem.correct.is_(False)
        )
        assert len(missed) == 2
        for item in missed:  # each missed question, its right answer and why
            question = content.question(item.question_id)
            assert question.text["en"].explanation in text
            assert question.text["en"].options[question.answer] in text
        assert {"qz:start:1", "qz:review:1", "qz:list:0"} <= _data(result[-1])

        await user.press("qz:start:1")  # try again
        _polls, result = await play(user, [True] * 5 + [False])
        text = _texts(result)
        assert fmt("Passed: {score}. Well done!", score=score_text(5, 6)) in text
        assert (
            fmt(
                "Attempt {attempt} of {attempts}; your best: {best}.",
                attempt=2,
                attempts=3,
                best=score_text(5, 6),
            )
            in text
        )
    rounds = await rounds_of(sqlite_url, 610)
    assert [(r.kind, r.attempt_no, r.score, r.total) for r in rounds] == [
        ("scored", 1, 4, 6),
        ("scored", 2, 5, 6),
    ]
    # The second attempt showed the 4 questions not seen in the first before any repeat.
    items = await _rows(
        sqlite_url, QuizItem, QuizItem.round_id.in_([r.id for r in rounds]), order=QuizItem.id
    )
    first_ids = {i.question_id for i in items[:6]}
    assert not first_ids & {i.question_id for i in items[6:10]}


async def test_third_failed_attempt_tells_the_trainer(tg, sqlite_url):
    from scheduler.worker import drain_outbox

    cohort = await make_cohort(sqlite_url, trainer_id=900)
    await seed_learner(sqlite_url, 620, cohort, name="Līga Ozola")
    async with running_bot(tg, sqlite_url, clock=FrozenClock(T0)) as app:
        user = tg.user(620)
        trainer = tg.user(900)
        await trainer.send("/help")  # a trainer who has talked to the bot
        await trainer.next_message()
        first = await start_module(user)
        for attempt in (1, 2, 3):
            if attempt > 1:
                await user.press("qz:start:1")
                first = None
            _polls, result = await play(user, [True] * 4 + [False] * 2, first)
            assert not await _rows(sqlite_url, Outbox, Outbox.kind == "quiz_alert") or attempt == 3
        text = _texts(result)
        assert (
            fmt(
                "Attempt {attempt} of {attempts}; your best: {best}.",
                attempt=3,
                attempts=3,
                best=score_text(4, 6),
            )
            in text
        )
        assert "qz:start:1" not in _data(result[-1])  # no fourth scored attempt
        materials = await _until(user, lambda m: bool(m.buttons))
        assert shipped_content().modules[1].description.en in _texts(user.messages[-4:])
        assert _data(materials) == {"qz:review:1"}

        (alert,) = await _rows(sqlite_url, Outbox, Outbox.kind == "quiz_alert")
        assert alert.recipient_id == 900 and alert.payload["learner_id"] == 620
        rendered = await render(sqlite_url, app, alert)
        assert "Līga Ozola" in rendered.text and "module 1" in rendered.text
        # The delivery worker sends it to the trainer.
        await drain_outbox(app)
        told = await _until(trainer, lambda m: "Līga Ozola" in (m.text or ""))
        assert score_text(4, 6) in told.text

        # More practice is a review round; it is not a fourth attempt.
        await user.press("qz:review:1")
        await next_poll(user)
    rounds = await rounds_of(sqlite_url, 620)
    assert [(r.kind, r.attempt_no) for r in rounds] == [
        ("scored", 1),
        ("scored", 2),
        ("scored", 3),
        ("review", None),
    ]


async def test_a_review_round_leaves_the_score_alone(tg, sqlite_url):
    cohort = await make_cohort(sqlite_url)
    await seed_learner(sqlite_url, 630, cohort)
    async with running_bot(tg, sqlite_url, clock=FrozenClock(T0)):
        user = tg.user(630)
        await play(user, [True] * 5 + [False], await start_module(user))
        await user.press("qz:review:1")
        first = await next_poll(user)
        _polls, result = await play(user, [False] * 6, first)
        assert fmt(
            "Review round: {score}. Your scored result stays as it was (best: {best}).",
            score=score_text(0, 6),
            best=score_text(5, 6),
        ) in _texts(result)
        # The review showed the question missed in the scored round first.
        rounds = await rounds_of(sqlite_url, 630)
        scored_missed = await _rows(
            sqlite_url, QuizItem, QuizItem.round_id == rounds[0].id, QuizItem.correct.is_(False)
        )
        review_first = await _rows(
            sqlite_url, QuizItem, QuizItem.round_id == rounds[1].id, QuizItem.index == 0
        )
        assert review_first[0].question_id == scored_missed[0].question_id
        # A review after a pass still offers the remaining scored attempts.
        assert "qz:start:1" in _data(result[-1])
    scores = await _db(sqlite_url, lambda s: q.module_scores(s, 630))
    assert (scores[1].attempts, scores[1].best_score, scores[1].passed) == (1, 5, True)
    assert [(r.kind, r.score) for r in await rounds_of(sqlite_url, 630)] == [
        ("scored", 5),
        ("review", 0),
    ]


# --- robustness ---------------------------------------------------------------------------


def inject_answer(tg, user, poll_id, option_ids):
    """A poll_answer as Telegram would deliver it (a duplicate, a late or a retracted vote:
    the sandbox's users cannot cast those themselves, as in the apps)."""
    tg.inject_update(
        {
            "poll_answer": {
                "poll_id": poll_id,
                "user": user.user_dict(),
                "option_ids": option_ids,
                "option_persistent_ids": [str(o) for o in option_ids],
            }
        }
    )


async def test_second_retracted_and_old_answers_are_ignored(tg, sqlite_url):
    cohort = await make_cohort(sqlite_url)
    await seed_learner(sqlite_url, 640, cohort)
    async with running_bot(tg, sqlite_url, clock=FrozenClock(T0)):
        user = tg.user(640)
        p1 = await start_module(user)
        await answer(user, p1, right=True)
        p2 = await next_poll(user)
        wrong = (correct_of(p1) + 1) % len(p1.poll["options"])
        inject_answer(tg, user, p1.poll["id"], [wrong])  # a second answer to p1
        inject_answer(tg, user, p2.poll["id"], [])  # a retracted vote
        inject_answer(tg, user, "5999999999", [0])  # a poll the bot never sent
        await user.expect_silence(0.6)
        polls, result = await play(user, [True] * 5, p2)
        assert score_text(6, 6) in _texts(result)
        inject_answer(tg, user, polls[-1].poll["id"], [wrong])  # the finished round's poll
        inject_answer(tg, user, p1.poll["id"], [wrong])
        await user.expect_silence(0.6)
    (rnd,) = await rounds_of(sqlite_url, 640)
    assert (rnd.status, rnd.score, rnd.total) == ("finished", 6, 6)
    items = await _rows(sqlite_url, QuizItem, QuizItem.round_id == rnd.id)
    assert all(i.correct for i in items)


async def test_two_taps_start_one_round(tg, db_url):
    cohort = await make_cohort(db_url)
    await seed_learner(db_url, 650, cohort)
    async with running_bot(tg, db_url, clock=FrozenClock(T0)):
        user = tg.user(650)
        await user.send("/quiz")
        listing = await _until(user, lambda m: bool(m.buttons))
        # Two presses queued before the bot reads either (a double tap), and the same
        # data from a release message's "Practise" button.
        forge_press(tg, user, "qz:start:1", listing)
        forge_press(tg, user, "qz:start:1", listing)
        poll = await next_poll(user)
        notice = await user.next_message()
        assert notice.text == tr("This round is under way: answer the last question above.", "en")
        assert _data(notice) == {"qz:cont:1"}
        await user.expect_silence(0.4)
        # A module not released yet cannot be started, whatever the button says.
        forge_press(tg, user, "qz:start:38", listing)
        await user.expect_silence(0.4)
        assert user.answered_callbacks[-1].text == tr("This module is not open for you yet.", "en")
        await play(user, [True] * 6, poll)
    rounds = await rounds_of(db_url, 650)
    assert [(r.module, r.status, r.score) for r in rounds] == [(1, "finished", 6)]


async def test_restart_mid_round_resumes(tg, sqlite_url):
    cohort = await make_cohort(sqlite_url)
    await seed_learner(sqlite_url, 660, cohort)
    clock = FrozenClock(T0)
    async with running_bot(tg, sqlite_url, clock=clock):
        user = tg.user(660)
        p1 = await start_module(user)
        await answer(user, p1)
        await answer(user, await next_poll(user))
        p3 = await next_poll(user)
    # A new process: the learner answers the poll they have, and the round goes on.
    async with running_bot(tg, sqlite_url, clock=clock):
        await answer(user, p3)
        _polls, result = await play(user, [True] * 3)
        assert score_text(6, 6) in _texts(result)
    (rnd,) = await rounds_of(sqlite_url, 660)
    assert (rnd.status, rnd.score, rnd.total) == ("finished", 6, 6)


async def test_a_poll_lost_on_the_way_is_offered_again(tg, sqlite_url):
    cohort = await make_cohort(sqlite_url)
    await seed_learner(sqlite_url, 665, cohort)
    async with running_bot(tg, sqlite_url, clock=FrozenClock(T0)):
        user = tg.user(665)
        p1 = await start_module(user)
        # The answer is committed, then the next poll fails to go out (the bot crashed
        # between the two, or Telegram had a bad moment).
        tg.fail_next("sendPoll", 500, "Internal Server Error")
        await answer(user, p1)
        await user.expect_silence(0.5)
        await user.send("/quiz")
        listing = await _until(user, lambda m: bool(m.buttons))
        assert "qz:cont:1" in _data(listing)
        await user.press("qz:cont:1")
        p2 = await next_poll(user)
        assert p2.text.startswith("2/6 · ")
        # "Send the question again" replaces the poll; the replaced one no longer counts.
        await user.press("qz:cont:1", message_id=listing.message_id)
        p2_again = await next_poll(user)
        assert p2_again.text == p2.text and p2_again.poll["id"] != p2.poll["id"]
        await answer(user, p2)
        await user.expect_silence(0.5)
        _polls, result = await play(user, [True] * 5, p2_again)
        assert score_text(6, 6) in _texts(result)


async def test_a_question_removed_mid_round_is_skipped(tg, sqlite_url):
    cohort = await make_cohort(sqlite_url)
    await seed_learner(sqlite_url, 670, cohort)
    content = shipped_content()
    # The bot's own copy, edited in place mid-round as a content reload would.
    live = dataclasses.replace(content, quizzes=dict(content.quizzes))
    async with running_bot(tg, sqlite_url, clock=FrozenClock(T0), content=live):
        user = tg.user(670)
        p1 = await start_module(user)
        (rnd,) = await rounds_of(sqlite_url, 670)
        items = await _rows(sqlite_url, QuizItem, QuizItem.round_id == rnd.id, order=QuizItem.index)
        gone = items[2].question_id
        quiz = content.quizzes[1]
        live.quizzes[1] = quiz.model_copy(
            update={"questions": [x for x in quiz.questions if x.id != gone]}
        )
        live.__dict__.pop("_qcache", None)
        assert live.question(gone) is None
        polls, result = await play(user, [True] * 5, p1)
        assert score_text(5, 5) in _texts(result)
        assert content.question(gone).text["en"].question not in [p.text[6:] for p in polls]
    (rnd,) = await rounds_of(sqlite_url, 670)
    assert (rnd.score, rnd.total, rnd.status) == (5, 5, "finished")
    skipped = await _rows(sqlite_url, QuizItem, QuizItem.question_id == gone)
    assert skipped[0].chosen is None and skipped[0].poll_id is None


async def test_a_round_left_for_a_day_expires(tg, sqlite_url):
    from scheduler.worker import drain_outbox

    cohort = await make_cohort(sqlite_url)
    await seed_learner(sqlite_url, 680, cohort)
    clock = FrozenClock(T0)
    async with running_bot(tg, sqlite_url, clock=clock) as app:
        user = tg.user(680)
        p1 = await start_module(user)
        await answer(user, p1)
        p2 = await next_poll(user)
        clock.advance(timedelta(hours=23))
        await answer(user, p2)  # within the day: goes on
        p3 = await next_poll(user)
        clock.advance(timedelta(days=1, minutes=1))
        # The learner comes back a day later: the round has expired and the bot says so.
        await answer(user, p3)
        said = await user.next_message()
        title = shipped_content().modules[1].title.en
        expired = fmt(
            "Your practice round of module {number} ({title}) expired after a day without "
            "answers. It does not count as an attempt: start again whenever you like with /quiz.",
            number=1,
            title=title,
        )
        assert said.text == expired
        await user.expect_silence(0.3)
        (rnd,) = await rounds_of(sqlite_url, 680)
        assert rnd.status == "expired"

        # A learner who never comes back: the planner expires the round and tells them.
        await start_module(user)
        clock.advance(timedelta(days=1, hours=1))
        since = clock.now() - timedelta(minutes=1)
        assert await plan(sqlite_url, app, q.plan_expiry, since, clock.now()) == 1
        assert await plan(sqlite_url, app, q.plan_expiry, since, clock.now()) == 0
        (row,) = await _rows(sqlite_url, Outbox, Outbox.kind == "quiz_expired")
        assert (await render(sqlite_url, app, row)).text == expired
        await drain_outbox(app)
        told = await user.next_message()
        assert told.text == expired and _data(told) == {"qz:list:0"}
        await user.press("qz:list:0")
        listing = await _until(user, lambda m: bool(m.buttons))
        assert "qz:cont:1" not in _data(listing)
    rounds = await rounds_of(sqlite_url, 680)
    assert [(r.status, r.attempt_no) for r in rounds] == [("expired", 1), ("expired", 1)]


# --- spaced review ------------------------------------------------------------------------


async def test_missed_questions_come_back_on_days_1_3_and_7(tg, sqlite_url):
    from scheduler.worker import drain_outbox

    cohort = await make_cohort(sqlite_url)
    await seed_learner(sqlite_url, 690, cohort)
    content = shipped_content()
    clock = FrozenClock(T0)
    async with running_bot(tg, sqlite_url, clock=clock) as app:
        user = tg.user(690)
        first = await start_module(user)
        await play(user, [False, False] + [True] * 4, first)
        (rnd,) = await rounds_of(sqlite_url, 690)
        items = await _rows(sqlite_url, QuizItem, QuizItem.round_id == rnd.id, order=QuizItem.index)
        ladder_q, restart_q = items[0].question_id, items[1].question_id
        texts = {qid: content.question(qid).text["en"].question for qid in (ladder_q, restart_q)}

        async def ladder():
            rows = await _rows(sqlite_url, ReviewItem, ReviewItem.user_id == 690)
            return {r.question_id: (r.step, r.due_at - T0) for r in rows}

        assert await ladder() == {
            ladder_q: (0, timedelta(days=1)),
            restart_q: (0, timedelta(days=1)),
        }
        planned_until = T0

        async def day(n, answers):
            """Day n after the miss: the planner offers the review, the worker sends the
            offer, the learner presses it and answers (qid -> right?)."""
            nonlocal planned_until
            clock.set(T0 + timedelta(days=n))
            # The planner's window is [since, until): a tick a minute later takes in
            # what falls due now.
            until = clock.now() + timedelta(minutes=1)
            added = await plan(sqlite_url, app, q.plan_reviews, planned_until, until)
            planned_until = until
            assert added == 1
            await drain_outbox(app)
            offer = await _until(user, lambda m: "qz:due:0" in _data(m))
            assert offer.text == I18N.gettext(
                "Time for a short review: {count} question you missed earlier.",
                "Time for a short review: {count} questions you missed earlier.",
                len(answers),
                locale="en",
            ).format(count=len(answers))
            await user.press("qz:due:0")
            asked = []
            for _ in range(len(answers)):
                poll = await next_poll(user)
                qid = next(k for k, v in texts.items() if poll.text.endswith(v))
                asked.append(qid)
                await answer(user, poll, answers[qid])
            result = await result_messages(user)
            assert fmt(
                "Review done: {score}.", score=score_text(sum(answers.values()), len(answers))
            ) in _texts(result)
            return asked

        # Nothing comes back before its day.
        clock.set(T0 + timedelta(hours=20))
        assert await plan(sqlite_url, app, q.plan_reviews, planned_until, clock.now()) == 0
        planned_until = clock.now()

        # Day 1: both come back; one is right (up to day 3), one missed again (restarts).
        assert set(await day(1, {ladder_q: True, restart_q: False})) == {ladder_q, restart_q}
        assert await ladder() == {
            ladder_q: (1, timedelta(days=3)),
            restart_q: (0, timedelta(days=2)),
        }
        # Day 2: the restarted one alone.
        assert await day(2, {restart_q: True}) == [restart_q]
        # Day 3: the first one again, right: up to day 7.
        assert await day(3, {ladder_q: True}) == [ladder_q]
        assert await ladder() == {
            ladder_q: (2, timedelta(days=7)),
            restart_q: (1, timedelta(days=4)),
        }
        await day(4, {restart_q: True})
        # Day 7: right once more, and it leaves the ladder.
        assert await day(7, {ladder_q: True}) == [ladder_q]
        assert await ladder() == {restart_q: (2, timedelta(days=8))}
    # Review rounds never touched the scored result.
    scores = await _db(sqlite_url, lambda s: q.module_scores(s, 690))
    assert (scores[1].attempts, scores[1].best_score) == (1, 4)
    kinds = [r.kind for r in await rounds_of(sqlite_url, 690)]
    assert kinds == ["scored"] + ["spaced"] * 5


# --- /progress ----------------------------------------------------------------------------


async def test_progress_with_chart_and_certificate(tg, sqlite_url):
    content = shipped_content()
    calendar = {**content.calendar.model_dump(), "final_assessment": 22}
    cohort = await make_cohort(sqlite_url, calendar=calendar)
    await seed_learner(sqlite_url, 700, cohort)
    await seed_learner(sqlite_url, 701, cohort, profile="DIGY")
    clock = FrozenClock(T0)
    async with running_bot(tg, sqlite_url, clock=clock):
        user = tg.user(700)
        await play(user, [True] * 5 + [False], await start_module(user, 1))
        await user.send("/progress")
        report = await user.next_message()
        chart = await user.next_message()
        assert (
            fmt(
                "MOOC: {passed} of {released} released modules passed ({percent} %).",
                passed=1,
                released=3,
                percent=33,
            )
            in report.text
        )
        assert (
            fmt(
                "Certificate of completion: not yet. The final assessment (module {number}) needs "
                "{percent} %.",
                percent=75,
                number=22,
            )
            in report.text
        )
        assert fmt("passed, best {score}", score=score_text(5, 6)) in report.text
        assert report.text.count(tr("not tried yet", "en")) == 2
        assert chart.kind == "photo" and chart.file_bytes.startswith(b"\x89PNG")

        await play(user, [True] * 6, await start_module(user, 22))
        await user.send("/progress")
        report = await user.next_message()
        await user.next_message()
        assert (
            fmt(
                "Certificate of completion: ready. You scored {score} on the final assessment "
                "(module {number}).",
                score=score_text(6, 6),
                number=22,
            )
            in report.text
        )

        # Three weeks in, a DIGY learner sees the modules of their profile first; the
        # CECO-only ones (3 and 27) come last, under their own heading.
        clock.advance(timedelta(weeks=2))
        digy = tg.user(701)
        await digy.send("/quiz")
        heading = await digy.next_message()
        listing = await digy.next_message()
        starts = [
            d for d in (b["callback_data"] for b in listing.buttons) if d.startswith("qz:start")
        ]
        assert starts == [f"qz:start:{m}" for m in (1, 32, 22, 21, 4, 5, 6, 3, 27)]
        assert tr("Other modules (not core to your profile):", "en") in heading.text


async def test_a_class_answering_at_once(tg, db_url):
    """Twenty learners answer together; every answer is recorded once, each learner gets
    their own next question, and every round ends with its own score."""
    cohort = await make_cohort(db_url)
    ids = list(range(800, 820))
    for user_id in ids:
        await seed_learner(db_url, user_id, cohort)
    async with running_bot(tg, db_url, clock=FrozenClock(T0)):
        users = [tg.user(i) for i in ids]
        polls = {u.user_id: await start_module(u) for u in users}
        pattern = [True, False, True, True, True, True]
        for index, right in enumerate(pattern):
            for user in users:
                await answer(user, polls[user.user_id], right)
            for user in users:
                if index < len(pattern) - 1:
                    polls[user.user_id] = await next_poll(user)
                    assert polls[user.user_id].text.startswith(f"{index + 2}/6 · ")
        for user in users:
            assert score_text(5, 6) in _texts(await result_messages(user))
    rounds = await _rows(db_url, QuizRound, QuizRound.user_id.in_(ids))
    assert sorted((r.user_id, r.score, r.total, r.status) for r in rounds) == [
        (i, 5, 6, "finished") for i in ids
    ]


async def test_a_learner_without_consent_is_not_processed(tg, sqlite_url):
    cohort = await make_cohort(sqlite_url)
    await seed_learner(sqlite_url, 710, cohort)
    async with running_bot(tg, sqlite_url, clock=FrozenClock(T0)):
        user = tg.user(710)
        poll = await start_module(user)

        async def withdraw(session):
            (await session.get(User, 710)).consent_version = None

        await _db(sqlite_url, withdraw)
        await answer(user, poll)
        await user.expect_silence(0.5)
    items = await _rows(sqlite_url, QuizItem, QuizItem.poll_id == poll.poll["id"])
    assert items[0].answered_at is None
