"""Work-based learning for learners and trainers: the fortnightly reflection (/checkin or
the prompt's button), /wbl, /mentor_link, and the trainer's /placement set-up.

The reflection's answers live in the conversation state (the SQL store) until it is
sent, so an unfinished one survives a restart: /checkin (or the reminder's button)
continues where the learner stopped.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import date
from typing import Any

from aiogram import Bot, F, Router
from aiogram.filters import Command, StateFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import I18n, get_i18n
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.roles import HasRole, role_command
from bot.services import wbl
from bot.services.invites import create_invite, deep_link
from bot.services.registration import N_, Invalid
from bot.ui import drop_buttons
from storage.models import CheckIn, InviteKind, Learner, Placement, Role, User

router = Router(name="wbl")


def _inactive() -> str:
    return _("This button is no longer active.")


# --- the reflection ----------------------------------------------------------------------------


class Reflect(StatesGroup):
    did = State()
    learned = State()
    difficulties = State()
    support = State()
    hours = State()
    summary = State()


class CiPick(CallbackData, prefix="wcp"):
    field: str
    value: str


class CiEdit(CallbackData, prefix="wce"):
    field: str


class CiSubmit(CallbackData, prefix="wcx"):
    checkin_id: int


@dataclass(frozen=True)
class Step:
    field: str
    state: State
    prompt: str  # English msgid


STEPS: tuple[Step, ...] = (
    Step("did", Reflect.did, N_("What did you do at the host library these two weeks?")),
    Step("learned", Reflect.learned, N_("What did you learn?")),
    Step(
        "difficulties",
        Reflect.difficulties,
        N_("Did you meet any difficulties? (Write “none” if not.)"),
    ),
    Step("support", Reflect.support, N_("Would you like support from your trainer or mentor?")),
    Step(
        "hours",
        Reflect.hours,
        N_(
            "How many hours did you work at the host library these two weeks? "
            "Choose or type a whole number from 0 to 80."
        ),
    ),
)
STEP_BY_FIELD = {s.field: s for s in STEPS}
STEP_BY_STATE = {s.state.state: s for s in STEPS}
TEXT_STATES = [STEP_BY_FIELD[f].state for f in wbl.TEXT_FIELDS]
REFLECT_STATES = list(Reflect.__states__)
REFLECT_STATE_NAMES = {s.state for s in REFLECT_STATES}
HOUR_CHOICES = ("16", "24", "32", "40")


def _next_step(answers: dict[str, Any]) -> Step | None:
    return next((s for s in STEPS if s.field not in answers), None)


def _step_keyboard(step: Step) -> InlineKeyboardMarkup | None:
    kb = InlineKeyboardBuilder()
    if step.field == "support":
        kb.button(text=_("Yes, please"), callback_data=CiPick(field="support", value="1"))
        kb.button(text=_("No, thanks"), callback_data=CiPick(field="support", value="0"))
    elif step.field == "hours":
        for value in HOUR_CHOICES:
            kb.button(text=value, callback_data=CiPick(field="hours", value=value))
        kb.adjust(4)
    else:
        return None
    return kb.as_markup()


async def _ask(message: Message, state: FSMContext, step: Step | None) -> None:
    if step is None:
        await _show_summary(message, state)
        return
    await state.set_state(step.state)
    position = STEPS.index(step) + 1
    await message.answer(
        f"<i>{position}/{len(STEPS)}</i> " + _(step.prompt), reply_markup=_step_keyboard(step)
    )


async def _show_summary(message: Message, state: FSMContext) -> None:
    data = await state.get_data()
    await state.set_state(Reflect.summary)
    await state.update_data(editing=None)
    kb = InlineKeyboardBuilder()
    for field_name, label in wbl.FIELD_LABELS.items():
        kb.button(text="✏️ " + _(label), callback_data=CiEdit(field=field_name))
    kb.adjust(2)
    kb.row(
        *InlineKeyboardBuilder()
        .button(text=_("📨 Send"), callback_data=CiSubmit(checkin_id=int(data["checkin_id"])))
        .buttons
    )
    await message.answer(
        _("Your reflection {number}. Press a button to change an answer, or send it.").format(
            number=data.get("number", "")
        )
        + "\n\n"
        + wbl.reflection_body(data.get("answers", {})),
        reply_markup=kb.as_markup(),
    )


async def _after_answer(message: Message, state: FSMContext, answers: dict[str, Any]) -> None:
    data = await state.get_data()
    await state.update_data(answers=answers)
    if data.get("editing"):
        await _show_summary(message, state)
        return
    await _ask(message, state, _next_step(answers))


async def _reask(message: Message, state: FSMContext) -> None:
    current = await state.get_state()
    if current == Reflect.summary.state:
        await _show_summary(message, state)
    elif current in STEP_BY_STATE:
        await _ask(message, state, STEP_BY_STATE[current])


async def _begin(
    message: Message, state: FSMContext, checkin: CheckIn, placement: Placement, from_msg: int
) -> None:
    first, last = wbl.weeks_of(checkin.number)
    await state.set_state(None)
    await state.set_data(
        {
            "checkin_id": checkin.id,
            "number": checkin.number,
            "answers": {},
            "editing": None,
            "from_msg": from_msg,
        }
    )
    await message.answer(
        _(
            "Reflection {number} of {count}, weeks {first}–{last}. Five short questions; "
            "you can answer the first three with text or a voice note. /cancel stops."
        ).format(
            number=checkin.number,
            count=wbl.checkin_count(placement.weeks),
            first=first,
            last=last,
        )
    )
    await _ask(message, state, STEPS[0])


async def _in_reflection(state: FSMContext, checkin_id: int) -> bool:
    current = await state.get_state()
    data = await state.get_data()
    return current in REFLECT_STATE_NAMES and data.get("checkin_id") == checkin_id


async def _no_placement(message: Message) -> None:
    await message.answer(
        _(
            "You have no work-based learning placement yet. Your trainer sets it up with you "
            "when your placement at a host library is agreed."
        )
    )


@router.message(Command("checkin"))
async def checkin_command(
    message: Message, state: FSMContext, session: AsyncSession, db_user: User, clock: Clock
) -> None:
    placement = await wbl.active_placement(session, db_user.id)
    if placement is None:
        await _no_placement(message)
        return
    now = clock.now()
    checkin = await wbl.current_checkin(session, placement, now)
    if checkin is None:
        upcoming = wbl.next_due(await wbl.checkins_of(session, placement.id))
        if upcoming is None:
            await message.answer(_("All your reflections are sent. Well done!"))
            return
        tz, _hour = await wbl.learner_clock(session, db_user.id)
        await message.answer(
            _("No reflection is due now. The next one is on {date}.").format(
                date=wbl.format_day(wbl.local_day(upcoming.due_at, tz), _locale())
            )
        )
        return
    if await _in_reflection(state, checkin.id):
        await message.answer(_("Let's continue where you stopped."))
        await _reask(message, state)
        return
    await _begin(message, state, checkin, placement, from_msg=0)


def _locale() -> str:
    return get_i18n().current_locale


@router.callback_query(wbl.CheckinStart.filter())
async def start_pressed(
    query: CallbackQuery,
    callback_data: wbl.CheckinStart,
    state: FSMContext,
    session: AsyncSession,
    db_user: User,
    clock: Clock,
) -> None:
    message = query.message
    checkin = await session.get(CheckIn, callback_data.checkin_id)
    placement = await session.get(Placement, checkin.placement_id) if checkin else None
    valid = (
        checkin is not None
        and placement is not None
        and placement.learner_id == db_user.id
        and wbl.is_open(placement)
        and checkin.status in wbl.WAITING_STATES
        and checkin.due_at <= clock.now()
        and isinstance(message, Message)
    )
    if not valid or checkin is None or placement is None or not isinstance(message, Message):
        await query.answer(_("This reflection has been sent already, or is no longer open."))
        return
    if await _in_reflection(state, checkin.id):
        await query.answer()
        if (await state.get_data()).get("from_msg") != message.message_id:
            await message.answer(_("Let's continue where you stopped."))
            await _reask(message, state)
        return  # the same button twice: the question is already there
    await query.answer()
    await drop_buttons(message)
    await _begin(message, state, checkin, placement, from_msg=message.message_id)


@router.message(StateFilter(*TEXT_STATES), F.text, ~F.text.startswith("/"))
async def text_answer(message: Message, state: FSMContext) -> None:
    step = STEP_BY_STATE[await state.get_state() or ""]
    result = wbl.check_answer(message.text or "")
    if isinstance(result, Invalid):
        await message.answer(_(result.reason))
        await _ask(message, state, step)
        return
    answers = dict((await state.get_data()).get("answers", {}))
    answers[step.field] = wbl.text_answer(result)
    await _after_answer(message, state, answers)


@router.message(StateFilter(*TEXT_STATES), F.voice)
async def voice_answer(message: Message, state: FSMContext) -> None:
    step = STEP_BY_STATE[await state.get_state() or ""]
    assert message.voice is not None
    answers = dict((await state.get_data()).get("answers", {}))
    answers[step.field] = wbl.voice_answer(message.voice.file_id, message.voice.duration)
    await message.answer(_("🎤 Voice note kept."))
    await _after_answer(message, state, answers)


@router.message(StateFilter(Reflect.hours), F.text, ~F.text.startswith("/"))
async def hours_typed(message: Message, state: FSMContext) -> None:
    await _hours(message, state, message.text or "")


async def _hours(message: Message, state: FSMContext, text: str) -> None:
    result = wbl.parse_hours(text)
    if isinstance(result, Invalid):
        await message.answer(_(result.reason))
        await _ask(message, state, STEP_BY_FIELD["hours"])
        return
    answers = dict((await state.get_data()).get("answers", {}))
    answers["hours"] = result
    await _after_answer(message, state, answers)


@router.callback_query(CiPick.filter(F.field.in_({"support", "hours"})))
async def picked(query: CallbackQuery, callback_data: CiPick, state: FSMContext) -> None:
    message = query.message
    step = STEP_BY_FIELD[callback_data.field]
    # A press counts only on the question being asked now (not a stale or doubled tap).
    if await state.get_state() != step.state.state or not isinstance(message, Message):
        await query.answer(_inactive())
        return
    if step.field == "support" and callback_data.value not in ("0", "1"):
        await query.answer(_inactive())
        return
    await query.answer()
    await drop_buttons(message)
    if step.field == "hours":
        await _hours(message, state, callback_data.value)
        return
    answers = dict((await state.get_data()).get("answers", {}))
    answers["support"] = callback_data.value == "1"
    await _after_answer(message, state, answers)


@router.callback_query(StateFilter(Reflect.summary), CiEdit.filter())
async def edit_answer(query: CallbackQuery, callback_data: CiEdit, state: FSMContext) -> None:
    step = STEP_BY_FIELD.get(callback_data.field)
    if step is None or not isinstance(query.message, Message):
        await query.answer(_inactive())
        return
    await query.answer()
    await drop_buttons(query.message)
    await state.update_data(editing=step.field)
    await _ask(query.message, state, step)


@router.callback_query(StateFilter(Reflect.summary), CiSubmit.filter())
async def submit(
    query: CallbackQuery,
    callback_data: CiSubmit,
    state: FSMContext,
    session: AsyncSession,
    db_user: User,
    clock: Clock,
) -> None:
    message = query.message
    data = await state.get_data()
    if data.get("checkin_id") != callback_data.checkin_id or not isinstance(message, Message):
        await query.answer(_inactive())
        return
    answers: dict[str, Any] = data.get("answers", {})
    if _next_step(answers) is not None:
        await query.answer()
        await _ask(message, state, _next_step(answers))
        return
    await query.answer()
    await drop_buttons(message)
    result = await wbl.submit_checkin(
        session,
        checkin_id=callback_data.checkin_id,
        learner_id=db_user.id,
        answers=answers,
        now=clock.now(),
    )
    await state.clear()
    if result is wbl.SubmitResult.not_open:
        await message.answer(_("This reflection has been sent already, or is no longer open."))
        return
    if result is wbl.SubmitResult.to_mentor:
        text = _(
            "Thank you! Your reflection is on its way to your workplace mentor; I will tell "
            "you their answer."
        )
    else:
        text = _(
            "Thank you! Your reflection is saved. No workplace mentor is linked yet, so it "
            "waits for them (your trainer has been told). Send /mentor_link to get a link "
            "for your mentor."
        )
    if answers.get("support"):
        text += "\n\n" + _(
            "Your trainer and your mentor have been told that you would like support."
        )
    await message.answer(text)


@router.message(StateFilter(*REFLECT_STATES), ~F.text.startswith("/"))
async def unexpected(message: Message, state: FSMContext) -> None:
    """A sticker where text is wanted, or text where a button is: explain, ask again."""
    current = await state.get_state()
    if current in {s.state for s in TEXT_STATES}:
        await message.answer(_("Please answer with text or a voice note."))
    elif current == Reflect.hours.state:
        await message.answer(_("Please send the hours as a number from 0 to 80, e.g. 16."))
    else:
        await message.answer(_("Please choose one of the buttons below."))
    await _reask(message, state)


# --- /wbl and /mentor_link ---------------------------------------------------------------------


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _past_reflection(checkin: CheckIn, tz: str, locale: str) -> str:
    first, last = wbl.weeks_of(checkin.number)
    sent = checkin.submitted_at or checkin.due_at
    head = _("<b>Reflection {number}</b> (weeks {first}–{last}), sent {date}: {hours} h").format(
        number=checkin.number,
        first=first,
        last=last,
        date=wbl.format_day(wbl.local_day(sent, tz), locale),
        hours=checkin.hours or 0,
    )
    if checkin.status == wbl.CheckInStatus.confirmed:
        verdict = _("✅ confirmed by your mentor")
    elif checkin.status == wbl.CheckInStatus.talk:
        verdict = _("💬 your mentor would like to talk")
    else:
        verdict = _("⏳ waiting for your mentor")
    lines = [f"{head} — {verdict}"]
    if checkin.mentor_comment:
        lines.append(
            _("Their comment: {comment}").format(
                comment=html.escape(_clip(checkin.mentor_comment, 300))
            )
        )
    did = (checkin.answers or {}).get("did", {})
    if isinstance(did, dict) and did.get("text"):
        lines.append(
            f"{html.escape(_(wbl.FIELD_LABELS['did']))}: {html.escape(_clip(did['text'], 200))}"
        )
    return "\n".join(lines)


@router.message(Command("wbl"))
async def wbl_command(
    message: Message, session: AsyncSession, db_user: User, clock: Clock, i18n: I18n
) -> None:
    placement = await wbl.active_placement(session, db_user.id)
    if placement is None:
        await _no_placement(message)
        return
    now, locale = clock.now(), i18n.current_locale
    tz, _hour = await wbl.learner_clock(session, db_user.id)
    checkins = await wbl.checkins_of(session, placement.id)
    sums = wbl.totals(checkins, now, planned=placement.planned_hours)
    lines = [
        _("<b>Work-based learning at {library}</b>").format(
            library=html.escape(placement.host_library)
        ),
        _("{weeks} weeks, from {start} to {end}").format(
            weeks=placement.weeks,
            start=wbl.format_day(placement.start_date, locale),
            end=wbl.format_day(wbl.end_date(placement.start_date, placement.weeks), locale),
        ),
        _("Workplace mentor: linked")
        if placement.mentor_id is not None
        else _("Workplace mentor: not linked yet. Send /mentor_link to get a link for them."),
        _("Hours confirmed: {confirmed} of {planned} ({logged} logged)").format(
            confirmed=sums.confirmed, planned=sums.planned, logged=sums.logged
        ),
    ]
    upcoming = wbl.next_due(checkins)
    if upcoming is None:
        lines.append(_("All your reflections are sent."))
    elif upcoming.due_at <= now:
        lines.append(
            _("Reflection {number} is due now: send /checkin.").format(number=upcoming.number)
        )
    else:
        lines.append(
            _("Next reflection: {date}").format(
                date=wbl.format_day(wbl.local_day(upcoming.due_at, tz), locale)
            )
        )
    blocks = ["\n".join(lines)]
    past = [c for c in checkins if c.status in wbl.SUBMITTED_STATES]
    if past:
        blocks.append(_("<b>Your reflections</b>"))
        blocks += [_past_reflection(c, tz, locale) for c in past]
    for chunk in wbl.chunks(blocks):
        await message.answer(chunk)


@router.message(Command("mentor_link"))
async def mentor_link(
    message: Message, session: AsyncSession, db_user: User, clock: Clock, bot: Bot
) -> None:
    placement = await wbl.active_placement(session, db_user.id)
    if placement is None:
        await _no_placement(message)
        return
    invite = await create_invite(
        session,
        InviteKind.mentor,
        now=clock.now(),
        learner_id=db_user.id,
        created_by=db_user.id,
        valid_for=wbl.MENTOR_LINK_VALIDITY,
        max_uses=1,
    )
    me = await bot.me()
    text = _(
        "Forward this link to your workplace mentor at {library}. It works once, for 14 days; "
        "opening it makes them your mentor in the bot:\n{link}"
    ).format(
        library=html.escape(placement.host_library),
        link=deep_link(me.username or "", invite.token),
    )
    if placement.mentor_id is not None:
        text += "\n\n" + _(
            "You already have a mentor linked; whoever opens this link becomes your mentor instead."
        )
    await message.answer(text)


# --- the trainer's /placement -------------------------------------------------------------------


class Setup(StatesGroup):
    learner = State()
    library = State()
    start = State()
    confirm = State()


class PlLearner(CallbackData, prefix="wpl"):
    learner_id: int


class PlStart(CallbackData, prefix="wps"):
    day: str  # ISO date


class PlDone(CallbackData, prefix="wpd"):
    action: str  # save | library | start | cancel


MAX_LEARNER_BUTTONS = 90


@router.message(*role_command("placement", Role.trainer))
async def placement_command(
    message: Message, state: FSMContext, session: AsyncSession, db_user: User, i18n: I18n
) -> None:
    db_user.language = db_user.language or i18n.current_locale
    learners = await wbl.candidate_learners(session, db_user.id)
    if not learners:
        await message.answer(
            _("None of the learners in your groups is waiting for a work-based learning placement.")
        )
        return
    await state.clear()
    await state.set_state(Setup.learner)
    kb = InlineKeyboardBuilder()
    for learner in learners[:MAX_LEARNER_BUTTONS]:
        kb.button(text=_clip(learner.name, 40), callback_data=PlLearner(learner_id=learner.user_id))
    kb.adjust(2)
    await message.answer(
        _("A new work-based learning placement: for which learner?"), reply_markup=kb.as_markup()
    )


@router.callback_query(StateFilter(Setup.learner), PlLearner.filter(), HasRole(Role.trainer))
async def placement_learner(
    query: CallbackQuery,
    callback_data: PlLearner,
    state: FSMContext,
    session: AsyncSession,
    db_user: User,
) -> None:
    # Checked on every press: a forged button cannot reach another trainer's learner.
    candidates = {
        learner.user_id: learner for learner in await wbl.candidate_learners(session, db_user.id)
    }
    learner = candidates.get(callback_data.learner_id)
    if learner is None or not isinstance(query.message, Message):
        await query.answer(_inactive())
        return
    await query.answer()
    await drop_buttons(query.message)
    await state.update_data(learner_id=learner.user_id, learner_name=learner.name)
    await _ask_library(query.message, state)


async def _ask_library(message: Message, state: FSMContext) -> None:
    data = await state.get_data()
    await state.set_state(Setup.library)
    await message.answer(
        _("Placement for {name}. Which library hosts it? Type its name.").format(
            name=html.escape(data.get("learner_name", ""))
        )
    )


@router.message(StateFilter(Setup.library), F.text, ~F.text.startswith("/"), HasRole(Role.trainer))
async def placement_library(
    message: Message, state: FSMContext, session: AsyncSession, clock: Clock, db_user: User
) -> None:
    result = wbl.check_library(message.text or "")
    if isinstance(result, Invalid):
        await message.answer(_(result.reason))
        await _ask_library(message, state)
        return
    await state.update_data(library=result)
    data = await state.get_data()
    if data.get("start"):
        await _placement_summary(message, state, session, db_user)
        return
    await _ask_start(message, state, session, clock, db_user)


async def _learner_today(session: AsyncSession, learner_id: int, clock: Clock) -> date:
    tz, _hour = await wbl.learner_clock(session, learner_id)
    return wbl.local_day(clock.now(), tz)


async def _ask_start(
    message: Message, state: FSMContext, session: AsyncSession, clock: Clock, db_user: User
) -> None:
    data = await state.get_data()
    await state.set_state(Setup.start)
    today = await _learner_today(session, int(data["learner_id"]), clock)
    kb = InlineKeyboardBuilder()
    for day in wbl.next_mondays(today):
        kb.button(text=wbl.format_day(day, _locale()), callback_data=PlStart(day=day.isoformat()))
    kb.adjust(2)
    await message.answer(
        _("When does it start? Choose a Monday, or type the date as YYYY-MM-DD."),
        reply_markup=kb.as_markup(),
    )


async def _take_start(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    clock: Clock,
    db_user: User,
    text: str,
) -> None:
    data = await state.get_data()
    today = await _learner_today(session, int(data["learner_id"]), clock)
    result = wbl.parse_start(text, today)
    if isinstance(result, Invalid):
        await message.answer(_(result.reason))
        await _ask_start(message, state, session, clock, db_user)
        return
    await state.update_data(start=result.isoformat())
    await _placement_summary(message, state, session, db_user)


@router.message(StateFilter(Setup.start), F.text, ~F.text.startswith("/"), HasRole(Role.trainer))
async def placement_start_typed(
    message: Message, state: FSMContext, session: AsyncSession, clock: Clock, db_user: User
) -> None:
    await _take_start(message, state, session, clock, db_user, message.text or "")


@router.callback_query(StateFilter(Setup.start), PlStart.filter(), HasRole(Role.trainer))
async def placement_start_pressed(
    query: CallbackQuery,
    callback_data: PlStart,
    state: FSMContext,
    session: AsyncSession,
    clock: Clock,
    db_user: User,
) -> None:
    if not isinstance(query.message, Message):
        await query.answer(_inactive())
        return
    await query.answer()
    await drop_buttons(query.message)
    await _take_start(query.message, state, session, clock, db_user, callback_data.day)


async def _placement_summary(
    message: Message, state: FSMContext, session: AsyncSession, db_user: User
) -> None:
    data = await state.get_data()
    await state.set_state(Setup.confirm)
    start = date.fromisoformat(data["start"])
    tz, hour = await wbl.learner_clock(session, int(data["learner_id"]))
    locale = _locale()
    dates = ", ".join(
        wbl.format_day(wbl.local_day(due, tz), locale)
        for due in wbl.schedule(start, wbl.WEEKS, tz, hour)
    )
    kb = InlineKeyboardBuilder()
    kb.button(text=_("✅ Save"), callback_data=PlDone(action="save"))
    kb.button(text=_("✏️ Host library"), callback_data=PlDone(action="library"))
    kb.button(text=_("✏️ Start date"), callback_data=PlDone(action="start"))
    kb.button(text=_("Cancel"), callback_data=PlDone(action="cancel"))
    kb.adjust(1, 2, 1)
    await message.answer(
        _(
            "<b>Learner:</b> {name}\n<b>Host library:</b> {library}\n"
            "<b>Dates:</b> {start} to {end} ({weeks} weeks)\n<b>Hours planned:</b> {hours} "
            "(160 h + 5 h assessment)\n<b>Reflections:</b> {dates}\n\nSave this placement?"
        ).format(
            name=html.escape(data.get("learner_name", "")),
            library=html.escape(data.get("library", "")),
            start=wbl.format_day(start, locale),
            end=wbl.format_day(wbl.end_date(start, wbl.WEEKS), locale),
            weeks=wbl.WEEKS,
            hours=wbl.PLANNED_HOURS,
            dates=dates,
        ),
        reply_markup=kb.as_markup(),
    )


@router.callback_query(StateFilter(Setup.confirm), PlDone.filter(), HasRole(Role.trainer))
async def placement_done(
    query: CallbackQuery,
    callback_data: PlDone,
    state: FSMContext,
    session: AsyncSession,
    clock: Clock,
    db_user: User,
) -> None:
    message = query.message
    if not isinstance(message, Message):
        await query.answer(_inactive())
        return
    await query.answer()
    await drop_buttons(message)
    if callback_data.action == "library":
        await _ask_library(message, state)
        return
    if callback_data.action == "start":
        await _ask_start(message, state, session, clock, db_user)
        return
    data = await state.get_data()
    await state.clear()
    if callback_data.action != "save":
        await message.answer(_("Cancelled. Nothing was saved."))
        return
    result = await wbl.create_placement(
        session,
        trainer_id=db_user.id,
        learner_id=int(data["learner_id"]),
        host_library=str(data["library"]),
        start=date.fromisoformat(data["start"]),
        now=clock.now(),
    )
    if result is wbl.SetupProblem.already_placed:
        await message.answer(_("This learner already has a placement. Nothing was saved."))
        return
    if result is wbl.SetupProblem.not_your_learner:
        await message.answer(_("This learner is not in one of your groups. Nothing was saved."))
        return
    learner = await session.get(Learner, result.learner_id)
    await message.answer(
        _(
            "Saved. {name} has been told, and can now send their workplace mentor a link "
            "with /mentor_link. /mentees shows how the placements go."
        ).format(name=html.escape(learner.name if learner else ""))
    )


@router.message(StateFilter(*Setup.__states__), ~F.text.startswith("/"), HasRole(Role.trainer))
async def placement_unexpected(
    message: Message, state: FSMContext, session: AsyncSession, clock: Clock, db_user: User
) -> None:
    current = await state.get_state()
    if current == Setup.library.state:
        await message.answer(_("Please type the name of the host library."))
        await _ask_library(message, state)
    elif current == Setup.start.state:
        await message.answer(_("Please type the date as YYYY-MM-DD, e.g. 2027-03-01."))
        await _ask_start(message, state, session, clock, db_user)
    elif current == Setup.confirm.state:
        await message.answer(_("Please choose one of the buttons below."))
        await _placement_summary(message, state, session, db_user)
    else:
        await message.answer(_("Please choose one of the buttons, or send /cancel."))
