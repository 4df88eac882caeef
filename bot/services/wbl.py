"""Work-based learning (WBL): placements, fortnightly reflections (check-ins), hours and
workplace mentors.

A placement is 10 weeks at a host library, 165 h planned (160 h + 5 h assessment). Its
five check-ins are created with the placement, each due on the Friday of weeks 2, 4, 6, 8
and 10 at the cohort's local morning hour. Everything the bot owes someone goes through
the outbox; the planners below decide when, and the renderers what, in the recipient's
language at send time. Payloads carry ids only: a renderer reads the store when it runs,
so a row whose subject has gone (erased, withdrawn, answered meanwhile) is skipped.

The file reads top-down: plain rules (schedule, validation, status transitions, totals,
who may see what), then queries and actions for the handlers, then planners, then
renderers.
"""

from __future__ import annotations

import enum
import html
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder
from babel.dates import format_skeleton
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.cohorts import trainer_cohorts
from bot.services.outbox import Outgoing, RenderContext, Skip, enqueue, renderer
from bot.services.planning import PlanContext, planner
from bot.services.registration import N_, Invalid
from storage.models import (
    CheckIn,
    Cohort,
    CohortTrainer,
    Invite,
    Learner,
    LearnerStatus,
    Outbox,
    Placement,
    Role,
    User,
)

log = logging.getLogger(__name__)

# --- the programme's numbers ----------------------------------------------------------------

WEEKS = 10
PLANNED_HOURS = 165  # 160 h at the host library + 5 h assessment
CHECKIN_EVERY_WEEKS = 2
CHECKIN_WEEKDAY = 4  # Friday: the last working day of each fortnight
MAX_FORTNIGHT_HOURS = 80
# A due check-in not submitted: reminders after 2 and 4 days, overdue after 6.
REMINDERS = (timedelta(days=2), timedelta(days=4))
OVERDUE_AFTER = timedelta(days=6)
# A reflection the mentor has not answered: a reminder after 3 days, the trainer after 5.
MENTOR_REMINDER_AFTER = timedelta(days=3)
MENTOR_ESCALATION_AFTER = timedelta(days=5)
ANSWER_MAX = 1000  # per text answer, so a whole reflection fits one Telegram message
COMMENT_MAX = 1000
LIBRARY_MAX = 200
START_PAST_DAYS = 7  # a placement may be recorded up to a week after it started
START_FUTURE_DAYS = 366
DEFAULT_TIMEZONE = "Europe/Brussels"
DEFAULT_HOUR = 9
MENTOR_LINK_VALIDITY = timedelta(days=14)


class PlacementStatus(enum.StrEnum):
    active = "active"
    flagged = "flagged"  # the mentor blocked the bot or left: the trainer was told
    ended = "ended"  # the learner withdrew consent (an erased placement is simply gone)


class FlagReason(enum.StrEnum):
    mentor_blocked = "mentor_blocked"
    mentor_left = "mentor_left"
    withdrawn = "withdrawn"


class CheckInStatus(enum.StrEnum):
    open = "open"  # created with the placement; due from due_at
    submitted = "submitted"  # waiting for the mentor
    confirmed = "confirmed"  # the mentor confirmed: the hours count
    talk = "talk"  # the mentor asked to talk (may still confirm afterwards)
    overdue = "overdue"  # not submitted 6 days after due (still accepted)


class CheckInEvent(enum.StrEnum):
    submit = "submit"
    overdue = "overdue"
    confirm = "confirm"
    talk = "talk"


TRANSITIONS: dict[tuple[CheckInStatus, CheckInEvent], CheckInStatus] = {
    (CheckInStatus.open, CheckInEvent.submit): CheckInStatus.submitted,
    (CheckInStatus.overdue, CheckInEvent.submit): CheckInStatus.submitted,
    (CheckInStatus.open, CheckInEvent.overdue): CheckInStatus.overdue,
    (CheckInStatus.submitted, CheckInEvent.confirm): CheckInStatus.confirmed,
    (CheckInStatus.talk, CheckInEvent.confirm): CheckInStatus.confirmed,
    (CheckInStatus.submitted, CheckInEvent.talk): CheckInStatus.talk,
    (CheckInStatus.talk, CheckInEvent.talk): CheckInStatus.talk,
}
SUBMITTED_STATES = frozenset({CheckInStatus.submitted, CheckInStatus.talk, CheckInStatus.confirmed})
WAITING_STATES = frozenset({CheckInStatus.open, CheckInStatus.overdue})


def next_status(current: str, event: CheckInEvent) -> CheckInStatus | None:
    """The status after `event`, or None when the event is not allowed now."""
    try:
        return TRANSITIONS.get((CheckInStatus(current), event))
    except ValueError:
        return None


def sources(event: CheckInEvent) -> list[str]:
    """The statuses from which `event` is allowed (for atomic conditional updates)."""
    return sorted(str(src) for (src, ev) in TRANSITIONS if ev is event)


# --- schedule ---------------------------------------------------------------------------------


def checkin_count(weeks: int) -> int:
    return weeks // CHECKIN_EVERY_WEEKS


def checkin_day(start: date, number: int) -> date:
    """Check-in `number` (1-based) falls on the Friday of the placement's week 2*number,
    weeks counted from the start date: for a Monday start, day 14n - 3."""
    if number < 1:
        raise ValueError("check-ins are numbered from 1")
    day = start + timedelta(days=7 * CHECKIN_EVERY_WEEKS * number - 1)
    while day.weekday() != CHECKIN_WEEKDAY:
        day -= timedelta(days=1)
    return day


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or DEFAULT_TIMEZONE)
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("unknown time zone %r: using %s", name, DEFAULT_TIMEZONE)
        return ZoneInfo(DEFAULT_TIMEZONE)


def local_moment(day: date, hour: int, tz: str | None) -> datetime:
    """The UTC moment when local clocks in `tz` show `day` at `hour`:00 (a morning hour
    is never inside a daylight-saving gap)."""
    return datetime.combine(day, time(hour), tzinfo=zone(tz)).astimezone(UTC)


def checkin_due(start: date, number: int, tz: str | None, hour: int) -> datetime:
    return local_moment(checkin_day(start, number), hour, tz)


def schedule(start: date, weeks: int, tz: str | None, hour: int) -> list[datetime]:
    return [checkin_due(start, n, tz, hour) for n in range(1, checkin_count(weeks) + 1)]


