"""/start, /help, /language and the fallbacks for anything not understood."""

from __future__ import annotations

from html import escape

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder
from sqlalchemy.ext.asyncio import AsyncSession

from bot.commands import LEARNER_COMMANDS
from bot.i18n import LANGUAGES
from bot.roles import PROTECTED_COMMANDS
from storage.models import Role, User

router = Router(name="common")
fallback_router = Router(name="fallback")


class LanguageChoice(CallbackData, prefix="lang"):
    code: str


def language_keyboard() -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    for code, name in LANGUAGES.items():
        kb.button(text=name, callback_data=LanguageChoice(code=code))
    kb.adjust(1)
    return kb.as_markup()


def help_text(i18n: I18n) -> str:
    lines = [_("Here is what I can do:"), ""]
    lines += [
        f"/{c.name} — {escape(c.translated(i18n, i18n.current_locale))}" for c in LEARNER_COMMANDS
    ]
    return "\n".join(lines)


@router.message(Command("help"))
async def help_command(message: Message, i18n: I18n) -> None:
    await message.answer(help_text(i18n))


@router.message(Command("language"))
async def language_command(message: Message) -> None:
    await message.answer(_("Choose your language:"), reply_markup=language_keyboard())


@router.callback_query(LanguageChoice.filter())
async def language_chosen(
    query: CallbackQuery,
    callback_data: LanguageChoice,
    db_user: User,
    session: AsyncSession,
    i18n: I18n,
) -> None:
    if callback_data.code not in LANGUAGES:
        await query.answer(_("That language is not available."), show_alert=True)
        return
    db_user.language = callback_data.code
    await session.flush()
    with i18n.use_locale(callback_data.code):
        text = _("Language set to English.")
        await query.answer()
        if isinstance(query.message, Message):
            await query.message.edit_text(text)
        else:
            await query.bot.send_message(query.from_user.id, text)  # type: ignore[union-attr]


@fallback_router.message(F.text.startswith("/"))
async def unknown_command(message: Message) -> None:
    name = (message.text or "/").split()[0][1:].split("@")[0].lower()
    roles = PROTECTED_COMMANDS.get(name)
    if roles is not None:
        # The same registry that guards the handlers explains the refusal.
        await message.answer(
            _("/{command} is for trainers only.").format(command=name)
            if roles == {Role.trainer}
            else _("/{command} is not available to you.").format(command=name)
        )
        return
    await message.answer(_("I don't know that command. Send /help to see what I can do."))


@fallback_router.message(F.text)
async def unknown_text(message: Message) -> None:
    await message.answer(
        _("I didn't understand that. Please use the buttons, or send /help to see what I can do.")
    )


@fallback_router.message()
async def unknown_media(message: Message) -> None:
    await message.answer(_("I can only read text messages here. Send /help to see what I can do."))


@fallback_router.callback_query()
async def stale_button(query: CallbackQuery) -> None:
    await query.answer(_("This button is no longer active."), show_alert=False)
