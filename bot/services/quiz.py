"""Practice quizzes: the programme's test rules, the store's rounds and the spaced review.

The rules (BRIEF.md, the MOOC's module tests): at least 6 questions, pass at 75 %, at most
3 attempts. Here:

- A **scored** round draws 6 questions from the module's bank: ones the learner has never
  been shown first, then the least recently seen. Options are shuffled per question and
  the order shown is kept on the item, so an answer (an index into what was shown) maps
  back to the content's own order.
- 3 scored attempts per module; the best counts. After a third attempt with no pass the
  learner is offered the module's materials and a review round, and the trainers of their
  cohort are told (kind ``quiz_alert`` in the outbox).
- **Review** rounds (of a module, or the **spaced** round of due questions across modules,
  stored with module 0) are unlimited and never touch the scored result.
- **Spaced review**: a missed question comes back 1, 3 and 7 days after the miss. The
  ladder's steps count from the miss: each correct answer given when the question is due
  moves it to the next step (1 day, then 2 more, then 4 more: days 1, 3 and 7 for a learner
  who answers when asked); a correct answer to the 7-day step takes it off the ladder; any
  miss starts it again at 1 day. Due questions are offered through the outbox (kind
  ``quiz_review``), so quiet hours and mutes apply.
- A round nobody answers for a day **expires** (it is no attempt) and the learner is told:
  by the planner (kind ``quiz_expired``), or at once when they come back first.

Everything lives in the store; the only place that knows which learner and round a poll
belongs to is ``QuizItem.poll_id``.
"""

from __future__ import annotations

import enum
import io
import logging
import random
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from html import escape
from typing import Literal

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.types import User as TelegramUser
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from bot.i18n import resolve_language
from bot.services.consent import has_valid_consent
from bot.services.outbox import Outgoing, RenderContext, Skip, enqueue, renderer
from bot.services.planning import PlanContext, planner
from bot.services.releases import cohort_calendar, learner_schedule
from content.loader import Content
from content.schema import QUESTION_MAX, Question
from storage.models import (
    Cohort,
    CohortTrainer,
    Learner,
    LearnerStatus,
    Outbox,
    QuizItem,
    QuizRound,
    ReviewItem,
    Role,
    User,
)

log = logging.getLogger(__name__)

QUESTIONS_PER_ROUND = 6
PASS_PERCENT = 75
SCORED_ATTEMPTS = 3
LADDER_DAYS: tuple[int, ...] = (1, 3, 7)  # days after the miss
ROUND_EXPIRY = timedelta(days=1)
SPACED_MODULE = 0  # QuizRound.module of a spaced-review round (questions of any module)

# The English fallback of a question is marked with this prefix on the question. A plain
# "(EN)" rather than a flag: it reads the same in every language and on every device
# (flags are missing from some fonts, and a flag names a country, not a language).
FALLBACK_MARK = "(EN) "


class Kind(enum.StrEnum):
    scored = "scored"
    review = "review"
    spaced = "spaced"


class Status(enum.StrEnum):
    active = "active"
    finished = "finished"
    expired = "expired"


# --- the rules, pure -----------------------------------------------------------------------


def draw(
    bank: Sequence[str],
    last_seen: Mapping[str, datetime],
    rng: random.Random,
    n: int = QUESTIONS_PER_ROUND,
) -> list[str]:
    """`n` question ids: never-seen ones first (in random order), then the least recently
    seen (ties in random order)."""
    new = [q for q in bank if q not in last_seen]
    rng.shuffle(new)
    seen = [q for q in bank if q in last_seen]
    ties = {q: rng.random() for q in seen}
    seen.sort(key=lambda q: (last_seen[q], ties[q]))
    return (new + seen)[:n]


def shuffle_options(count: int, rng: random.Random) -> list[int]:
    """The order options are shown in: position shown -> index in the content."""
    order = list(range(count))
    rng.shuffle(order)
    return order


def shown_position(order: Sequence[int], content_index: int) -> int:
    return list(order).index(content_index)


def content_index(order: Sequence[int], shown: int) -> int | None:
    return order[shown] if 0 <= shown < len(order) else None


def is_pass(score: int, total: int) -> bool:
    """75 % or more: 5 of 6 passes, 4 of 6 (66.7 %) does not. Integer arithmetic, so
    exactly 75 % (6 of 8) passes."""
    return total > 0 and score * 100 >= total * PASS_PERCENT


