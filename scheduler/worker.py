"""The delivery worker: drains the outbox within Telegram's limits, once per row.

A pass claims the due rows (pending with not_before <= now, or sending with an expired
lease) by setting status=sending, claimed_by, lease_until and attempts+1, and COMMITS
that before anything is sent. On PostgreSQL the claim is `SELECT ... FOR UPDATE SKIP
LOCKED`, so several workers (processes) share the outbox without taking the same row; on
SQLite one worker runs (the claim is one IMMEDIATE transaction anyway).

Each claimed row is checked and rendered in the recipient's language, then sent; its
outcome is committed a few milliseconds later, in small groups:
- sent (sent_at, message_id);
- skipped, with the reason: expired, no consent, withdrawn, inactive, muted, or what the
  renderer said (a cancelled webinar);
- postponed: a non-urgent row due in the recipient's local quiet hours goes back to
  pending with not_before at the end of them (skipped when that is past its expiry);
- 429: every send pauses for retry_after; the row goes back to pending, not counted as
  an attempt;
- network errors and 5xx: back to pending after an exponential back-off, failed after
  delivery_max_attempts (a timed-out send may have arrived: that is the one case where a
  retry can repeat a message);
- 403: the person blocked the bot: marked inactive, the row fails "blocked";
- other 400s: failed with Telegram's description.
A finished row keeps claimed_by (who handled it); a row going back to pending is freed.

Leases: a worker renews the leases of the rows it holds (claimed, outcome not yet
committed) every quarter of DELIVERY_LEASE, and sends a row only while at least
SEND_TIMEOUT + 1 s of its lease is left, so a slow worker never races another one for the
same row. A crash (SIGKILL) loses only the outcomes not yet committed; those rows stay
"sending" until their lease ends and are taken over then: at most the sends in flight at
the crash repeat (the crash test counts them).

Quiet hours are the recipient's (UserSettings, default 21:00-08:00) in their local time:
the zone named in the row's payload ("timezone"), else their cohort's, else
DEFAULT_TIMEZONE. Urgent rows (a direct answer to the learner's own action, such as the
catch-up after "Confirm") are not held.

Renderers get in `RenderContext.extra`: "learner" (Learner | None), "cohort" (Cohort |
None), "user_settings" (UserSettings | None), "timezone" (ZoneInfo: the recipient's
local zone) and "settings" (Settings), so that a batch costs a few queries, not a few
per row.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.types import BufferedInputFile, Message
from aiogram.utils.i18n import I18n
from sqlalchemy import Integer, Table, and_, bindparam, case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import metrics
from bot.clock import Clock
from bot.i18n import resolve_language
from bot.services.localtime import DEFAULT_QUIET_END, DEFAULT_QUIET_START, quiet_until, zone
from bot.services.outbox import MUTABLE_KINDS, RENDERERS, Outgoing, RenderContext, Skip
from bot.settings import Settings
from content.loader import Content
from scheduler.limiter import RateLimiter, backoff
from storage.models import (
    Cohort,
    Learner,
    LearnerStatus,
    Outbox,
    OutboxStatus,
    Role,
    User,
    UserSettings,
    UTCDateTime,
)

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)

_TABLE = Outbox.__table__
assert isinstance(_TABLE, Table)
OUTBOX: Table = _TABLE
# A row must have this much of its lease left when its turn to be sent comes, or it is
# handed back (another worker could take it over while the request is still running).
LEASE_MARGIN = timedelta(seconds=1)
BLOCKED_MEMORY = 60.0  # seconds a 403 stops further sends to that chat in this process
UNAUTHORIZED_PAUSE = 60.0
_IN_CHUNKS = 500


@dataclass(frozen=True)
class DeliveryConfig:
    send_rate: float = 30.0
    per_chat_interval: float = 1.0
    lease: float = 60.0
    send_timeout: int = 20
    poll_interval: float = 1.0
    concurrency: int = 32
    max_attempts: int = 6
    retry_base: float = 5.0
    retry_cap: float = 900.0
    default_timezone: str = "Europe/Brussels"
    batch_size: int | None = None  # rows claimed at once; default: one second's worth

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> DeliveryConfig:
        values: dict[str, Any] = dict(
            send_rate=settings.send_rate,
            per_chat_interval=settings.per_chat_interval,
            lease=settings.delivery_lease,
            send_timeout=settings.send_timeout,
            poll_interval=settings.delivery_poll_interval,
            concurrency=settings.delivery_concurrency,
            max_attempts=settings.delivery_max_attempts,
            retry_base=settings.delivery_retry_base,
            retry_cap=settings.delivery_retry_cap,
            default_timezone=settings.default_timezone,
        )
        values.update(overrides)
        return cls(**values)

    @property
    def batch(self) -> int:
        if self.batch_size is not None:
            return max(1, self.batch_size)
        return max(10, min(200, int(self.send_rate)))


@dataclass
class DrainStats:
    claimed: int = 0
    sent: int = 0
    skipped: int = 0
    failed: int = 0
    postponed: int = 0  # back to pending: quiet hours, 429, retries, a short lease
    reasons: dict[str, int] = field(default_factory=dict)

    def count(self, outcome: Outcome) -> None:
        if outcome.status is OutboxStatus.sent:
            self.sent += 1
        elif outcome.status is OutboxStatus.skipped:
            self.skipped += 1
        elif outcome.status is OutboxStatus.failed:
            self.failed += 1
        else:
            self.postponed += 1
        if outcome.error:
            reason = outcome.error.split(":", 1)[0]
            self.reasons[reason] = self.reasons.get(reason, 0) + 1


@dataclass
class Outcome:
    row_id: int
    status: OutboxStatus
    error: str | None = None
    sent_at: datetime | None = None
    message_id: int | None = None
    not_before: datetime | None = None  # when going back to pending
    uncount: bool = False  # this claim is not an attempt (429, quiet hours, shutdown)
    deactivate: int | None = None  # the user blocked the bot


@dataclass
class Job:
    row: Outbox
    outgoing: Outgoing
    lease_until: datetime
    lost: bool = False  # the lease could not be renewed: another worker may own the row


def make_sender(settings: Settings) -> Bot:
    """The Bot a worker process sends with (bot.app.make_bot without the handlers'
    needs: this process receives no updates)."""
    assert settings.bot_token is not None
    return Bot(
        settings.bot_token.get_secret_value(),
        session=AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_url)),
        default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
    )


def _chunks(items: Sequence[int], size: int = _IN_CHUNKS) -> Iterable[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _worker_id() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"


class _Recorder:
    """Commits outcomes in small groups, a few milliseconds after they happen."""

    def __init__(self, worker: DeliveryWorker, stats: DrainStats, delay: float = 0.02) -> None:
        self.worker = worker
        self.stats = stats
        self.delay = delay
        self._buffer: list[Outcome] = []
        self._event = asyncio.Event()
        self._closed = False
        self._task = asyncio.create_task(self._run(), name="outbox-recorder")

    def add(self, outcome: Outcome) -> None:
        self.worker.held.pop(outcome.row_id, None)
        self.stats.count(outcome)
        self._buffer.append(outcome)
        self._event.set()

    async def _run(self) -> None:
        while True:
            await self._event.wait()
            if not self._closed:
                await asyncio.sleep(self.delay)
            self._event.clear()
            batch, self._buffer = self._buffer, []
            if batch:
                await self._write(batch)
            if self._closed and not self._buffer:
                return

    async def _write(self, batch: list[Outcome]) -> None:
        for attempt in range(1, 6):
            try:
                await self.worker.record(batch)
                return
            except Exception:
                log.exception("could not record %d outcomes (attempt %d)", len(batch), attempt)
                await asyncio.sleep(0.2 * attempt)
        log.error("gave up recording %d outcomes: they will be retried after the lease", len(batch))

    async def close(self) -> None:
        self._closed = True
        self._event.set()
        await self._task


class DeliveryWorker:
    def __init__(
        self,
        *,
        bot: Bot,
        sessionmaker: async_sessionmaker[AsyncSession],
        content: Content,
        i18n: I18n,
        clock: Clock,
        config: DeliveryConfig,
        settings: Settings | None = None,
        worker_id: str | None = None,
    ) -> None:
        self.bot = bot
        self.sessionmaker = sessionmaker
        self.content = content
        self.i18n = i18n
        self.clock = clock
        self.config = config
        self.settings = settings
        self.id = (worker_id or _worker_id())[:64]
        self.limiter = RateLimiter(config.send_rate, config.per_chat_interval)
        self._blocked: dict[int, float] = {}
        # Claimed rows whose outcome is not recorded yet; their leases are renewed.
        self.held: dict[int, Job] = {}
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        # SQLite has one writer at a time (and this project begins every transaction
        # IMMEDIATE): the worker's own transactions queue here rather than in SQLite's
        # busy handler, which sleeps in steps of milliseconds.
        bind = sessionmaker.kw.get("bind")
        dialect = getattr(getattr(bind, "dialect", None), "name", "sqlite")
        self._db_lock = asyncio.Lock() if dialect == "sqlite" else None

    @contextlib.asynccontextmanager
    async def _exclusive(self) -> AsyncIterator[None]:
        if self._db_lock is None:
            yield
            return
        async with self._db_lock:
            yield

    # ----- the loop

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def wake(self) -> None:
        """Look at the outbox now rather than at the next poll."""
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    async def run(self) -> None:
        log.info("delivery worker %s started (%.0f/s)", self.id, self.config.send_rate)
        while not self._stop.is_set():
            try:
                await self.drain()
            except Exception:
                log.exception("delivery pass failed; trying again shortly")
            if self._stop.is_set():
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.config.poll_interval)
            self._wake.clear()
        log.info("delivery worker %s stopped", self.id)

    async def drain(self) -> DrainStats:
        """Send everything due now; return when nothing due is left (or on stop)."""
        stats = DrainStats()
        if self._stop.is_set():
            return stats
        jobs, outcomes, claimed = await self._claim_and_prepare(self.config.batch)
        if claimed == 0:  # the usual idle poll: one query, nothing started
            return stats
        recorder = _Recorder(self, stats)
        keeper = asyncio.create_task(self._keep_leases(), name="outbox-leases")
        # At most two batches are claimed ahead of the sends: about two seconds' worth.
        queue: asyncio.Queue[Job | None] = asyncio.Queue(maxsize=self.config.batch)
        consumers = [
            asyncio.create_task(self._consume(queue, recorder), name=f"outbox-sender-{n}")
            for n in range(self.config.concurrency)
        ]
        try:
            while True:
                stats.claimed += claimed
                for outcome in outcomes:
                    recorder.add(outcome)
                for job in jobs:
                    self.held[job.row.id] = job
                for job in jobs:
                    await queue.put(job)
                if claimed == 0 or self._stop.is_set():
                    break
                try:
                    jobs, outcomes, claimed = await self._claim_and_prepare(self.config.batch)
                except Exception:
                    # The sends already queued still go out and are recorded.
                    log.exception("claiming outbox rows failed")
                    break
            if self._stop.is_set():  # hand back what was claimed but not started
                while not queue.empty():
                    left = queue.get_nowait()
                    if left is not None:
                        recorder.add(self._hand_back(left.row.id, "shutdown"))
            for _ in consumers:
                await queue.put(None)
            await asyncio.gather(*consumers)
        finally:
            for task in [*consumers, keeper]:
                task.cancel()
            await asyncio.gather(*consumers, keeper, return_exceptions=True)
            await recorder.close()
        return stats

    async def _keep_leases(self) -> None:
        period = max(0.2, self.config.lease / 4)
        while True:
            await asyncio.sleep(period)
            try:
                await self.renew_leases()
            except Exception:
                log.exception("renewing leases failed")

    async def renew_leases(self) -> None:
        """Extend the lease of every row claimed and not finished; a row whose lease
        could not be extended (it ran out and another worker took it) is not sent."""
        ids = sorted(self.held)
        if not ids:
            return
        until = self.clock.now() + timedelta(seconds=self.config.lease)
        kept: set[int] = set()
        async with self._exclusive(), self.sessionmaker() as session, session.begin():
            for chunk in _chunks(ids):
                result = await session.execute(
                    update(OUTBOX)
                    .where(
                        OUTBOX.c.id.in_(chunk),
                        OUTBOX.c.claimed_by == self.id,
                        OUTBOX.c.status == OutboxStatus.sending,
                    )
                    .values(lease_until=until)
                    .returning(OUTBOX.c.id)
                )
                kept.update(result.scalars())
        for row_id in ids:
            job = self.held.get(row_id)
            if job is None:
                continue  # finished meanwhile
            if row_id in kept:
                job.lease_until = until
            else:
                job.lost = True

    async def _consume(self, queue: asyncio.Queue[Job | None], recorder: _Recorder) -> None:
        while True:
            job = await queue.get()
            if job is None:
                return
            outcome = await self.deliver(job)
            if outcome is None:
                self.held.pop(job.row.id, None)
            else:
                recorder.add(outcome)

    # ----- claiming

    async def claim(self, session: AsyncSession, limit: int, now: datetime) -> list[Outbox]:
        due = or_(
            and_(OUTBOX.c.status == OutboxStatus.pending, OUTBOX.c.not_before <= now),
            and_(OUTBOX.c.status == OutboxStatus.sending, OUTBOX.c.lease_until < now),
        )
        pick = select(OUTBOX.c.id).where(due).order_by(OUTBOX.c.not_before, OUTBOX.c.id)
        pick = pick.limit(limit)
        if session.bind is not None and session.bind.dialect.name == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        stmt = (
            update(OUTBOX)
            .where(OUTBOX.c.id.in_(pick.scalar_subquery()))
            .values(
                status=OutboxStatus.sending,
                claimed_by=self.id,
                lease_until=now + timedelta(seconds=self.config.lease),
                attempts=OUTBOX.c.attempts + 1,
            )
            .returning(*OUTBOX.c)
        )
        rows = [Outbox(**dict(m)) for m in (await session.execute(stmt)).mappings()]
        rows.sort(key=lambda r: (r.not_before, r.id))
        return rows

    async def _claim_and_prepare(self, limit: int) -> tuple[list[Job], list[Outcome], int]:
        now = self.clock.now()
        async with self._exclusive(), self.sessionmaker() as session, session.begin():
            rows = await self.claim(session, limit, now)
        if not rows:
            return [], [], 0
        jobs: list[Job] = []
        outcomes: list[Outcome] = []
        async with self._exclusive(), self.sessionmaker() as session:
            people = await _Recipients.load(session, [r.recipient_id for r in rows])
            for row in rows:
                prepared = await self.prepare(session, row, people, now)
                if isinstance(prepared, Job):
                    jobs.append(prepared)
                else:
                    outcomes.append(prepared)
            await session.rollback()
        return jobs, outcomes, len(rows)

    # ----- checks and rendering

    def recipient_zone(
        self, row: Outbox, learner: Learner | None, cohort: Cohort | None
    ) -> ZoneInfo:
        named = row.payload.get("timezone") if isinstance(row.payload, dict) else None
        if isinstance(named, str) and named:
            return zone(named, self.config.default_timezone)
        if cohort is not None:
            return zone(cohort.timezone, self.config.default_timezone)
        return zone(self.config.default_timezone)

    async def prepare(
        self, session: AsyncSession, row: Outbox, people: _Recipients, now: datetime
    ) -> Job | Outcome:
        user = people.users.get(row.recipient_id)
        if user is None:
            return Outcome(row.id, OutboxStatus.skipped, "no such user")
        if row.expires_at is not None and row.expires_at <= now:
            log.info("skipped %s: expired at %s", row.key, row.expires_at.isoformat())
            return Outcome(row.id, OutboxStatus.skipped, "expired")
        # Learners are served on their consent; trainers and mentors act in their work
        # role, joined by invitation, and get their service messages without it.
        if user.role is Role.learner and user.consent_version is None:
            return Outcome(row.id, OutboxStatus.skipped, "no consent")
        learner = people.learners.get(user.id)
        if learner is not None and learner.status is LearnerStatus.withdrawn:
            return Outcome(row.id, OutboxStatus.skipped, "withdrawn")
        if not user.is_active or self._is_blocked(user.id):
            return Outcome(row.id, OutboxStatus.skipped, "inactive: the bot is blocked")
        choices = people.settings.get(user.id)
        if row.kind in MUTABLE_KINDS and choices is not None and row.kind in (choices.muted or []):
            return Outcome(row.id, OutboxStatus.skipped, "muted")
        cohort = people.cohorts.get(learner.cohort_id) if learner and learner.cohort_id else None
        tz = self.recipient_zone(row, learner, cohort)
        if not row.urgent:
            start = choices.quiet_start if choices is not None else DEFAULT_QUIET_START
            end = choices.quiet_end if choices is not None else DEFAULT_QUIET_END
            until = quiet_until(now, tz, start, end)
            if until is not None:
                if row.expires_at is not None and until >= row.expires_at:
                    log.info("skipped %s: quiet hours last past its expiry", row.key)
                    return Outcome(row.id, OutboxStatus.skipped, "expired: in quiet hours")
                return Outcome(
                    row.id,
                    OutboxStatus.pending,
                    "postponed: quiet hours",
                    not_before=until,
                    uncount=True,
                )
        render = RENDERERS.get(row.kind)
        if render is None:
            log.error("no renderer for outbox kind %r (row %s)", row.kind, row.id)
            return Outcome(row.id, OutboxStatus.failed, f"no renderer for {row.kind}")
        extra: dict[str, Any] = {
            "learner": learner,
            "cohort": cohort,
            "user_settings": choices,
            "timezone": tz,
        }
        if self.settings is not None:
            extra["settings"] = self.settings
        ctx = RenderContext(session, self.content, self.i18n, self.clock, user, extra)
        language = resolve_language(user.language, None)
        try:
            with self.i18n.use_locale(language), self.i18n.context():
                outgoing = await render(ctx, row)
        except Skip as exc:
            log.info("skipped %s: %s", row.key, exc)
            return Outcome(row.id, OutboxStatus.skipped, str(exc) or "skipped by its renderer")
        except Exception as exc:
            log.exception("rendering %s failed", row.key)
            return Outcome(row.id, OutboxStatus.failed, f"render error: {type(exc).__name__}")
        lease_until = row.lease_until or now + timedelta(seconds=self.config.lease)
        return Job(row, outgoing, lease_until)

    # ----- sending

    def _is_blocked(self, chat_id: int) -> bool:
        until = self._blocked.get(chat_id)
        if until is None:
            return False
        if until < asyncio.get_running_loop().time():
            del self._blocked[chat_id]
            return False
        return True

    def _hand_back(self, row_id: int, reason: str, not_before: datetime | None = None) -> Outcome:
        return Outcome(
            row_id,
            OutboxStatus.pending,
            f"postponed: {reason}",
            not_before=not_before or self.clock.now(),
            uncount=True,
        )

    async def deliver(self, job: Job) -> Outcome | None:
        """Send one prepared row; its outcome, or None when the row is no longer ours."""
        row = job.row
        chat_id = row.recipient_id
        if job.lost:
            log.warning("lost the lease of %s: not sending it", row.key)
            return None
        if self._is_blocked(chat_id):
            return Outcome(row.id, OutboxStatus.failed, "blocked", deactivate=chat_id)
        async with self.limiter.slot(chat_id):
            now = self.clock.now()
            if job.lost:
                log.warning("lost the lease of %s: not sending it", row.key)
                return None
            margin = timedelta(seconds=self.config.send_timeout) + LEASE_MARGIN
            if job.lease_until - now < margin:
                return self._hand_back(row.id, "lease ran short", now + LEASE_MARGIN)
            if row.expires_at is not None and row.expires_at <= now:
                log.info("skipped %s: expired while waiting", row.key)
                return Outcome(row.id, OutboxStatus.skipped, "expired")
            try:
                message = await self._send(chat_id, job.outgoing)
            except TelegramRetryAfter as exc:
                log.warning("429 from Telegram: pausing all sends for %s s", exc.retry_after)
                metrics.TELEGRAM_429.inc()
                self.limiter.pause(exc.retry_after)
                return self._hand_back(
                    row.id,
                    f"429, retry after {exc.retry_after} s",
                    now + timedelta(seconds=exc.retry_after),
                )
            except TelegramForbiddenError as exc:
                self._blocked[chat_id] = asyncio.get_running_loop().time() + BLOCKED_MEMORY
                log.info("user %s blocked the bot: marked inactive", chat_id)
                return Outcome(
                    row.id, OutboxStatus.failed, f"blocked: {exc.message}", deactivate=chat_id
                )
            except TelegramUnauthorizedError as exc:
                log.error("Telegram refused the bot token: %s; pausing sends", exc.message)
                self.limiter.pause(UNAUTHORIZED_PAUSE)
                return self._hand_back(row.id, "unauthorized")
            except TelegramEntityTooLarge as exc:
                return Outcome(row.id, OutboxStatus.failed, f"too large: {exc.message}")
            except (TelegramNetworkError, TelegramServerError) as exc:
                return self._retry_or_fail(row, exc, now)
            except TelegramAPIError as exc:
                log.warning("sending %s failed: %s", row.key, exc.message)
                return Outcome(row.id, OutboxStatus.failed, f"rejected: {exc.message}")
            except Exception as exc:
                log.exception("sending %s failed", row.key)
                return Outcome(row.id, OutboxStatus.failed, f"error: {type(exc).__name__}")
        return Outcome(
            row.id, OutboxStatus.sent, sent_at=self.clock.now(), message_id=message.message_id
        )

    def _retry_or_fail(self, row: Outbox, exc: TelegramAPIError, now: datetime) -> Outcome:
        kind = "server error" if isinstance(exc, TelegramServerError) else "network error"
        if row.attempts >= self.config.max_attempts:
            log.warning("giving up %s after %d attempts: %s", row.key, row.attempts, exc.message)
            return Outcome(row.id, OutboxStatus.failed, f"{kind}: {exc.message}")
        delay = backoff(row.attempts, self.config.retry_base, self.config.retry_cap)
        log.info("retrying %s in %.0f s: %s", row.key, delay, exc.message)
        return Outcome(
            row.id,
            OutboxStatus.pending,
            f"retry: {kind}: {exc.message}",
            not_before=now + timedelta(seconds=delay),
        )

    async def _send(self, chat_id: int, out: Outgoing) -> Message:
        timeout = self.config.send_timeout
        if out.document is not None:
            name, data = out.document
            return await self.bot.send_document(
                chat_id,
                BufferedInputFile(data, filename=name),
                caption=out.text or None,
                reply_markup=out.reply_markup,
                request_timeout=timeout,
            )
        if out.photo is not None:
            return await self.bot.send_photo(
                chat_id,
                BufferedInputFile(out.photo, filename="image.png"),
                caption=out.text or None,
                reply_markup=out.reply_markup,
                request_timeout=timeout,
            )
        return await self.bot.send_message(
            chat_id, out.text, reply_markup=out.reply_markup, request_timeout=timeout
        )

    # ----- recording

    async def record(self, outcomes: Sequence[Outcome]) -> None:
        """Write outcomes in one transaction; only rows this worker still holds."""
        if not outcomes:
            return
        stmt = (
            update(OUTBOX)
            .where(
                OUTBOX.c.id == bindparam("b_id"),
                OUTBOX.c.claimed_by == self.id,
                OUTBOX.c.status == OutboxStatus.sending,
            )
            .values(
                status=bindparam("b_status"),
                error=bindparam("b_error"),
                sent_at=bindparam("b_sent_at", type_=UTCDateTime()),
                message_id=bindparam("b_message_id"),
                not_before=func.coalesce(
                    bindparam("b_not_before", type_=UTCDateTime()), OUTBOX.c.not_before
                ),
                attempts=OUTBOX.c.attempts - bindparam("b_uncount", type_=Integer()),
                # A finished row keeps who handled it; one going back to pending is free.
                claimed_by=case(
                    (bindparam("b_done", type_=Integer()) == 1, OUTBOX.c.claimed_by),
                    else_=None,
                ),
                lease_until=None,
            )
        )
        params = [
            {
                "b_id": o.row_id,
                "b_status": o.status,
                "b_error": o.error,
                "b_sent_at": o.sent_at,
                "b_message_id": o.message_id,
                "b_not_before": o.not_before,
                "b_uncount": 1 if o.uncount else 0,
                "b_done": 0 if o.status is OutboxStatus.pending else 1,
            }
            for o in outcomes
        ]
        blocked = sorted({o.deactivate for o in outcomes if o.deactivate is not None})
        async with self._exclusive(), self.sessionmaker() as session, session.begin():
            await session.execute(stmt, params)
            for chunk in _chunks(blocked):
                await session.execute(
                    update(User).where(User.id.in_(chunk)).values(is_active=False)
                )


@dataclass
class _Recipients:
    users: dict[int, User]
    learners: dict[int, Learner]
    cohorts: dict[int, Cohort]
    settings: dict[int, UserSettings]

    @classmethod
    async def load(cls, session: AsyncSession, ids: Sequence[int]) -> _Recipients:
        unique = sorted(set(ids))
        users: dict[int, User] = {}
        learners: dict[int, Learner] = {}
        settings: dict[int, UserSettings] = {}
        for chunk in _chunks(unique):
            users.update(
                (u.id, u) for u in await session.scalars(select(User).where(User.id.in_(chunk)))
            )
            learners.update(
                (x.user_id, x)
                for x in await session.scalars(select(Learner).where(Learner.user_id.in_(chunk)))
            )
            settings.update(
                (s.user_id, s)
                for s in await session.scalars(
                    select(UserSettings).where(UserSettings.user_id.in_(chunk))
                )
            )
        cohort_ids = sorted({x.cohort_id for x in learners.values() if x.cohort_id is not None})
        cohorts: dict[int, Cohort] = {}
        for chunk in _chunks(cohort_ids):
            cohorts.update(
                (c.id, c) for c in await session.scalars(select(Cohort).where(Cohort.id.in_(chunk)))
            )
        return cls(users, learners, cohorts, settings)


# --- for the app and the tests --------------------------------------------------------------


async def drain_outbox(app: App) -> DrainStats:
    """Send everything due now by the app's clock (tests drive time with a FrozenClock)."""
    return await app.delivery.drain()


