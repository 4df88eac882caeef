"""Weekly module releases, webinar reminders and recordings: the planners that put them in
the outbox, their renderers, and the catch-up for a learner who joins mid-course.

Calendars
- A cohort follows the recommended calendar (content/calendar.yaml) unless
  `Cohort.calendar` holds its own, in the same format.
- Week N of a cohort is released on `mooc_start + 7*(N-1)` days at the cohort's
  `release_hour`, local time in the cohort's zone (so 09:00 stays 09:00 across the
  daylight-saving change).
- The open self-paced cohort has no common start: each learner runs on their own
  calendar from their enrolment. The first week is released with the enrolment itself
  (the learner came to start now); week N follows on the enrolment's local date
  + 7*(N-1) days at the release hour.
- A learner is planned only the weeks released after they enrolled. What was released
  before comes as ONE catch-up summary, planned by `plan_catch_up` when the enrolment is
  confirmed (handlers/enrol.py), not as a burst of old messages.

Webinars: reminders 24 h and 1 h before, with the join link and an .ics file; they expire
when the webinar starts (a reminder that could not go out before, because the bot was
down or the learner's quiet hours lasted past the start, is skipped and logged, never
sent late). When the trainer sets `recording_url`, the cohort is told once.

Every row is rendered at send time, in the recipient's language, from the store as it is
then: a cancelled or moved webinar, or a learner who changed cohort, is skipped.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _
from babel.numbers import format_decimal
from icalendar import Calendar as ICalendar
from icalendar import Event
from pydantic import ValidationError
from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.cohorts import cohort_title
from bot.services.localtime import at_local, format_day, format_moment, zone
from bot.services.outbox import (
    Outgoing,
    Planned,
    RenderContext,
    Skip,
    enqueue_many,
    enqueue_select,
    renderer,
)
from bot.services.planning import PlanContext, planner
from bot.services.registration import N_
from content.loader import Content
from content.schema import Calendar
from storage.models import Cohort, Learner, LearnerStatus, Outbox, User, Webinar

log = logging.getLogger(__name__)

RELEASE = "release"
CATCH_UP = "catch_up"
WEBINAR_24H = "webinar_24h"
WEBINAR_1H = "webinar_1h"
RECORDING = "recording"
REMINDER_LEADS: dict[str, timedelta] = {
    WEBINAR_24H: timedelta(hours=24),
    WEBINAR_1H: timedelta(hours=1),
}
# An enrolment that commits just after the planner passed a release moment (the learner
# pressed "Confirm" a second before 09:00) is picked up by the next ticks.
LATE_COMMIT_GRACE = timedelta(minutes=5)
# Recordings of webinars older than this are not announced any more.
RECORDING_HORIZON = timedelta(days=14)
# The callback data of the "Practise" buttons; the quiz feature handles it.
PRACTISE_CALLBACK = "qz:start:{module}"
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
DEFAULT_MOODLE_URL = "https://moodle.example.org/course/view.php?id=biblio"


# --- calendars ----------------------------------------------------------------------------


_CALENDARS: dict[str, Calendar] = {}


def cohort_calendar(cohort: Cohort, content: Content) -> Calendar:
    """The cohort's own calendar when it has a valid one, else the recommended one."""
    if not cohort.calendar:
        return content.calendar
    key = json.dumps(cohort.calendar, sort_keys=True)
    calendar = _CALENDARS.get(key)
    if calendar is None:
        try:
            calendar = Calendar.model_validate(cohort.calendar)
        except ValidationError as exc:
            log.error(
                "cohort %s has an invalid calendar (%d problems): using the recommended one",
                cohort.id,
                exc.error_count(),
            )
            calendar = content.calendar
        if len(_CALENDARS) > 256:
            _CALENDARS.clear()
        _CALENDARS[key] = calendar
    return calendar


def cohort_zone(cohort: Cohort | None, fallback: str = "UTC") -> ZoneInfo:
    return zone(cohort.timezone if cohort else None, fallback)


@dataclass(frozen=True)
class WeekRelease:
    week: int
    at: datetime  # UTC
    modules: tuple[int, ...]


