"""Runs the real bot (aiogram over its real HTTP client) against the local Bot API server."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from bot.app import App, build_app
from bot.clock import Clock
from bot.sandbox.server import BotAPIServer
from bot.settings import load_settings
from content.loader import Content, load_content

ROOT = Path(__file__).resolve().parents[2]


@lru_cache(maxsize=1)
def shipped_content() -> Content:
    return load_content()


async def wait_for(predicate: Any, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def _menus_set(server: BotAPIServer) -> bool:
    return sum(1 for c in server.calls if c.method == "setMyCommands") >= 6


@asynccontextmanager
async def running_bot(
    server: BotAPIServer,
    db_url: str,
    *,
    clock: Clock | None = None,
    content: Content | None = None,
    **overrides: Any,
) -> AsyncIterator[App]:
    """The bot polling in this event loop; migrations applied as `run` does.

    The planner and the delivery worker do not run on their own here (tests drive time):
    call scheduler.planner.plan_once(app) and scheduler.worker.drain_outbox(app), or pass
    run_scheduler=True / run_worker=True."""
    from storage.migrate import upgrade_async

    overrides = {"run_scheduler": False, "run_worker": False, **overrides}
    settings = load_settings(
        bot_token=server.token, telegram_api_url=server.base_url, database_url=db_url, **overrides
    )
    await upgrade_async(db_url)
    app = build_app(settings, clock=clock, content=content or shipped_content())
    before = sum(1 for c in server.calls if c.method == "setMyCommands")
    task = asyncio.create_task(
        app.dp.start_polling(
            app.bot,
            handle_signals=False,
            polling_timeout=1,
            close_bot_session=False,
            allowed_updates=app.dp.resolve_used_update_types(),
        )
    )
    try:
        await wait_for(
            lambda: (
                sum(1 for c in server.calls if c.method == "setMyCommands") >= before + 6
                or task.done()
            ),
            what="the bot to start",
        )
        if task.done():
            task.result()
        yield app
    finally:
        if not task.done():
            await app.dp.stop_polling()
        await asyncio.gather(task, return_exceptions=True)
        await app.close()


class BotProcess:
    """`python -m bot run` as a separate process, for restarts and SIGKILL."""

    def __init__(self, server: BotAPIServer, db_url: str, log_path: Path, **env: str) -> None:
        self.server = server
        self.env = {
            **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "PYTHONPATH")},
            "BOT_TOKEN": server.token,
            "TELEGRAM_API_URL": server.base_url,
            "DATABASE_URL": db_url,
            "LOG_LEVEL": "INFO",
            **env,
        }
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        before = sum(1 for c in self.server.calls if c.method == "setMyCommands")
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "run"],
            cwd=self.log_path.parent,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        await wait_for(
            lambda: (
                sum(1 for c in self.server.calls if c.method == "setMyCommands") >= before + 6
                or self.proc is None
                or self.proc.poll() is not None
            ),
            timeout=60,
            what="the bot process to start",
        )
        if self.proc.poll() is not None:
            raise RuntimeError(f"bot exited {self.proc.returncode}: {self.log_path.read_text()}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
