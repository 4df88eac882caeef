"""Webhook mode: the local Bot API server pushes updates with the secret token; the
bot refuses what is not an update, handles each update_id once, and reports its health."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
from aiohttp import web

from bot.app import build_app
from bot.runner import webhook_app
from bot.settings import load_settings
from storage.migrate import upgrade_async
from tests.e2e.flows import drain
from tests.e2e.harness import shipped_content, wait_for

SECRET = "s3cret-Token_1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_webhook_mode(tg, sqlite_url):
    port = _free_port()
    url = f"http://127.0.0.1:{port}/telegram/hook"
    settings = load_settings(
        bot_token=tg.token,
        telegram_api_url=tg.base_url,
        database_url=sqlite_url,
        webhook_url=url,
        webhook_secret=SECRET,
        webhook_listen=f"127.0.0.1:{port}",
    )
    await upgrade_async(sqlite_url)
    app = build_app(settings, content=shipped_content())
    runner = web.AppRunner(webhook_app(app))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        await wait_for(lambda: tg.webhook is not None, what="setWebhook")
        assert tg.webhook["url"] == url and tg.webhook.get("secret_token") == SECRET

        user = tg.user(61, language_code="el")
        await user.send("/help")  # the server pushes it to the hook with the secret
        reply = await user.next_message()
        assert "/privacy" in reply.text

        async with aiohttp.ClientSession() as http:

            async def post(body: bytes, secret: str = SECRET) -> int:
                async with http.post(
                    url,
                    data=body,
                    headers={
                        "X-Telegram-Bot-Api-Secret-Token": secret,
                        "Content-Type": "application/json",
                    },
                ) as response:
                    return response.status

            update = (
                b'{"update_id": 777, "message": {"message_id": 5, "date": 0, "text": "/help",'
                b' "chat": {"id": 61, "type": "private", "first_name": "x"},'
                b' "from": {"id": 61, "is_bot": false, "first_name": "x"},'
                b' "entities": [{"type": "bot_command", "offset": 0, "length": 5}]}}'
            )
            assert await post(update, secret="wrong") == 401
            assert await post(b"not json") == 400
            assert await post(b'{"hello": 1}') == 400
            assert await post(b'{"update_id": 778, "message": {"text": 5}}') == 200  # dropped
            before = len(user.messages)
            assert await post(update) == 200
            assert await post(update) == 200  # Telegram re-sent it: handled once
            await drain(user)
            assert len(user.messages) == before + 1

            async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                assert response.status == 200
                health = await response.json()
            assert health["store"] == "ok" and health["outbox_backlog"] == 0
            async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
                body = await response.text()
            assert 'biblio_updates_total{kind="message"}' in body
            assert 'biblio_webhook_rejected_total{reason="duplicate"} 1.0' in body
            assert "biblio_handler_seconds_bucket" in body
    finally:
        await runner.cleanup()
        await app.close()
        await asyncio.sleep(0)