def release_schedule(
    cohort: Cohort, calendar: Calendar, enrolled_at: datetime | None = None
) -> list[WeekRelease]:
    """When each week of the calendar is released: the cohort's common dates, or for the
    self-paced cohort the learner's own (from `enrolled_at`)."""
    tz = cohort_zone(cohort)
    minutes = min(max(cohort.release_hour, 0), 23) * 60
    first = calendar.weeks[0].week
    out: list[WeekRelease] = []
    if cohort.self_paced:
        if enrolled_at is None:
            raise ValueError("a self-paced calendar starts at the learner's enrolment")
        anchor = enrolled_at.astimezone(tz).date()
        for week in calendar.weeks:
            at = (
                enrolled_at
                if week.week == first
                else at_local(anchor + timedelta(days=7 * (week.week - first)), minutes, tz)
            )
            out.append(WeekRelease(week.week, at, tuple(week.modules)))
        return out
    for week in calendar.weeks:
        day = cohort.mooc_start + timedelta(days=7 * (week.week - 1))
        out.append(WeekRelease(week.week, at_local(day, minutes, tz), tuple(week.modules)))
    return out


def learner_schedule(cohort: Cohort, learner: Learner, content: Content) -> list[WeekRelease]:
    return release_schedule(cohort, cohort_calendar(cohort, content), learner.enrolled_at)


def current_release(schedule: Sequence[WeekRelease], now: datetime) -> WeekRelease | None:
    """The latest week released by `now` (None before the first)."""
    released = [r for r in schedule if r.at <= now]
    return released[-1] if released else None


def covered_modules(schedule: Sequence[WeekRelease], webinar_start: datetime) -> list[int]:
    """What a webinar covers by default: the modules opened the week before it, i.e. of
    the week preceding the one the webinar falls in."""
    before = [r for r in schedule if r.at <= webinar_start]
    if len(before) < 2:
        return []
    return list(before[-2].modules)


def release_reference(cohort_id: int, week: int) -> str:
    return f"{cohort_id}:w{week}"


def webinar_reference(webinar: Webinar) -> str:
    # The start is part of the key: a webinar moved to another time gets new reminders.
    return f"{webinar.id}@{webinar.starts_at.astimezone(UTC):%Y%m%dT%H%MZ}"


# --- planning -----------------------------------------------------------------------------


def audience(cohort_id: int) -> Select[tuple[int]]:
    """The learners who get the cohort's notifications: enrolled, consenting, reachable."""
    return (
        select(Learner.user_id)
        .join(User, User.id == Learner.user_id)
        .where(
            Learner.cohort_id == cohort_id,
            Learner.status == LearnerStatus.enrolled,
            User.consent_version.is_not(None),
            User.is_active.is_(True),
        )
    )


def _release_rows(
    cohort_id: int, release: WeekRelease, recipients: Iterable[int]
) -> Iterable[Planned]:
    for user_id in recipients:
        yield Planned(
            kind=RELEASE,
            reference=release_reference(cohort_id, release.week),
            recipient_id=user_id,
            not_before=release.at,
            payload={"cohort_id": cohort_id, "week": release.week},
        )


async def _plan_cohort(ctx: PlanContext, cohort: Cohort) -> int:
    added = 0
    for release in release_schedule(cohort, cohort_calendar(cohort, ctx.content)):
        if ctx.since <= release.at < ctx.until:
            query = audience(cohort.id).where(Learner.enrolled_at < release.at)
        elif ctx.since - LATE_COMMIT_GRACE <= release.at < ctx.since:
            query = audience(cohort.id).where(
                Learner.enrolled_at < release.at,
                Learner.enrolled_at >= release.at - LATE_COMMIT_GRACE,
            )
        else:
            continue
        added += await _enqueue_release(ctx, cohort.id, release, query)
    return added


async def _enqueue_release(
    ctx: PlanContext, cohort_id: int, release: WeekRelease, recipients: Select[tuple[int]]
) -> int:
    return await enqueue_select(
        ctx.session,
        kind=RELEASE,
        reference=release_reference(cohort_id, release.week),
        recipients=recipients,
        not_before=release.at,
        payload={"cohort_id": cohort_id, "week": release.week},
    )


