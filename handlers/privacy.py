"""/privacy: what the bot keeps and why (Telegram asks every bot to answer it)."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import Message
from aiogram.utils.i18n import I18n

from content.loader import Content

router = Router(name="privacy")


@router.message(Command("privacy"))
async def privacy(message: Message, content: Content, i18n: I18n) -> None:
    notice, _lang = content.privacy_for(i18n.current_locale)
    await message.answer(notice.notice)