def percent(score: int, total: int) -> int:
    """Rounded half up (4 of 6: 67 %), but a score under 75 % never shows as 75 %."""
    if not total:
        return 0
    shown = (score * 200 + total) // (2 * total)
    return min(shown, PASS_PERCENT - 1) if not is_pass(score, total) else shown


def attempts_left(used: int) -> int:
    return max(0, SCORED_ATTEMPTS - used)


def next_kind(scored_used: int) -> Kind:
    """A module's next round: scored while attempts remain, review after."""
    return Kind.scored if scored_used < SCORED_ATTEMPTS else Kind.review


def needs_support(attempt_no: int, passed_any: bool) -> bool:
    """The third scored attempt ended and none of the three passed."""
    return attempt_no >= SCORED_ATTEMPTS and not passed_any


@dataclass(frozen=True)
class Rung:
    step: int  # index into LADDER_DAYS
    due_at: datetime


def after_miss(now: datetime) -> Rung:
    return Rung(0, now + timedelta(days=LADDER_DAYS[0]))


def after_correct(current: Rung, now: datetime) -> Rung | None:
    """A correct answer: climbs when the question is due, else changes nothing; None when
    the last step is done (the question leaves the ladder)."""
    if current.due_at > now:
        return current
    if current.step >= len(LADDER_DAYS) - 1:
        return None
    step = current.step + 1
    return Rung(step, now + timedelta(days=LADDER_DAYS[step] - LADDER_DAYS[step - 1]))


def is_expired(active_at: datetime, now: datetime) -> bool:
    return now - active_at >= ROUND_EXPIRY


# --- what is released to whom ---------------------------------------------------------------


def released_modules(
    cohort: Cohort, learner: Learner, content: Content, now: datetime
) -> list[int]:
    """Modules with a practice quiz released to this learner by `now`, as the release
    messages release them (bot.services.releases: the cohort's calendar and dates; in the
    self-paced group the learner's own from their enrolment): the ones core to the
    learner's profile first, each group in calendar order."""
    released: list[int] = []
    for week in learner_schedule(cohort, learner, content):
        if week.at <= now:
            released.extend(m for m in week.modules if m not in released)
    with_quiz = [m for m in released if m in content.quizzes]
    return sorted(with_quiz, key=lambda m: not is_core(content, m, learner.profile))


def is_core(content: Content, module: int, profile: str | None) -> bool:
    info = content.modules.get(module)
    return profile is None or info is None or profile in info.profiles


def final_module(cohort: Cohort, content: Content) -> int | None:
    return cohort_calendar(cohort, content).final_assessment


# --- rounds in the store ---------------------------------------------------------------------


@dataclass(frozen=True)
class ModuleScore:
    module: int
    attempts: int  # finished scored rounds
    best_score: int | None
    best_total: int | None
    passed: bool
    active_round: int | None

    @property
    def best_percent(self) -> int | None:
        if self.best_score is None or not self.best_total:
            return None
        return percent(self.best_score, self.best_total)


async def module_scores(session: AsyncSession, user_id: int) -> dict[int, ModuleScore]:
    """Per module: attempts used, the best scored result, and any active round."""
    rows = await session.execute(
        select(
            QuizRound.id,
            QuizRound.module,
            QuizRound.kind,
            QuizRound.status,
            QuizRound.score,
            QuizRound.total,
        ).where(QuizRound.user_id == user_id)
    )
    attempts: dict[int, int] = defaultdict(int)
    best: dict[int, tuple[int, int]] = {}
    active: dict[int, int] = {}
    for round_id, module, kind, status, score, total in rows:
        if status == Status.active:
            active[module] = round_id
        elif kind == Kind.scored and status == Status.finished and score is not None:
            attempts[module] += 1
            if total and (module not in best or score * best[module][1] > best[module][0] * total):
                best[module] = (score, total)
    modules = set(attempts) | set(active) | set(best)
    return {
        m: ModuleScore(
            module=m,
            attempts=attempts.get(m, 0),
            best_score=best[m][0] if m in best else None,
            best_total=best[m][1] if m in best else None,
            passed=m in best and is_pass(*best[m]),
            active_round=active.get(m),
        )
        for m in modules
    }


