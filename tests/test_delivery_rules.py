"""The pure rules of delivery: local times across daylight saving (Riga, Rome, Sofia,
Athens), quiet hours, calendars, back-off and the rate limiter."""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.services.localtime import at_local, hhmm, in_quiet_hours, quiet_until
from bot.services.releases import (
    cohort_calendar,
    covered_modules,
    current_release,
    release_schedule,
)
from content.loader import load_content
from scheduler.limiter import RateLimiter, backoff
from storage.models import Cohort

RIGA, ROME, SOFIA, ATHENS = (
    ZoneInfo("Europe/Riga"),
    ZoneInfo("Europe/Rome"),
    ZoneInfo("Europe/Sofia"),
    ZoneInfo("Europe/Athens"),
)
EET_ZONES = [RIGA, SOFIA, ATHENS]
ALL_ZONES = [RIGA, ROME, SOFIA, ATHENS]
# 2027: summer time starts on Sunday 28 March and ends on Sunday 31 October, 01:00 UTC.
SPRING = date(2027, 3, 28)
AUTUMN = date(2027, 10, 31)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# --- local times ---------------------------------------------------------------------------


@pytest.mark.parametrize("tz", ALL_ZONES, ids=lambda z: z.key)
def test_release_hour_is_local_on_both_sides_of_the_change(tz):
    winter_offset = 1 if tz is ROME else 2
    before = at_local(date(2027, 3, 22), 9 * 60, tz)
    after = at_local(date(2027, 3, 29), 9 * 60, tz)
    assert before == utc(2027, 3, 22, 9 - winter_offset)
    assert after == utc(2027, 3, 29, 9 - winter_offset - 1)
    assert before.astimezone(tz).hour == after.astimezone(tz).hour == 9
    autumn_before = at_local(date(2027, 10, 25), 9 * 60, tz)
    autumn_after = at_local(date(2027, 11, 1), 9 * 60, tz)
    assert autumn_before == utc(2027, 10, 25, 9 - winter_offset - 1)
    assert autumn_after == utc(2027, 11, 1, 9 - winter_offset)


@pytest.mark.parametrize("tz", EET_ZONES, ids=lambda z: z.key)
def test_skipped_and_repeated_hours_eet(tz):
    # 03:30 does not exist on 28 March: moved forward by the gap (04:30 EEST).
    moment = at_local(SPRING, 3 * 60 + 30, tz)
    assert moment == utc(2027, 3, 28, 1, 30)
    assert moment.astimezone(tz).hour == 4
    # 03:30 happens twice on 31 October: the first time (still EEST).
    assert at_local(AUTUMN, 3 * 60 + 30, tz) == utc(2027, 10, 31, 0, 30)


def test_skipped_and_repeated_hours_rome():
    assert at_local(SPRING, 2 * 60 + 30, ROME) == utc(2027, 3, 28, 1, 30)  # 03:30 CEST
    assert at_local(AUTUMN, 2 * 60 + 30, ROME) == utc(2027, 10, 31, 0, 30)  # first 02:30


def test_at_local_rejects_out_of_range():
    with pytest.raises(ValueError):
        at_local(SPRING, 24 * 60, RIGA)


# --- quiet hours ---------------------------------------------------------------------------

DEFAULT = (21 * 60, 8 * 60)


def test_quiet_hours_span_midnight():
    # Riga in March (EET, +2): 22:00 local is 20:00 UTC; the quiet ends 08:00 = 06:00 UTC.
    assert quiet_until(utc(2027, 3, 10, 20), RIGA, *DEFAULT) == utc(2027, 3, 11, 6)
    assert quiet_until(utc(2027, 3, 11, 1), RIGA, *DEFAULT) == utc(2027, 3, 11, 6)
    assert quiet_until(utc(2027, 3, 11, 10), RIGA, *DEFAULT) is None
    # The edges: 21:00 is quiet, 08:00 is not, 07:59 is.
    assert in_quiet_hours(utc(2027, 3, 10, 19), RIGA, *DEFAULT)
    assert not in_quiet_hours(utc(2027, 3, 10, 6), RIGA, *DEFAULT)
    assert in_quiet_hours(utc(2027, 3, 10, 5, 59), RIGA, *DEFAULT)
    assert not in_quiet_hours(utc(2027, 3, 10, 18, 59), RIGA, *DEFAULT)


