"""Local-time rules. Every stored time is UTC; every rule a learner feels (the release
hour, quiet hours, the dates shown) is local to a time zone and converted with zoneinfo.

Daylight saving: a local time that does not exist (the hour skipped in spring) is moved
forward by the gap; a local time that happens twice (the hour repeated in autumn) means
its first occurrence. Both are tested for Europe/Riga, Rome, Sofia and Athens.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_skeleton

log = logging.getLogger(__name__)

MINUTES_PER_DAY = 24 * 60
DEFAULT_QUIET_START = 21 * 60
DEFAULT_QUIET_END = 8 * 60


@lru_cache(maxsize=256)
def zone(name: str | None, fallback: str = "UTC") -> ZoneInfo:
    """The zone called `name`; an unknown or empty name gives `fallback` (logged)."""
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            log.warning("unknown time zone %r: using %s", name, fallback)
    return ZoneInfo(fallback)


def at_local(day: date, minutes: int, tz: ZoneInfo) -> datetime:
    """The UTC moment when the clocks in `tz` show `day` at `minutes` after midnight.

    A skipped local time (spring) is moved forward by the gap: with fold=0 zoneinfo reads
    it with the offset in force before the change, which lands after the gap. A repeated
    local time (autumn) is its first occurrence (fold=0)."""
    if not 0 <= minutes < MINUTES_PER_DAY:
        raise ValueError(f"minutes after midnight out of range: {minutes}")
    local = datetime.combine(day, time(minutes // 60, minutes % 60), tzinfo=tz)
    return local.astimezone(UTC)


def local_minutes(moment: datetime, tz: ZoneInfo) -> int:
    local = moment.astimezone(tz)
    return local.hour * 60 + local.minute


def quiet_until(moment: datetime, tz: ZoneInfo, start: int, end: int) -> datetime | None:
    """When `moment` falls inside the local quiet hours [start, end) (minutes after
    midnight; start > end spans midnight; start == end means no quiet hours), the UTC
    moment they end; otherwise None."""
    if start == end:
        return None
    local = moment.astimezone(tz)
    now_min = local.hour * 60 + local.minute
    today = local.date()
    if start < end:
        end_day = today if start <= now_min < end else None
    elif now_min >= start:
        end_day = today + timedelta(days=1)
    elif now_min < end:
        end_day = today
    else:
        end_day = None
    if end_day is None:
        return None
    until = at_local(end_day, end, tz)
    if until <= moment:
        # The repeated autumn hour: `moment` is in its second pass, after the first
        # occurrence of the end time. The quiet hours end at the second occurrence.
        second = datetime.combine(end_day, time(end // 60, end % 60), tzinfo=tz).replace(fold=1)
        until = second.astimezone(UTC)
        if until <= moment:
            return None
    return until


def in_quiet_hours(moment: datetime, tz: ZoneInfo, start: int, end: int) -> bool:
    return quiet_until(moment, tz, start, end) is not None


def hhmm(minutes: int) -> str:
    minutes %= MINUTES_PER_DAY
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def format_day(moment: datetime, tz: ZoneInfo, locale: str) -> str:
    """E.g. "Thursday, March 11" / "ceturtdiena, 11. marts", in the local date."""
    return str(format_skeleton("MMMMEEEEd", moment.astimezone(tz), locale=locale))


def format_moment(moment: datetime, tz: ZoneInfo, locale: str) -> str:
    """The local date and a 24-hour time, e.g. "Thursday, March 11, 17:00"."""
    local = moment.astimezone(tz)
    return f"{format_day(local, tz, locale)}, {local:%H:%M}"