def empty_score(module: int) -> ModuleScore:
    return ModuleScore(module, 0, None, None, False, None)


async def _last_seen(session: AsyncSession, user_id: int, module: int) -> dict[str, datetime]:
    """When each question of the module was last shown to the learner."""
    rows = await session.execute(
        select(QuizItem.question_id, func.max(QuizRound.started_at))
        .join(QuizRound, QuizRound.id == QuizItem.round_id)
        .where(
            QuizRound.user_id == user_id,
            QuizRound.module == module,
            QuizItem.poll_id.is_not(None),
        )
        .group_by(QuizItem.question_id)
    )
    return {qid: seen for qid, seen in rows}


async def _ladder_first(
    session: AsyncSession, user_id: int, bank: Sequence[str], *, due_by: datetime | None = None
) -> list[str]:
    """Questions of `bank` on the learner's review ladder, the most overdue first."""
    stmt = select(ReviewItem.question_id).where(ReviewItem.user_id == user_id)
    if bank:
        stmt = stmt.where(ReviewItem.question_id.in_(list(bank)))
    if due_by is not None:
        stmt = stmt.where(ReviewItem.due_at <= due_by)
    return list(await session.scalars(stmt.order_by(ReviewItem.due_at, ReviewItem.question_id)))


async def due_reviews(session: AsyncSession, user_id: int, now: datetime) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(ReviewItem)
        .where(ReviewItem.user_id == user_id, ReviewItem.due_at <= now)
    )
    return int(count or 0)


async def active_round(session: AsyncSession, user_id: int, module: int) -> QuizRound | None:
    found: QuizRound | None = await session.scalar(
        select(QuizRound).where(
            QuizRound.user_id == user_id,
            QuizRound.module == module,
            QuizRound.status == Status.active,
        )
    )
    return found


@dataclass
class Started:
    round: QuizRound | None  # None: nothing to ask (no question due, an empty bank)
    created: bool
    attempts_used: int = 0


async def start_round(
    session: AsyncSession,
    content: Content,
    *,
    user_id: int,
    cohort_id: int | None,
    module: int,
    now: datetime,
    rng: random.Random,
    review: bool = False,
) -> Started:
    """The learner's active round of `module`, or a new one: scored while attempts remain
    (unless `review`), else a review round. Module SPACED_MODULE: the due questions."""
    existing = await active_round(session, user_id, module)
    if existing is not None:
        return Started(existing, created=False)
    attempts_used = 0
    if module == SPACED_MODULE:
        kind = Kind.spaced
        ids = [
            q
            for q in await _ladder_first(session, user_id, (), due_by=now)
            if content.question(q) is not None
        ][:QUESTIONS_PER_ROUND]
    else:
        quiz = content.quizzes.get(module)
        bank = [q.id for q in quiz.questions] if quiz else []
        attempts_used = (
            (await module_scores(session, user_id)).get(module, empty_score(module)).attempts
        )
        kind = Kind.review if review else next_kind(attempts_used)
        seen = await _last_seen(session, user_id, module)
        if kind is Kind.review:
            first = await _ladder_first(session, user_id, bank)
            rest = draw([q for q in bank if q not in first], seen, rng)
            ids = (first + rest)[:QUESTIONS_PER_ROUND]
        else:
            ids = draw(bank, seen, rng)
    if not ids:
        return Started(None, created=False, attempts_used=attempts_used)
    rnd = QuizRound(
        user_id=user_id,
        cohort_id=cohort_id,
        module=module,
        kind=kind.value,
        attempt_no=attempts_used + 1 if kind is Kind.scored else None,
        status=Status.active.value,
        position=0,
        total=len(ids),
        started_at=now,
        active_at=now,
    )
    try:
        async with session.begin_nested():
            session.add(rnd)
            await session.flush()
            for index, qid in enumerate(ids):
                question = content.question(qid)
                count = len(question.text["en"].options) if question else 0
                session.add(
                    QuizItem(
                        round_id=rnd.id,
                        index=index,
                        question_id=qid,
                        option_order=shuffle_options(count, rng),
                    )
                )
            await session.flush()
    except IntegrityError:
        # Another process started the same module a moment ago: that round it is.
        existing = await active_round(session, user_id, module)
        return Started(existing, created=False, attempts_used=attempts_used)
    return Started(rnd, created=True, attempts_used=attempts_used)


