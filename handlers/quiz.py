"""Practice quizzes in chat: /quiz, rounds of native quiz polls, /progress.

Thin: the rules and the store are in bot.services.quiz. Every handler does its reading and
writing first and commits before it talks to Telegram, so that no SQLite write lock is
held across a network call (the middleware gives one session per update); what it learns
from Telegram (a poll's id) is written in a second, short transaction. Poll answers, the
hot path, go through AnswerLane, which does the same for a batch of answers at a time.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Any

from aiogram import Bot, F, Router
from aiogram.filters import Command
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardMarkup,
    Message,
    PollAnswer,
    TelegramObject,
    Update,
)
from aiogram.utils.i18n import I18n, ngettext
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.services import quiz as svc
from bot.services.quiz import QuizCb
from content.loader import Content
from storage.models import Cohort, Learner, QuizRound, User, Webinar

log = logging.getLogger(__name__)
router = Router(name="quiz")

TEXT_LIMIT = 4000  # under Telegram's 4096, for the HTML tags
BUTTON_TITLE = 30  # characters of a module title on a button

# One generator for the process; tests inject their own as `quiz_rng` in the dispatcher.
_RNG = random.Random()


def _rng(quiz_rng: random.Random | None) -> random.Random:
    return quiz_rng if quiz_rng is not None else _RNG


def _short(text: str, limit: int = BUTTON_TITLE) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _chunks(blocks: Sequence[str], limit: int = TEXT_LIMIT) -> list[str]:
    """Blocks joined into messages of at most `limit` characters."""
    out: list[str] = []
    current = ""
    for block in blocks:
        candidate = f"{current}\n\n{block}" if current else block
        if len(candidate) > limit and current:
            out.append(current)
            current = block[:limit]
        else:
            current = candidate[:limit]
    if current:
        out.append(current)
    return out


async def _say(
    bot: Bot, chat_id: int, blocks: Sequence[str], markup: InlineKeyboardMarkup | None = None
) -> None:
    parts = _chunks(blocks)
    for index, part in enumerate(parts):
        await bot.send_message(
            chat_id, part, reply_markup=markup if index == len(parts) - 1 else None
        )


def _list_button() -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    kb.button(text=_("Practice quizzes"), callback_data=QuizCb(action="list"))
    return kb.as_markup()


def _not_enrolled() -> str:
    return _("The practice quizzes are for enrolled learners. Send /start to enrol.")


# --- /quiz: the modules released to the learner ---------------------------------------------


async def _expired_notes(
    session: AsyncSession, content: Content, user_id: int, now: datetime, lang: str
) -> list[str]:
    """Expire this learner's rounds left unanswered for a day; what to tell them."""
    return [
        svc.expired_text(content, rnd.module, lang)
        for rnd in await svc.expire_stale(session, now, user_id=user_id)
    ]


