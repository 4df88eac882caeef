"""After /withdraw (or when the privacy notice changed) nothing of a learner's is
processed until they consent again: one gate in front of every learner feature.

Only the ways back and the privacy rights pass: /start (which asks for consent again),
/privacy, /mydata, /delete, /help, /language, /cancel and the buttons of those flows."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import CallbackQuery, Message, PollAnswer, TelegramObject
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.consent import has_valid_consent
from content.loader import Content
from storage.models import Learner, Role, User

OPEN_COMMANDS = frozenset(
    {"start", "privacy", "mydata", "delete", "help", "language", "cancel", "withdraw"}
)
# Callback data prefixes of the consent, language and erasure buttons.
OPEN_CALLBACKS = ("cs:", "lang:", "er:")


def _command(message: Message) -> str | None:
    text = message.text or ""
    if not text.startswith("/"):
        return None
    return text.split()[0][1:].split("@")[0].lower()


class ConsentGate(BaseMiddleware):
    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        user: User | None = data.get("db_user")
        session: AsyncSession | None = data.get("session")
        content: Content | None = data.get("content")
        if user is None or session is None or content is None or user.role is not Role.learner:
            return await handler(event, data)
        if isinstance(event, Message) and event.chat.type != "private":
            return await handler(event, data)  # the private router's filter drops it
        learner = await session.get(Learner, user.id)
        if learner is None or has_valid_consent(user, content):
            return await handler(event, data)
        if isinstance(event, Message) and _command(event) in OPEN_COMMANDS:
            return await handler(event, data)
        if isinstance(event, CallbackQuery) and (event.data or "").startswith(OPEN_CALLBACKS):
            return await handler(event, data)
        text = _(
            "You have withdrawn your consent (or the privacy notice has changed), so I am "
            "not processing anything for you. Send /start to give your consent again, or "
            "/delete to erase your data."
        )
        if isinstance(event, Message):
            await event.answer(text)
        elif isinstance(event, CallbackQuery):
            await event.answer(text, show_alert=True)
        elif isinstance(event, PollAnswer):
            pass  # a vote is dropped silently: answering it would be processing
        return None
