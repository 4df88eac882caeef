"""The practice-quiz rules as plain functions: drawing, shuffling, scoring, attempts, the
spaced-review ladder and expiry; then the store's side of them on both backends."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from bot.services import quiz as q
from storage.db import make_engine, make_sessionmaker
from storage.models import Cohort, Learner, QuizItem, QuizRound, ReviewItem, User
from tests.e2e.harness import shipped_content

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
BANK = [f"m01-q{i:02d}" for i in range(1, 11)]


# --- drawing ----------------------------------------------------------------------------


def test_draw_gives_six_distinct_questions_of_the_bank():
    drawn = q.draw(BANK, {}, random.Random(1))
    assert len(drawn) == q.QUESTIONS_PER_ROUND == 6
    assert len(set(drawn)) == 6 and set(drawn) <= set(BANK)


def test_draw_is_deterministic_with_the_injected_random():
    assert q.draw(BANK, {}, random.Random(7)) == q.draw(BANK, {}, random.Random(7))
    assert q.draw(BANK, {}, random.Random(7)) != q.draw(BANK, {}, random.Random(8))


def test_new_questions_come_before_repeats():
    seen = {qid: T0 for qid in BANK[:6]}
    drawn = q.draw(BANK, seen, random.Random(3))
    assert drawn[:4] == [x for x in drawn if x not in seen]  # the 4 new ones first
    assert set(drawn[:4]) == set(BANK[6:])
    assert all(x in seen for x in drawn[4:])


def test_repeats_are_the_least_recently_seen():
    seen = {qid: T0 + timedelta(hours=i) for i, qid in enumerate(BANK)}  # q01 oldest
    drawn = q.draw(BANK, seen, random.Random(3))
    assert drawn == BANK[:6]


def test_a_second_round_after_the_first_shows_the_unseen_four_first():
    rng = random.Random(11)
    first = q.draw(BANK, {}, rng)
    second = q.draw(BANK, dict.fromkeys(first, T0), rng)
    assert set(second[:4]) == set(BANK) - set(first)


def test_a_small_bank_gives_what_it_has():
    assert sorted(q.draw(BANK[:4], {}, random.Random(1))) == BANK[:4]


# --- options ----------------------------------------------------------------------------


def test_option_order_maps_answers_back():
    order = q.shuffle_options(4, random.Random(5))
    assert sorted(order) == [0, 1, 2, 3]
    for content_index in range(4):
        shown = q.shown_position(order, content_index)
        assert q.content_index(order, shown) == content_index
    assert q.content_index(order, 4) is None and q.content_index(order, -1) is None


def test_options_are_really_shuffled():
    orders = {tuple(q.shuffle_options(4, random.Random(seed))) for seed in range(30)}
    assert len(orders) > 5


# --- scoring and attempts ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "total", "passed"),
    [(6, 6, True), (5, 6, True), (4, 6, False), (0, 6, False), (6, 8, True), (5, 7, False)],
)
def test_pass_at_75_percent(score, total, passed):
    assert q.is_pass(score, total) is passed


def test_no_questions_is_no_pass():
    assert not q.is_pass(0, 0)


def test_percent_shown():
    assert q.percent(5, 6) == 83
    assert q.percent(4, 6) == 67  # 66.7 % rounds half up
    assert q.percent(6, 8) == 75
    assert q.percent(0, 0) == 0


def test_a_fail_never_shows_as_75():
    # 149 of 200 is 74.5 %: rounds to 75, but a fail must not read as the pass mark.
    assert not q.is_pass(149, 200) and q.percent(149, 200) == 74


def test_three_scored_attempts_then_review():
    assert [q.next_kind(used) for used in range(5)] == [
        q.Kind.scored,
        q.Kind.scored,
        q.Kind.scored,
        q.Kind.review,
        q.Kind.review,
    ]
    assert [q.attempts_left(used) for used in range(5)] == [3, 2, 1, 0, 0]


def test_support_after_a_third_attempt_without_a_pass():
    assert q.needs_support(3, passed_any=False)
    assert not q.needs_support(3, passed_any=True)  # the best counts: passed earlier
    assert not q.needs_support(2, passed_any=False)


# --- the spaced-review ladder -----------------------------------------------------------


def test_a_miss_is_due_after_a_day():
    assert q.after_miss(T0) == q.Rung(0, T0 + timedelta(days=1))


def test_correct_answers_when_due_climb_to_days_3_and_7_then_leave():
    rung: q.Rung | None = q.after_miss(T0)
    due_days = []
    while rung is not None:
        due_days.append((rung.due_at - T0).days)
        rung = q.after_correct(rung, rung.due_at)  # answered the moment it comes back
    assert due_days == [1, 3, 7]


def test_a_correct_answer_before_it_is_due_changes_nothing():
    rung = q.after_miss(T0)
    assert q.after_correct(rung, T0 + timedelta(hours=3)) == rung


def test_a_late_answer_counts_from_the_answer():
    rung = q.after_miss(T0)
    late = T0 + timedelta(days=2)
    assert q.after_correct(rung, late) == q.Rung(1, late + timedelta(days=2))


def test_a_miss_in_review_restarts_the_ladder():
    rung = q.after_correct(q.after_miss(T0), T0 + timedelta(days=1))
    assert rung is not None and rung.step == 1
    assert q.after_miss(T0 + timedelta(days=3)) == q.Rung(0, T0 + timedelta(days=4))


def test_round_expiry_after_a_day():
    assert not q.is_expired(T0, T0 + timedelta(hours=23, minutes=59))
    assert q.is_expired(T0, T0 + timedelta(days=1))


# --- poll texts -------------------------------------------------------------------------


def test_poll_texts_in_the_language_and_in_the_order_shown():
    question = shipped_content().question("m01-q01")
    order = [2, 0, 3, 1]
    text, options, correct, explanation = q.poll_texts(question, order, "lv", 2, 6)
    lv = question.text["lv"]
    assert text == "2/6 · " + lv.question
    assert options == [lv.options[i] for i in order]
    assert options[correct] == lv.options[question.answer]
    assert explanation == lv.explanation


def test_the_english_fallback_is_marked():
    question = shipped_content().question("m01-q01")
    english_only = question.model_copy(update={"text": {"en": question.text["en"]}})
    text, options, _correct, _expl = q.poll_texts(english_only, [0, 1, 2, 3], "el", 1, 6)
    assert text == "1/6 · " + q.FALLBACK_MARK + question.text["en"].question
    assert options == question.text["en"].options
    text_en, *_ = q.poll_texts(english_only, [0, 1, 2, 3], "en", 1, 6)
    assert q.FALLBACK_MARK not in text_en


def test_a_long_question_is_cut_to_telegram_limit():
    question = shipped_content().question("m01-q01")
    en = question.text["en"].model_copy(update={"question": "x" * 300})
    long = question.model_copy(update={"text": {"en": en}})
    text, *_ = q.poll_texts(long, [0, 1, 2, 3], "it", 6, 6)
    assert len(text) <= 300 and text.endswith("…")


def test_the_chart_is_a_png():
    png = q.score_chart(
        [q.Bar("1", 83, True), q.Bar("32", 50, False), q.Bar("22", None, False)],
        title="Ελληνικά: Τίτλος",
        ylabel="%",
        pass_label="75 %",
    )
    assert png.startswith(b"\x89PNG")


# --- the store: rounds, answers, the ladder ----------------------------------------------


async def _with_session(url, fn):
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as session:
            result = await fn(session)
            await session.commit()
            return result
    finally:
        await engine.dispose()


async def _seed(session, user_id=1):
    session.add(User(id=user_id, language="en"))
    cohort = Cohort(
        name="LV 1",
        country="LV",
        language="lv",
        timezone="Europe/Riga",
        mooc_start=date(2026, 2, 23),
    )
    session.add(cohort)
    await session.flush()
    session.add(
        Learner(
            user_id=user_id,
            cohort_id=cohort.id,
            name="Anna",
            age_band="35-44",
            country="LV",
            education="master",
            employment="library",
            profession="Librarian",
            years_experience=3,
            heard_from="web",
            profile="CECO",
        )
    )
    await session.flush()
    return cohort


async def _answer_all(session, content, rnd, pattern, now):
    """Answer the round's items in order, right or wrong per `pattern`."""
    step = await q.current_step(session, content, rnd, now)
    for index, right in enumerate(pattern):
        assert step.action == "send"
        await q.mark_sent(session, step.item, f"poll-{rnd.id}-{index}")
        question = step.question
        shown = q.shown_position(step.item.option_order, question.answer)
        if not right:
            shown = (shown + 1) % len(step.item.option_order)
        step = await q.record_answer(
            session,
            content,
            poll_id=f"poll-{rnd.id}-{index}",
            user_id=rnd.user_id,
            option_ids=[shown],
            now=now,
        )
    return step