async def _plan_self_paced(ctx: PlanContext, cohort: Cohort) -> int:
    calendar = cohort_calendar(cohort, ctx.content)
    tz = cohort_zone(cohort)
    minutes = min(max(cohort.release_hour, 0), 23) * 60
    first = calendar.weeks[0]
    added = 0
    # The first week goes with the enrolment (plan_catch_up plans it at once; this is
    # the safety net for learners enrolled some other way).
    rows = await ctx.session.execute(
        audience(cohort.id)
        .add_columns(Learner.enrolled_at)
        .where(Learner.enrolled_at >= ctx.since, Learner.enrolled_at < ctx.until)
    )
    added += await enqueue_many(
        ctx.session,
        (
            row
            for user_id, enrolled_at in rows
            for row in _release_rows(
                cohort.id, WeekRelease(first.week, enrolled_at, tuple(first.modules)), [user_id]
            )
        ),
    )
    # Later weeks: each local day whose release hour falls in the window releases week N
    # to those who enrolled 7*(N-1) days before (their local date).
    day = ctx.since.astimezone(tz).date() - timedelta(days=1)
    last = ctx.until.astimezone(tz).date() + timedelta(days=1)
    while day <= last:
        at = at_local(day, minutes, tz)
        if ctx.since <= at < ctx.until:
            for week in calendar.weeks[1:]:
                anchor = day - timedelta(days=7 * (week.week - first.week))
                start, end = at_local(anchor, 0, tz), at_local(anchor + timedelta(days=1), 0, tz)
                recipients = audience(cohort.id).where(
                    Learner.enrolled_at >= start, Learner.enrolled_at < end
                )
                release = WeekRelease(week.week, at, tuple(week.modules))
                added += await _enqueue_release(ctx, cohort.id, release, recipients)
        day += timedelta(days=1)
    return added


@planner("releases")
async def plan_releases(ctx: PlanContext) -> int:
    added = 0
    for cohort in list(await ctx.session.scalars(select(Cohort).order_by(Cohort.id))):
        if cohort.self_paced:
            added += await _plan_self_paced(ctx, cohort)
        else:
            added += await _plan_cohort(ctx, cohort)
    return added


@planner("webinars")
async def plan_webinars(ctx: PlanContext) -> int:
    added = 0
    for kind, lead in REMINDER_LEADS.items():
        webinars = await ctx.session.scalars(
            select(Webinar)
            .where(
                Webinar.cancelled.is_(False),
                Webinar.starts_at >= ctx.since + lead,
                Webinar.starts_at < ctx.until + lead,
            )
            .order_by(Webinar.starts_at, Webinar.id)
        )
        for webinar in list(webinars):
            added += await enqueue_select(
                ctx.session,
                kind=kind,
                reference=webinar_reference(webinar),
                recipients=audience(webinar.cohort_id),
                not_before=webinar.starts_at - lead,
                expires_at=webinar.starts_at,
                payload={"webinar_id": webinar.id, "starts_at": webinar.starts_at.isoformat()},
            )
    # Recordings: once per webinar, when the trainer has added the link.
    webinars = await ctx.session.scalars(
        select(Webinar).where(
            Webinar.recording_url.is_not(None),
            Webinar.recording_notified_at.is_(None),
            Webinar.cancelled.is_(False),
            Webinar.starts_at < ctx.until,
            Webinar.starts_at >= ctx.until - RECORDING_HORIZON,
        )
    )
    for webinar in list(webinars):
        ends = webinar.starts_at + timedelta(minutes=webinar.duration_min)
        added += await enqueue_select(
            ctx.session,
            kind=RECORDING,
            reference=webinar.id,
            recipients=audience(webinar.cohort_id),
            not_before=max(ends, ctx.until),
            payload={"webinar_id": webinar.id},
        )
        webinar.recording_notified_at = ctx.until
    return added