@dataclass(frozen=True)
class RoundResult:
    round_id: int
    module: int
    kind: Kind
    score: int
    total: int
    passed: bool
    attempt_no: int | None
    attempts_used: int
    best_score: int | None
    best_total: int | None
    module_passed: bool
    needs_support: bool
    missed: tuple[str, ...]  # question ids, in the order asked

    @property
    def attempts_left(self) -> int:
        return attempts_left(self.attempts_used)


@dataclass
class Step:
    """What to do after an answer (or when a round is resumed)."""

    action: Literal["ignore", "expired", "send", "finished"]
    reason: str = ""
    round: QuizRound | None = None
    item: QuizItem | None = None  # the item to send now
    question: Question | None = None
    result: RoundResult | None = None
    position: int = 0  # 1-based number of the item to send
    count: int = 0  # questions in the round


async def _round_items(session: AsyncSession, round_id: int) -> list[QuizItem]:
    return list(
        await session.scalars(
            select(QuizItem).where(QuizItem.round_id == round_id).order_by(QuizItem.index)
        )
    )


async def current_step(
    session: AsyncSession, content: Content, rnd: QuizRound, now: datetime
) -> Step:
    """The item the round waits on (skipping questions gone from the bank), or its end."""
    return await _advance(session, content, rnd, await _round_items(session, rnd.id), now)


async def _advance(
    session: AsyncSession,
    content: Content,
    rnd: QuizRound,
    items: list[QuizItem],
    now: datetime,
) -> Step:
    while rnd.position < len(items):
        item = items[rnd.position]
        if item.answered_at is not None:  # answered or skipped already
            rnd.position += 1
            continue
        question = content.question(item.question_id)
        if question is None:
            # Removed from the bank mid-round: skipped, and not counted.
            log.info("question %s left the bank: skipped in round %s", item.question_id, rnd.id)
            item.answered_at = now
            rnd.position += 1
            continue
        if len(item.option_order) != len(question.text["en"].options):
            # The options were edited since the round began: shuffle them anew.
            item.option_order = shuffle_options(len(question.text["en"].options), random.Random())
        skipped = sum(1 for i in items if i.answered_at is not None and i.chosen is None)
        return Step(
            "send",
            round=rnd,
            item=item,
            question=question,
            position=rnd.position + 1 - skipped,  # the skipped are not counted
            count=len(items) - skipped,
        )
    return Step("finished", round=rnd, result=await _finish(session, rnd, items, now))


async def _finish(
    session: AsyncSession, rnd: QuizRound, items: list[QuizItem], now: datetime
) -> RoundResult:
    answered = [i for i in items if i.chosen is not None]
    rnd.score = sum(1 for i in answered if i.correct)
    rnd.total = len(answered)
    rnd.status = Status.finished.value
    rnd.finished_at = now
    await session.flush()
    assert rnd.user_id is not None
    kind = Kind(rnd.kind)
    score = empty_score(rnd.module)
    if kind is not Kind.spaced:
        score = (await module_scores(session, rnd.user_id)).get(rnd.module, score)
    support = (
        kind is Kind.scored
        and rnd.attempt_no is not None
        and needs_support(rnd.attempt_no, score.passed)
    )
    result = RoundResult(
        round_id=rnd.id,
        module=rnd.module,
        kind=kind,
        score=rnd.score,
        total=rnd.total,
        passed=is_pass(rnd.score, rnd.total),
        attempt_no=rnd.attempt_no,
        attempts_used=score.attempts,
        best_score=score.best_score,
        best_total=score.best_total,
        module_passed=score.passed,
        needs_support=support,
        missed=tuple(i.question_id for i in answered if not i.correct),
    )
    if support:
        await alert_trainers(session, rnd, result, now)
    return result