async def test_rounds_attempts_and_best_in_the_store(db_url):
    content = shipped_content()

    async def run(session):
        cohort = await _seed(session)
        rng = random.Random(1)
        results = []
        for pattern in ([True] * 4 + [False] * 2, [True] * 5 + [False], [False] * 6):
            started = await q.start_round(
                session, content, user_id=1, cohort_id=cohort.id, module=1, now=T0, rng=rng
            )
            assert started.created and started.round.kind == "scored"
            step = await _answer_all(session, content, started.round, pattern, T0)
            assert step.action == "finished"
            results.append(step.result)
        return results

    first, second, third = await _with_session(db_url, run)
    assert (first.score, first.total, first.passed, first.attempt_no) == (4, 6, False, 1)
    assert (second.score, second.passed, second.best_score) == (5, True, 5)
    # The third, 0 of 6, does not lower the best; no alert: a pass exists.
    assert (third.attempt_no, third.best_score, third.module_passed) == (3, 5, True)
    assert not third.needs_support and third.attempts_left == 0
    assert len(third.missed) == 6

    async def after(session):
        started = await q.start_round(
            session, content, user_id=1, cohort_id=None, module=1, now=T0, rng=random.Random(2)
        )
        return started.round.kind

    assert await _with_session(db_url, after) == "review"


