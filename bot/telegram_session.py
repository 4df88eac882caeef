"""aiogram's HTTP session, made tolerant of one malformed update in a getUpdates batch.

aiogram validates a whole batch at once: one update it cannot parse fails the batch, the
offset never moves, and polling retries the same batch forever. We drop the bad update's
payload, keep its id (so the offset moves past it) and log it; the rest goes on as usual.
"""

from __future__ import annotations

import json
import logging
import warnings
from typing import Any

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.exceptions import ClientDecodeError, TelegramBadRequest
from aiogram.methods import AnswerCallbackQuery, GetUpdates, Response, TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import Update
from pydantic import ValidationError

log = logging.getLogger(__name__)
# The placeholder left for a malformed update has no payload; aiogram warns about such
# "unknown" updates, but we have already logged the real problem above.
warnings.filterwarnings("ignore", "Detected unknown update type", RuntimeWarning)


def clean_updates(raw_updates: list[Any], bot: Bot) -> list[Any]:
    cleaned: list[Any] = []
    for raw in raw_updates:
        try:
            Update.model_validate(raw, context={"bot": bot})
            cleaned.append(raw)
        except ValidationError as exc:
            update_id = raw.get("update_id") if isinstance(raw, dict) else None
            log.warning("skipped malformed update %s (%d problems)", update_id, exc.error_count())
            if isinstance(update_id, int):
                cleaned.append({"update_id": update_id})
    return cleaned


class TolerantSession(AiohttpSession):
    def check_response(
        self, bot: Bot, method: TelegramMethod[TelegramType], status_code: int, content: str
    ) -> Response[TelegramType]:
        try:
            return super().check_response(bot, method, status_code, content)
        except ClientDecodeError:
            is_get_updates = isinstance(method, GetUpdates)  # a flag: keep the generic type
            if not is_get_updates:
                raise
            try:
                payload = json.loads(content)
            except ValueError:
                raise
            if not (isinstance(payload, dict) and isinstance(payload.get("result"), list)):
                raise
            payload["result"] = clean_updates(payload["result"], bot)
            return super().check_response(bot, method, status_code, json.dumps(payload))


class StaleCallbackMiddleware(BaseRequestMiddleware):
    """Answering a callback query Telegram no longer knows (the bot was down, or the
    button was pressed twice long ago) is harmless: the spinner has gone already. It must
    not abort the handler that does the real work, so that one error is swallowed."""

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        try:
            return await make_request(bot, method)
        except TelegramBadRequest as exc:
            if isinstance(method, AnswerCallbackQuery) and "query is too old" in exc.message:
                log.info(
                    "callback query %s expired before it was answered", method.callback_query_id
                )
                return Response[TelegramType](ok=True, result=True)  # type: ignore[arg-type]
            raise
