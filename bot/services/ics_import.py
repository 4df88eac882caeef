"""Webinars from an .ics file, as Moodle, Google, Outlook and every calendar app export them.

Each VEVENT becomes one webinar per date: times in the event's own zone (TZID, with or
without a VTIMEZONE block; UTC "Z" times; floating times in the cohort's zone), a weekly
or any other RRULE expanded up to a bound, EXDATE and moved (RECURRENCE-ID) dates
honoured, cancelled events and past dates left out. Anything that cannot become a
webinar is reported by the event's name, with the reason, and the rest still imports."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
from dateutil.rrule import rrulestr  # type: ignore[import-untyped]

from bot.services.registration import N_

# An endless series ("every Monday") is cut here; a webinar series is 8-20 weeks.
MAX_OCCURRENCES = 26
# A file with more webinars than this is surely not one cohort's webinar calendar.
MAX_EVENTS = 200
MAX_FILE_BYTES = 1_000_000
DEFAULT_DURATION_MIN = 60
MAX_DURATION_MIN = 8 * 60
_URL = re.compile(r"https?://[^\s<>\"'\\]+", re.IGNORECASE)
# Where calendar apps put the meeting address, in the order we look.
_LINK_PROPERTIES = (
    "URL",
    "X-GOOGLE-CONFERENCE",
    "X-MICROSOFT-SKYPETEAMSMEETINGURL",
    "X-MICROSOFT-ONLINEMEETINGCONFLINK",
    "LOCATION",
    "DESCRIPTION",
)


@dataclass(frozen=True)
class IcsEvent:
    title: str
    starts_at: datetime  # UTC
    duration_min: int
    join_url: str

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "starts_at": self.starts_at.isoformat(),
            "duration_min": self.duration_min,
            "join_url": self.join_url,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IcsEvent:
        return cls(
            title=str(data["title"]),
            starts_at=datetime.fromisoformat(str(data["starts_at"])).astimezone(UTC),
            duration_min=int(data["duration_min"]),
            join_url=str(data["join_url"]),
        )


@dataclass(frozen=True)
class IcsProblem:
    """A reason (an English msgid with {placeholders}) about one event, or the file ("")."""

    event: str
    reason: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class IcsResult:
    events: list[IcsEvent] = field(default_factory=list)
    errors: list[IcsProblem] = field(default_factory=list)  # not imported
    notes: list[IcsProblem] = field(default_factory=list)  # imported, with a remark

    @property
    def file_error(self) -> bool:
        return any(not p.event for p in self.errors)


def _text(component: Any, name: str) -> str:
    value = component.get(name)
    if value is None:
        return ""
    if isinstance(value, list):
        value = value[0] if value else ""
    return str(value).strip()


def _event_name(component: Any, number: int) -> str:
    return _text(component, "SUMMARY") or _text(component, "UID") or f"#{number}"


def _join_url(component: Any) -> str | None:
    for name in _LINK_PROPERTIES:
        match = _URL.search(_text(component, name))
        if match:
            return match.group(0).rstrip(".,;)")
    return None


def _errors_of(component: Any) -> dict[str, str]:
    return {str(prop).upper(): str(reason) for prop, reason in getattr(component, "errors", [])}


def _moment(component: Any, name: str) -> date | datetime | None:
    """A DTSTART/DTEND/RECURRENCE-ID value, or None when absent or unreadable."""
    prop = component.get(name)
    if prop is None or name in _errors_of(component):
        return None
    value = getattr(prop, "dt", None)
    return value if isinstance(value, date) else None


def _local(moment: datetime, zone: tzinfo) -> tuple[datetime, tzinfo]:
    """A time as (naive wall-clock time, its zone); floating times take the cohort's."""
    if moment.tzinfo is None:
        return moment, zone
    return moment.replace(tzinfo=None), moment.tzinfo


def _aware(naive: datetime, zone: tzinfo) -> datetime:
    return naive.replace(tzinfo=zone).astimezone(UTC)


def _as_local_naive(value: date | datetime, zone: tzinfo) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value
        return value.astimezone(zone).replace(tzinfo=None)
    return datetime.combine(value, datetime.min.time())


def _exdates(component: Any, zone: tzinfo) -> set[datetime]:
    found: set[datetime] = set()
    raw = component.get("EXDATE")
    if raw is None:
        return found
    for group in raw if isinstance(raw, list) else [raw]:
        for item in getattr(group, "dts", []):
            value = getattr(item, "dt", None)
            if isinstance(value, date):
                found.add(_as_local_naive(value, zone))
    return found


def _occurrences(
    component: Any, start: datetime, zone: tzinfo
) -> tuple[list[datetime], bool, str | None]:
    """Local naive starts of a series (bounded), whether it was cut, or an error."""
    recur = component.get("RRULE")
    if recur is None:
        return [start], False, None
    if isinstance(recur, list):
        recur = recur[0]
    try:
        parts = recur.copy() if hasattr(recur, "copy") else dict(recur)
        until = parts.get("UNTIL")
        if until:
            # dateutil wants UNTIL in the same (naive, local) terms as DTSTART.
            parts["UNTIL"] = [_as_local_naive(until[0], zone)]
        text = icalendar.vRecur(parts).to_ical().decode()  # type: ignore[no-untyped-call]
        rule = rrulestr(text, dtstart=start)
    except Exception as exc:  # the library says what it could not read
        return [], False, str(exc)
    excluded = _exdates(component, zone)
    found: list[datetime] = []
    cut = False
    for number, moment in enumerate(rule):  # type: ignore[arg-type]
        if number >= MAX_OCCURRENCES:
            cut = True
            break
        if moment not in excluded:
            found.append(moment)
    return found, cut, None


