"""Webhook mode: the aiohttp server Telegram pushes updates to.

Over aiogram's SimpleRequestHandler (which already compares the secret token in
constant time) it adds what a fleet behind a load balancer needs: a body that is not an
update is refused, an update_id seen before is acknowledged and dropped (Telegram sends
an update again when a reply was slow), and every update is acknowledged at once and
handled in the background. /healthz and /metrics serve the operators."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.types import Update
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web
from pydantic import ValidationError

from bot import metrics

log = logging.getLogger(__name__)
SEEN_TTL_S = 24 * 3600  # Telegram keeps re-sending an update for at most a day


class SeenUpdates:
    """Which update_ids were taken already: in Redis when several processes share the
    work (one SET NX per update), else in memory (one process)."""

    def __init__(self, redis_url: str | None = None, memory_size: int = 100_000) -> None:
        self._redis: Any = None
        if redis_url:
            from redis.asyncio import Redis

            self._redis = Redis.from_url(redis_url)
        self._memory: OrderedDict[int, None] = OrderedDict()
        self._size = memory_size

    async def first_time(self, update_id: int) -> bool:
        if self._redis is not None:
            return bool(
                await self._redis.set(f"biblio:update:{update_id}", 1, nx=True, ex=SEEN_TTL_S)
            )
        if update_id in self._memory:
            return False
        self._memory[update_id] = None
        if len(self._memory) > self._size:
            self._memory.popitem(last=False)
        return True

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()


class UpdateHandler(SimpleRequestHandler):
    def __init__(
        self, dispatcher: Dispatcher, bot: Bot, secret_token: str, seen: SeenUpdates
    ) -> None:
        super().__init__(dispatcher=dispatcher, bot=bot, secret_token=secret_token)
        self.seen = seen
        self._tasks: set[asyncio.Task[None]] = set()

    async def handle(self, request: web.Request) -> web.Response:
        if not self.verify_secret(
            request.headers.get("X-Telegram-Bot-Api-Secret-Token", ""), self.bot
        ):
            metrics.WEBHOOK_REJECTED.labels(reason="secret").inc()
            return web.Response(status=401, text="Unauthorized")
        try:
            raw = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            metrics.WEBHOOK_REJECTED.labels(reason="not_json").inc()
            return web.Response(status=400, text="body is not JSON")
        update_id = raw.get("update_id") if isinstance(raw, dict) else None
        if not isinstance(update_id, int) or isinstance(update_id, bool):
            metrics.WEBHOOK_REJECTED.labels(reason="not_update").inc()
            return web.Response(status=400, text="body is not an update")
        if not await self.seen.first_time(update_id):
            metrics.WEBHOOK_REJECTED.labels(reason="duplicate").inc()
            return web.Response(status=200, text="already handled")
        try:
            update = Update.model_validate(raw, context={"bot": self.bot})
        except ValidationError as exc:
            # Update-shaped but malformed: refusing it would make Telegram resend it for a
            # day. It is logged and acknowledged, like the polling path does.
            log.warning("dropped malformed update %s (%d problems)", update_id, exc.error_count())
            metrics.WEBHOOK_REJECTED.labels(reason="malformed").inc()
            return web.Response(status=200, text="malformed update dropped")
        task = asyncio.create_task(self._feed(update))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return web.Response(status=200, text="ok")

    async def _feed(self, update: Update) -> None:
        try:
            await self.dispatcher.feed_update(self.bot, update, **self.data)
        except Exception:  # the errors router has seen it; never kill the server
            log.exception("update %s failed", update.update_id)

    async def close(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.seen.close()
        await super().close()


class MetricsMiddleware:
    """Counts updates by kind and times their handling (the whole middleware chain)."""

    async def __call__(self, handler: Any, event: Update, data: dict[str, Any]) -> Any:
        started = time.perf_counter()
        kind = event.event_type if isinstance(event, Update) else type(event).__name__
        try:
            return await handler(event, data)
        finally:
            metrics.UPDATES.labels(kind=kind).inc()
            metrics.HANDLER_SECONDS.observe(time.perf_counter() - started)
