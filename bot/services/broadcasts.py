"""Trainer broadcasts: an audience among the trainer's own cohorts, a message with
optional per-language variants, one confirmation, delivery through the outbox, a report.

Sending once: the confirmation flips the broadcast from draft to sending in one
conditional UPDATE (a second press, or a second process, changes no row and sends
nothing), and each recipient's outbox row has the unique key (broadcast, id, recipient).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiogram.utils.i18n import gettext as _
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.i18n import LANGUAGES, resolve_language
from bot.services.cohorts import trainer_cohorts
from bot.services.consent import has_valid_consent
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
from content.loader import Content
from storage.models import (
    Broadcast,
    Cohort,
    Learner,
    LearnerStatus,
    Outbox,
    OutboxStatus,
    Placement,
    User,
)

KIND = "broadcast"
REPORT_KIND = "broadcast_report"
PROFILES = ("CECO", "DIGY")
STAGES = ("mooc", "blended", "wbl")
INACTIVE_AFTER = timedelta(days=7)
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
# Attachments are kept with the broadcast and uploaded to each learner by the outbox.
MEDIA_LIMIT = 10 * 1024 * 1024


@dataclass
class Audience:
    cohorts: list[int] = field(default_factory=list)
    profile: str | None = None  # CECO | DIGY
    language: str | None = None  # en, lv, it, bg, el
    stage: str | None = None  # mooc | blended | wbl
    inactive: bool = False  # not seen for 7 days

    def to_json(self) -> dict[str, Any]:
        return {
            "cohorts": list(self.cohorts),
            "profile": self.profile,
            "language": self.language,
            "stage": self.stage,
            "inactive": self.inactive,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Audience:
        data = data or {}
        profile = data.get("profile")
        language = data.get("language")
        stage = data.get("stage")
        return cls(
            cohorts=[int(c) for c in data.get("cohorts", [])],
            profile=profile if profile in PROFILES else None,
            language=language if language in LANGUAGES else None,
            stage=stage if stage in STAGES else None,
            inactive=bool(data.get("inactive", False)),
        )


@dataclass(frozen=True)
class Recipient:
    user_id: int
    language: str
    blocked: bool


def learner_stage(cohort: Cohort, in_wbl: bool, now: datetime) -> str:
    """WBL while a placement is on; blended once the specialisation course started."""
    if in_wbl:
        return "wbl"
    if cohort.spec_start is not None and cohort.spec_start <= now.date():
        return "blended"
    return "mooc"


async def recipients(
    session: AsyncSession, trainer_id: int, audience: Audience, content: Content, now: datetime
) -> list[Recipient]:
    """Consented, enrolled learners of the trainer's own cohorts that match the audience.
    Cohorts not the trainer's are dropped here, whatever the audience says."""
    own = {c.id for c in await trainer_cohorts(session, trainer_id)}
    chosen = [c for c in audience.cohorts if c in own]
    if not chosen:
        return []
    rows = list(
        await session.execute(
            select(Learner, User, Cohort)
            .join(User, User.id == Learner.user_id)
            .join(Cohort, Cohort.id == Learner.cohort_id)
            .where(Learner.cohort_id.in_(chosen), Learner.status == LearnerStatus.enrolled)
            .order_by(Learner.user_id)
        )
    )
    in_wbl: set[int] = set()
    if audience.stage is not None and rows:
        in_wbl = set(
            await session.scalars(
                select(Placement.learner_id).where(
                    Placement.learner_id.in_([learner.user_id for learner, _, _ in rows]),
                    Placement.status != "ended",
                )
            )
        )
    found: list[Recipient] = []
    for learner, user, cohort in rows:
        if not has_valid_consent(user, content):
            continue
        language = resolve_language(user.language, None)
        if audience.profile is not None and learner.profile != audience.profile:
            continue
        if audience.language is not None and language != audience.language:
            continue
        if audience.stage is not None and (
            learner_stage(cohort, learner.user_id in in_wbl, now) != audience.stage
        ):
            continue
        if audience.inactive and user.last_seen_at >= now - INACTIVE_AFTER:
            continue
        found.append(Recipient(user.id, language, not user.is_active))
    return found


# --- the message as learners see it -----------------------------------------------------------


def body_for(broadcast: Broadcast, language: str) -> str:
    """The learner's language variant, else the default text."""
    variant = (broadcast.variants or {}).get(language)
    return str(variant) if variant else broadcast.text


def render_text(broadcast: Broadcast, language: str) -> str:
    """The text or caption, in the current locale (set to the learner's language)."""
    header = _("📣 <b>Announcement from your trainer</b>")
    return f"{header}\n\n{body_for(broadcast, language)}"


def outgoing(broadcast: Broadcast, language: str) -> Outgoing:
    """What the outbox sends: the text, or the photo or document with its caption."""
    out = Outgoing(text=render_text(broadcast, language))
    if broadcast.media_kind == "photo" and broadcast.media_data is not None:
        out.photo = broadcast.media_data
    elif broadcast.media_kind == "document" and broadcast.media_data is not None:
        out.document = (broadcast.media_name or "document", broadcast.media_data)
    return out


@renderer(KIND)
async def render_broadcast(ctx: RenderContext, row: Outbox) -> Outgoing:
    broadcast = await ctx.session.get(Broadcast, int(row.payload.get("broadcast_id", 0)))
    if broadcast is None or broadcast.status == "cancelled":
        raise Skip("the broadcast no longer exists")
    learner = await ctx.session.get(Learner, ctx.recipient.id)
    if learner is None or learner.status is not LearnerStatus.enrolled:
        raise Skip("no longer enrolled")
    if not has_valid_consent(ctx.recipient, ctx.content):
        raise Skip("no valid consent")
    return outgoing(broadcast, resolve_language(ctx.recipient.language, None))


