"""Conversation state in Redis when REDIS_URL is set; the offline sandbox as a person uses it."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from tests.conftest import IN_CI
from tests.e2e.flows import consent, drain, until_buttons
from tests.e2e.harness import running_bot
from tests.e2e.test_foundation import tr

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def _redis_or_skip() -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except Exception as exc:
        message = f"Redis is not reachable at {REDIS_URL} ({type(exc).__name__})"
        if IN_CI:
            pytest.fail(message + "; CI must run the Redis tests")
        pytest.skip(message)
    finally:
        await client.aclose()


async def test_conversation_state_in_redis_survives_restart(tg, sqlite_url):
    await _redis_or_skip()
    from redis.asyncio import Redis

    user = tg.user(900_000 + uuid.uuid4().int % 100_000, language_code="it")
    async with running_bot(tg, sqlite_url, redis_url=REDIS_URL) as app:
        assert type(app.dp.storage).__name__ == "RedisStorage"
        await consent(user, "it")
        await until_buttons(user)
        await user.press("jo")
        await drain(user)
        await user.send("Giulia")
        await drain(user)
    async with running_bot(tg, sqlite_url, redis_url=REDIS_URL):
        await user.send("giulia@biblioteca.it")
        got = await drain(user)
        assert got[-1].text == tr("How old are you?", "it")
    client = Redis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(f"fsm:{user.user_id}:*")]
        assert keys, "the state was not kept in Redis"
        await client.delete(*keys)
    finally:
        await client.aclose()


def test_sandbox_chats_offline(tmp_path):
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    result = subprocess.run(
        [sys.executable, "-m", "bot", "sandbox", "--files", str(tmp_path / "files")],
        input="/start\n2\n:quit\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Hello, Anna!" in out and "[1] English" in out and "[2] Latviešu" in out
    # Choosing 2 switched to Latvian: the privacy notice arrives in Latvian.
    assert "Privātuma paziņojums" in out
    assert (tmp_path / "data" / "sandbox.sqlite3").exists()