async def plan_catch_up(
    session: AsyncSession, learner: Learner, content: Content, now: datetime
) -> int:
    """Called when an enrolment is confirmed. In a cohort under way: one summary of the
    weeks released before the learner enrolled. In the self-paced cohort: the first
    week, at once. Idempotent (a profile edit plans nothing new)."""
    if learner.cohort_id is None or learner.status is not LearnerStatus.enrolled:
        return 0
    cohort = await session.get(Cohort, learner.cohort_id)
    if cohort is None:
        return 0
    calendar = cohort_calendar(cohort, content)
    schedule = release_schedule(cohort, calendar, learner.enrolled_at)
    if cohort.self_paced:
        first = schedule[0]
        # Urgent: it answers the learner's own "Confirm", so quiet hours do not hold it.
        return await enqueue_many(
            session,
            [
                Planned(
                    kind=RELEASE,
                    reference=release_reference(cohort.id, first.week),
                    recipient_id=learner.user_id,
                    not_before=now,
                    payload={"cohort_id": cohort.id, "week": first.week},
                    urgent=True,
                )
            ],
        )
    released = [r.week for r in schedule if r.at <= learner.enrolled_at]
    if not released:
        return 0
    return await enqueue_many(
        session,
        [
            Planned(
                kind=CATCH_UP,
                reference=cohort.id,
                recipient_id=learner.user_id,
                not_before=now,
                payload={"cohort_id": cohort.id, "weeks": released},
                urgent=True,
            )
        ],
    )


# --- rendering ----------------------------------------------------------------------------


async def learner_and_cohort(ctx: RenderContext) -> tuple[Learner | None, Cohort | None]:
    """The recipient's registration and cohort: prefetched by the worker (ctx.extra),
    else read from the store."""
    learner: Learner | None
    if "learner" in ctx.extra:
        learner = ctx.extra["learner"]
    else:
        learner = await ctx.session.get(Learner, ctx.recipient.id)
    cohort: Cohort | None
    if "cohort" in ctx.extra:
        cohort = ctx.extra["cohort"]
    elif learner is not None and learner.cohort_id is not None:
        cohort = await ctx.session.get(Cohort, learner.cohort_id)
    else:
        cohort = None
    return learner, cohort


def moodle_url(ctx: RenderContext | None = None) -> str:
    settings = ctx.extra.get("settings") if ctx is not None else None
    url = getattr(settings, "moodle_url", None)
    return str(url) if url else DEFAULT_MOODLE_URL


@lru_cache(maxsize=512)
def _hours(hours: float, lang: str) -> str:
    return str(format_decimal(hours, format="#,##0.#", locale=lang))


def module_title(content: Content, number: int, lang: str) -> str:
    module = content.modules.get(number)
    if module is None:
        return str(number)
    return module.title.get(lang)[0]


def module_line(content: Content, number: int, profile: str | None, lang: str) -> str:
    module = content.modules.get(number)
    if module is None:
        return f"• {number}"
    title = escape(module.title.get(lang)[0])
    hours = _("{hours} h").format(hours=_hours(module.hours, lang))
    if profile in ("CECO", "DIGY"):
        role = (
            _("core for {profile}") if profile in module.profiles else _("optional for {profile}")
        ).format(profile=profile)
        return f"• <b>{number}. {title}</b> — {hours}, {escape(role)}"
    return f"• <b>{number}. {title}</b> — {hours}"


def moodle_line(url: str) -> str:
    return _("Study the modules on Moodle: {link}").format(
        link=f'<a href="{escape(url, quote=True)}">{escape(url)}</a>'
    )


def practise_keyboard(modules: Sequence[int], columns: int = 1) -> InlineKeyboardMarkup | None:
    if not modules:
        return None
    buttons = [
        InlineKeyboardButton(
            text=_("Practise module {number}").format(number=number),
            callback_data=PRACTISE_CALLBACK.format(module=number),
        )
        for number in modules
    ]
    rows = [buttons[i : i + columns] for i in range(0, len(buttons), columns)]
    return InlineKeyboardMarkup(inline_keyboard=rows)