async def serve(
    settings: Settings,
    *,
    once: bool = False,
    planner: bool = False,
    content: Content | None = None,
) -> int:
    """`biblio-bot worker`: only the delivery worker (and the planner with --planner),
    in a process of its own. SIGTERM or Ctrl-C stops it after the sends in flight."""
    import signal

    from bot.clock import SystemClock
    from bot.features import load_features
    from bot.i18n import make_i18n
    from content.loader import load_content
    from scheduler.planner import run_tick, start_scheduler
    from storage.db import make_engine, make_sessionmaker

    load_features()
    if content is None:
        content = load_content(settings.content_dir) if settings.content_dir else load_content()
    engine = make_engine(settings.database_url)
    sessionmaker = make_sessionmaker(engine)
    bot = make_sender(settings)
    clock = SystemClock()
    worker = DeliveryWorker(
        bot=bot,
        sessionmaker=sessionmaker,
        content=content,
        i18n=make_i18n(),
        clock=clock,
        config=DeliveryConfig.from_settings(settings),
        settings=settings,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, worker.stop)
    scheduler = None
    try:
        if planner:

            async def tick() -> None:
                if (await run_tick(sessionmaker, content, clock)).total:
                    worker.wake()

            scheduler = start_scheduler(tick, settings.planner_interval)
        if once:
            stats = await worker.drain()
            log.info(
                "drained: %d sent, %d skipped, %d failed, %d postponed",
                stats.sent,
                stats.skipped,
                stats.failed,
                stats.postponed,
            )
        else:
            await worker.run()
    finally:
        if scheduler is not None:
            scheduler.shutdown(wait=False)
        await bot.session.close()
        await engine.dispose()
    return 0
