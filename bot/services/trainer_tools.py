"""Trainer tools: the feature module (bot/features.py imports it in every process).

Registers the outbox kinds trainers cause — "broadcast" and "broadcast_report"
(bot/services/broadcasts.py), "webinar_cancelled", "trainer_message", "trainer_digest" —
and the planners for the weekly digest and the automatic broadcast reports. Also the
webinar changes a trainer makes, and the QR code of an invitation link."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from html import escape

import qrcode
from aiogram.filters.callback_data import CallbackData
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.i18n import resolve_language
from bot.services import broadcasts as _broadcasts  # noqa: F401  (registers its kinds)
from bot.services.cohort_calendar import default_webinar_modules
from bot.services.cohorts import trainer_cohorts
from bot.services.consent import has_valid_consent
from bot.services.localtime import format_moment, zone
from bot.services.outbox import (
    Outgoing,
    Planned,
    RenderContext,
    Skip,
    enqueue,
    enqueue_many,
    renderer,
)
from bot.services.planning import PlanContext, planner
from bot.services.releases import REMINDER_LEADS
from bot.services.stats import NeedsHelp, needs_help
from content.loader import Content
from storage.models import (
    Cohort,
    CohortTrainer,
    Learner,
    LearnerStatus,
    Outbox,
    OutboxStatus,
    Role,
    User,
    Webinar,
)

WEBINAR_CANCELLED = "webinar_cancelled"
TRAINER_MESSAGE = "trainer_message"
TRAINER_DIGEST = "trainer_digest"
# The digest goes out on Monday morning, in the zone of the trainer's first cohort.
DIGEST_WEEKDAY = 0
DIGEST_HOUR = 8
DIGEST_MAX_LEARNERS = 30
MAX_MESSAGE = 3500


class MessageLearner(CallbackData, prefix="tml"):
    """The digest's button: write to this learner."""

    learner_id: int


# --- QR code ----------------------------------------------------------------------------------


def qr_png(link: str) -> bytes:
    """A QR code of `link` as a PNG, large enough for a poster or a slide."""
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=12, border=4)
    code.add_data(link)
    code.make(fit=True)
    image = code.make_image(fill_color="black", back_color="white")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


# --- webinars -----------------------------------------------------------------------------------


def webinar_time(webinar: Webinar, cohort: Cohort, locale: str) -> str:
    return format_moment(webinar.starts_at, zone(cohort.timezone), locale)


async def add_webinar(
    session: AsyncSession,
    cohort: Cohort,
    content: Content,
    *,
    starts_at: datetime,
    join_url: str,
    now: datetime,
    modules: list[int] | None = None,
    duration_min: int = 60,
) -> Webinar:
    webinar = Webinar(
        cohort_id=cohort.id,
        starts_at=starts_at.astimezone(UTC),
        duration_min=duration_min,
        join_url=join_url,
        # Empty: the modules released the week before, read when the reminder goes out (so
        # a calendar shifted later still gives the right ones).
        modules=list(modules or []),
        cancelled=False,
        created_at=now,
    )
    session.add(webinar)
    await session.flush()
    return webinar


async def upcoming_webinars(session: AsyncSession, cohort_id: int, now: datetime) -> list[Webinar]:
    """Webinars not cancelled that have not ended, and those without a recording yet."""
    rows = await session.scalars(
        select(Webinar)
        .where(Webinar.cohort_id == cohort_id, Webinar.cancelled.is_(False))
        .order_by(Webinar.starts_at)
    )
    return [
        w
        for w in rows
        if w.starts_at + timedelta(minutes=w.duration_min) > now
        or (w.recording_url is None and w.starts_at > now - timedelta(days=14))
    ]


async def duplicate_webinar(session: AsyncSession, cohort_id: int, starts_at: datetime) -> bool:
    found = await session.scalar(
        select(Webinar.id).where(
            Webinar.cohort_id == cohort_id,
            Webinar.starts_at == starts_at.astimezone(UTC),
            Webinar.cancelled.is_(False),
        )
    )
    return found is not None


