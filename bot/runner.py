"""Runs the bot: polling by default, a webhook server when WEBHOOK_URL is set."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
from aiohttp import web

from bot.app import App

log = logging.getLogger(__name__)


async def run_polling(app: App) -> None:
    try:
        await app.bot.delete_webhook(drop_pending_updates=False)
        await app.dp.start_polling(
            app.bot, allowed_updates=app.dp.resolve_used_update_types(), handle_signals=True
        )
    finally:
        await app.close()


async def run_webhook(app: App) -> None:
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

    web_app = web.Application()
    SimpleRequestHandler(dispatcher=app.dp, bot=app.bot, secret_token=secret).register(
        web_app, path=path
    )
    setup_application(web_app, app.dp, bot=app.bot)
    web_app.on_startup.append(register)
    host, _, port = settings.webhook_listen.rpartition(":")
    runner = web.AppRunner(web_app)
    await runner.setup()
    site = web.TCPSite(runner, host or "0.0.0.0", int(port))
    await site.start()
    log.info("webhook server listening on %s, path %s", settings.webhook_listen, path)
    try:
        import asyncio

        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        await app.close()
