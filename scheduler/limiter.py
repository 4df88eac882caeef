"""Telegram's flood limits, kept on our side so that the server never has to say 429.

Telegram allows about 30 messages a second overall and one a second per chat; its
counter is a sliding window over the moments the requests *arrive*. We cannot see those
moments, only when we start a request and when its answer comes back, and the answer
cannot come before the arrival. So a send may start when
- 1/rate has passed since the previous start (no bursts: sends are spaced evenly),
- fewer than `capacity` sends are in flight or were answered less than `window` ago
  (then whatever arrived earlier is certainly out of the server's window),
- the chat's previous send was answered at least `per_chat_interval` ago,
- no 429 pause is running (`pause(retry_after)` stops every send).
The second rule costs one round trip per window (about 29.9/s of 30 on a local server)
and makes a 429 impossible however late requests arrive.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress

# Waits shorter than this are not slept (a timer costs more than it saves); a send may
# then start that much early, which no one-second window notices.
SLACK = 0.0005


def backoff(attempt: int, base: float, cap: float) -> float:
    """Seconds to wait before retry number `attempt` (1, 2, ...): base, 2*base, 4*base,
    ... never more than cap."""
    if attempt < 1:
        return 0.0
    return float(min(cap, base * 2 ** min(attempt - 1, 60)))


class RateLimiter:
    def __init__(
        self,
        rate: float,
        per_chat_interval: float = 1.0,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not rate > 0:
            raise ValueError("rate must be positive")
        if per_chat_interval < 0:
            raise ValueError("per_chat_interval must not be negative")
        self.rate = rate
        self.capacity = max(1, math.floor(rate))
        self.window = self.capacity / rate
        self.per_chat_interval = per_chat_interval
        self._now = monotonic
        self._next_start = 0.0
        self._answered: deque[float] = deque()
        self._in_flight = 0
        self._paused_until = 0.0
        self._chat_ready: dict[int, float] = {}
        self._chat_locks: dict[int, asyncio.Lock] = {}
        self._turn = asyncio.Lock()  # waiters take their turn in order
        self._changed = asyncio.Event()
        self.pauses = 0

    # ----- control

    def pause(self, seconds: float) -> None:
        """Stop every send for `seconds` (Telegram's retry_after)."""
        self.pauses += 1
        self._paused_until = max(self._paused_until, self._now() + seconds)
        self._changed.set()

    @property
    def paused_for(self) -> float:
        return max(0.0, self._paused_until - self._now())

    @property
    def in_flight(self) -> int:
        return self._in_flight

    # ----- use

    @asynccontextmanager
    async def slot(self, chat_id: int) -> AsyncIterator[None]:
        """Wait for a send to `chat_id` to be allowed; the send happens inside."""
        lock = self._chat_locks.get(chat_id)
        if lock is None:
            lock = self._chat_locks[chat_id] = asyncio.Lock()
        try:
            async with lock:
                delay = self._chat_ready.get(chat_id, 0.0) - self._now()
                if delay > 0:
                    await asyncio.sleep(delay)
                await self._start()
                try:
                    yield
                finally:
                    answered = self._now()
                    self._in_flight -= 1
                    self._answered.append(answered)
                    if self.per_chat_interval > 0:
                        self._chat_ready[chat_id] = answered + self.per_chat_interval
                    self._changed.set()
        finally:
            if not lock.locked() and self._chat_locks.get(chat_id) is lock:
                del self._chat_locks[chat_id]
            if len(self._chat_ready) > 10_000:
                now = self._now()
                self._chat_ready = {c: t for c, t in self._chat_ready.items() if t > now}

    async def _start(self) -> None:
        async with self._turn:
            while True:
                now = self._now()
                while self._answered and self._answered[0] <= now - self.window:
                    self._answered.popleft()
                wait = max(self._paused_until - now, self._next_start - now, 0.0)
                full = self._in_flight + len(self._answered) >= self.capacity
                if full and self._answered:
                    wait = max(wait, self._answered[0] + self.window - now)
                if wait > SLACK or (wait > 0 and (full or self._paused_until > now)):
                    self._changed.clear()
                    # Woken early by a pause or an answer; the loop then looks again.
                    with suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), wait)
                    continue
                if full:  # only sends in flight fill the window: wait for an answer
                    self._changed.clear()
                    await self._changed.wait()
                    continue
                self._in_flight += 1
                # From the slot's own time, so that a sub-millisecond slack never adds up.
                self._next_start = max(now, self._next_start) + 1.0 / self.rate
                return
