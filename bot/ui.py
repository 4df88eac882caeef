"""Small rendering helpers shared by the handlers."""

from __future__ import annotations

import logging

from aiogram.exceptions import TelegramBadRequest
from aiogram.types import Message

log = logging.getLogger(__name__)


async def drop_buttons(message: Message) -> None:
    """Remove the buttons of an answered question. A double tap may find them gone
    already; Telegram then says "message is not modified", which is fine."""
    try:
        await message.edit_reply_markup(reply_markup=None)
    except TelegramBadRequest as exc:
        if "not modified" not in exc.message and "not found" not in exc.message:
            raise
        log.debug("buttons already gone: %s", exc.message)
