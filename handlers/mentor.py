"""Workplace mentors: opening a learner's mentor link, answering reflections (Confirm, or
Let's talk with a comment), listening to voice answers, and /mentees (also for trainers,
who see the placements of their cohorts)."""

from __future__ import annotations

import html

from aiogram import Bot, F, Router
from aiogram.filters import StateFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.roles import role_command
from bot.services import wbl
from bot.services.registration import Invalid
from bot.ui import drop_buttons
from storage.models import CheckIn, Invite, Placement, Role, User

router = Router(name="mentor")


class MentorTalk(StatesGroup):
    comment = State()


class TalkSkip(CallbackData, prefix="wtk"):
    checkin_id: int


async def open_mentor_link(
    message: Message,
    session: AsyncSession,
    db_user: User,
    invite: Invite,
    clock: Clock,
    i18n: I18n,
) -> None:
    """/start with a learner's mentor link (called from the /start handler)."""
    outcome = await wbl.link_mentor(
        session, invite=invite, mentor=db_user, now=clock.now(), language=i18n.current_locale
    )
    if outcome.result is wbl.LinkResult.own_link:
        await message.answer(
            _("This link is for your workplace mentor: please forward it to them. It stays valid.")
        )
        return
    if outcome.result is wbl.LinkResult.no_placement:
        await message.answer(
            _(
                "This link belongs to a work-based learning placement that has ended. "
                "Please ask the learner for a new one."
            )
        )
        return
    assert outcome.placement is not None
    name = message.from_user.first_name if message.from_user else ""
    await message.answer(
        _(
            "Welcome, {name}! You are now the workplace mentor of {learner} at {library}. "
            "Every two weeks I will send you their reflection, to confirm their hours or ask "
            "to talk. /mentees shows your learners."
        ).format(
            name=html.escape(name),
            learner=html.escape(outcome.learner_name),
            library=html.escape(outcome.placement.host_library),
        )
    )


@router.message(*role_command("mentees", Role.mentor, Role.trainer))
async def mentees(
    message: Message, session: AsyncSession, db_user: User, clock: Clock, i18n: I18n
) -> None:
    # Outbox messages (reminders, alerts) are rendered in the stored language.
    db_user.language = db_user.language or i18n.current_locale
    views = await wbl.visible_placements(session, db_user)
    if not views:
        await message.answer(_("There are no learners in work-based learning to show yet."))
        return
    now = clock.now()
    header = _("<b>Learners in work-based learning:</b> {count}").format(count=len(views))
    for chunk in wbl.chunks([header, *(wbl.placement_lines(v, now) for v in views)]):
        await message.answer(chunk)


async def _load(session: AsyncSession, checkin_id: int) -> tuple[CheckIn | None, Placement | None]:
    checkin = await session.get(CheckIn, checkin_id)
    placement = await session.get(Placement, checkin.placement_id) if checkin else None
    return checkin, placement


def _gone() -> str:
    return _("This reflection is no longer available.")


def _not_yours() -> str:
    return _("Only the learner's workplace mentor can answer this reflection.")


def _answered() -> str:
    return _("This reflection has been answered already.")


@router.callback_query(wbl.MentorAnswer.filter())
async def answer_pressed(
    query: CallbackQuery,
    callback_data: wbl.MentorAnswer,
    state: FSMContext,
    session: AsyncSession,
    db_user: User,
    clock: Clock,
) -> None:
    message = query.message
    checkin, placement = await _load(session, callback_data.checkin_id)
    if checkin is None or placement is None or not wbl.is_open(placement):
        await query.answer(_gone(), show_alert=True)
        return
    # Checked on every press: another mentor (or a forged button) cannot answer.
    if not wbl.may_decide(db_user.id, placement):
        await query.answer(_not_yours(), show_alert=True)
        return
    if not isinstance(message, Message):
        await query.answer()
        return
    name = await wbl.learner_name(session, placement.learner_id)
    if callback_data.event == wbl.CheckInEvent.confirm:
        result = await wbl.decide(
            session,
            checkin_id=checkin.id,
            mentor_id=db_user.id,
            event=wbl.CheckInEvent.confirm,
            now=clock.now(),
        )
        if result is not wbl.DecideResult.done:
            await query.answer(_answered())
            return
        await query.answer()
        await drop_buttons(message)
        await message.answer(
            _(
                "✅ Confirmed: {hours} hours of {name} (reflection {number}). They will be told."
            ).format(hours=checkin.hours or 0, name=html.escape(name), number=checkin.number)
        )
        return
    if callback_data.event != wbl.CheckInEvent.talk or checkin.status not in wbl.sources(
        wbl.CheckInEvent.talk
    ):
        await query.answer(_answered())
        return
    if (
        await state.get_state() == MentorTalk.comment.state
        and (await state.get_data()).get("checkin_id") == checkin.id
    ):
        await query.answer()  # pressed twice: the question is already there
        return
    await query.answer()
    await drop_buttons(message)
    await state.set_state(MentorTalk.comment)
    await state.set_data({"checkin_id": checkin.id})
    await _ask_comment(message, checkin, name)