async def _module_list(
    session: AsyncSession,
    content: Content,
    learner: Learner,
    cohort: Cohort | None,
    now: datetime,
    lang: str,
) -> tuple[list[str], InlineKeyboardMarkup]:
    report = await svc.progress(session, content, learner, cohort, now)
    due = await svc.due_reviews(session, learner.user_id, now)
    kb = InlineKeyboardBuilder()
    sizes: list[int] = []
    for row in report.rows:
        if row.score.active_round is not None:
            kb.button(
                text="▶️ " + _("Continue module {number}").format(number=row.module),
                callback_data=QuizCb(action="cont", module=row.module),
            )
            sizes.append(1)
    spaced = await svc.active_round(session, learner.user_id, svc.SPACED_MODULE)
    if spaced is not None:
        kb.button(
            text="▶️ " + _("Continue the review"),
            callback_data=QuizCb(action="cont", module=svc.SPACED_MODULE),
        )
        sizes.append(1)
    elif due:
        shown = min(due, svc.QUESTIONS_PER_ROUND)
        kb.button(
            text="🔁 "
            + ngettext(
                "Review {count} missed question", "Review {count} missed questions", shown
            ).format(count=shown),
            callback_data=QuizCb(action="due"),
        )
        sizes.append(1)
    if not report.rows:
        return [
            _("Practice quizzes"),
            _("No module has been released to your group yet: the quizzes open with them."),
        ], kb.as_markup()
    lines = [
        "<b>" + _("Practice quizzes") + "</b>",
        _(
            "Each round has {count} questions; you pass at {percent} %. You have {attempts} "
            "scored attempts per module and the best counts; review rounds are unlimited."
        ).format(
            count=svc.QUESTIONS_PER_ROUND,
            percent=svc.PASS_PERCENT,
            attempts=svc.SCORED_ATTEMPTS,
        ),
        "",
    ]
    other_header = False
    for row in report.rows:
        if not row.core and not other_header:
            lines += ["", "<i>" + _("Other modules (not core to your profile):") + "</i>"]
            other_header = True
        lines.append(_status_line(content, row, lang))
        title = svc.module_title(content, row.module, lang)
        kb.button(
            text=f"{row.module}. {_short(title)}",
            callback_data=QuizCb(action="start", module=row.module),
        )
    sizes += [2] * ((len(report.rows) + 1) // 2)
    kb.adjust(*sizes)
    return ["\n".join(lines), _("Choose a module:")], kb.as_markup()


def _status_line(content: Content, row: svc.ProgressRow, lang: str) -> str:
    score = row.score
    title = escape(svc.module_title(content, row.module, lang))
    if score.best_score is None or score.best_total is None:
        icon = "▫️"
        detail = _("not tried yet")
    else:
        icon = "✅" if score.passed else "✖️"
        detail = _("best {score}").format(score=svc.score_line(score.best_score, score.best_total))
    attempts = _("attempts {used} of {allowed}").format(
        used=score.attempts, allowed=svc.SCORED_ATTEMPTS
    )
    return f"{icon} <b>{row.module}.</b> {title} — {detail}, {attempts}"


@router.message(Command("quiz"))
async def quiz_command(
    message: Message,
    session: AsyncSession,
    db_user: User,
    content: Content,
    clock: Clock,
    i18n: I18n,
    bot: Bot,
) -> None:
    await _show_list(bot, db_user.id, session, content, clock.now(), i18n.current_locale)


async def _show_list(
    bot: Bot, user_id: int, session: AsyncSession, content: Content, now: datetime, lang: str
) -> None:
    found = await svc.learner_of(session, user_id)
    if found is None:
        await session.commit()
        await bot.send_message(user_id, _not_enrolled())
        return
    learner, cohort = found
    notes = await _expired_notes(session, content, user_id, now, lang)
    blocks, markup = await _module_list(session, content, learner, cohort, now, lang)
    await session.commit()
    if notes:
        await _say(bot, user_id, notes)
    await _say(bot, user_id, blocks[:-1])
    await bot.send_message(user_id, blocks[-1], reply_markup=markup)


@router.callback_query(QuizCb.filter(F.action == "list"))
async def list_pressed(
    query: CallbackQuery,
    session: AsyncSession,
    db_user: User,
    content: Content,
    clock: Clock,
    i18n: I18n,
    bot: Bot,
) -> None:
    await session.commit()
    await query.answer()
    await _show_list(bot, db_user.id, session, content, clock.now(), i18n.current_locale)


# --- a round ------------------------------------------------------------------------------


@router.callback_query(QuizCb.filter(F.action.in_({"start", "review", "due", "cont"})))
async def start_pressed(
    query: CallbackQuery,
    callback_data: QuizCb,
    session: AsyncSession,
    db_user: User,
    content: Content,
    clock: Clock,
    i18n: I18n,
    bot: Bot,
    sessionmaker: async_sessionmaker[AsyncSession],
    quiz_rng: random.Random | None = None,
) -> None:
    now = clock.now()
    lang = i18n.current_locale
    user_id = db_user.id
    module = callback_data.module
    action = callback_data.action
    found = await svc.learner_of(session, user_id)
    if found is None:
        await session.commit()
        await query.answer(_not_enrolled(), show_alert=True)
        return
    learner, cohort = found
    notes = await _expired_notes(session, content, user_id, now, lang)
    if action == "due":
        module = svc.SPACED_MODULE
    elif module != svc.SPACED_MODULE and (
        cohort is None or module not in svc.released_modules(cohort, learner, content, now)
    ):
        await session.commit()
        await query.answer(_("This module is not open for you yet."), show_alert=True)
        return
    started = await svc.start_round(
        session,
        content,
        user_id=user_id,
        cohort_id=learner.cohort_id,
        module=module,
        now=now,
        rng=_rng(quiz_rng),
        review=action == "review",
    )
    rnd = started.round
    if rnd is None:
        await session.commit()
        await query.answer()
        await _say(bot, user_id, [*notes, _("Nothing to review right now: well done.")])
        return
    step = await svc.current_step(session, content, rnd, now)
    already_shown = step.item is not None and step.item.poll_id is not None
    if not started.created and already_shown and action != "cont":
        # A double tap, or the release message's button during a round: no second poll.
        await session.commit()
        await query.answer()
        kb = InlineKeyboardBuilder()
        kb.button(
            text=_("Send the question again"), callback_data=QuizCb(action="cont", module=module)
        )
        await _say(
            bot,
            user_id,
            [*notes, _("This round is under way: answer the last question above.")],
            kb.as_markup(),
        )
        return
    await session.commit()
    await query.answer()
    intro = _round_intro(content, rnd, started, lang) if started.created else None
    await _say(bot, user_id, [*notes, *([intro] if intro else [])])
    sent = await _deliver(bot, sessionmaker, content, user_id, step, lang)
    if sent is not None and step.item is not None:
        await svc.mark_sent(session, step.item, sent[1])


def _round_intro(content: Content, rnd: QuizRound, started: svc.Started, lang: str) -> str:
    title = escape(svc.module_title(content, rnd.module, lang))
    head = "<b>" + _("Module {number}: {title}").format(number=rnd.module, title=title) + "</b>\n"
    if rnd.kind == svc.Kind.scored:
        return head + _(
            "Scored attempt {attempt} of {attempts}: {count} questions, {percent} % to pass."
        ).format(
            attempt=rnd.attempt_no,
            attempts=svc.SCORED_ATTEMPTS,
            count=rnd.total,
            percent=svc.PASS_PERCENT,
        )
    if rnd.kind == svc.Kind.review:
        lead = head + _("Review round: {count} questions.").format(count=rnd.total)
        if started.attempts_used >= svc.SCORED_ATTEMPTS:
            lead += " " + _("Your {attempts} scored attempts are used.").format(
                attempts=svc.SCORED_ATTEMPTS
            )
        return lead + " " + _("It does not change your scored result.")
    return ngettext(
        "Review: {count} question you missed earlier.",
        "Review: {count} questions you missed earlier.",
        rnd.total,
    ).format(count=rnd.total)


async def _deliver(
    bot: Bot,
    sessionmaker: async_sessionmaker[AsyncSession],
    content: Content,
    user_id: int,
    step: svc.Step,
    lang: str,
) -> tuple[int, str] | None:
    """Send what the step says: the next poll, or the result. Returns (item id, poll id)
    of a poll sent, for the caller to record."""
    if step.action == "send":
        assert step.item is not None and step.question is not None
        question, options, correct, explanation = svc.poll_texts(
            step.question, step.item.option_order, lang, step.position, step.count
        )
        sent = await bot.send_poll(
            chat_id=user_id,
            question=question,
            options=list(options),
            type="quiz",
            is_anonymous=False,
            correct_option_ids=[correct],
            explanation=explanation,
            question_parse_mode=None,
            explanation_parse_mode=None,
        )
        return (step.item.id, sent.poll.id) if sent.poll is not None else None
    if step.action == "finished":
        assert step.result is not None
        await _send_result(bot, sessionmaker, content, user_id, step.result, lang)
    return None


# --- answers ------------------------------------------------------------------------------


@dataclass(eq=False)
class _Pending:
    answer: PollAnswer
    bot: Bot
    done: asyncio.Future[None]
    retried: bool = False
    timer: asyncio.TimerHandle | None = None

    @property
    def user_id(self) -> int:
        assert self.answer.user is not None
        return self.answer.user.id


class AnswerLane:
    """Poll answers, recorded in batches.

    While a class practises, answers come by the hundred a second, and each would cost a
    conversation-state read, a session and a dozen statements of its own. Here the
    answers that arrive while a batch is in hand wait for the next one, and a batch costs
    one transaction to record them all (committed before anything is sent), the sends
    (concurrently), and one transaction for the new polls' ids. A lone answer is a batch
    of one, handled at once. Each update is done when its answer is recorded and its
    next question sent, as with a handler; the state is in the store throughout.

    `middleware` (an outer update middleware ahead of the FSM: bot/app.py) takes poll
    answers off the update path; the router's handler below uses the same lane when it
    is not installed. The consent gate's rule is applied here: a learner without valid
    consent is not processed, and their vote is dropped silently.

    An answer to a poll not (yet) known is looked up once more after RETRY_DELAY: with
    several bot processes an answer may reach one before another has recorded the poll.
    """

    MAX_BATCH = 500
    RETRY_DELAY = 1.0

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        content: Content,
        clock: Clock,
        i18n: I18n,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.content = content
        self.clock = clock
        self.i18n = i18n
        self._queue: list[_Pending] = []
        self._worker: asyncio.Task[None] | None = None
        self._waiting: set[_Pending] = set()  # to be looked up again

    async def middleware(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        if isinstance(event, Update) and event.poll_answer is not None:
            await self.submit(event.poll_answer, data["bot"])
            return None
        return await handler(event, data)

    async def submit(self, answer: PollAnswer, bot: Bot) -> None:
        if answer.user is None:
            return  # a vote on behalf of a chat: not one of our quiz polls
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._enqueue(_Pending(answer, bot, done))
        await done

    def _enqueue(self, pending: _Pending) -> None:
        self._queue.append(pending)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._run(), name="quiz-answers")

    async def close(self) -> None:
        for pending in self._waiting:
            if pending.timer is not None:
                pending.timer.cancel()
            if not pending.done.done():
                pending.done.set_result(None)
        self._waiting.clear()
        if self._worker is not None:
            await asyncio.gather(self._worker, return_exceptions=True)

    async def _run(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self.MAX_BATCH], self._queue[self.MAX_BATCH :]
            try:
                retry = await self.process(batch)
            except Exception as exc:
                for pending in batch:
                    if not pending.done.done():
                        pending.done.set_exception(exc)
                continue
            for pending in batch:
                if pending in retry:
                    pending.retried = True
                    pending.timer = asyncio.get_running_loop().call_later(
                        self.RETRY_DELAY, self._requeue, pending
                    )
                    self._waiting.add(pending)
                elif not pending.done.done():
                    pending.done.set_result(None)

    def _requeue(self, pending: _Pending) -> None:
        self._waiting.discard(pending)
        self._enqueue(pending)

    async def process(self, batch: Sequence[_Pending]) -> set[_Pending]:
        """Record, commit, send, record the polls sent. Returns the answers to look up
        again later (an unknown poll, on a first look)."""
        now = self.clock.now()
        async with self.sessionmaker() as session:
            allowed = await svc.voters(
                session, {p.user_id: p.answer.user for p in batch}, self.content
            )
            kept = [p for p in batch if p.user_id in allowed]
            steps = await svc.record_answers(
                session,
                self.content,
                [svc.Vote(p.answer.poll_id, p.user_id, tuple(p.answer.option_ids)) for p in kept],
                now,
            )
            # The answers are safe before anything is sent.
            await session.commit()
        retry = {p for p, s in zip(kept, steps, strict=True) if _retry(p, s)}
        work = [(p, s) for p, s in zip(kept, steps, strict=True) if s.action != "ignore"]
        for p, s in zip(kept, steps, strict=True):
            if s.action == "ignore" and p not in retry:
                log.debug("poll answer ignored: %s", s.reason)
        results = await asyncio.gather(
            *(self._send(p, s, allowed[p.user_id]) for p, s in work),
            return_exceptions=True,
        )
        sent: list[tuple[int, str]] = []
        for result in results:
            if isinstance(result, BaseException):
                log.error("sending after a poll answer failed", exc_info=result)
            elif result is not None:
                sent.append(result)
        if sent:
            async with self.sessionmaker() as session:
                await svc.mark_sent_many(session, sent)
                await session.commit()
        return retry

    async def _send(self, pending: _Pending, step: svc.Step, lang: str) -> tuple[int, str] | None:
        user_id = pending.user_id
        with self.i18n.context(), self.i18n.use_locale(lang):
            if step.action == "expired":
                assert step.round is not None
                await _say(
                    pending.bot,
                    user_id,
                    [svc.expired_text(self.content, step.round.module, lang)],
                    _list_button(),
                )
                return None
            return await _deliver(pending.bot, self.sessionmaker, self.content, user_id, step, lang)


def _retry(pending: _Pending, step: svc.Step) -> bool:
    return step.action == "ignore" and step.reason == "unknown poll" and not pending.retried


@router.poll_answer()
async def poll_answered(
    answer: PollAnswer,
    bot: Bot,
    sessionmaker: async_sessionmaker[AsyncSession],
    content: Content,
    clock: Clock,
    i18n: I18n,
    quiz_lane: AnswerLane | None = None,
) -> None:
    """Reached only where the lane's middleware is not installed."""
    lane = quiz_lane or AnswerLane(sessionmaker, content, clock, i18n)
    await lane.submit(answer, bot)


async def _send_result(
    bot: Bot,
    sessionmaker: async_sessionmaker[AsyncSession],
    content: Content,
    user_id: int,
    result: svc.RoundResult,
    lang: str,
) -> None:
    module = result.module
    title = escape(svc.module_title(content, module, lang))
    score = svc.score_line(result.score, result.total)
    blocks: list[str] = []
    kb = InlineKeyboardBuilder()
    if result.kind is svc.Kind.spaced:
        blocks.append(
            _("Review done: {score}.").format(score=score)
            + (" " + _("The questions you missed come back tomorrow.") if result.missed else "")
        )
        kb.button(text=_("Practice quizzes"), callback_data=QuizCb(action="list"))
    else:
        head = "<b>" + _("Module {number}: {title}").format(number=module, title=title) + "</b>"
        best = (
            svc.score_line(result.best_score, result.best_total)
            if result.best_score is not None and result.best_total
            else "—"
        )
        if result.kind is svc.Kind.scored:
            verdict = (
                _("Passed: {score}. Well done!").format(score=score)
                if result.passed
                else _("Not passed yet: {score}; you need {percent} %.").format(
                    score=score, percent=svc.PASS_PERCENT
                )
            )
            attempts = _("Attempt {attempt} of {attempts}; your best: {best}.").format(
                attempt=result.attempt_no, attempts=svc.SCORED_ATTEMPTS, best=best
            )
            blocks.append(f"{head}\n{verdict}\n{attempts}")
        else:
            blocks.append(
                f"{head}\n"
                + _(
                    "Review round: {score}. Your scored result stays as it was (best: {best})."
                ).format(score=score, best=best)
            )
        if result.attempts_left and not (result.kind is svc.Kind.scored and result.passed):
            kb.button(
                text="🔄 "
                + _("Try again (attempt {attempt} of {attempts})").format(
                    attempt=result.attempts_used + 1, attempts=svc.SCORED_ATTEMPTS
                ),
                callback_data=QuizCb(action="start", module=module),
            )
        kb.button(
            text="🔁 " + _("Review round"), callback_data=QuizCb(action="review", module=module)
        )
        kb.button(text=_("All modules"), callback_data=QuizCb(action="list"))
    kb.adjust(1)
    missed = svc.missed_lines(content, result.missed, lang)
    if missed:
        blocks.append("<b>" + _("Questions to look at again:") + "</b>")
        blocks.extend(missed)
    await _say(bot, user_id, blocks, kb.as_markup())
    if result.needs_support:
        await _send_materials(bot, sessionmaker, content, user_id, module, lang)


async def _send_materials(
    bot: Bot,
    sessionmaker: async_sessionmaker[AsyncSession],
    content: Content,
    user_id: int,
    module: int,
    lang: str,
) -> None:
    """After a third attempt without a pass: the module again, and a review round."""
    recordings: list[str] = []
    async with sessionmaker() as session:
        learner = await session.get(Learner, user_id)
        if learner is not None and learner.cohort_id is not None:
            webinars = await session.scalars(
                select(Webinar)
                .where(Webinar.cohort_id == learner.cohort_id, Webinar.recording_url.is_not(None))
                .order_by(Webinar.starts_at)
            )
            recordings = [
                w.recording_url for w in webinars if w.recording_url and module in (w.modules or [])
            ]
    info = content.modules.get(module)
    description = escape(info.description.get(lang)[0]) if info else ""
    blocks = [
        _(
            "Three attempts without a pass is a sign to go back to the module, not a "
            "verdict. Here is what module {number} covers:"
        ).format(number=module),
        f"<i>{description}</i>",
        _(
            "Go through its video, presentations and open resources on the course platform "
            "again, then try a review round here: it shows the questions you missed first. "
            "Your trainer has been told and may get in touch to help."
        ),
    ]
    if recordings:
        blocks.append(
            _("Recordings of the webinar on this module:")
            + "\n"
            + "\n".join(f'• <a href="{escape(url)}">{escape(url)}</a>' for url in recordings)
        )
    kb = InlineKeyboardBuilder()
    kb.button(text="🔁 " + _("Review round"), callback_data=QuizCb(action="review", module=module))
    await _say(bot, user_id, blocks, kb.as_markup())


# --- /progress ----------------------------------------------------------------------------


@router.message(Command("progress"))
async def progress_command(
    message: Message,
    session: AsyncSession,
    db_user: User,
    content: Content,
    clock: Clock,
    i18n: I18n,
    bot: Bot,
) -> None:
    now = clock.now()
    lang = i18n.current_locale
    found = await svc.learner_of(session, db_user.id)
    if found is None:
        await session.commit()
        await message.answer(_not_enrolled())
        return
    learner, cohort = found
    report = await svc.progress(session, content, learner, cohort, now)
    await session.commit()
    if not report.rows:
        await message.answer(
            _("No module has been released to your group yet: the quizzes open with them.")
        )
        return
    lines = ["<b>" + _("Your progress") + "</b>", ""]
    for row in report.rows:
        lines.append(_progress_line(content, row, lang))
    completion = svc.percent(report.passed, report.released) if report.released else 0
    lines += [
        "",
        _("MOOC: {passed} of {released} released modules passed ({percent} %).").format(
            passed=report.passed, released=report.released, percent=completion
        ),
    ]
    certificate = _certificate_line(report)
    if certificate:
        lines += ["", certificate]
    await _say(bot, db_user.id, ["\n".join(lines)])
    bars = [svc.Bar(str(r.module), r.score.best_percent, r.score.passed) for r in report.rows]
    png = await asyncio.to_thread(
        svc.score_chart,
        bars,
        title=_("Best practice-quiz score by module"),
        ylabel="%",
        pass_label=_("pass mark {percent} %").format(percent=svc.PASS_PERCENT),
        xlabel=_("Module"),
    )
    await message.answer_photo(
        BufferedInputFile(png, "progress.png"),
        caption=_("Best scores by module (grey: not tried yet)."),
    )


def _progress_line(content: Content, row: svc.ProgressRow, lang: str) -> str:
    score = row.score
    title = escape(_short(svc.module_title(content, row.module, lang), 48))
    if score.best_score is None or score.best_total is None:
        state = _("not tried yet")
        icon = "▫️"
    else:
        best = svc.score_line(score.best_score, score.best_total)
        state = (
            _("passed, best {score}") if score.passed else _("not passed, best {score}")
        ).format(score=best)
        icon = "✅" if score.passed else "✖️"
    attempts = _("{used} of {allowed} attempts").format(
        used=score.attempts, allowed=svc.SCORED_ATTEMPTS
    )
    return f"{icon} <b>{row.module}.</b> {title} — {state}; {attempts}"


def _certificate_line(report: svc.Progress) -> str | None:
    if report.final_module is None:
        return None
    final = report.final
    if final is None:
        return "🎓 " + _(
            "Certificate of completion: the final assessment (module {number}) is not open yet."
        ).format(number=report.final_module)
    score = final.score
    if score.passed and score.best_score is not None and score.best_total:
        return "🎓 " + _(
            "Certificate of completion: ready. You scored {score} on the final assessment "
            "(module {number})."
        ).format(score=svc.score_line(score.best_score, score.best_total), number=final.module)
    return "🎓 " + _(
        "Certificate of completion: not yet. The final assessment (module {number}) needs "
        "{percent} %."
    ).format(percent=svc.PASS_PERCENT, number=final.module)