def webinar_modules_shown(webinar: Webinar, cohort: Cohort, content: Content) -> list[int]:
    """The modules a webinar covers: as set, else those released the week before it."""
    if webinar.modules:
        return [int(n) for n in webinar.modules]
    return default_webinar_modules(cohort, content, webinar.starts_at)


async def reminded_learners(session: AsyncSession, webinar_id: int) -> list[int]:
    """Who has been sent a reminder of this webinar (at any of its times)."""
    rows = await session.scalars(
        select(Outbox.recipient_id).where(
            Outbox.kind.in_(tuple(REMINDER_LEADS)),
            Outbox.status == OutboxStatus.sent,
            or_(*(Outbox.key.like(f"{kind}:{webinar_id}@%") for kind in REMINDER_LEADS)),
        )
    )
    found: list[int] = []
    for user_id in rows:
        if user_id not in found:
            found.append(int(user_id))
    return found


async def cancel_webinar(session: AsyncSession, webinar: Webinar, now: datetime) -> int:
    """Cancel it; learners already reminded are told. Returns how many will be told."""
    webinar.cancelled = True
    await session.flush()
    told = await reminded_learners(session, webinar.id)
    await enqueue_many(
        session,
        (
            Planned(
                kind=WEBINAR_CANCELLED,
                reference=webinar.id,
                recipient_id=user_id,
                not_before=now,
                payload={"webinar_id": webinar.id},
                urgent=True,
                expires_at=webinar.starts_at + timedelta(minutes=webinar.duration_min),
            )
            for user_id in told
        ),
    )
    return len(told)


@renderer(WEBINAR_CANCELLED)
async def render_webinar_cancelled(ctx: RenderContext, row: Outbox) -> Outgoing:
    webinar = await ctx.session.get(Webinar, int(row.payload.get("webinar_id", 0)))
    if webinar is None or not webinar.cancelled:
        raise Skip("the webinar is no longer cancelled")
    cohort = await ctx.session.get(Cohort, webinar.cohort_id)
    if cohort is None:
        raise Skip("the cohort no longer exists")
    locale = resolve_language(ctx.recipient.language, None)
    return Outgoing(
        text=_(
            "The webinar on {when} is cancelled. Sorry for the change; "
            "your trainer will tell you about the next one."
        ).format(when=escape(webinar_time(webinar, cohort, locale)))
    )


# --- a trainer's message to one learner ----------------------------------------------------


async def learner_of_trainer(
    session: AsyncSession, trainer_id: int, learner_id: int, content: Content
) -> Learner | None:
    """The learner, if enrolled with a valid consent in one of this trainer's cohorts."""
    learner = await session.get(Learner, learner_id)
    if learner is None or learner.cohort_id is None:
        return None
    if learner.status is not LearnerStatus.enrolled:
        return None
    if await session.get(CohortTrainer, (learner.cohort_id, trainer_id)) is None:
        return None
    user = await session.get(User, learner_id)
    if user is None or not has_valid_consent(user, content):
        return None
    return learner


async def send_trainer_message(
    session: AsyncSession,
    *,
    trainer_id: int,
    trainer_name: str,
    learner_id: int,
    html: str,
    reference: str,
    now: datetime,
) -> bool:
    return await enqueue(
        session,
        kind=TRAINER_MESSAGE,
        reference=reference,
        recipient_id=learner_id,
        not_before=now,
        payload={"trainer_id": trainer_id, "trainer_name": trainer_name, "text": html},
    )


@renderer(TRAINER_MESSAGE)
async def render_trainer_message(ctx: RenderContext, row: Outbox) -> Outgoing:
    learner = await ctx.session.get(Learner, ctx.recipient.id)
    if learner is None or learner.status is not LearnerStatus.enrolled:
        raise Skip("no longer enrolled")
    if not has_valid_consent(ctx.recipient, ctx.content):
        raise Skip("no valid consent")
    name = escape(str(row.payload.get("trainer_name") or ""))
    header = (
        _("✉️ <b>A message from your trainer {name}</b>").format(name=name)
        if name
        else _("✉️ <b>A message from your trainer</b>")
    )
    return Outgoing(text=f"{header}\n\n{row.payload.get('text', '')}")