def _week_modules(content: Content, calendar: Calendar, week: int) -> list[int]:
    return [n for n in calendar.modules_of_week(week) if n in content.modules]


# A release reads the same for every learner of a cohort with the same language and
# profile: rendered once, then reused (a release to 10,000 learners renders ~10 times).
_RELEASE_CACHE: dict[tuple[Any, ...], Outgoing] = {}


@renderer(RELEASE, mutable_label=N_("Weekly module releases"))
async def render_release(ctx: RenderContext, row: Outbox) -> Outgoing:
    learner, cohort = await learner_and_cohort(ctx)
    if learner is None or cohort is None:
        raise Skip("not enrolled")
    if cohort.id != row.payload.get("cohort_id"):
        raise Skip("moved to another cohort")
    week = int(row.payload["week"])
    lang = ctx.i18n.current_locale
    key = (
        id(ctx.content),
        json.dumps(cohort.calendar, sort_keys=True) if cohort.calendar else "",
        week,
        lang,
        learner.profile,
        moodle_url(ctx),
    )
    cached = _RELEASE_CACHE.get(key)
    if cached is None:
        cached = _render_release(ctx, cohort, week, lang, learner.profile)
        if len(_RELEASE_CACHE) > 1024:
            _RELEASE_CACHE.clear()
        _RELEASE_CACHE[key] = cached
    return cached


def _render_release(
    ctx: RenderContext, cohort: Cohort, week: int, lang: str, profile: str
) -> Outgoing:
    modules = _week_modules(ctx.content, cohort_calendar(cohort, ctx.content), week)
    if not modules:
        raise Skip(f"week {week} has no modules")
    total = sum(ctx.content.modules[n].hours for n in modules)
    lines = [
        "<b>" + escape(_("Week {week}: new modules are open").format(week=week)) + "</b>",
        "",
        *(module_line(ctx.content, n, profile, lang) for n in modules),
        "",
        escape(_("About {hours} hours of study.").format(hours=_hours(total, lang))),
        moodle_line(moodle_url(ctx)),
    ]
    return Outgoing(text="\n".join(lines), reply_markup=practise_keyboard(modules))


@renderer(CATCH_UP)
async def render_catch_up(ctx: RenderContext, row: Outbox) -> Outgoing:
    learner, cohort = await learner_and_cohort(ctx)
    if learner is None or cohort is None:
        raise Skip("not enrolled")
    if cohort.id != row.payload.get("cohort_id"):
        raise Skip("moved to another cohort")
    calendar = cohort_calendar(cohort, ctx.content)
    lang = ctx.i18n.current_locale
    weeks = [int(w) for w in row.payload.get("weeks", [])]
    modules: list[int] = []
    for week in weeks:
        modules += [n for n in _week_modules(ctx.content, calendar, week) if n not in modules]
    if not modules:
        raise Skip("nothing released yet")
    head = [
        "<b>" + escape(_("The course is under way: here is what is already open.")) + "</b>",
        "",
    ]
    tail = [
        "",
        moodle_line(moodle_url(ctx)),
        escape(_("From now on I will send you each new week's modules as they open.")),
    ]

    def body(with_titles: bool) -> list[str]:
        lines: list[str] = []
        for week in weeks:
            numbers = _week_modules(ctx.content, calendar, week)
            lines.append(
                "<b>" + escape(_("Week {week}").format(week=week)) + "</b>"
                if with_titles
                else "<b>"
                + escape(_("Week {week}").format(week=week))
                + "</b>: "
                + ", ".join(str(n) for n in numbers)
            )
            if with_titles:
                lines += [module_line(ctx.content, n, learner.profile, lang) for n in numbers]
        return lines

    text = "\n".join([*head, *body(True), *tail])
    if len(text) > TEXT_LIMIT:
        text = "\n".join([*head, *body(False), *tail])
    return Outgoing(text=text, reply_markup=practise_keyboard(modules, columns=2))


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def _webinar_for(ctx: RenderContext, row: Outbox) -> Webinar:
    webinar = await ctx.session.get(Webinar, int(row.payload["webinar_id"]))
    if webinar is None:
        raise Skip("webinar deleted")
    if webinar.cancelled:
        raise Skip("webinar cancelled")
    return webinar


