"""/stats (a cohort's figures as a short text and a chart), /export (its progress as a
CSV spreadsheet) and writing to one learner from the weekly digest."""

from __future__ import annotations

from html import escape

from aiogram import Bot, F, Router
from aiogram.filters import StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import BufferedInputFile, CallbackQuery, Message
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.roles import HasRole, role_command
from bot.services.stats import ChartLabels, CohortStats, chart_png, cohort_stats, export_csv
from bot.services.trainer_tools import (
    MAX_MESSAGE,
    MessageLearner,
    learner_of_trainer,
    send_trainer_message,
)
from content.loader import Content
from handlers.trainer_common import CohortPick, ask_cohort, not_active, own_cohort, stop_markup
from storage.models import Cohort, Role, User

router = Router(name="trainer_stats")
STATS = "st"
EXPORT = "ex"


class WriteLearner(StatesGroup):
    text = State()


def percent(value: float) -> str:
    return f"{round(value * 100)} %"


def stats_text(cohort: Cohort, stats: CohortStats) -> str:
    lines = [
        _("<b>{cohort}</b>").format(cohort=escape(cohort.name)),
        _("Learners enrolled: {count}").format(count=stats.enrolled),
        _("With consent: {count}").format(count=stats.consented),
        _("Active in the last 7 days: {count}").format(count=stats.active_7d),
        _("Blocked the bot: {count}").format(count=stats.blocked),
        _("Modules released: {count}").format(count=len(stats.modules_released)),
        _("Learners with three failed attempts: {count}").format(count=len(stats.failed_three)),
        _(
            "WBL check-ins: {due} due, {submitted} submitted (awaiting the mentor), {confirmed} confirmed, {overdue} overdue"
        ).format(
            due=stats.checkins_due,
            submitted=stats.checkins_submitted,
            confirmed=stats.checkins_confirmed,
            overdue=stats.checkins_overdue,
        ),
    ]
    if stats.quizzes:
        lines += ["", _("<b>Practice quizzes</b> (best scored attempt per learner):")]
        for module, quiz in stats.quizzes.items():
            lines.append(
                _(
                    "Module {module}: taken by {takers}, passed {rate}, mean best score {mean}"
                ).format(
                    module=module,
                    takers=quiz.takers,
                    rate=percent(quiz.pass_rate),
                    mean=percent(quiz.mean_best),
                )
            )
    else:
        lines += ["", _("No scored practice quiz yet.")]
    return "\n".join(lines)


def chart_labels(cohort: Cohort) -> ChartLabels:
    return ChartLabels(
        title=cohort.name,
        learners=_("Learners"),
        bars=[_("enrolled"), _("consent"), _("active 7 days"), _("blocked")],
        quizzes=_("Practice quizzes per module"),
        pass_rate=_("pass rate"),
        mean_best=_("mean best score"),
        module=_("module"),
        no_quizzes=_("No scored practice quiz yet."),
    )


async def send_stats(
    bot: Bot, chat_id: int, session: AsyncSession, cohort: Cohort, content: Content, clock: Clock
) -> None:
    stats = await cohort_stats(session, cohort, content, clock.now())
    await bot.send_message(chat_id, stats_text(cohort, stats))
    png = await chart_png(stats, chart_labels(cohort))
    await bot.send_photo(
        chat_id,
        BufferedInputFile(png, filename=f"stats-{cohort.id}.png"),
        caption=_("{cohort}: learners and practice quizzes").format(cohort=escape(cohort.name)),
    )


def csv_headers() -> dict[str, str]:
    return {
        "telegram_id": _("Telegram id"),
        "name": _("Name"),
        "email": _("E-mail"),
        "language": _("Language"),
        "country": _("Country"),
        "profile": _("Profile"),
        "enrolled_at": _("Enrolled on"),
        "last_seen": _("Last active on"),
        "blocked": _("Blocked the bot"),
        "modules_passed": _("Modules passed"),
        "module_best": _("Module {module}: best score %"),
        "module_attempts": _("Module {module}: attempts"),
        "checkins_confirmed": _("WBL check-ins confirmed"),
    }


