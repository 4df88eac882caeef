"""Runs the bot: polling by default, a webhook server when WEBHOOK_URL is set."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from aiogram.webhook.aiohttp_server import setup_application
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select, text

from bot import metrics
from bot.app import App
from bot.webhook import MetricsMiddleware, SeenUpdates, UpdateHandler
from storage.models import Outbox, PlannerState

log = logging.getLogger(__name__)
APP_KEY = web.AppKey("biblio", App)


async def run_polling(app: App) -> None:
    try:
        await app.bot.delete_webhook(drop_pending_updates=False)
        await app.dp.start_polling(
            app.bot, allowed_updates=app.dp.resolve_used_update_types(), handle_signals=True
        )
    finally:
        await app.close()


async def _store_figures(app: App) -> dict[str, Any]:
    async with app.sessionmaker() as session:
        await session.execute(text("SELECT 1"))
        rows = await session.execute(select(Outbox.status, func.count()).group_by(Outbox.status))
        by_status: dict[Any, int] = {status: count for status, count in rows.tuples()}
        tick = await session.get(PlannerState, "main")
    ticked_at: datetime | None = tick.ticked_at if tick else None
    return {
        "outbox": {str(getattr(k, "value", k)): int(v) for k, v in by_status.items()},
        "last_planner_tick": ticked_at.isoformat() if ticked_at else None,
        "planner_age_s": (app.clock.now() - ticked_at).total_seconds() if ticked_at else None,
    }


async def healthz(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    try:
        figures = await _store_figures(app)
    except Exception as exc:
        log.warning("health check: the store is not reachable: %s", type(exc).__name__)
        return web.json_response({"store": "unreachable"}, status=503)
    backlog = figures["outbox"].get("pending", 0) + figures["outbox"].get("sending", 0)
    return web.json_response(
        {
            "store": "ok",
            "outbox_backlog": backlog,
            "last_planner_tick": figures["last_planner_tick"],
            "planner_age_s": figures["planner_age_s"],
        }
    )


async def metrics_view(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    try:
        figures = await _store_figures(app)
        for status in ("pending", "sending", "sent", "failed", "skipped"):
            metrics.OUTBOX.labels(status=status).set(figures["outbox"].get(status, 0))
        if figures["planner_age_s"] is not None:
            metrics.PLANNER_AGE.set(figures["planner_age_s"])
    except Exception as exc:  # still serve the in-process counters
        log.warning("metrics: the store is not reachable: %s", type(exc).__name__)
    return web.Response(
        body=generate_latest(metrics.REGISTRY),
        headers={"Content-Type": CONTENT_TYPE_LATEST},
    )


def webhook_app(app: App) -> web.Application:
    """The aiohttp application of webhook mode: the update endpoint, /healthz, /metrics."""
    settings = app.settings
    assert settings.webhook_url and settings.webhook_secret
    secret = settings.webhook_secret.get_secret_value()
    path = urlsplit(settings.webhook_url).path or "/"

    async def register(_: web.Application) -> None:
        await app.bot.set_webhook(
            settings.webhook_url or "",
            secret_token=secret,
            allowed_updates=app.dp.resolve_used_update_types(),
        )

    app.dp.update.outer_middleware(MetricsMiddleware())  # type: ignore[arg-type]
    web_app = web.Application()
    web_app[APP_KEY] = app
    handler = UpdateHandler(app.dp, app.bot, secret, SeenUpdates(settings.redis_url))
    handler.register(web_app, path=path)
    web_app.router.add_get("/healthz", healthz)
    web_app.router.add_get("/metrics", metrics_view)
    setup_application(web_app, app.dp, bot=app.bot)
    web_app.on_startup.append(register)
    return web_app


async def run_webhook(app: App) -> None:
    web_app = webhook_app(app)
    host, _, port = app.settings.webhook_listen.rpartition(":")
    runner = web.AppRunner(web_app)
    await runner.setup()
    site = web.TCPSite(runner, host or "0.0.0.0", int(port))
    await site.start()
    log.info("webhook server listening on %s", app.settings.webhook_listen)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        await app.close()