# --- confirming --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Confirmed:
    count: int


class ConfirmRefused(Exception):
    """`reason`: not_yours | already | empty"""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def owned_broadcast(
    session: AsyncSession, broadcast_id: int, trainer_id: int
) -> Broadcast | None:
    """The broadcast if it is this trainer's and all its cohorts are still theirs."""
    broadcast = await session.get(Broadcast, broadcast_id)
    if broadcast is None or broadcast.trainer_id != trainer_id:
        return None
    own = {c.id for c in await trainer_cohorts(session, trainer_id)}
    if not set(Audience.from_json(broadcast.audience).cohorts) <= own:
        return None
    return broadcast


async def confirm(
    session: AsyncSession, broadcast_id: int, trainer_id: int, content: Content, now: datetime
) -> Confirmed:
    """Send once: the status flips draft -> sending in one conditional UPDATE; only the
    update that changed the row plans the outbox rows."""
    broadcast = await owned_broadcast(session, broadcast_id, trainer_id)
    if broadcast is None:
        raise ConfirmRefused("not_yours")
    targets = await recipients(
        session, trainer_id, Audience.from_json(broadcast.audience), content, now
    )
    if not targets:
        raise ConfirmRefused("empty")
    flipped = await session.execute(
        update(Broadcast)
        .where(Broadcast.id == broadcast_id, Broadcast.status == "draft")
        .values(status="sending", confirmed_at=now, recipients=len(targets))
        .execution_options(synchronize_session=False)
    )
    if getattr(flipped, "rowcount", 0) != 1:
        raise ConfirmRefused("already")
    await enqueue_many(
        session,
        (
            Planned(
                kind=KIND,
                reference=broadcast_id,
                recipient_id=r.user_id,
                not_before=now,
                payload={"broadcast_id": broadcast_id},
                broadcast_id=broadcast_id,
            )
            for r in targets
        ),
    )
    await session.refresh(broadcast)
    return Confirmed(len(targets))


# --- the report --------------------------------------------------------------------------------

_BLOCKED_WORDS = ("blocked", "forbidden", "deactivated")


@dataclass(frozen=True)
class DeliveryReport:
    delivered: int = 0
    blocked: int = 0
    failed: int = 0
    pending: int = 0

    @property
    def total(self) -> int:
        return self.delivered + self.blocked + self.failed + self.pending


def is_blocked(error: str | None, user_active: bool) -> bool:
    text = (error or "").lower()
    return not user_active or any(word in text for word in _BLOCKED_WORDS)


async def delivery_report(session: AsyncSession, broadcast_id: int) -> DeliveryReport:
    """From the broadcast's outbox rows: delivered, blocked the bot, failed, pending."""
    rows = await session.execute(
        select(Outbox.status, Outbox.error, User.is_active)
        .join(User, User.id == Outbox.recipient_id)
        .where(Outbox.broadcast_id == broadcast_id, Outbox.kind == KIND)
    )
    counts = {"delivered": 0, "blocked": 0, "failed": 0, "pending": 0}
    for status, error, active in rows:
        if status is OutboxStatus.sent:
            counts["delivered"] += 1
        elif status in (OutboxStatus.pending, OutboxStatus.sending):
            counts["pending"] += 1
        elif is_blocked(error, bool(active)):
            counts["blocked"] += 1
        else:
            counts["failed"] += 1
    return DeliveryReport(**counts)


def report_text(broadcast: Broadcast, report: DeliveryReport) -> str:
    lines = [
        _("Broadcast #{id}: delivery report").format(id=broadcast.id),
        _("Delivered: {count}").format(count=report.delivered),
        _("Blocked the bot: {count}").format(count=report.blocked),
        _("Failed: {count}").format(count=report.failed),
        _("Pending: {count}").format(count=report.pending),
    ]
    return "\n".join(lines)


async def pending_count(session: AsyncSession, broadcast_id: int) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(Outbox)
        .where(
            Outbox.broadcast_id == broadcast_id,
            Outbox.kind == KIND,
            Outbox.status.in_([OutboxStatus.pending, OutboxStatus.sending]),
        )
    )
    return int(count or 0)


@planner("broadcast_reports")
async def plan_reports(ctx: PlanContext) -> int:
    """A broadcast with nothing pending any more gets its report, once, by itself."""
    sending = list(
        await ctx.session.scalars(select(Broadcast).where(Broadcast.status == "sending"))
    )
    added = 0
    now = ctx.clock.now()
    for broadcast in sending:
        if await pending_count(ctx.session, broadcast.id):
            continue
        done = await ctx.session.execute(
            update(Broadcast)
            .where(Broadcast.id == broadcast.id, Broadcast.status == "sending")
            .values(status="done", reported_at=now)
            .execution_options(synchronize_session=False)
        )
        if getattr(done, "rowcount", 0) != 1:
            continue
        added += await enqueue(
            ctx.session,
            kind=REPORT_KIND,
            reference=broadcast.id,
            recipient_id=broadcast.trainer_id,
            not_before=now,
            payload={"broadcast_id": broadcast.id},
            urgent=True,
        )
    return added


@renderer(REPORT_KIND)
async def render_report(ctx: RenderContext, row: Outbox) -> Outgoing:
    broadcast = await ctx.session.get(Broadcast, int(row.payload.get("broadcast_id", 0)))
    if broadcast is None:
        raise Skip("the broadcast no longer exists")
    report = await delivery_report(ctx.session, broadcast.id)
    return Outgoing(text=report_text(broadcast, report))