async def test_one_active_round_per_module_and_duplicates_ignored(db_url):
    content = shipped_content()

    async def run(session):
        cohort = await _seed(session)
        kwargs = dict(user_id=1, cohort_id=cohort.id, module=1, now=T0, rng=random.Random(1))
        a = await q.start_round(session, content, **kwargs)
        b = await q.start_round(session, content, **kwargs)
        assert a.created and not b.created and a.round.id == b.round.id
        rounds = await session.scalar(select(func.count()).select_from(QuizRound))
        assert rounds == 1
        step = await q.current_step(session, content, a.round, T0)
        await q.mark_sent(session, step.item, "p1")
        first = await q.record_answer(
            session, content, poll_id="p1", user_id=1, option_ids=[0], now=T0
        )
        again = await q.record_answer(
            session, content, poll_id="p1", user_id=1, option_ids=[1], now=T0
        )
        retracted = await q.record_answer(
            session, content, poll_id="p1", user_id=1, option_ids=[], now=T0
        )
        stranger = await q.record_answer(
            session, content, poll_id="p1", user_id=2, option_ids=[0], now=T0
        )
        unknown = await q.record_answer(
            session, content, poll_id="nope", user_id=1, option_ids=[0], now=T0
        )
        item = await session.get(QuizItem, step.item.id)
        return first, again, retracted, stranger, unknown, item

    first, again, retracted, stranger, unknown, item = await _with_session(db_url, run)
    assert first.action == "send" and first.position == 2
    assert (again.action, again.reason) == ("ignore", "already answered")
    assert (retracted.action, retracted.reason) == ("ignore", "retracted")
    assert stranger.action == "ignore" and unknown.action == "ignore"
    assert item.chosen == item.option_order[0]