def end_date(start: date, weeks: int) -> date:
    """The placement's last day."""
    return start + timedelta(weeks=weeks, days=-1)


def weeks_of(number: int) -> tuple[int, int]:
    """The two weeks a check-in looks back on."""
    return CHECKIN_EVERY_WEEKS * number - 1, CHECKIN_EVERY_WEEKS * number


def next_mondays(today: date, count: int = 4) -> list[date]:
    """Start dates to offer as buttons: today if a Monday, then the following Mondays."""
    first = today + timedelta(days=(7 - today.weekday()) % 7)
    return [first + timedelta(weeks=i) for i in range(count)]


# --- checks on what people type (error values are English msgids) -----------------------------

_HOURS_RE = re.compile(r"([-−–]?)\s*(\d{1,6})(?:[.,](\d+))?\s*[^\W\d_]*\.?")


def parse_hours(text: str) -> int | Invalid:
    """Whole hours worked in a fortnight, 0 to 80; "16", "16 h" and "16 ore" all read 16."""
    match = _HOURS_RE.fullmatch(text.strip())
    if match is None:
        return Invalid(N_("Please send the hours as a number from 0 to 80, e.g. 16."))
    sign, whole, fraction = match.groups()
    if sign:
        return Invalid(N_("Hours cannot be negative. Please send a number from 0 to 80."))
    if fraction and int(fraction) != 0:
        return Invalid(N_("Please round to whole hours, e.g. 16."))
    value = int(whole)
    if value > MAX_FORTNIGHT_HOURS:
        return Invalid(
            N_("That is more than 80 hours in two weeks. Please check the number (0 to 80).")
        )
    return value


def check_answer(text: str) -> str | Invalid:
    value = text.strip()
    if not value:
        return Invalid(N_("Please write a few words, or send a voice note."))
    if len(value) > ANSWER_MAX:
        return Invalid(
            N_("Please keep your answer shorter: at most 1000 characters, or send a voice note.")
        )
    return value


def check_comment(text: str) -> str | Invalid:
    value = text.strip()
    if not value:
        return Invalid(N_("Please write your comment."))
    if len(value) > COMMENT_MAX:
        return Invalid(N_("Please keep your comment shorter: at most 1000 characters."))
    return value


def check_library(text: str) -> str | Invalid:
    value = " ".join(text.split())
    if len(value) < 2:
        return Invalid(N_("Please type the name of the host library."))
    if len(value) > LIBRARY_MAX:
        return Invalid(N_("That name is too long: at most 200 characters, please."))
    return value


def parse_start(text: str, today: date) -> date | Invalid:
    value = text.strip()
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return Invalid(N_("Please type the date as YYYY-MM-DD, e.g. 2027-03-01."))
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return Invalid(N_("That date does not exist. Please type it as YYYY-MM-DD."))
    if day < today - timedelta(days=START_PAST_DAYS):
        return Invalid(N_("That is more than a week ago. Please choose a later start date."))
    if day > today + timedelta(days=START_FUTURE_DAYS):
        return Invalid(N_("That is more than a year ahead. Please check the date."))
    return day


# --- totals -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Totals:
    planned: int  # hours planned (165)
    logged: int  # hours the learner reported in submitted reflections
    confirmed: int  # hours in reflections the mentor confirmed
    count: int  # check-ins in the placement (5)
    done: int  # submitted (whatever the mentor answered)
    confirmed_count: int
    awaiting: int  # submitted, not yet confirmed by the mentor (incl. "let's talk")
    due: int  # due now, not yet submitted, not overdue
    overdue: int


def totals(checkins: Iterable[CheckIn], now: datetime, *, planned: int = PLANNED_HOURS) -> Totals:
    items = list(checkins)
    submitted = [c for c in items if c.status in SUBMITTED_STATES]
    confirmed = [c for c in items if c.status == CheckInStatus.confirmed]
    return Totals(
        planned=planned,
        logged=sum(c.hours or 0 for c in submitted),
        confirmed=sum(c.hours or 0 for c in confirmed),
        count=len(items),
        done=len(submitted),
        confirmed_count=len(confirmed),
        awaiting=sum(1 for c in submitted if c.status != CheckInStatus.confirmed),
        due=sum(1 for c in items if c.status == CheckInStatus.open and c.due_at <= now),
        overdue=sum(1 for c in items if c.status == CheckInStatus.overdue),
    )


# --- who may see and decide what ------------------------------------------------------------


def is_open(placement: Placement | None) -> bool:
    return placement is not None and placement.status != PlacementStatus.ended


def mentor_may_see(user_id: int, placement: Placement) -> bool:
    """A mentor sees only the placements they mentor (and none that ended)."""
    return is_open(placement) and placement.mentor_id == user_id


def may_decide(user_id: int, placement: Placement | None) -> bool:
    """Only the placement's current mentor confirms or asks to talk."""
    return placement is not None and mentor_may_see(user_id, placement)


async def trainer_may_see(session: AsyncSession, trainer_id: int, placement: Placement) -> bool:
    """A trainer sees only placements of learners in the cohorts they run."""
    if not is_open(placement):
        return False
    row = await session.scalar(
        select(CohortTrainer.cohort_id)
        .join(Learner, Learner.cohort_id == CohortTrainer.cohort_id)
        .where(Learner.user_id == placement.learner_id, CohortTrainer.trainer_id == trainer_id)
    )
    return row is not None


async def may_see(session: AsyncSession, user: User, placement: Placement) -> bool:
    if mentor_may_see(user.id, placement):
        return True
    return user.role is Role.trainer and await trainer_may_see(session, user.id, placement)


@dataclass
class PlacementView:
    placement: Placement
    learner_name: str
    checkins: list[CheckIn]