def parse_ics(data: bytes, cohort_timezone: str, now: datetime) -> IcsResult:
    """Every future webinar the file describes, and what could not be taken, by name."""
    result = IcsResult()
    if len(data) > MAX_FILE_BYTES:
        result.errors.append(IcsProblem("", N_("the file is larger than 1 MB")))
        return result
    try:
        calendar = icalendar.Calendar.from_ical(data)
    except Exception as exc:
        result.errors.append(
            IcsProblem("", N_("it is not a calendar file (.ics): {detail}"), {"detail": str(exc)})
        )
        return result
    if getattr(calendar, "name", "") != "VCALENDAR":
        result.errors.append(IcsProblem("", N_("it is not a calendar file (.ics)")))
        return result
    zone = ZoneInfo(cohort_timezone)
    components = list(calendar.walk("VEVENT"))
    if not components:
        result.errors.append(IcsProblem("", N_("the file has no events")))
        return result

    # Dates moved or cancelled one by one (RECURRENCE-ID) replace their series' date.
    moved: set[tuple[str, datetime]] = set()
    for component in components:
        recurrence_id = _moment(component, "RECURRENCE-ID")
        if isinstance(recurrence_id, datetime):
            moved.add((_text(component, "UID"), _aware(*_local(recurrence_id, zone))))

    for number, component in enumerate(components, start=1):
        name = _event_name(component, number)
        result.events.extend(_one_event(component, name, zone, moved, now, result))
        if len(result.events) > MAX_EVENTS:
            result.events = []
            result.errors.append(
                IcsProblem("", N_("more than {count} webinars in one file"), {"count": MAX_EVENTS})
            )
            return result
    result.events.sort(key=lambda e: e.starts_at)
    return result


def _one_event(
    component: Any,
    name: str,
    zone: ZoneInfo,
    moved: set[tuple[str, datetime]],
    now: datetime,
    result: IcsResult,
) -> Iterable[IcsEvent]:
    def error(reason: str, **args: Any) -> list[IcsEvent]:
        result.errors.append(IcsProblem(name, reason, args))
        return []

    if _text(component, "STATUS").upper() == "CANCELLED":
        result.notes.append(IcsProblem(name, N_("cancelled in the calendar: left out")))
        return []
    problems = _errors_of(component)
    start = _moment(component, "DTSTART")
    if start is None:
        detail = problems.get("DTSTART")
        if detail:
            return error(N_("the start time cannot be read ({detail})"), detail=detail)
        return error(N_("it has no start time (DTSTART)"))
    if not isinstance(start, datetime):
        return error(N_("it is an all-day event; a webinar needs a start time"))
    local_start, event_zone = _local(start, zone)

    end = _moment(component, "DTEND")
    duration: timedelta | None = None
    if isinstance(end, datetime):
        end_local = _as_local_naive(end, event_zone) if end.tzinfo else end
        duration = end_local - local_start
    elif component.get("DURATION") is not None and "DURATION" not in problems:
        value = getattr(component.get("DURATION"), "dt", None)
        duration = value if isinstance(value, timedelta) else None
    elif "DTEND" in problems or "DURATION" in problems:
        detail = problems.get("DTEND") or problems.get("DURATION", "")
        return error(N_("the end time cannot be read ({detail})"), detail=detail)
    minutes = int(duration.total_seconds() // 60) if duration is not None else DEFAULT_DURATION_MIN
    if minutes <= 0:
        return error(N_("it ends before it starts"))
    minutes = min(minutes, MAX_DURATION_MIN)

    url = _join_url(component)
    if url is None:
        return error(
            N_("it has no join link: put the meeting address in URL, LOCATION or DESCRIPTION")
        )
    if len(url) > 500:
        return error(N_("its join link is longer than 500 characters"))

    starts, cut, rule_error = _occurrences(component, local_start, event_zone)
    if rule_error is not None:
        return error(N_("its repeat rule (RRULE) cannot be read ({detail})"), detail=rule_error)
    uid = _text(component, "UID")
    is_override = component.get("RECURRENCE-ID") is not None
    title = _text(component, "SUMMARY") or name
    events: list[IcsEvent] = []
    past = 0
    for local in starts:
        moment = _aware(local, event_zone)
        if not is_override and (uid, moment) in moved:
            continue  # this date was moved or cancelled by its own VEVENT
        if moment <= now:
            past += 1
            continue
        events.append(IcsEvent(title[:200], moment, minutes, url))
    if cut:
        result.notes.append(
            IcsProblem(
                name,
                N_("it has more than {count} dates: only the first {count} are taken"),
                {"count": MAX_OCCURRENCES},
            )
        )
    if not events and past:
        return error(N_("it is in the past"))
    if past:
        result.notes.append(
            IcsProblem(name, N_("dates in the past left out: {count}"), {"count": past})
        )
    return events