async def _ask_comment(message: Message, checkin: CheckIn, name: str) -> None:
    kb = InlineKeyboardBuilder()
    kb.button(text=_("Send without a comment"), callback_data=TalkSkip(checkin_id=checkin.id))
    await message.answer(
        _(
            "What would you like to tell {name}? For example when and where you could talk. "
            "They will read it."
        ).format(name=html.escape(name)),
        reply_markup=kb.as_markup(),
    )


async def _record_talk(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    db_user: User,
    clock: Clock,
    comment: str | None,
) -> None:
    data = await state.get_data()
    await state.clear()
    checkin_id = int(data.get("checkin_id", 0))
    result = await wbl.decide(
        session,
        checkin_id=checkin_id,
        mentor_id=db_user.id,
        event=wbl.CheckInEvent.talk,
        now=clock.now(),
        comment=comment,
    )
    if result is wbl.DecideResult.gone:
        await message.answer(_gone())
        return
    if result is wbl.DecideResult.not_yours:
        await message.answer(_not_yours())
        return
    if result is wbl.DecideResult.already:
        await message.answer(_answered())
        return
    checkin = await session.get(CheckIn, checkin_id)
    assert checkin is not None
    await message.answer(
        _(
            "Sent: the learner will hear that you would like to talk. After your talk you can "
            "still confirm the hours here."
        ),
        reply_markup=wbl.mentor_keyboard(checkin, talk=False),
    )


@router.message(StateFilter(MentorTalk.comment), F.text, ~F.text.startswith("/"))
async def comment_typed(
    message: Message, state: FSMContext, session: AsyncSession, db_user: User, clock: Clock
) -> None:
    result = wbl.check_comment(message.text or "")
    if isinstance(result, Invalid):
        await message.answer(_(result.reason))
        return
    await _record_talk(message, state, session, db_user, clock, result)


@router.callback_query(StateFilter(MentorTalk.comment), TalkSkip.filter())
async def comment_skipped(
    query: CallbackQuery,
    callback_data: TalkSkip,
    state: FSMContext,
    session: AsyncSession,
    db_user: User,
    clock: Clock,
) -> None:
    message = query.message
    data = await state.get_data()
    if data.get("checkin_id") != callback_data.checkin_id or not isinstance(message, Message):
        await query.answer(_("This button is no longer active."))
        return
    await query.answer()
    await drop_buttons(message)
    await _record_talk(message, state, session, db_user, clock, None)


@router.message(StateFilter(MentorTalk.comment), ~F.text.startswith("/"))
async def comment_unexpected(message: Message) -> None:
    await message.answer(_("Please write your comment."))


@router.callback_query(wbl.VoiceNote.filter())
async def voice_pressed(
    query: CallbackQuery,
    callback_data: wbl.VoiceNote,
    session: AsyncSession,
    db_user: User,
    bot: Bot,
) -> None:
    checkin, placement = await _load(session, callback_data.checkin_id)
    if checkin is None or placement is None or not await wbl.may_see(session, db_user, placement):
        await query.answer(_gone(), show_alert=True)
        return
    value = (checkin.answers or {}).get(callback_data.field)
    label = wbl.FIELD_LABELS.get(callback_data.field)
    if not isinstance(value, dict) or "voice" not in value or label is None:
        await query.answer(_gone(), show_alert=True)
        return
    await query.answer()
    name = await wbl.learner_name(session, placement.learner_id)
    await bot.send_voice(
        db_user.id,
        str(value["voice"]),
        caption=f"{html.escape(name)}, {checkin.number}: {html.escape(_(label))}",
    )