async def alert_trainers(
    session: AsyncSession, rnd: QuizRound, result: RoundResult, now: datetime
) -> int:
    """Tell the cohort's trainers that a learner did not pass a module in 3 attempts."""
    if rnd.cohort_id is None or rnd.user_id is None:
        return 0
    trainers = await session.scalars(
        select(CohortTrainer.trainer_id).where(CohortTrainer.cohort_id == rnd.cohort_id)
    )
    added = 0
    for trainer_id in trainers:
        added += await enqueue(
            session,
            kind="quiz_alert",
            reference=f"{rnd.user_id}:{rnd.module}",
            recipient_id=trainer_id,
            not_before=now,
            payload={
                "learner_id": rnd.user_id,
                "module": rnd.module,
                "best_score": result.best_score,
                "best_total": result.best_total,
                "attempts": result.attempts_used,
            },
        )
    return added


@dataclass(frozen=True)
class Vote:
    """One poll answer as Telegram delivered it."""

    poll_id: str
    user_id: int
    option_ids: tuple[int, ...]


def _climb(
    ladder: dict[tuple[int, str], ReviewItem],
    session: AsyncSession,
    user_id: int,
    question_id: str,
    correct: bool,
    now: datetime,
) -> ReviewItem | None:
    """The ladder after an answer; returns a row to delete, if any."""
    key = (user_id, question_id)
    row = ladder.get(key)
    if not correct:
        rung = after_miss(now)
        if row is None:
            row = ReviewItem(
                user_id=user_id, question_id=question_id, step=rung.step, due_at=rung.due_at
            )
            session.add(row)
            ladder[key] = row
        else:
            row.step, row.due_at = rung.step, rung.due_at
        return None
    if row is None:
        return None
    climbed = after_correct(Rung(row.step, row.due_at), now)
    if climbed is None:
        del ladder[key]
        return row
    row.step, row.due_at = climbed.step, climbed.due_at
    return None


async def record_answers(
    session: AsyncSession, content: Content, votes: Sequence[Vote], now: datetime
) -> list[Step]:
    """Record poll answers, in the order they came, with a few statements for all of
    them; one Step each. Ignored: a retracted vote, an unknown or old poll, a round no
    longer active, a second answer, someone else's answer. The rows read are locked
    (PostgreSQL: FOR UPDATE; SQLite: the transaction is IMMEDIATE), so of two processes
    recording the same answer one wins."""
    wanted = sorted({v.poll_id for v in votes if v.option_ids})
    rounds: dict[int, QuizRound] = {}
    items_of: dict[int, list[QuizItem]] = defaultdict(list)
    by_poll: dict[str, QuizItem] = {}
    ladder: dict[tuple[int, str], ReviewItem] = {}
    if wanted:
        stmt = (
            select(QuizRound, QuizItem)
            .join(QuizItem, QuizItem.round_id == QuizRound.id)
            .where(
                QuizRound.id.in_(
                    select(QuizItem.round_id).where(QuizItem.poll_id.in_(wanted)).scalar_subquery()
                )
            )
            .order_by(QuizRound.id, QuizItem.index)
        )
        if session.bind is not None and session.bind.dialect.name == "postgresql":
            stmt = stmt.with_for_update(of=QuizItem)
        for rnd, item in (await session.execute(stmt)).all():
            rounds[rnd.id] = rnd
            items_of[rnd.id].append(item)
            if item.poll_id is not None:
                by_poll[item.poll_id] = item
        users = {r.user_id for r in rounds.values() if r.user_id is not None}
        questions = {i.question_id for i in by_poll.values()}
        if users and questions:
            for row in await session.scalars(
                select(ReviewItem).where(
                    ReviewItem.user_id.in_(users), ReviewItem.question_id.in_(questions)
                )
            ):
                ladder[(row.user_id, row.question_id)] = row
    steps: list[Step] = []
    advanced: list[tuple[int, QuizRound]] = []
    gone: list[ReviewItem] = []
    for vote in votes:
        item = by_poll.get(vote.poll_id) if vote.option_ids else None
        rnd = rounds.get(item.round_id) if item is not None else None
        if not vote.option_ids:
            steps.append(Step("ignore", "retracted"))
        elif item is None or rnd is None:
            steps.append(Step("ignore", "unknown poll"))
        elif rnd.user_id != vote.user_id:
            steps.append(Step("ignore", "not this learner's poll"))
        elif rnd.status != Status.active:
            steps.append(Step("ignore", f"round {rnd.status}"))
        elif item.answered_at is not None:
            steps.append(Step("ignore", "already answered"))
        elif is_expired(rnd.active_at, now):
            rnd.status = Status.expired.value
            rnd.finished_at = now
            steps.append(Step("expired", round=rnd))
        else:
            question = content.question(item.question_id)
            chosen = content_index(item.option_order, vote.option_ids[0])
            item.answered_at = now
            if question is not None and chosen is not None:
                item.chosen, item.correct = chosen, chosen == question.answer
                dropped = _climb(ladder, session, vote.user_id, item.question_id, item.correct, now)
                if dropped is not None:
                    gone.append(dropped)
            rnd.active_at = now
            rnd.position = item.index + 1
            advanced.append((len(steps), rnd))
            steps.append(Step("ignore", "pending"))
    for row in gone:
        await session.delete(row)
    for index, rnd in advanced:
        steps[index] = await _advance(session, content, rnd, items_of[rnd.id], now)
    return steps


