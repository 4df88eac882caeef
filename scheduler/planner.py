"""The planner tick: turns what the store says is due into outbox rows.

Each tick reads PlannerState("main"), plans the window [since, until=now) with every
registered planner (bot.services.planning.PLANNERS) in one transaction, and stores
planned_until=now. The first tick ever looks back one day; after downtime the window
starts where the last tick stopped, so missed ticks are caught up (rows whose time has
passed carry expires_at where lateness matters, and the worker skips them).

APScheduler 3 runs the tick every minute and once at start-up, with a generous
misfire grace time (its default of 1 s would drop a tick after a busy second) and
coalescing (a backlog of missed runs is one tick: the window covers them all). Several
processes may tick: the state row is locked (PostgreSQL) or the transaction is
IMMEDIATE (SQLite), and the outbox's unique keys make planning a moment twice add nothing.

A planner that fails is rolled back on its own (a savepoint) and logged; the others'
rows are kept, and planned_until does not move, so the failed window is planned again
at the next tick.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.services.planning import PLANNERS, PlanContext
from content.loader import Content
from storage.models import PlannerState
from storage.repo import insert_ignore

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)

STATE = "main"
FIRST_RUN_LOOKBACK = timedelta(days=1)
MISFIRE_GRACE_SECONDS = 300


@dataclass
class TickResult:
    since: datetime
    until: datetime
    added: dict[str, int] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.added.values())


async def run_tick(
    sessionmaker: async_sessionmaker[AsyncSession],
    content: Content,
    clock: Clock,
    *,
    name: str = STATE,
) -> TickResult:
    now = clock.now()
    async with sessionmaker() as session, session.begin():
        state = await session.scalar(
            select(PlannerState).where(PlannerState.name == name).with_for_update()
        )
        since = state.planned_until if state is not None else now - FIRST_RUN_LOOKBACK
        result = TickResult(since=since, until=now)
        if since < now:
            ctx = PlanContext(session, content, clock, since, now)
            for planner_name, plan in PLANNERS.items():
                try:
                    async with session.begin_nested():
                        result.added[planner_name] = await plan(ctx)
                except Exception:
                    log.exception("planner %s failed on [%s, %s)", planner_name, since, now)
                    result.failed.append(planner_name)
        planned = since if result.failed else now
        await insert_ignore(
            session, PlannerState, [{"name": name, "planned_until": planned, "ticked_at": now}]
        )
        await session.execute(
            update(PlannerState).where(PlannerState.name == name).values(ticked_at=now)
        )
        if not result.failed:
            await session.execute(
                update(PlannerState)
                .where(PlannerState.name == name, PlannerState.planned_until < now)
                .values(planned_until=now)
            )
    if result.total:
        log.info("planned %d notifications for [%s, %s)", result.total, since, now)
    return result


async def plan_once(app: App) -> TickResult:
    """One planner tick by the app's clock (tests call it after moving a FrozenClock)."""
    result = await run_tick(app.sessionmaker, app.content, app.clock)
    if result.total and app.worker_task is not None:
        app.delivery.wake()
    return result


async def _scheduled(tick: Callable[[], Awaitable[object]]) -> None:
    try:
        await tick()
    except Exception:
        log.exception("planner tick failed; the next tick plans the same window again")


def start_scheduler(
    tick: Callable[[], Awaitable[object]], interval: float = 60.0
) -> AsyncIOScheduler:
    """Run `tick` now and then every `interval` seconds, in this event loop."""
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.add_job(
        _scheduled,
        IntervalTrigger(seconds=interval, timezone=UTC),
        args=[tick],
        id="planner",
        name="planner tick",
        next_run_time=datetime.now(UTC),  # once at start-up, then every interval
        misfire_grace_time=MISFIRE_GRACE_SECONDS,
        coalesce=True,
        max_instances=1,
        replace_existing=True,
    )
    scheduler.start()
    return scheduler
