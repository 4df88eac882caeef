"""Trainer tools in chat: invitation links for their cohorts and for workplace mentors."""

from __future__ import annotations

from datetime import timedelta
from html import escape

from aiogram import Bot, Router
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.roles import HasRole, role_command
from bot.services.cohorts import is_trainer_of, trainer_cohorts
from bot.services.invites import create_invite, deep_link
from storage.models import Cohort, InviteKind, Role, User

router = Router(name="trainer")
COHORT_LINK_VALIDITY = timedelta(days=60)
MENTOR_LINK_VALIDITY = timedelta(days=14)


class CohortLink(CallbackData, prefix="cl"):
    cohort_id: int


@router.message(*role_command("cohort_link", Role.trainer))
async def cohort_link(message: Message, session: AsyncSession, db_user: User) -> None:
    cohorts = await trainer_cohorts(session, db_user.id)
    if not cohorts:
        await message.answer(_("You have no groups yet."))
        return
    kb = InlineKeyboardBuilder()
    for cohort in cohorts:
        kb.button(text=cohort.name, callback_data=CohortLink(cohort_id=cohort.id))
    kb.adjust(1)
    await message.answer(_("A new invitation link for which group?"), reply_markup=kb.as_markup())


@router.callback_query(CohortLink.filter(), HasRole(Role.trainer))
async def cohort_link_chosen(
    query: CallbackQuery,
    callback_data: CohortLink,
    session: AsyncSession,
    db_user: User,
    clock: Clock,
    bot: Bot,
) -> None:
    # Checked on every press: a forged button cannot reach another trainer's group.
    if not await is_trainer_of(session, db_user.id, callback_data.cohort_id):
        await query.answer(_("This button is no longer active."))
        return
    await query.answer()
    cohort = await session.get(Cohort, callback_data.cohort_id)
    assert cohort is not None
    invite = await create_invite(
        session,
        InviteKind.cohort,
        now=clock.now(),
        cohort_id=cohort.id,
        created_by=db_user.id,
        valid_for=COHORT_LINK_VALIDITY,
    )
    me = await bot.me()
    await bot.send_message(
        db_user.id,
        _("Invitation link for {cohort} (valid for 60 days):\n{link}").format(
            cohort=escape(cohort.name), link=deep_link(me.username or "", invite.token)
        ),
    )


@router.message(*role_command("mentor_invite", Role.trainer))
async def mentor_invite(
    message: Message, session: AsyncSession, db_user: User, clock: Clock, bot: Bot
) -> None:
    invite = await create_invite(
        session,
        InviteKind.mentor,
        now=clock.now(),
        created_by=db_user.id,
        valid_for=MENTOR_LINK_VALIDITY,
        max_uses=1,
    )
    me = await bot.me()
    await message.answer(
        _("Send this link to a workplace mentor. It works once, for 14 days:\n{link}").format(
            link=deep_link(me.username or "", invite.token)
        )
    )