async def record_answer(
    session: AsyncSession,
    content: Content,
    *,
    poll_id: str,
    user_id: int,
    option_ids: Sequence[int],
    now: datetime,
) -> Step:
    """One poll answer (see record_answers)."""
    (step,) = await record_answers(
        session, content, [Vote(poll_id, user_id, tuple(option_ids))], now
    )
    return step


async def mark_sent(session: AsyncSession, item: QuizItem, poll_id: str) -> None:
    """The poll that shows `item` (a new one replaces the old: answers to that are then
    ignored)."""
    await session.execute(
        update(QuizItem)
        .where(QuizItem.id == item.id)
        .values(poll_id=poll_id)
        .execution_options(synchronize_session=False)
    )
    set_committed_value(item, "poll_id", poll_id)


async def mark_sent_many(session: AsyncSession, sent: Sequence[tuple[int, str]]) -> None:
    """mark_sent for many items at once: (item id, poll id) pairs."""
    if sent:
        await session.execute(
            update(QuizItem), [{"id": item_id, "poll_id": poll_id} for item_id, poll_id in sent]
        )


async def expire_stale(
    session: AsyncSession, now: datetime, *, user_id: int | None = None
) -> list[QuizRound]:
    """Expire active rounds without an answer for a day (one learner's, or everyone's)."""
    stmt = select(QuizRound).where(
        QuizRound.status == Status.active, QuizRound.active_at <= now - ROUND_EXPIRY
    )
    if user_id is not None:
        stmt = stmt.where(QuizRound.user_id == user_id)
    rounds = list(await session.scalars(stmt))
    for rnd in rounds:
        rnd.status = Status.expired.value
        rnd.finished_at = now
    if rounds:
        await session.flush()
    return rounds


async def voters(
    session: AsyncSession, users: Mapping[int, TelegramUser | None], content: Content
) -> dict[int, str]:
    """Of the people who answered polls, those whose answers may be processed, with the
    language to answer them in. The consent gate's rule (bot/consent_gate.py): a learner
    without valid consent (withdrawn, or the notice changed) is not processed."""
    rows = await session.execute(
        select(User, Learner)
        .outerjoin(Learner, Learner.user_id == User.id)
        .where(User.id.in_(list(users)))
    )
    known = {user.id: (user, learner) for user, learner in rows}
    allowed: dict[int, str] = {}
    for user_id, tg_user in users.items():
        code = tg_user.language_code if tg_user is not None else None
        user, learner = known.get(user_id, (None, None))
        if user is None:
            allowed[user_id] = resolve_language(None, code)  # no rounds: ignored anyway
            continue
        if (
            user.role is Role.learner
            and learner is not None
            and not has_valid_consent(user, content)
        ):
            continue
        allowed[user_id] = resolve_language(user.language, code)
    return allowed


async def learner_of(session: AsyncSession, user_id: int) -> tuple[Learner, Cohort | None] | None:
    """The enrolled learner and their cohort; None for anyone else."""
    row = (
        await session.execute(
            select(Learner, Cohort)
            .outerjoin(Cohort, Cohort.id == Learner.cohort_id)
            .where(Learner.user_id == user_id, Learner.status == LearnerStatus.enrolled)
        )
    ).first()
    if row is None:
        return None
    return row[0], row[1]


# --- texts ---------------------------------------------------------------------------------


def module_title(content: Content, module: int, lang: str) -> str:
    info = content.modules.get(module)
    if info is None:
        return str(module)
    text, _fallback = info.title.get(lang)
    return text