# --- the weekly digest ------------------------------------------------------------------------


def digest_moment(now: datetime, timezone: str) -> tuple[datetime, str]:
    """This week's digest time (Monday 08:00 local) and the week's label, e.g. 2027-W03."""
    tz = zone(timezone)
    local = now.astimezone(tz)
    monday = local.date() - timedelta(days=(local.weekday() - DIGEST_WEEKDAY) % 7)
    moment = datetime.combine(monday, time(DIGEST_HOUR), tzinfo=tz).astimezone(UTC)
    year, week, _ = monday.isocalendar()
    return moment, f"{year}-W{week:02d}"


@planner("trainer_digest")
async def plan_digests(ctx: PlanContext) -> int:
    """Each trainer with a cohort gets one digest a week, on Monday morning (or within a
    day of it, when the bot was down then)."""
    trainers = await ctx.session.execute(
        select(User.id, Cohort.timezone)
        .join(CohortTrainer, CohortTrainer.trainer_id == User.id)
        .join(Cohort, Cohort.id == CohortTrainer.cohort_id)
        .where(User.role == Role.trainer, Cohort.self_paced.is_(False))
        .order_by(User.id, Cohort.mooc_start.desc(), Cohort.id)
    )
    zones: dict[int, str] = {}
    for trainer_id, timezone in trainers:
        zones.setdefault(int(trainer_id), timezone)
    added = 0
    for trainer_id, timezone in zones.items():
        moment, label = digest_moment(ctx.until, timezone)
        if not moment <= ctx.until < moment + timedelta(days=1):
            continue
        added += await enqueue(
            ctx.session,
            kind=TRAINER_DIGEST,
            reference=label,
            recipient_id=trainer_id,
            not_before=moment,
            payload={"week": label},
            urgent=False,
            expires_at=moment + timedelta(days=3),
        )
    return added


@dataclass
class DigestEntry:
    cohort: Cohort
    people: list[NeedsHelp]


def reason_text(reason: str) -> str:
    labels = {
        "inactive": _("not active for 7 days"),
        "failed_three": _("three failed attempts"),
        "overdue": _("overdue check-in"),
        "support": _("asked for support"),
    }
    return labels.get(reason, reason)


async def digest_entries(
    session: AsyncSession, trainer_id: int, content: Content, now: datetime
) -> list[DigestEntry]:
    entries: list[DigestEntry] = []
    for cohort in await trainer_cohorts(session, trainer_id):
        people = await needs_help(session, cohort, content, now)
        if people:
            entries.append(DigestEntry(cohort, people))
    return entries


def render_digest(entries: list[DigestEntry]) -> Outgoing:
    lines = [_("<b>Learners who may need your help this week</b>")]
    kb = InlineKeyboardBuilder()
    shown = 0
    hidden = 0
    for entry in entries:
        lines += ["", f"<b>{escape(entry.cohort.name)}</b>"]
        for person in entry.people:
            if shown >= DIGEST_MAX_LEARNERS:
                hidden += 1
                continue
            shown += 1
            reasons = ", ".join(reason_text(r) for r in person.reasons)
            lines.append(f"• {escape(person.name[:60])}: {escape(reasons)}")
            kb.button(
                text=_("✉️ {name}").format(name=person.name[:40]),
                callback_data=MessageLearner(learner_id=person.user_id),
            )
    if hidden:
        lines += ["", _("…and {count} more: see /stats.").format(count=hidden)]
    lines += ["", _("Press a name to write to that learner.")]
    kb.adjust(2)
    return Outgoing(text="\n".join(lines), reply_markup=kb.as_markup())


@renderer(TRAINER_DIGEST)
async def render_trainer_digest(ctx: RenderContext, row: Outbox) -> Outgoing:
    if ctx.recipient.role is not Role.trainer:
        raise Skip("no longer a trainer")
    entries = await digest_entries(ctx.session, ctx.recipient.id, ctx.content, ctx.clock.now())
    if not entries:
        raise Skip("nobody needs help this week")
    return render_digest(entries)
