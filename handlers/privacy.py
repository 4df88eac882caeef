"""The learner's privacy rights: /privacy, /mydata, /withdraw and /delete."""

from __future__ import annotations

import json

from aiogram import Router
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.types import BufferedInputFile, CallbackQuery, Message
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.services import consent as consent_service
from bot.services import privacy as privacy_service
from bot.services import wbl
from bot.ui import drop_buttons
from content.loader import Content
from storage.models import ConsentAnswer, Learner, LearnerStatus, User

router = Router(name="privacy")


class Erase(CallbackData, prefix="er"):
    sure: bool


@router.message(Command("privacy"))
async def privacy(message: Message, content: Content, i18n: I18n, db_user: User) -> None:
    notice, _lang = content.privacy_for(i18n.current_locale)
    await message.answer(notice.notice)
    if consent_service.has_valid_consent(db_user, content):
        status = _("You have given your consent. /withdraw withdraws it.")
    else:
        status = _("You have not given your consent. Send /start to read the notice and answer.")
    await message.answer(status)


@router.message(Command("mydata"))
async def mydata(message: Message, session: AsyncSession, db_user: User, clock: Clock) -> None:
    data = await privacy_service.export(session, db_user.id)
    body = json.dumps(
        {"exported_at": clock.now().isoformat(), "telegram_id": db_user.id, "data": data},
        ensure_ascii=False,
        indent=2,
    ).encode()
    await message.answer_document(
        BufferedInputFile(body, filename="biblio-my-data.json"),
        caption=_("Everything I keep about you, as a JSON file."),
    )


@router.message(Command("withdraw"))
async def withdraw(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    db_user: User,
    content: Content,
    clock: Clock,
    i18n: I18n,
) -> None:
    if db_user.consent_version is None:
        await message.answer(_("You have not given your consent, so there is nothing to withdraw."))
        return
    await consent_service.record(
        session,
        db_user,
        ConsentAnswer.withdrawn,
        language=i18n.current_locale,
        content=content,
        now=clock.now(),
    )
    learner = await session.get(Learner, db_user.id)
    if learner is not None:
        learner.status = LearnerStatus.withdrawn
    await wbl.end_placements_for(session, db_user.id, clock.now())
    await state.clear()
    await message.answer(
        _(
            "Your consent is withdrawn. I will not process your data or send you anything "
            "more. /delete erases your data; /start brings you back."
        )
    )


@router.message(Command("delete"))
async def delete(message: Message) -> None:
    kb = InlineKeyboardBuilder()
    kb.button(text=_("Yes, erase everything"), callback_data=Erase(sure=True))
    kb.button(text=_("No, keep my data"), callback_data=Erase(sure=False))
    kb.adjust(1)
    await message.answer(
        _(
            "This erases everything I keep about you: your registration, quiz results, "
            "reflections and messages. It cannot be undone. Are you sure?"
        ),
        reply_markup=kb.as_markup(),
    )


@router.callback_query(Erase.filter())
async def delete_confirmed(
    query: CallbackQuery,
    callback_data: Erase,
    state: FSMContext,
    session: AsyncSession,
    db_user: User,
    clock: Clock,
) -> None:
    await query.answer()
    if isinstance(query.message, Message):
        await drop_buttons(query.message)
    if not callback_data.sure:
        await query.bot.send_message(query.from_user.id, _("Nothing was erased."))  # type: ignore[union-attr]
        return
    await state.clear()
    # Mentors hear only that the placement ended; the notice is theirs and survives erasure.
    await wbl.end_placements_for(session, db_user.id, clock.now())
    await privacy_service.erase(session, db_user.id)
    # The user row is gone: nothing loaded in this session may be written back.
    session.expunge_all()
    await query.bot.send_message(  # type: ignore[union-attr]
        query.from_user.id,
        _(
            "Done: everything I kept about you is erased. If you write to me again, "
            "I will start afresh."
        ),
    )