def poll_texts(
    question: Question, order: Sequence[int], lang: str, position: int, count: int
) -> tuple[str, list[str], int, str]:
    """(question, options in the order shown, correct position, explanation) as plain text
    (the poll is sent without a parse mode)."""
    text, fallback = question.localized(lang)
    head = f"{position}/{count} · " + (FALLBACK_MARK if fallback else "")
    body = text.question
    if len(head) + len(body) > QUESTION_MAX:
        body = body[: QUESTION_MAX - len(head) - 1] + "…"
    options = [text.options[i] for i in order]
    return head + body, options, shown_position(order, question.answer), text.explanation


def score_line(score: int, total: int) -> str:
    return _("{score} of {total} ({percent} %)").format(
        score=score, total=total, percent=percent(score, total)
    )


def missed_lines(content: Content, missed: Iterable[str], lang: str) -> list[str]:
    """Each missed question with its right answer and why (HTML)."""
    lines: list[str] = []
    for qid in missed:
        question = content.question(qid)
        if question is None:
            continue
        text, fallback = question.localized(lang)
        mark = FALLBACK_MARK if fallback else ""
        lines.append(
            f"• {escape(mark + text.question)}\n"
            f"  ✅ <b>{escape(text.options[question.answer])}</b>\n"
            f"  <i>{escape(text.explanation)}</i>"
        )
    return lines


@dataclass(frozen=True)
class Bar:
    label: str
    percent: int | None  # None: not tried yet
    passed: bool