async def test_the_ladder_in_the_store(sqlite_url):
    content = shipped_content()

    async def run(session):
        cohort = await _seed(session)
        started = await q.start_round(
            session,
            content,
            user_id=1,
            cohort_id=cohort.id,
            module=1,
            now=T0,
            rng=random.Random(4),
        )
        await _answer_all(session, content, started.round, [False] + [True] * 5, T0)
        return list(await session.scalars(select(ReviewItem)))

    (item,) = await _with_session(sqlite_url, run)
    assert (item.step, item.due_at) == (0, T0 + timedelta(days=1))

    async def spaced(session):
        early = await q.start_round(
            session, content, user_id=1, cohort_id=None, module=0, now=T0, rng=random.Random(1)
        )
        assert early.round is None  # nothing due yet
        day1 = T0 + timedelta(days=1)
        due = await q.start_round(
            session, content, user_id=1, cohort_id=None, module=0, now=day1, rng=random.Random(1)
        )
        assert due.round.kind == "spaced" and due.round.total == 1
        step = await _answer_all(session, content, due.round, [True], day1)
        assert step.action == "finished" and step.result.kind is q.Kind.spaced
        return await session.get(ReviewItem, (1, item.question_id))

    climbed = await _with_session(sqlite_url, spaced)
    assert (climbed.step, climbed.due_at) == (1, T0 + timedelta(days=3))


async def test_expiry_in_the_store(sqlite_url):
    content = shipped_content()

    async def run(session):
        cohort = await _seed(session)
        started = await q.start_round(
            session,
            content,
            user_id=1,
            cohort_id=cohort.id,
            module=1,
            now=T0,
            rng=random.Random(1),
        )
        assert await q.expire_stale(session, T0 + timedelta(hours=23)) == []
        expired = await q.expire_stale(session, T0 + timedelta(days=1))
        assert [r.id for r in expired] == [started.round.id]
        again = await q.start_round(
            session,
            content,
            user_id=1,
            cohort_id=cohort.id,
            module=1,
            now=T0 + timedelta(days=1),
            rng=random.Random(1),
        )
        return again.round

    again = await _with_session(sqlite_url, run)
    assert again.attempt_no == 1  # an expired round was no attempt


async def test_a_batch_of_answers(db_url):
    """Answers recorded together: two learners, a duplicate and a retraction in one batch."""
    content = shipped_content()

    async def run(session):
        cohort = await _seed(session, 1)
        await _seed(session, 2)
        rounds = []
        for user_id in (1, 2):
            started = await q.start_round(
                session,
                content,
                user_id=user_id,
                cohort_id=cohort.id,
                module=1,
                now=T0,
                rng=random.Random(user_id),
            )
            step = await q.current_step(session, content, started.round, T0)
            await q.mark_sent(session, step.item, f"p{user_id}")
            rounds.append(step)
        await session.commit()
        right = [q.shown_position(s.item.option_order, s.question.answer) for s in rounds]
        votes = [
            q.Vote("p1", 1, (right[0],)),
            q.Vote("p1", 1, ((right[0] + 1) % 4,)),  # delivered twice
            q.Vote("p2", 2, ()),  # retracted
            q.Vote("p2", 2, ((right[1] + 1) % 4,)),
            q.Vote("p2", 1, (right[1],)),  # not this learner's poll
        ]
        steps = await q.record_answers(session, content, votes, T0)
        await session.commit()
        ladder = list(await session.scalars(select(ReviewItem)))
        return steps, ladder, rounds

    steps, ladder, rounds = await _with_session(db_url, run)
    assert [s.action for s in steps] == ["send", "ignore", "ignore", "send", "ignore"]
    assert [steps[i].reason for i in (1, 2, 4)] == [
        "already answered",
        "retracted",
        "not this learner's poll",
    ]
    assert [(r.user_id, r.question_id) for r in ladder] == [(2, rounds[1].item.question_id)]