async def visible_placements(session: AsyncSession, user: User) -> list[PlacementView]:
    """What /mentees lists: a mentor's own mentees; for a trainer also every open
    placement of the learners in their cohorts."""
    conditions = [Placement.mentor_id == user.id]
    if user.role is Role.trainer:
        cohort_ids = [c.id for c in await trainer_cohorts(session, user.id)]
        if cohort_ids:
            conditions.append(Learner.cohort_id.in_(cohort_ids))
    rows = (
        await session.execute(
            select(Placement, Learner.name)
            .join(Learner, Learner.user_id == Placement.learner_id)
            .where(Placement.status != PlacementStatus.ended, or_(*conditions))
            .order_by(Learner.name, Placement.id)
        )
    ).all()
    views = [PlacementView(p, name, []) for p, name in rows]
    by_id = {v.placement.id: v for v in views}
    if by_id:
        for checkin in await session.scalars(
            select(CheckIn)
            .where(CheckIn.placement_id.in_(list(by_id)))
            .order_by(CheckIn.placement_id, CheckIn.number)
        ):
            by_id[checkin.placement_id].checkins.append(checkin)
    return views


# --- queries ---------------------------------------------------------------------------------


async def active_placement(session: AsyncSession, learner_id: int) -> Placement | None:
    found: Placement | None = await session.scalar(
        select(Placement)
        .where(Placement.learner_id == learner_id, Placement.status != PlacementStatus.ended)
        .order_by(Placement.id.desc())
        .limit(1)
    )
    return found


async def learner_clock(session: AsyncSession, learner_id: int) -> tuple[str, int]:
    """The learner's time zone and morning hour: their cohort's."""
    row = (
        await session.execute(
            select(Cohort.timezone, Cohort.release_hour)
            .join(Learner, Learner.cohort_id == Cohort.id)
            .where(Learner.user_id == learner_id)
        )
    ).first()
    if row is None:
        return DEFAULT_TIMEZONE, DEFAULT_HOUR
    return str(row[0]), int(row[1])


async def learner_name(session: AsyncSession, learner_id: int) -> str:
    name = await session.scalar(select(Learner.name).where(Learner.user_id == learner_id))
    return name or "—"


async def placement_trainers(session: AsyncSession, placement: Placement) -> list[int]:
    """Who is told about a placement's problems: the trainers of the learner's cohort,
    else the trainer who set it up."""
    ids = list(
        await session.scalars(
            select(CohortTrainer.trainer_id)
            .join(Learner, Learner.cohort_id == CohortTrainer.cohort_id)
            .where(Learner.user_id == placement.learner_id)
            .order_by(CohortTrainer.trainer_id)
        )
    )
    if not ids and placement.created_by is not None:
        ids = [placement.created_by]
    return ids


async def checkins_of(session: AsyncSession, placement_id: int) -> list[CheckIn]:
    return list(
        await session.scalars(
            select(CheckIn).where(CheckIn.placement_id == placement_id).order_by(CheckIn.number)
        )
    )


async def current_checkin(
    session: AsyncSession, placement: Placement, now: datetime
) -> CheckIn | None:
    """The earliest check-in that is due and not yet submitted."""
    found: CheckIn | None = await session.scalar(
        select(CheckIn)
        .where(
            CheckIn.placement_id == placement.id,
            CheckIn.status.in_([str(s) for s in WAITING_STATES]),
            CheckIn.due_at <= now,
        )
        .order_by(CheckIn.number)
        .limit(1)
    )
    return found


def next_due(checkins: Sequence[CheckIn]) -> CheckIn | None:
    """The check-in the learner is asked for next: one due now, else the next one."""
    waiting = [c for c in checkins if c.status in WAITING_STATES]
    return min(waiting, key=lambda c: c.number) if waiting else None


async def candidate_learners(session: AsyncSession, trainer_id: int) -> list[Learner]:
    """Enrolled learners of the trainer's cohorts who have no open placement."""
    cohort_ids = [c.id for c in await trainer_cohorts(session, trainer_id)]
    if not cohort_ids:
        return []
    placed = select(Placement.learner_id).where(Placement.status != PlacementStatus.ended)
    return list(
        await session.scalars(
            select(Learner)
            .where(
                Learner.cohort_id.in_(cohort_ids),
                Learner.status == LearnerStatus.enrolled,
                Learner.user_id.not_in(placed),
            )
            .order_by(Learner.name, Learner.user_id)
        )
    )


# --- actions -------------------------------------------------------------------------------


class SetupProblem(enum.Enum):
    not_your_learner = "not_your_learner"
    already_placed = "already_placed"


async def create_placement(
    session: AsyncSession,
    *,
    trainer_id: int,
    learner_id: int,
    host_library: str,
    start: date,
    now: datetime,
    weeks: int = WEEKS,
) -> Placement | SetupProblem:
    learner = await session.get(Learner, learner_id)
    cohort_ids = {c.id for c in await trainer_cohorts(session, trainer_id)}
    if (
        learner is None
        or learner.cohort_id not in cohort_ids
        or learner.status is not LearnerStatus.enrolled
    ):
        return SetupProblem.not_your_learner
    if await active_placement(session, learner_id) is not None:
        return SetupProblem.already_placed
    placement = Placement(
        learner_id=learner_id,
        mentor_id=None,
        host_library=host_library,
        start_date=start,
        weeks=weeks,
        planned_hours=PLANNED_HOURS,
        status=PlacementStatus.active,
        created_by=trainer_id,
        created_at=now,
    )
    session.add(placement)
    await session.flush()
    tz, hour = await learner_clock(session, learner_id)
    for number, due in enumerate(schedule(start, weeks, tz, hour), start=1):
        session.add(
            CheckIn(
                placement_id=placement.id,
                number=number,
                due_at=due,
                status=CheckInStatus.open,
                answers={},
                needs_support=False,
            )
        )
    await session.flush()
    await enqueue(
        session,
        kind=KIND_PLACED,
        reference=placement.id,
        recipient_id=learner_id,
        not_before=now,
        payload={"placement_id": placement.id},
    )
    return placement


class SubmitResult(enum.Enum):
    to_mentor = "to_mentor"
    waiting_for_mentor = "waiting_for_mentor"
    not_open = "not_open"


def voice_answer(file_id: str, duration: int) -> dict[str, Any]:
    return {"voice": file_id, "duration": duration}


def text_answer(text: str) -> dict[str, Any]:
    return {"text": text}


TEXT_FIELDS = ("did", "learned", "difficulties")


def answers_complete(answers: dict[str, Any]) -> bool:
    return (
        all(isinstance(answers.get(f), dict) for f in TEXT_FIELDS)
        and isinstance(answers.get("support"), bool)
        and isinstance(answers.get("hours"), int)
    )


