from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.app import App
from bot.sandbox.server import BotAPIServer
from tests.e2e.harness import running_bot


@pytest.fixture
async def tg() -> AsyncIterator[BotAPIServer]:
    server = BotAPIServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def bot(tg: BotAPIServer, sqlite_url: str) -> AsyncIterator[App]:
    async with running_bot(tg, sqlite_url) as app:
        yield app