def webinar_modules(
    webinar: Webinar, cohort: Cohort, learner: Learner | None, content: Content
) -> list[int]:
    if webinar.modules:
        return [int(n) for n in webinar.modules]
    calendar = cohort_calendar(cohort, content)
    enrolled_at = learner.enrolled_at if learner is not None else webinar.starts_at
    return covered_modules(release_schedule(cohort, calendar, enrolled_at), webinar.starts_at)


def webinar_title() -> str:
    return _("BIBLIO webinar")


def webinar_event(
    webinar: Webinar, tz: ZoneInfo, modules: Sequence[int], content: Content, lang: str
) -> Event:
    event = Event()
    event.add("uid", f"webinar-{webinar.id}@biblio-bot")
    event.add("dtstamp", webinar.created_at)
    event.add("summary", webinar_title())
    event.add("dtstart", webinar.starts_at.astimezone(tz))
    event.add("dtend", (webinar.starts_at + timedelta(minutes=webinar.duration_min)).astimezone(tz))
    event.add("url", webinar.join_url)
    event.add("location", webinar.join_url)
    topics = "\n".join(f"{n}. {module_title(content, n, lang)}" for n in modules)
    event.add("description", f"{webinar.join_url}\n\n{topics}".strip())
    return event


def ics_document(events: Iterable[Event], name: str) -> bytes:
    calendar = ICalendar()
    calendar.add("prodid", "-//BIBLIO bot//biblio-bot//EN")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("x-wr-calname", name)
    for event in events:
        calendar.add_component(event)
    calendar.add_missing_timezones()
    return bytes(calendar.to_ical())


_ICS_CACHE: dict[tuple[Any, ...], bytes] = {}


def webinar_ics(
    webinar: Webinar, tz: ZoneInfo, modules: Sequence[int], content: Content, lang: str
) -> bytes:
    """The .ics of one webinar; the same for every learner of a language, so a reminder
    to a whole cohort builds it once per language."""
    key = (
        webinar.id,
        webinar.starts_at,
        webinar.duration_min,
        webinar.join_url,
        tuple(modules),
        tz.key,
        lang,
        webinar_title(),
    )
    data = _ICS_CACHE.get(key)
    if data is None:
        data = ics_document([webinar_event(webinar, tz, modules, content, lang)], webinar_title())
        if len(_ICS_CACHE) > 512:
            _ICS_CACHE.clear()
        _ICS_CACHE[key] = data
    return data


def _webinar_text(
    headline: str,
    webinar: Webinar,
    tz: ZoneInfo,
    modules: Sequence[int],
    content: Content,
    lang: str,
) -> str:
    when = format_moment(webinar.starts_at, tz, lang)
    join = '<a href="{url}">{label}</a>'.format(
        url=escape(webinar.join_url, quote=True), label=escape(_("Join the webinar"))
    )
    head = [
        f"<b>{escape(headline)}</b>",
        escape(_("{when} ({zone} time)").format(when=when, zone=tz.key)),
    ]
    foot = [join, escape(_("Add it to your calendar with the attached file."))]

    def topics(with_titles: bool) -> list[str]:
        if not modules:
            return []
        if with_titles:
            items = [f"{n}. {escape(module_title(content, n, lang))}" for n in modules]
            return [escape(_("Topics:")), *(f"• {item}" for item in items)]
        return [escape(_("Topics: modules {numbers}").format(numbers=", ".join(map(str, modules))))]

    text = "\n".join([*head, "", *topics(True), "", *foot])
    if len(text) > CAPTION_LIMIT:
        text = "\n".join([*head, "", *topics(False), "", *foot])
    return text


