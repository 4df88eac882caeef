"""What is due when: each feature registers a planner that turns the store's facts
(calendars, webinars, missed questions, placements) into outbox rows.

The planner tick (scheduler/planner.py) calls every registered planner with the window
it has not planned yet, [since, until). Planners insert rows with `outbox.enqueue`,
whose unique key makes planning the same moment twice (or from two processes) add
nothing. A planner returns how many new rows it added."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from content.loader import Content


@dataclass
class PlanContext:
    session: AsyncSession
    content: Content
    clock: Clock
    since: datetime  # start of the window not planned yet (UTC)
    until: datetime  # end of the window (UTC): usually now


Planner = Callable[[PlanContext], Awaitable[int]]
PLANNERS: dict[str, Planner] = {}


def planner(name: str) -> Callable[[Planner], Planner]:
    def register(fn: Planner) -> Planner:
        PLANNERS[name] = fn
        return fn

    return register