async def send_export(
    bot: Bot, chat_id: int, session: AsyncSession, cohort: Cohort, content: Content, clock: Clock
) -> None:
    now = clock.now()
    data = await export_csv(session, cohort, content, now, csv_headers())
    safe = "".join(ch if ch.isalnum() else "-" for ch in cohort.name).strip("-") or "group"
    await bot.send_document(
        chat_id,
        BufferedInputFile(data, filename=f"{safe}-{now:%Y-%m-%d}.csv"),
        caption=_(
            "{cohort}: one row per learner (learners who withdrew their consent are left out)."
        ).format(cohort=escape(cohort.name)),
    )


@router.message(*role_command("stats", Role.trainer))
async def stats_command(
    message: Message,
    session: AsyncSession,
    db_user: User,
    state: FSMContext,
    content: Content,
    clock: Clock,
    bot: Bot,
) -> None:
    await state.clear()
    cohort = await ask_cohort(message, session, db_user.id, STATS, _("Figures of which group?"))
    if cohort is not None:
        await send_stats(bot, message.chat.id, session, cohort, content, clock)


@router.message(*role_command("export", Role.trainer))
async def export_command(
    message: Message,
    session: AsyncSession,
    db_user: User,
    state: FSMContext,
    content: Content,
    clock: Clock,
    bot: Bot,
) -> None:
    await state.clear()
    cohort = await ask_cohort(message, session, db_user.id, EXPORT, _("Export which group?"))
    if cohort is not None:
        await send_export(bot, message.chat.id, session, cohort, content, clock)


@router.callback_query(CohortPick.filter(F.purpose.in_({STATS, EXPORT})), HasRole(Role.trainer))
async def cohort_chosen(
    query: CallbackQuery,
    callback_data: CohortPick,
    session: AsyncSession,
    db_user: User,
    content: Content,
    clock: Clock,
    bot: Bot,
) -> None:
    # Checked on every press: a forged button cannot read another trainer's group.
    cohort = await own_cohort(session, db_user.id, callback_data.cohort_id)
    if cohort is None or not isinstance(query.message, Message):
        await not_active(query)
        return
    await query.answer()
    if callback_data.purpose == STATS:
        await send_stats(bot, query.message.chat.id, session, cohort, content, clock)
    else:
        await send_export(bot, query.message.chat.id, session, cohort, content, clock)


# --- writing to one learner (from the digest) ------------------------------------------------


@router.callback_query(MessageLearner.filter(), HasRole(Role.trainer))
async def write_learner(
    query: CallbackQuery,
    callback_data: MessageLearner,
    session: AsyncSession,
    db_user: User,
    state: FSMContext,
    content: Content,
) -> None:
    learner = await learner_of_trainer(session, db_user.id, callback_data.learner_id, content)
    if learner is None or not isinstance(query.message, Message):
        await not_active(query)
        return
    await query.answer()
    await state.clear()
    await state.set_state(WriteLearner.text)
    await state.update_data(learner_id=learner.user_id)
    await query.message.answer(
        _("Your message to {name}? It is sent as it is, with your name.").format(
            name=escape(learner.name)
        ),
        reply_markup=stop_markup(),
    )


@router.message(
    StateFilter(WriteLearner.text), HasRole(Role.trainer), F.text, ~F.text.startswith("/")
)
async def write_learner_text(
    message: Message,
    session: AsyncSession,
    db_user: User,
    state: FSMContext,
    content: Content,
    clock: Clock,
) -> None:
    data = await state.get_data()
    learner = await learner_of_trainer(session, db_user.id, int(data.get("learner_id", 0)), content)
    if learner is None:
        await state.clear()
        await message.answer(_("This learner is not in your groups any more."))
        return
    if len(message.text or "") > MAX_MESSAGE:
        await message.answer(
            _("This text is too long: at most {limit} characters, please.").format(
                limit=MAX_MESSAGE
            ),
            reply_markup=stop_markup(),
        )
        return
    await state.clear()
    name = message.from_user.full_name if message.from_user else ""
    await send_trainer_message(
        session,
        trainer_id=db_user.id,
        trainer_name=name,
        learner_id=learner.user_id,
        html=message.html_text,
        reference=f"{db_user.id}-{message.message_id}",
        now=clock.now(),
    )
    await message.answer(_("Sent to {name}.").format(name=escape(learner.name)))