def score_chart(
    bars: Sequence[Bar], *, title: str, ylabel: str, pass_label: str, xlabel: str = ""
) -> bytes:
    """A PNG of best scores by module, with the 75 % line (matplotlib, Agg, no pyplot:
    safe to call from a worker thread). Green: passed; red: not yet; grey: not tried."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(6.0, 0.5 * len(bars) + 2.0), 4.0), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    xs = list(range(len(bars)))
    heights = [b.percent if b.percent is not None else 2 for b in bars]
    colours = [
        "#2e7d32" if b.passed else ("#c62828" if b.percent is not None else "#bdbdbd") for b in bars
    ]
    ax.bar(xs, heights, color=colours, width=0.7)
    for x, bar in zip(xs, bars, strict=True):
        label = f"{bar.percent}" if bar.percent is not None else "–"
        ax.text(x, heights[x] + 1.5, label, ha="center", va="bottom", fontsize=8)
    ax.axhline(PASS_PERCENT, color="#1565c0", linestyle="--", linewidth=1, label=pass_label)
    ax.set_ylim(0, 112)
    ax.set_xlim(-0.6, max(len(bars), 1) - 0.4)
    ax.set_xticks(xs, [b.label for b in bars], fontsize=8)
    ax.set_ylabel(ylabel)
    if xlabel:
        ax.set_xlabel(xlabel, fontsize=9)
    fig.suptitle(title, fontsize=11, wrap=True)
    fig.legend(loc="lower right", fontsize=8, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


# --- outbox: renderers and planners ----------------------------------------------------------


class QuizCb(CallbackData, prefix="qz"):
    """qz:<action>:<module>. `qz:start:<module>` is also what a release message's
    "Practise" button carries. Actions: list, start, review, due (module 0), cont."""

    action: str
    module: int = 0


@renderer("quiz_review", mutable_label="Review of questions you missed")
async def render_review(ctx: RenderContext, row: Outbox) -> Outgoing:
    with ctx.i18n.context():
        count = await due_reviews(ctx.session, ctx.recipient.id, ctx.clock.now())
        if count == 0:
            raise Skip("nothing due any more")
        shown = min(count, QUESTIONS_PER_ROUND)
        text = ngettext(
            "Time for a short review: {count} question you missed earlier.",
            "Time for a short review: {count} questions you missed earlier.",
            shown,
        ).format(count=shown)
        button = ngettext("Review {count} question", "Review {count} questions", shown).format(
            count=shown
        )
    markup = InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text=button, callback_data=QuizCb(action="due").pack())]
        ]
    )
    return Outgoing(text=text, reply_markup=markup)


@renderer("quiz_alert")
async def render_alert(ctx: RenderContext, row: Outbox) -> Outgoing:
    payload = row.payload
    learner = await ctx.session.get(Learner, int(payload["learner_id"]))
    if learner is None:
        raise Skip("the learner's data is gone")
    module = int(payload["module"])
    lang = ctx.i18n.current_locale
    best_score, best_total = payload.get("best_score"), payload.get("best_total")
    with ctx.i18n.context():
        best = (
            score_line(int(best_score), int(best_total))
            if best_score is not None and best_total
            else "—"
        )
        text = _(
            "{name} has not passed the practice quiz of module {number} ({title}) in "
            "{attempts} attempts: best score {best}. They have been offered the module's "
            "materials and a review round; a word from you may help."
        ).format(
            name=f"<b>{escape(learner.name)}</b>",
            number=module,
            title=escape(module_title(ctx.content, module, lang)),
            attempts=int(payload.get("attempts", SCORED_ATTEMPTS)),
            best=best,
        )
    return Outgoing(text=text)


@renderer("quiz_expired")
async def render_expired(ctx: RenderContext, row: Outbox) -> Outgoing:
    module = int(row.payload["module"])
    lang = ctx.i18n.current_locale
    with ctx.i18n.context():
        text = expired_text(ctx.content, module, lang)
        label = _("Practice quizzes")
    markup = InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text=label, callback_data=QuizCb(action="list").pack())]
        ]
    )
    return Outgoing(text=text, reply_markup=markup)


def expired_text(content: Content, module: int, lang: str) -> str:
    if module == SPACED_MODULE:
        return _(
            "Your review round expired after a day without answers. The questions are still "
            "waiting for you in /quiz."
        )
    return _(
        "Your practice round of module {number} ({title}) expired after a day without "
        "answers. It does not count as an attempt: start again whenever you like with /quiz."
    ).format(number=module, title=escape(module_title(content, module, lang)))


@planner("quiz_review")
async def plan_reviews(ctx: PlanContext) -> int:
    """One "review N questions" offer per learner and day, when questions fall due."""
    rows = await ctx.session.execute(
        select(ReviewItem.user_id, func.min(ReviewItem.due_at))
        .join(Learner, Learner.user_id == ReviewItem.user_id)
        .join(User, User.id == ReviewItem.user_id)
        .where(
            ReviewItem.due_at >= ctx.since,
            ReviewItem.due_at < ctx.until,
            Learner.status == LearnerStatus.enrolled,
            User.is_active.is_(True),
        )
        .group_by(ReviewItem.user_id)
    )
    added = 0
    for user_id, first_due in rows:
        added += await enqueue(
            ctx.session,
            kind="quiz_review",
            reference=first_due.date().isoformat(),
            recipient_id=user_id,
            not_before=first_due,
            expires_at=first_due + timedelta(days=1),
        )
    return added


@planner("quiz_expiry")
async def plan_expiry(ctx: PlanContext) -> int:
    """Expire rounds without an answer for a day, and tell their learners."""
    added = 0
    for rnd in await expire_stale(ctx.session, ctx.until):
        if rnd.user_id is None:
            continue
        added += await enqueue(
            ctx.session,
            kind="quiz_expired",
            reference=rnd.id,
            recipient_id=rnd.user_id,
            not_before=ctx.until,
            expires_at=ctx.until + timedelta(days=2),
            payload={"module": rnd.module},
        )
    return added


@dataclass
class ProgressRow:
    module: int
    score: ModuleScore
    core: bool


@dataclass
class Progress:
    rows: list[ProgressRow] = field(default_factory=list)
    final_module: int | None = None

    @property
    def released(self) -> int:
        return len(self.rows)

    @property
    def passed(self) -> int:
        return sum(1 for r in self.rows if r.score.passed)

    @property
    def final(self) -> ProgressRow | None:
        return next((r for r in self.rows if r.module == self.final_module), None)


async def progress(
    session: AsyncSession,
    content: Content,
    learner: Learner,
    cohort: Cohort | None,
    now: datetime,
) -> Progress:
    if cohort is None:
        return Progress()
    scores = await module_scores(session, learner.user_id)
    released = released_modules(cohort, learner, content, now)
    return Progress(
        rows=[
            ProgressRow(m, scores.get(m, empty_score(m)), is_core(content, m, learner.profile))
            for m in released
        ],
        final_module=final_module(cohort, content),
    )