async def _render_reminder(ctx: RenderContext, row: Outbox, headline: str) -> Outgoing:
    webinar = await _webinar_for(ctx, row)
    planned_start = _parse_time(row.payload.get("starts_at"))
    if planned_start is not None and planned_start != webinar.starts_at:
        raise Skip("webinar moved")
    learner, cohort = await learner_and_cohort(ctx)
    if cohort is None or cohort.id != webinar.cohort_id:
        raise Skip("not in the webinar's cohort")
    lang = ctx.i18n.current_locale
    tz = cohort_zone(cohort)
    modules = webinar_modules(webinar, cohort, learner, ctx.content)
    text = _webinar_text(headline, webinar, tz, modules, ctx.content, lang)
    ics = webinar_ics(webinar, tz, modules, ctx.content, lang)
    return Outgoing(text=text, document=(f"biblio-webinar-{webinar.id}.ics", ics))


@renderer(WEBINAR_24H, mutable_label=N_("Webinar reminders a day before"))
async def render_webinar_24h(ctx: RenderContext, row: Outbox) -> Outgoing:
    return await _render_reminder(ctx, row, _("Webinar reminder"))


@renderer(WEBINAR_1H, mutable_label=N_("Webinar reminders an hour before"))
async def render_webinar_1h(ctx: RenderContext, row: Outbox) -> Outgoing:
    return await _render_reminder(ctx, row, _("The webinar starts soon"))


@renderer(RECORDING, mutable_label=N_("Webinar recordings"))
async def render_recording(ctx: RenderContext, row: Outbox) -> Outgoing:
    webinar = await _webinar_for(ctx, row)
    if not webinar.recording_url:
        raise Skip("recording link removed")
    _learner, cohort = await learner_and_cohort(ctx)
    tz = cohort_zone(cohort)
    lang = ctx.i18n.current_locale
    link = '<a href="{url}">{label}</a>'.format(
        url=escape(webinar.recording_url, quote=True), label=escape(_("Watch the recording"))
    )
    text = "\n".join(
        [
            "<b>"
            + escape(
                _("The recording of the webinar of {day} is available.").format(
                    day=format_day(webinar.starts_at, tz, lang)
                )
            )
            + "</b>",
            link,
        ]
    )
    return Outgoing(text=text)


# --- the learner's own views (/schedule, /calendar) ----------------------------------------


async def upcoming_webinars(
    session: AsyncSession, cohort_id: int, now: datetime, limit: int | None = None
) -> list[Webinar]:
    query = (
        select(Webinar)
        .where(
            Webinar.cohort_id == cohort_id,
            Webinar.cancelled.is_(False),
            Webinar.starts_at >= now,
        )
        .order_by(Webinar.starts_at, Webinar.id)
    )
    if limit is not None:
        query = query.limit(limit)
    return list(await session.scalars(query))


async def cohort_webinars(session: AsyncSession, cohort_id: int) -> list[Webinar]:
    return list(
        await session.scalars(
            select(Webinar)
            .where(Webinar.cohort_id == cohort_id, Webinar.cancelled.is_(False))
            .order_by(Webinar.starts_at, Webinar.id)
        )
    )


def schedule_ics(
    cohort: Cohort,
    learner: Learner,
    content: Content,
    webinars: Sequence[Webinar],
    lang: str,
    now: datetime,
) -> bytes:
    """The learner's whole schedule: one all-day event per week released, one timed
    event per webinar."""
    tz = cohort_zone(cohort)
    schedule = learner_schedule(cohort, learner, content)
    events: list[Event] = []
    for release in schedule:
        event = Event()
        event.add("uid", f"cohort-{cohort.id}-week-{release.week}-{learner.user_id}@biblio-bot")
        event.add("dtstamp", now)
        event.add("summary", _("BIBLIO MOOC: week {week}").format(week=release.week))
        day = release.at.astimezone(tz).date()
        event.add("dtstart", day)
        event.add("dtend", day + timedelta(days=1))
        event.add(
            "description",
            "\n".join(f"{n}. {module_title(content, n, lang)}" for n in release.modules),
        )
        events.append(event)
    for webinar in webinars:
        modules = webinar_modules(webinar, cohort, learner, content)
        events.append(webinar_event(webinar, tz, modules, content, lang))
    return ics_document(events, cohort_title(cohort))
