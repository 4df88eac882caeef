"""A cohort's calendar as trainers see and change it: which week releases what and when,
a week off for a holiday, a calendar file of their own."""

from __future__ import annotations

import asyncio
import re
import tempfile
from datetime import date, datetime, timedelta
from pathlib import Path

from bot.services.localtime import at_local, zone
from bot.services.releases import cohort_calendar, covered_modules, release_schedule
from content.loader import Content, Problem, Report, load_calendar
from content.schema import Calendar, CalendarWeek
from storage.models import Cohort

MAX_WEEK = 52


def calendar_of(cohort: Cohort, content: Content) -> Calendar:
    """The cohort's own calendar, else the recommended one (as the releases read it)."""
    return cohort_calendar(cohort, content)


def release_at(cohort: Cohort, week: int) -> datetime:
    """When week `week` of a cohort on common dates opens (its first day, release hour)."""
    minutes = min(max(cohort.release_hour, 0), 23) * 60
    return at_local(cohort.mooc_start + timedelta(weeks=week - 1), minutes, zone(cohort.timezone))


def released_modules(cohort: Cohort, content: Content, now: datetime) -> list[int]:
    """Modules opened by now, in calendar order, each once (a self-paced cohort has no
    common dates: nothing is released for the group as a whole)."""
    if cohort.self_paced:
        return []
    seen: list[int] = []
    for release in release_schedule(cohort, calendar_of(cohort, content)):
        if release.at > now:
            break
        seen.extend(n for n in release.modules if n not in seen)
    return seen


def default_webinar_modules(cohort: Cohort, content: Content, starts_at: datetime) -> list[int]:
    """A webinar covers the modules released the week before it (as the reminders say)."""
    schedule = release_schedule(cohort, calendar_of(cohort, content), starts_at)
    return covered_modules(schedule, starts_at)


def shift_calendar(calendar: Calendar, from_week: int) -> Calendar:
    """A week off: weeks from `from_week` on move one week later."""
    last = max(w.week for w in calendar.weeks)
    if last + 1 > MAX_WEEK and from_week <= last:
        raise ValueError(f"the calendar would run past week {MAX_WEEK}")
    weeks = [
        CalendarWeek(week=w.week + 1 if w.week >= from_week else w.week, modules=list(w.modules))
        for w in calendar.weeks
    ]
    return calendar.model_copy(update={"weeks": weeks})


def future_weeks(cohort: Cohort, calendar: Calendar, now: datetime) -> list[int]:
    """Weeks not released yet: only these can still move."""
    return [w.week for w in calendar.weeks if release_at(cohort, w.week) > now]


def week_dates(cohort: Cohort, calendar: Calendar) -> list[tuple[int, date, list[int]]]:
    return [
        (w.week, cohort.mooc_start + timedelta(weeks=w.week - 1), list(w.modules))
        for w in calendar.weeks
    ]


def _safe_file_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).name).strip("._") or "calendar"
    return cleaned if cleaned.endswith((".yaml", ".yml")) else cleaned + ".yaml"


def _check_file(data: bytes, file_name: str, content: Content) -> tuple[Calendar | None, Report]:
    report = Report()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        report.error(_safe_file_name(file_name), "", "not a text file (UTF-8 YAML expected)")
        return None, report
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / _safe_file_name(file_name)
        path.write_bytes(data)
        calendar = load_calendar(path, content.modules, report)
    return (calendar if not report.errors else None), report


async def check_calendar_file(
    data: bytes, file_name: str, content: Content
) -> tuple[Calendar | None, list[Problem], list[Problem]]:
    """A calendar file sent by a trainer, validated like the shipped one: the calendar
    (None when it has errors), the errors and the warnings, each naming file, week, reason."""
    if len(data) > 200_000:
        return None, [Problem(_safe_file_name(file_name), "", "the file is larger than 200 kB")], []
    calendar, report = await asyncio.to_thread(_check_file, data, file_name, content)
    return calendar, report.errors, report.warnings