async def submit_checkin(
    session: AsyncSession,
    *,
    checkin_id: int,
    learner_id: int,
    answers: dict[str, Any],
    now: datetime,
) -> SubmitResult:
    """Save a reflection once (a double tap or a second device saves nothing more) and
    plan who hears of it: the mentor, or the trainers while there is no mentor; with
    "needs support", the mentor and the trainers at once."""
    checkin = await session.get(CheckIn, checkin_id)
    placement = await session.get(Placement, checkin.placement_id) if checkin else None
    if (
        checkin is None
        or placement is None
        or placement.learner_id != learner_id
        or not is_open(placement)
        or not answers_complete(answers)
    ):
        return SubmitResult.not_open
    support = bool(answers["support"])
    result = await session.execute(
        update(CheckIn)
        .where(CheckIn.id == checkin_id, CheckIn.status.in_(sources(CheckInEvent.submit)))
        .values(
            status=CheckInStatus.submitted,
            answers={f: answers[f] for f in TEXT_FIELDS},
            hours=int(answers["hours"]),
            needs_support=support,
            submitted_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        return SubmitResult.not_open
    await session.refresh(checkin)
    trainers = await placement_trainers(session, placement)
    if support:
        for trainer_id in trainers:
            await enqueue(
                session,
                kind=KIND_SUPPORT,
                reference=checkin.id,
                recipient_id=trainer_id,
                not_before=now,
                payload={"checkin_id": checkin.id},
                urgent=True,
            )
    if placement.mentor_id is not None:
        await ask_mentor(session, checkin, placement.mentor_id, now)
        return SubmitResult.to_mentor
    for trainer_id in trainers:
        await enqueue(
            session,
            kind=KIND_NO_MENTOR,
            reference=checkin.id,
            recipient_id=trainer_id,
            not_before=now,
            payload={"checkin_id": checkin.id},
        )
    return SubmitResult.waiting_for_mentor


async def ask_mentor(
    session: AsyncSession, checkin: CheckIn, mentor_id: int, now: datetime
) -> None:
    """Send a submitted reflection to the mentor; the 3- and 5-day clocks start now."""
    checkin.mentor_asked_at = now
    await enqueue(
        session,
        kind=KIND_REFLECTION,
        reference=checkin.id,
        recipient_id=mentor_id,
        not_before=now,
        payload={"checkin_id": checkin.id},
        urgent=checkin.needs_support,
    )
    await session.flush()


class DecideResult(enum.Enum):
    done = "done"
    not_yours = "not_yours"
    already = "already"  # answered before (a double tap, or confirmed already)
    gone = "gone"  # the reflection or its placement no longer exists or ended


async def decide(
    session: AsyncSession,
    *,
    checkin_id: int,
    mentor_id: int,
    event: CheckInEvent,
    now: datetime,
    comment: str | None = None,
) -> DecideResult:
    """The mentor's answer, at most once per state: the update is conditional on the
    status, so two presses (or two mentors, or two processes) cannot both count."""
    if event not in (CheckInEvent.confirm, CheckInEvent.talk):
        raise ValueError(f"not a mentor's answer: {event}")
    checkin = await session.get(CheckIn, checkin_id)
    placement = await session.get(Placement, checkin.placement_id) if checkin else None
    if checkin is None or placement is None or not is_open(placement):
        return DecideResult.gone
    if not may_decide(mentor_id, placement):
        return DecideResult.not_yours
    target = TRANSITIONS[(CheckInStatus.submitted, event)]
    values: dict[str, Any] = {"status": target, "decided_by": mentor_id, "decided_at": now}
    if comment is not None:
        values["mentor_comment"] = comment
    result = await session.execute(
        update(CheckIn)
        .where(CheckIn.id == checkin_id, CheckIn.status.in_(sources(event)))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        return DecideResult.already
    await session.refresh(checkin)
    await enqueue(
        session,
        kind=KIND_ANSWER,
        reference=f"{checkin.id}.{event}.{int(now.timestamp())}",
        recipient_id=placement.learner_id,
        not_before=now,
        payload={"checkin_id": checkin.id, "event": str(event)},
    )
    return DecideResult.done


class LinkResult(enum.Enum):
    linked = "linked"
    own_link = "own_link"
    no_placement = "no_placement"


@dataclass
class LinkOutcome:
    result: LinkResult
    placement: Placement | None = None
    learner_name: str = ""


async def link_mentor(
    session: AsyncSession, *, invite: Invite, mentor: User, now: datetime, language: str
) -> LinkOutcome:
    """A mentor link (`/mentor_link`) opened: the opener becomes the mentor of that
    learner's open placement (replacing a previous mentor) and gets the reflections
    that were waiting."""
    assert invite.learner_id is not None
    if mentor.id == invite.learner_id:
        invite.uses = max(invite.uses - 1, 0)  # not used up: it is for the mentor
        return LinkOutcome(LinkResult.own_link)
    placement = await active_placement(session, invite.learner_id)
    if placement is None:
        return LinkOutcome(LinkResult.no_placement)
    if mentor.role is Role.learner:
        mentor.role = Role.mentor
    # The worker renders in the stored language; a mentor never chose one, so keep the
    # one their Telegram app uses.
    mentor.language = mentor.language or language
    previous = placement.mentor_id
    placement.mentor_id = mentor.id
    if placement.status == PlacementStatus.flagged:
        placement.status, placement.flag_reason = PlacementStatus.active, None
    await session.flush()
    if previous != mentor.id:
        for checkin in await checkins_of(session, placement.id):
            if checkin.status == CheckInStatus.submitted:
                await ask_mentor(session, checkin, mentor.id, now)
        await enqueue(
            session,
            kind=KIND_MENTOR_LINKED,
            reference=f"{placement.id}.{int(now.timestamp())}",
            recipient_id=placement.learner_id,
            not_before=now,
            payload={"placement_id": placement.id},
        )
    return LinkOutcome(
        LinkResult.linked, placement, await learner_name(session, placement.learner_id)
    )


async def end_placements_for(session: AsyncSession, user_id: int, now: datetime) -> int:
    """Called when someone withdraws consent or erases their data, before the data goes.

    As a learner: their open placements end, and each mentor is told only that a
    placement ended (the notice is the mentor's own row and carries nothing of the
    learner, so it survives the learner's erasure). As a mentor: their mentees'
    placements are flagged, the trainers and the learners told. Returns how many
    placements changed."""
    changed = 0
    own = list(
        await session.scalars(
            select(Placement).where(
                Placement.learner_id == user_id, Placement.status != PlacementStatus.ended
            )
        )
    )
    for placement in own:
        placement.status, placement.flag_reason = PlacementStatus.ended, FlagReason.withdrawn
        if placement.mentor_id is not None:
            await enqueue(
                session,
                kind=KIND_ENDED,
                reference=placement.id,
                recipient_id=placement.mentor_id,
                not_before=now,
            )
        changed += 1
    mentored = list(
        await session.scalars(
            select(Placement).where(
                Placement.mentor_id == user_id, Placement.status != PlacementStatus.ended
            )
        )
    )
    for placement in mentored:
        placement.mentor_id = None
        await _flag(session, placement, FlagReason.mentor_left, now)
        changed += 1
    await session.flush()
    return changed


async def _flag(
    session: AsyncSession, placement: Placement, reason: FlagReason, now: datetime
) -> None:
    placement.status, placement.flag_reason = PlacementStatus.flagged, reason
    reference = f"{placement.id}.{reason}.{int(now.timestamp())}"
    payload = {"placement_id": placement.id, "reason": str(reason)}
    for trainer_id in await placement_trainers(session, placement):
        await enqueue(
            session,
            kind=KIND_MENTOR_GONE,
            reference=reference,
            recipient_id=trainer_id,
            not_before=now,
            payload=payload,
        )
    await enqueue(
        session,
        kind=KIND_MENTOR_GONE_LEARNER,
        reference=reference,
        recipient_id=placement.learner_id,
        not_before=now,
        payload=payload,
    )


# --- planners --------------------------------------------------------------------------------
# Every tick plans what is due by ctx.until; the outbox keys make planning twice a no-op, and
# the status updates are conditional, so two planners (two processes) do each thing once.


async def _open_checkins(
    session: AsyncSession, statuses: Sequence[str], due_by: datetime
) -> list[tuple[CheckIn, Placement]]:
    rows = await session.execute(
        select(CheckIn, Placement)
        .join(Placement, Placement.id == CheckIn.placement_id)
        .where(
            Placement.status != PlacementStatus.ended,
            CheckIn.status.in_(list(statuses)),
            CheckIn.due_at <= due_by,
        )
        .order_by(CheckIn.id)
    )
    return [(c, p) for c, p in rows.tuples()]


@planner("wbl_checkins")
async def plan_checkins(ctx: PlanContext) -> int:
    """Due check-ins: the prompt, reminders after 2 and 4 days, overdue after 6 (trainer
    told). Nothing is planned past its useful life (a catch-up after downtime sends the
    latest step only)."""
    session, now = ctx.session, ctx.until
    added = 0
    for checkin, placement in await _open_checkins(session, [CheckInStatus.open], now):
        due, learner = checkin.due_at, placement.learner_id
        payload = {"checkin_id": checkin.id}
        if now >= due + OVERDUE_AFTER:
            result = await session.execute(
                update(CheckIn)
                .where(CheckIn.id == checkin.id, CheckIn.status == CheckInStatus.open)
                .values(status=CheckInStatus.overdue)
                .execution_options(synchronize_session=False)
            )
            if getattr(result, "rowcount", 0) == 1:
                for trainer_id in await placement_trainers(session, placement):
                    added += await enqueue(
                        session,
                        kind=KIND_OVERDUE,
                        reference=checkin.id,
                        recipient_id=trainer_id,
                        not_before=now,
                        payload=payload,
                    )
            continue
        steps = [due, *(due + r for r in REMINDERS)]
        ends = [*steps[1:], due + OVERDUE_AFTER]
        for step, (at, until) in enumerate(zip(steps, ends, strict=True)):
            if not at <= now < until:
                continue
            added += await enqueue(
                session,
                kind=KIND_PROMPT if step == 0 else KIND_REMINDER,
                reference=checkin.id if step == 0 else f"{checkin.id}.{step}",
                recipient_id=learner,
                not_before=at,
                expires_at=until if step else due + OVERDUE_AFTER,
                payload={**payload, "step": step},
            )
    return added


@planner("wbl_mentors")
async def plan_mentors(ctx: PlanContext) -> int:
    """Mentors: a reminder 3 days after a reflection went unanswered, the trainer after
    5; a mentor who blocked the bot flags the placement (trainer and learner told), and
    unblocking clears the flag."""
    session, now = ctx.session, ctx.until
    added = 0
    blocked = (
        await session.scalars(
            select(Placement)
            .join(User, User.id == Placement.mentor_id)
            .where(Placement.status == PlacementStatus.active, User.is_active.is_(False))
        )
    ).all()
    for placement in blocked:
        result = await session.execute(
            update(Placement)
            .where(Placement.id == placement.id, Placement.status == PlacementStatus.active)
            .values(status=PlacementStatus.flagged, flag_reason=FlagReason.mentor_blocked)
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0) == 1:
            await _flag(session, placement, FlagReason.mentor_blocked, now)
            added += 1
    back = (
        await session.scalars(
            select(Placement.id)
            .join(User, User.id == Placement.mentor_id)
            .where(
                Placement.status == PlacementStatus.flagged,
                Placement.flag_reason == FlagReason.mentor_blocked,
                User.is_active.is_(True),
            )
        )
    ).all()
    if back:
        await session.execute(
            update(Placement)
            .where(Placement.id.in_(list(back)))
            .values(status=PlacementStatus.active, flag_reason=None)
            .execution_options(synchronize_session=False)
        )
    for checkin, placement in await _open_checkins(session, [CheckInStatus.submitted], now):
        if placement.mentor_id is None:
            continue  # waiting for a mentor: the trainers were told at submission
        asked = checkin.mentor_asked_at
        if asked is None:  # a mentor linked outside link_mentor: send it now
            await ask_mentor(session, checkin, placement.mentor_id, now)
            added += 1
            continue
        payload = {"checkin_id": checkin.id}
        if asked + MENTOR_REMINDER_AFTER <= now < asked + MENTOR_ESCALATION_AFTER:
            added += await enqueue(
                session,
                kind=KIND_MENTOR_REMINDER,
                reference=f"{checkin.id}.{int(asked.timestamp())}",
                recipient_id=placement.mentor_id,
                not_before=asked + MENTOR_REMINDER_AFTER,
                expires_at=asked + MENTOR_ESCALATION_AFTER,
                payload=payload,
            )
        if now >= asked + MENTOR_ESCALATION_AFTER:
            for trainer_id in await placement_trainers(session, placement):
                added += await enqueue(
                    session,
                    kind=KIND_MENTOR_SILENT,
                    reference=f"{checkin.id}.{int(asked.timestamp())}",
                    recipient_id=trainer_id,
                    not_before=asked + MENTOR_ESCALATION_AFTER,
                    payload=payload,
                )
    return added


# --- buttons shared by the renderers and the handlers -------------------------------------


class CheckinStart(CallbackData, prefix="wcs"):
    checkin_id: int


class MentorAnswer(CallbackData, prefix="wma"):
    checkin_id: int
    event: str  # "confirm" | "talk"


class VoiceNote(CallbackData, prefix="wvn"):
    checkin_id: int
    field: str


FIELD_LABELS: dict[str, str] = {
    "did": N_("Activities"),
    "learned": N_("Learning"),
    "difficulties": N_("Difficulties"),
    "support": N_("Support needed"),
    "hours": N_("Hours this fortnight"),
}


def start_keyboard(checkin_id: int) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    kb.button(text=_("✍️ Write my reflection"), callback_data=CheckinStart(checkin_id=checkin_id))
    return kb.as_markup()


def mentor_keyboard(checkin: CheckIn, *, talk: bool = True) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    kb.button(
        text=_("✅ Confirm"), callback_data=MentorAnswer(checkin_id=checkin.id, event="confirm")
    )
    if talk:
        kb.button(
            text=_("💬 Let's talk"), callback_data=MentorAnswer(checkin_id=checkin.id, event="talk")
        )
    voices = [f for f in TEXT_FIELDS if "voice" in (checkin.answers or {}).get(f, {})]
    for field_name in voices:
        kb.button(
            text="🎤 " + _(FIELD_LABELS[field_name]),
            callback_data=VoiceNote(checkin_id=checkin.id, field=field_name),
        )
    kb.adjust(2 if talk else 1, *([1] * len(voices)))
    return kb.as_markup()


# --- texts shared by the renderers and the handlers ---------------------------------------------


def format_day(day: date, locale: str) -> str:
    """E.g. "Fri, 12 Mar 2027" in the reader's language."""
    return str(format_skeleton("yMMMEd", day, locale=locale))


def local_day(moment: datetime, tz: str | None) -> date:
    return moment.astimezone(zone(tz)).date()


def answer_html(value: Any) -> str:
    """An answer as shown: the text escaped, or a note that it is a voice message."""
    if isinstance(value, dict) and "voice" in value:
        return _("🎤 voice note ({seconds} s)").format(seconds=int(value.get("duration") or 0))
    if isinstance(value, dict):
        return html.escape(str(value.get("text", "")))
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    return html.escape(str(value))


def reflection_body(answers: dict[str, Any]) -> str:
    return "\n".join(
        f"<b>{html.escape(_(label))}:</b> {answer_html(answers.get(field_name))}"
        for field_name, label in FIELD_LABELS.items()
    )


def checkin_answers(checkin: CheckIn) -> dict[str, Any]:
    return {
        **(checkin.answers or {}),
        "support": checkin.needs_support,
        "hours": checkin.hours if checkin.hours is not None else "—",
    }


def reflection_text(
    checkin: CheckIn, placement: Placement, name: str, sums: Totals, *, count: int
) -> str:
    first, last = weeks_of(checkin.number)
    lines = [
        _(
            "📝 Reflection {number} of {count} from <b>{name}</b> ({library}), weeks {first}–{last}."
        ).format(
            number=checkin.number,
            count=count,
            name=html.escape(name),
            library=html.escape(placement.host_library),
            first=first,
            last=last,
        )
    ]
    if checkin.needs_support:
        lines.append(_("⚠️ They would like support."))
    lines += ["", reflection_body(checkin_answers(checkin)), ""]
    lines.append(
        _("Hours so far: {logged} logged, {confirmed} confirmed, of {planned}.").format(
            logged=sums.logged, confirmed=sums.confirmed, planned=sums.planned
        )
    )
    lines.append(_("Please confirm the hours, or ask to talk."))
    return "\n".join(lines)


def placement_lines(view: PlacementView, now: datetime) -> str:
    """One learner in /mentees: hours logged and confirmed of the plan, check-ins."""
    p, sums = view.placement, totals(view.checkins, now, planned=view.placement.planned_hours)
    lines = [f"<b>{html.escape(view.learner_name)}</b> — {html.escape(p.host_library)}"]
    lines.append(
        _("Hours: {logged} logged, {confirmed} confirmed, of {planned}").format(
            logged=sums.logged, confirmed=sums.confirmed, planned=sums.planned
        )
    )
    lines.append(
        _(
            "Check-ins: {done} of {count} done ({confirmed} confirmed), "
            "{awaiting} awaiting the mentor, {due} due, {overdue} overdue"
        ).format(
            done=sums.done,
            count=sums.count,
            confirmed=sums.confirmed_count,
            awaiting=sums.awaiting,
            due=sums.due,
            overdue=sums.overdue,
        )
    )
    if p.mentor_id is None:
        lines.append(_("⚠️ No workplace mentor linked yet."))
    elif p.flag_reason == FlagReason.mentor_blocked:
        lines.append(_("⚠️ The workplace mentor has blocked the bot."))
    return "\n".join(lines)


def chunks(blocks: Sequence[str], limit: int = 3800) -> list[str]:
    """Blocks joined by blank lines into as few messages as fit Telegram's limit."""
    out: list[str] = []
    current = ""
    for block in blocks:
        candidate = f"{current}\n\n{block}" if current else block
        if current and len(candidate) > limit:
            out.append(current)
            current = block
        else:
            current = candidate
    if current:
        out.append(current)
    return out


# --- renderers ---------------------------------------------------------------------------------

KIND_PLACED = "wbl_placed"
KIND_PROMPT = "wbl_prompt"
KIND_REMINDER = "wbl_reminder"
KIND_OVERDUE = "wbl_overdue"
KIND_REFLECTION = "wbl_reflection"
KIND_MENTOR_REMINDER = "wbl_mentor_reminder"
KIND_MENTOR_SILENT = "wbl_mentor_silent"
KIND_SUPPORT = "wbl_support"
KIND_NO_MENTOR = "wbl_no_mentor"
KIND_ANSWER = "wbl_answer"
KIND_MENTOR_LINKED = "wbl_mentor_linked"
KIND_MENTOR_GONE = "wbl_mentor_gone"
KIND_MENTOR_GONE_LEARNER = "wbl_mentor_gone_learner"
KIND_ENDED = "wbl_ended"

_Render = Callable[[RenderContext, Outbox], Awaitable[Outgoing]]


def _wbl_renderer(kind: str) -> Callable[[_Render], _Render]:
    """Registers a renderer that runs with the context's I18n current (its locale is the
    recipient's), so `_()` speaks the recipient's language."""

    def register(fn: _Render) -> _Render:
        async def wrapped(ctx: RenderContext, row: Outbox) -> Outgoing:
            with ctx.i18n.context():
                return await fn(ctx, row)

        renderer(kind)(wrapped)
        return fn

    return register


@dataclass
class _Loaded:
    checkin: CheckIn
    placement: Placement
    name: str


async def _load(ctx: RenderContext, row: Outbox) -> _Loaded:
    checkin = await ctx.session.get(CheckIn, int(row.payload.get("checkin_id", 0)))
    placement = await ctx.session.get(Placement, checkin.placement_id) if checkin else None
    if checkin is None or placement is None:
        raise Skip("the reflection no longer exists")
    if not is_open(placement):
        raise Skip("the placement has ended")
    return _Loaded(checkin, placement, await learner_name(ctx.session, placement.learner_id))


def _locale(ctx: RenderContext) -> str:
    return ctx.i18n.current_locale


@_wbl_renderer(KIND_PLACED)
async def render_placed(ctx: RenderContext, row: Outbox) -> Outgoing:
    placement = await ctx.session.get(Placement, int(row.payload.get("placement_id", 0)))
    if placement is None or not is_open(placement):
        raise Skip("the placement no longer exists")
    checkins = await checkins_of(ctx.session, placement.id)
    tz, _hour = await learner_clock(ctx.session, placement.learner_id)
    first = local_day(checkins[0].due_at, tz) if checkins else placement.start_date
    return Outgoing(
        _(
            "Your work-based learning placement is set: {weeks} weeks at {library}, from "
            "{start} to {end}, {hours} hours planned (160 h + 5 h assessment). Every two "
            "weeks I will ask you for a short reflection; the first on {first}.\n\n"
            "Send /mentor_link to get a link for your workplace mentor: once they open it, "
            "they receive your reflections and confirm your hours."
        ).format(
            weeks=placement.weeks,
            library=html.escape(placement.host_library),
            start=format_day(placement.start_date, _locale(ctx)),
            end=format_day(end_date(placement.start_date, placement.weeks), _locale(ctx)),
            hours=placement.planned_hours,
            first=format_day(first, _locale(ctx)),
        )
    )


@_wbl_renderer(KIND_PROMPT)
async def render_prompt(ctx: RenderContext, row: Outbox) -> Outgoing:
    loaded = await _load(ctx, row)
    checkin = loaded.checkin
    if checkin.status not in WAITING_STATES:
        raise Skip("already submitted")
    first, last = weeks_of(checkin.number)
    return Outgoing(
        _(
            "Time for your reflection {number} of {count} on weeks {first}–{last} at "
            "{library}: five short questions, about five minutes. You can answer with text "
            "or voice notes."
        ).format(
            number=checkin.number,
            count=checkin_count(loaded.placement.weeks),
            first=first,
            last=last,
            library=html.escape(loaded.placement.host_library),
        ),
        reply_markup=start_keyboard(checkin.id),
    )


@_wbl_renderer(KIND_REMINDER)
async def render_reminder(ctx: RenderContext, row: Outbox) -> Outgoing:
    loaded = await _load(ctx, row)
    checkin = loaded.checkin
    if checkin.status not in WAITING_STATES:
        raise Skip("already submitted")
    tz, _hour = await learner_clock(ctx.session, loaded.placement.learner_id)
    return Outgoing(
        _(
            "A reminder: your reflection {number} was due on {due} and is still waiting. "
            "It takes about five minutes."
        ).format(
            number=checkin.number,
            due=format_day(local_day(checkin.due_at, tz), _locale(ctx)),
        ),
        reply_markup=start_keyboard(checkin.id),
    )


@_wbl_renderer(KIND_OVERDUE)
async def render_overdue(ctx: RenderContext, row: Outbox) -> Outgoing:
    loaded = await _load(ctx, row)
    if loaded.checkin.status != CheckInStatus.overdue:
        raise Skip("submitted meanwhile")
    tz, _hour = await learner_clock(ctx.session, loaded.placement.learner_id)
    return Outgoing(
        _(
            "⏰ {name} ({library}) has not sent reflection {number}, due on {due}, despite "
            "two reminders. It is now overdue."
        ).format(
            name=html.escape(loaded.name),
            library=html.escape(loaded.placement.host_library),
            number=loaded.checkin.number,
            due=format_day(local_day(loaded.checkin.due_at, tz), _locale(ctx)),
        )
    )


async def _mentor_row(ctx: RenderContext, row: Outbox) -> tuple[_Loaded, Totals]:
    loaded = await _load(ctx, row)
    if loaded.placement.mentor_id != row.recipient_id:
        raise Skip("no longer this learner's mentor")
    if loaded.checkin.status != CheckInStatus.submitted:
        raise Skip("answered already")
    if not ctx.recipient.is_active:
        raise Skip("the mentor blocked the bot")
    checkins = await checkins_of(ctx.session, loaded.placement.id)
    return loaded, totals(checkins, ctx.clock.now(), planned=loaded.placement.planned_hours)


@_wbl_renderer(KIND_REFLECTION)
async def render_reflection(ctx: RenderContext, row: Outbox) -> Outgoing:
    loaded, sums = await _mentor_row(ctx, row)
    return Outgoing(
        reflection_text(
            loaded.checkin,
            loaded.placement,
            loaded.name,
            sums,
            count=checkin_count(loaded.placement.weeks),
        ),
        reply_markup=mentor_keyboard(loaded.checkin),
    )


@_wbl_renderer(KIND_MENTOR_REMINDER)
async def render_mentor_reminder(ctx: RenderContext, row: Outbox) -> Outgoing:
    loaded, _sums = await _mentor_row(ctx, row)
    return Outgoing(
        _(
            "A reminder: reflection {number} from {name} ({hours} hours) is waiting for your "
            "answer. Please confirm the hours, or ask to talk."
        ).format(
            number=loaded.checkin.number,
            name=html.escape(loaded.name),
            hours=loaded.checkin.hours or 0,
        ),
        reply_markup=mentor_keyboard(loaded.checkin),
    )


@_wbl_renderer(KIND_MENTOR_SILENT)
async def render_mentor_silent(ctx: RenderContext, row: Outbox) -> Outgoing:
    loaded = await _load(ctx, row)
    if loaded.checkin.status != CheckInStatus.submitted:
        raise Skip("answered meanwhile")
    return Outgoing(
        _(
            "The workplace mentor of {name} ({library}) has not answered reflection {number} "
            "for five days, despite a reminder."
        ).format(
            name=html.escape(loaded.name),
            library=html.escape(loaded.placement.host_library),
            number=loaded.checkin.number,
        )
    )


@_wbl_renderer(KIND_SUPPORT)
async def render_support(ctx: RenderContext, row: Outbox) -> Outgoing:
    loaded = await _load(ctx, row)
    answers = loaded.checkin.answers or {}
    return Outgoing(
        _(
            "⚠️ {name} ({library}) would like support (reflection {number}).\n"
            "<b>Difficulties:</b> {difficulties}"
        ).format(
            name=html.escape(loaded.name),
            library=html.escape(loaded.placement.host_library),
            number=loaded.checkin.number,
            difficulties=answer_html(answers.get("difficulties")),
        ),
        reply_markup=_voice_keyboard(loaded.checkin, "difficulties"),
    )


def _voice_keyboard(checkin: CheckIn, field_name: str) -> InlineKeyboardMarkup | None:
    if "voice" not in (checkin.answers or {}).get(field_name, {}):
        return None
    kb = InlineKeyboardBuilder()
    kb.button(
        text="🎤 " + _(FIELD_LABELS[field_name]),
        callback_data=VoiceNote(checkin_id=checkin.id, field=field_name),
    )
    return kb.as_markup()


@_wbl_renderer(KIND_NO_MENTOR)
async def render_no_mentor(ctx: RenderContext, row: Outbox) -> Outgoing:
    loaded = await _load(ctx, row)
    if loaded.placement.mentor_id is not None:
        raise Skip("a mentor has been linked meanwhile")
    return Outgoing(
        _(
            "{name} ({library}) sent reflection {number}, but no workplace mentor is linked "
            "yet, so it is waiting. Please remind them to send their mentor the link from "
            "/mentor_link."
        ).format(
            name=html.escape(loaded.name),
            library=html.escape(loaded.placement.host_library),
            number=loaded.checkin.number,
        )
    )


@_wbl_renderer(KIND_ANSWER)
async def render_answer(ctx: RenderContext, row: Outbox) -> Outgoing:
    loaded = await _load(ctx, row)
    checkin = loaded.checkin
    if row.payload.get("event") == CheckInEvent.confirm:
        sums = totals(
            await checkins_of(ctx.session, loaded.placement.id),
            ctx.clock.now(),
            planned=loaded.placement.planned_hours,
        )
        return Outgoing(
            _(
                "✅ Your mentor confirmed reflection {number}: {hours} hours. Hours confirmed "
                "so far: {confirmed} of {planned}."
            ).format(
                number=checkin.number,
                hours=checkin.hours or 0,
                confirmed=sums.confirmed,
                planned=sums.planned,
            )
        )
    comment = checkin.mentor_comment
    text = _("💬 Your mentor would like to talk about reflection {number}.").format(
        number=checkin.number
    )
    if comment:
        text += "\n" + _("Their comment: {comment}").format(comment=html.escape(comment))
    return Outgoing(text)


@_wbl_renderer(KIND_MENTOR_LINKED)
async def render_mentor_linked(ctx: RenderContext, row: Outbox) -> Outgoing:
    placement = await ctx.session.get(Placement, int(row.payload.get("placement_id", 0)))
    if placement is None or not is_open(placement) or placement.mentor_id is None:
        raise Skip("no mentor linked any more")
    return Outgoing(
        _(
            "Your workplace mentor has opened your link. From now on they receive your "
            "reflections and confirm your hours."
        )
    )


@_wbl_renderer(KIND_MENTOR_GONE)
async def render_mentor_gone(ctx: RenderContext, row: Outbox) -> Outgoing:
    placement = await ctx.session.get(Placement, int(row.payload.get("placement_id", 0)))
    if placement is None or not is_open(placement):
        raise Skip("the placement has ended")
    name = await learner_name(ctx.session, placement.learner_id)
    if row.payload.get("reason") == FlagReason.mentor_blocked:
        text = _(
            "⚠️ The workplace mentor of {name} ({library}) has blocked the bot and no longer "
            "receives reflections. The placement is flagged until they come back or the "
            "learner links a new mentor with /mentor_link."
        )
    else:
        text = _(
            "⚠️ The workplace mentor of {name} ({library}) has left the bot. The placement is "
            "flagged until the learner links a new mentor with /mentor_link."
        )
    return Outgoing(
        text.format(name=html.escape(name), library=html.escape(placement.host_library))
    )


@_wbl_renderer(KIND_MENTOR_GONE_LEARNER)
async def render_mentor_gone_learner(ctx: RenderContext, row: Outbox) -> Outgoing:
    placement = await ctx.session.get(Placement, int(row.payload.get("placement_id", 0)))
    if placement is None or not is_open(placement):
        raise Skip("the placement has ended")
    if placement.status != PlacementStatus.flagged:
        raise Skip("the flag was cleared meanwhile")
    return Outgoing(
        _(
            "Your workplace mentor no longer receives your reflections through the bot. Your "
            "trainer has been told. You can send /mentor_link to get a new link for them, or "
            "for a new mentor."
        )
    )


@_wbl_renderer(KIND_ENDED)
async def render_ended(ctx: RenderContext, row: Outbox) -> Outgoing:
    # Deliberately nothing about the learner: they withdrew or erased their data.
    return Outgoing(
        _(
            "A work-based learning placement you mentored has ended. You will receive no more "
            "reflections from it."
        )
    )