@pytest.mark.parametrize("tz", ALL_ZONES, ids=lambda z: z.key)
def test_quiet_night_of_the_spring_change(tz):
    # 22:00 local on Saturday 27 March; the night is an hour shorter; 08:00 summer time.
    evening = at_local(date(2027, 3, 27), 22 * 60, tz)
    until = quiet_until(evening, tz, *DEFAULT)
    assert until is not None
    assert until.astimezone(tz).replace(tzinfo=None) == datetime(2027, 3, 28, 8)
    assert until - evening == timedelta(hours=9)  # 10 wall-clock hours, 9 real ones


@pytest.mark.parametrize("tz", ALL_ZONES, ids=lambda z: z.key)
def test_quiet_night_of_the_autumn_change(tz):
    evening = at_local(date(2027, 10, 30), 22 * 60, tz)
    until = quiet_until(evening, tz, *DEFAULT)
    assert until is not None
    assert until.astimezone(tz).replace(tzinfo=None) == datetime(2027, 10, 31, 8)
    assert until - evening == timedelta(hours=11)
    # Inside the repeated hour the night is still quiet, both times round.
    hour = 2 if tz is ROME else 3
    first = datetime(2027, 10, 31, hour, 15, tzinfo=tz)
    second = first.replace(fold=1)
    for moment in (first, second):
        assert quiet_until(moment.astimezone(UTC), tz, *DEFAULT) == until


def test_quiet_end_inside_the_repeated_hour():
    # Quiet until 03:30 in Riga; at 03:10 of the second (EET) pass the first 03:30 has
    # gone: the quiet hours end at the second 03:30, not in the past.
    start, end = 21 * 60, 3 * 60 + 30
    second_pass = datetime(2027, 10, 31, 3, 10, tzinfo=RIGA, fold=1).astimezone(UTC)
    assert second_pass == utc(2027, 10, 31, 1, 10)
    assert quiet_until(second_pass, RIGA, start, end) == utc(2027, 10, 31, 1, 30)
    first_pass = datetime(2027, 10, 31, 3, 10, tzinfo=RIGA).astimezone(UTC)
    assert quiet_until(first_pass, RIGA, start, end) == utc(2027, 10, 31, 0, 30)


def test_quiet_end_in_the_skipped_hour():
    # Quiet until 03:30 on the spring night: 03:30 does not exist, it ends at 04:30 EEST.
    until = quiet_until(utc(2027, 3, 27, 22), ATHENS, 22 * 60, 3 * 60 + 30)
    assert until == utc(2027, 3, 28, 1, 30)


def test_quiet_hours_within_a_day_and_off():
    assert quiet_until(utc(2027, 3, 10, 12), ROME, 13 * 60, 15 * 60) == utc(2027, 3, 10, 14)
    assert quiet_until(utc(2027, 3, 10, 14), ROME, 13 * 60, 15 * 60) is None
    assert quiet_until(utc(2027, 3, 10, 23), ROME, 0, 0) is None
    assert hhmm(21 * 60) == "21:00" and hhmm(-60) == "23:00"


# --- calendars -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def content():
    return load_content()


def _cohort(**kw) -> Cohort:
    values = dict(
        id=7,
        name="Test",
        country="LV",
        language="lv",
        timezone="Europe/Riga",
        mooc_start=date(2027, 3, 8),
        self_paced=False,
        release_hour=9,
        calendar=None,
    )
    values.update(kw)
    return Cohort(**values)


@pytest.mark.parametrize("tz", ALL_ZONES, ids=lambda z: z.key)
def test_recommended_calendar_dates(content, tz):
    cohort = _cohort(timezone=tz.key)
    schedule = release_schedule(cohort, content.calendar)
    assert [r.week for r in schedule] == list(range(1, 9))
    assert [r.modules for r in schedule][:2] == [(1, 32, 22), (21, 3, 4)]
    for n, release in enumerate(schedule):
        local = release.at.astimezone(tz)
        assert local.date() == date(2027, 3, 8) + timedelta(days=7 * n)
        assert (local.hour, local.minute) == (9, 0)
    # Weeks 1-3 in winter time, 4-8 in summer time: an hour earlier in UTC.
    assert schedule[3].at - schedule[2].at == timedelta(days=7, hours=-1)


def test_cohort_own_calendar_and_release_hour(content):
    own = {"name": "Rīga", "weeks": [{"week": 1, "modules": [1]}, {"week": 3, "modules": [4, 5]}]}
    cohort = _cohort(calendar=own, release_hour=7)
    schedule = release_schedule(cohort, cohort_calendar(cohort, content))
    assert [(r.week, r.modules) for r in schedule] == [(1, (1,)), (3, (4, 5))]
    assert schedule[1].at == utc(2027, 3, 22, 5)  # 07:00 EET
    broken = _cohort(calendar={"weeks": "nonsense"})
    assert cohort_calendar(broken, content) is content.calendar


