"""Any exception in a handler is logged and the user gets a short apology in their language."""

from __future__ import annotations

import logging

from aiogram import Bot, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.types import ErrorEvent, User
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.i18n import resolve_language
from storage import models

log = logging.getLogger(__name__)
router = Router(name="errors")


@router.errors()
async def on_error(
    event: ErrorEvent, bot: Bot, i18n: I18n, sessionmaker: async_sessionmaker[AsyncSession]
) -> bool:
    update = event.update
    log.error(
        "handler failed on update %s: %s",
        update.update_id,
        type(event.exception).__name__,
        exc_info=event.exception,
    )
    tg_user: User | None = None
    chat_id: int | None = None
    if update.message:
        tg_user, chat_id = update.message.from_user, update.message.chat.id
    elif update.callback_query:
        tg_user = update.callback_query.from_user
        chat_id = tg_user.id
    if tg_user is None or chat_id is None or chat_id < 0:
        return True  # nobody to apologise to (or a group, where we stay quiet)
    # The update's session was rolled back; read the stored language afresh.
    stored: str | None = None
    try:
        async with sessionmaker() as session:
            db_user = await session.get(models.User, tg_user.id)
            stored = db_user.language if db_user else None
    except Exception:  # the store itself may be what failed
        log.warning("could not read the language for the apology", exc_info=True)
    locale = resolve_language(stored, tg_user.language_code)
    # Errors run outside the i18n middleware: enter its context here.
    with i18n.context(), i18n.use_locale(locale):
        text = _("Sorry, something went wrong on my side. Please try again in a moment.")
    try:
        if update.callback_query:
            await update.callback_query.answer()
        await bot.send_message(chat_id, text)
    except TelegramAPIError as exc:  # the apology is best effort; the error is already logged
        log.warning("could not send the apology: %s", exc)
    return True