def test_self_paced_calendar_starts_at_enrolment(content):
    cohort = _cohort(self_paced=True, timezone="Europe/Brussels")
    enrolled = utc(2027, 3, 10, 14, 37)  # Wednesday 15:37 CET
    schedule = release_schedule(cohort, content.calendar, enrolled)
    assert schedule[0].at == enrolled
    brussels = ZoneInfo("Europe/Brussels")
    for n, release in enumerate(schedule[1:], start=1):
        local = release.at.astimezone(brussels)
        assert local.date() == date(2027, 3, 10) + timedelta(days=7 * n)
        assert (local.hour, local.minute) == (9, 0)
    with pytest.raises(ValueError):
        release_schedule(cohort, content.calendar)


def test_current_week_and_webinar_topics(content):
    schedule = release_schedule(_cohort(), content.calendar)
    assert current_release(schedule, utc(2027, 3, 1)) is None
    assert current_release(schedule, utc(2027, 3, 16)).week == 2
    # A webinar on Thursday of week 2 covers week 1's modules.
    assert covered_modules(schedule, utc(2027, 3, 18, 15)) == [1, 32, 22]
    assert covered_modules(schedule, utc(2027, 3, 11, 15)) == []
    assert covered_modules(schedule, utc(2027, 5, 6, 15)) == [17, 18, 31]  # week 7's


# --- back-off and rate limiting --------------------------------------------------------------


def test_backoff_doubles_up_to_the_cap():
    assert [backoff(n, 5, 60) for n in range(0, 7)] == [0, 5, 10, 20, 40, 60, 60]
    assert backoff(500, 1, 900) == 900


async def _timed_sends(limiter, chats, latency=0.0):
    """Start a send per chat at once; return (start, end, chat) per send, by start."""
    times: list[tuple[float, float, int]] = []

    async def one(chat):
        async with limiter.slot(chat):
            start = time.monotonic()
            if latency:
                await asyncio.sleep(latency)
            times.append((start, time.monotonic(), chat))

    await asyncio.gather(*(one(c) for c in chats))
    return sorted(times)


async def test_limiter_spaces_sends_evenly_at_the_rate():
    limiter = RateLimiter(50, per_chat_interval=1.0)
    times = await _timed_sends(limiter, range(60))
    starts = [s for s, _e, _c in times]
    # Never faster than the rate. (How close to the rate it gets is a speed figure, and
    # speed is measured by `biblio-bot bench delivery`, not asserted on a loaded machine.)
    elapsed = starts[-1] - starts[0]
    assert elapsed >= 59 / 50 * 0.98
    for i, start in enumerate(starts):  # never more than 50 in any one second
        assert sum(1 for s in starts[i:] if s < start + 1.0) <= 50


async def test_limiter_counts_slow_requests_against_the_window():
    # A send that was answered late may have arrived late: a new one starts only when
    # fewer than `capacity` sends are in flight or were answered within the window.
    limiter = RateLimiter(5, per_chat_interval=0)
    times = await _timed_sends(limiter, range(12), latency=0.15)
    for start, _end, _chat in times:
        busy = sum(1 for s, e, _c in times if s < start and e > start - limiter.window)
        assert busy <= limiter.capacity - 1
    starts = [s for s, _e, _c in times]
    assert starts[-1] - starts[0] >= 2 * limiter.window


async def test_limiter_one_send_per_chat_interval():
    limiter = RateLimiter(1000, per_chat_interval=0.2)
    times = await _timed_sends(limiter, [7, 7, 7, 8], latency=0.01)
    seven = [(s, e) for s, e, c in times if c == 7]
    for (_s1, e1), (s2, _e2) in itertools.pairwise(seven):
        assert s2 - e1 >= 0.2 - 0.002  # after the previous answer, not its start
    eight = next(s for s, _e, c in times if c == 8)
    assert eight - times[0][0] < 0.1  # another chat does not wait for chat 7


async def test_limiter_pause_stops_everything():
    limiter = RateLimiter(1000, per_chat_interval=0)
    limiter.pause(0.3)
    began = time.monotonic()
    times = await _timed_sends(limiter, [1, 2, 3])
    assert times[0][0] - began >= 0.29
    assert limiter.pauses == 1 and limiter.paused_for == 0


def test_limiter_rejects_bad_rates():
    with pytest.raises(ValueError):
        RateLimiter(0)
    with pytest.raises(ValueError):
        RateLimiter(1, per_chat_interval=-1)
