"""Typed SQLAlchemy models. Times are stored in UTC."""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on both backends (SQLite keeps no zone, so we restore it)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; store UTC-aware times")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
    }


class Role(enum.StrEnum):
    learner = "learner"
    mentor = "mentor"
    trainer = "trainer"


class User(Base):
    """Anyone who has talked to the bot. Before consent only the id, the language and the
    consent answer are kept; everything personal lives in tables added with enrolment."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    language: Mapped[str | None] = mapped_column(String(8))
    role: Mapped[Role] = mapped_column(
        Enum(Role, native_enum=False, length=16), default=Role.learner
    )
    # False once Telegram says the user blocked the bot (403 or my_chat_member).
    is_active: Mapped[bool] = mapped_column(default=True)
    # The privacy-notice version this person consented to, in which language; None: no
    # valid consent (never asked, declined, withdrawn, or the notice changed since).
    consent_version: Mapped[int | None] = mapped_column(Integer)
    consent_language: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class FsmState(Base):
    """aiogram FSM state and data, so a half-finished conversation survives a restart."""

    __tablename__ = "fsm_states"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    user_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    state: Mapped[str | None] = mapped_column(String(255))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


def _enum(cls: type[enum.Enum]) -> Enum:
    return Enum(cls, native_enum=False, length=24, validate_strings=True)


class Cohort(Base):
    """A group of learners on one calendar, in one time zone and language."""

    __tablename__ = "cohorts"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    country: Mapped[str] = mapped_column(String(2))  # ISO 3166 alpha-2; "EU" for the open MOOC
    language: Mapped[str] = mapped_column(String(8))
    timezone: Mapped[str] = mapped_column(String(64))
    mooc_start: Mapped[date] = mapped_column(Date)
    spec_start: Mapped[date | None] = mapped_column(Date)
    spec_end: Mapped[date | None] = mapped_column(Date)
    # The open, self-paced MOOC group that a plain /start offers.
    self_paced: Mapped[bool] = mapped_column(default=False)
    release_hour: Mapped[int] = mapped_column(SmallInteger, default=9)
    # A cohort's own calendar ({"name":..., "weeks": [...]}, as content/calendar.yaml).
    calendar: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CohortTrainer(Base):
    __tablename__ = "cohort_trainers"

    cohort_id: Mapped[int] = mapped_column(
        ForeignKey("cohorts.id", ondelete="CASCADE"), primary_key=True
    )
    trainer_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class InviteKind(enum.StrEnum):
    cohort = "cohort"
    trainer = "trainer"
    mentor = "mentor"


class Invite(Base):
    """A deep-link token (t.me/<bot>?start=<token>): random, may expire, limited in uses."""

    __tablename__ = "invites"

    token: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[InviteKind] = mapped_column(_enum(InviteKind))
    cohort_id: Mapped[int | None] = mapped_column(ForeignKey("cohorts.id", ondelete="CASCADE"))
    # A mentor link belongs to the learner who shared it.
    learner_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE")
    )
    created_by: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="SET NULL")
    )
    expires_at: Mapped[datetime | None] = mapped_column()
    max_uses: Mapped[int | None] = mapped_column(Integer)
    uses: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConsentAnswer(enum.StrEnum):
    granted = "granted"
    declined = "declined"
    withdrawn = "withdrawn"


class ConsentEvent(Base):
    """Each consent answer, with the notice version and language it answered."""

    __tablename__ = "consent_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    answer: Mapped[ConsentAnswer] = mapped_column(_enum(ConsentAnswer))
    version: Mapped[int] = mapped_column(Integer)
    language: Mapped[str] = mapped_column(String(8))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class LearnerStatus(enum.StrEnum):
    enrolled = "enrolled"
    withdrawn = "withdrawn"


class Learner(Base):
    """The programme's registration form; kept only after consent."""

    __tablename__ = "learners"

    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    cohort_id: Mapped[int | None] = mapped_column(
        ForeignKey("cohorts.id", ondelete="SET NULL"), index=True
    )
    status: Mapped[LearnerStatus] = mapped_column(
        _enum(LearnerStatus), default=LearnerStatus.enrolled
    )
    name: Mapped[str] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(String(254))
    age_band: Mapped[str] = mapped_column(String(16))
    country: Mapped[str] = mapped_column(String(2))
    education: Mapped[str] = mapped_column(String(32))
    employment: Mapped[str] = mapped_column(String(32))
    profession: Mapped[str] = mapped_column(Text)
    years_experience: Mapped[int] = mapped_column(SmallInteger)
    heard_from: Mapped[str] = mapped_column(String(32))
    profile: Mapped[str] = mapped_column(String(4))  # CECO | DIGY
    skills: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    enrolled_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# --- delivery (issue: releases, reminders, outbox) ---------------------------------------

# SQLite only autoincrements an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit key.
BigId = BigInteger().with_variant(Integer, "sqlite")


class OutboxStatus(enum.StrEnum):
    pending = "pending"  # waiting for its time (not_before) and a worker
    sending = "sending"  # claimed by a worker; a crash leaves it here until the lease ends
    sent = "sent"
    failed = "failed"  # gave up: error says why
    skipped = "skipped"  # not sent on purpose (expired, muted, withdrawn): error says why


class Outbox(Base):
    """Every notification the bot owes someone. The unique key (kind, reference,
    recipient) makes planning idempotent; the status makes delivery crash-safe."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    recipient_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    not_before: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime | None] = mapped_column()
    urgent: Mapped[bool] = mapped_column(default=False)  # may be sent in quiet hours
    status: Mapped[OutboxStatus] = mapped_column(_enum(OutboxStatus), default=OutboxStatus.pending)
    attempts: Mapped[int] = mapped_column(SmallInteger, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column()
    sent_at: Mapped[datetime | None] = mapped_column()
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)
    broadcast_id: Mapped[int | None] = mapped_column(Integer, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_outbox_due", "status", "not_before"),)


class Webinar(Base):
    __tablename__ = "webinars"

    id: Mapped[int] = mapped_column(primary_key=True)
    cohort_id: Mapped[int] = mapped_column(ForeignKey("cohorts.id", ondelete="CASCADE"), index=True)
    starts_at: Mapped[datetime] = mapped_column()
    duration_min: Mapped[int] = mapped_column(SmallInteger, default=60)
    join_url: Mapped[str] = mapped_column(String(500))
    modules: Mapped[list[int]] = mapped_column(JSON, default=list)
    recording_url: Mapped[str | None] = mapped_column(String(500))
    # When the planner told the cohort that the recording is there (once per webinar).
    recording_notified_at: Mapped[datetime | None] = mapped_column()
    cancelled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class UserSettings(Base):
    """A person's notification choices: muted kinds and local quiet hours."""

    __tablename__ = "user_settings"

    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    muted: Mapped[list[str]] = mapped_column(JSON, default=list)
    quiet_start: Mapped[int] = mapped_column(SmallInteger, default=21 * 60)  # minutes, local
    quiet_end: Mapped[int] = mapped_column(SmallInteger, default=8 * 60)


class PlannerState(Base):
    """When the planner last ran up to: missed ticks are caught up from here on start."""

    __tablename__ = "planner_state"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    planned_until: Mapped[datetime] = mapped_column()
    ticked_at: Mapped[datetime] = mapped_column()


# --- practice quizzes ---------------------------------------------------------------------


class QuizRound(Base):
    """One practice round of a module: scored (counts as an attempt) or review."""

    __tablename__ = "quiz_rounds"

    id: Mapped[int] = mapped_column(primary_key=True)
    # SET NULL, not CASCADE: on erasure the round stays, anonymous, for cohort statistics.
    user_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    cohort_id: Mapped[int | None] = mapped_column(ForeignKey("cohorts.id", ondelete="SET NULL"))
    module: Mapped[int] = mapped_column(SmallInteger)
    kind: Mapped[str] = mapped_column(String(16))  # scored | review | spaced
    attempt_no: Mapped[int | None] = mapped_column(SmallInteger)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active|finished|expired
    position: Mapped[int] = mapped_column(SmallInteger, default=0)  # next item to send
    score: Mapped[int | None] = mapped_column(SmallInteger)
    total: Mapped[int] = mapped_column(SmallInteger)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The last answer (or the start): a round with no answer for a day expires.
    active_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (
        # One active round per learner and module: a double tap cannot start two, even
        # from two processes. (module 0 is the spaced-review round across modules.)
        Index(
            "uq_quiz_round_active",
            "user_id",
            "module",
            unique=True,
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
        Index("ix_quiz_rounds_status_active_at", "status", "active_at"),
    )


class QuizItem(Base):
    """One question of a round, as sent: its poll, the option order shown, the answer."""

    __tablename__ = "quiz_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("quiz_rounds.id", ondelete="CASCADE"))
    index: Mapped[int] = mapped_column(SmallInteger)
    question_id: Mapped[str] = mapped_column(String(16))
    option_order: Mapped[list[int]] = mapped_column(JSON, default=list)
    poll_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    chosen: Mapped[int | None] = mapped_column(SmallInteger)  # in the content's own order
    correct: Mapped[bool | None] = mapped_column()
    # Set when answered, or when skipped (chosen stays None: the question left the bank).
    answered_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (UniqueConstraint("round_id", "index", name="uq_quiz_item_position"),)


class ReviewItem(Base):
    """Spaced review: a missed question comes back after 1, 3 and 7 days."""

    __tablename__ = "review_items"

    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    question_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    step: Mapped[int] = mapped_column(SmallInteger, default=0)  # 0: due after 1 day, 1: 3, 2: 7
    due_at: Mapped[datetime] = mapped_column(index=True)


# --- work-based learning ------------------------------------------------------------------


class Placement(Base):
    """A learner's WBL placement: 10 weeks at a host library under a workplace mentor."""

    __tablename__ = "placements"

    id: Mapped[int] = mapped_column(primary_key=True)
    learner_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    mentor_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    host_library: Mapped[str] = mapped_column(String(200))
    start_date: Mapped[date] = mapped_column(Date)
    weeks: Mapped[int] = mapped_column(SmallInteger, default=10)
    planned_hours: Mapped[int] = mapped_column(SmallInteger, default=165)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active|flagged|ended
    flag_reason: Mapped[str | None] = mapped_column(String(64))
    created_by: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CheckIn(Base):
    """A fortnightly reflection (weeks 2, 4, 6, 8, 10) and the mentor's answer to it."""

    __tablename__ = "checkins"

    id: Mapped[int] = mapped_column(primary_key=True)
    placement_id: Mapped[int] = mapped_column(ForeignKey("placements.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(SmallInteger)  # 1..5
    due_at: Mapped[datetime] = mapped_column()
    # open | submitted | confirmed | talk | overdue
    status: Mapped[str] = mapped_column(String(16), default="open")
    answers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    hours: Mapped[int | None] = mapped_column(SmallInteger)
    needs_support: Mapped[bool] = mapped_column(default=False)
    submitted_at: Mapped[datetime | None] = mapped_column()
    decided_by: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="SET NULL")
    )
    decided_at: Mapped[datetime | None] = mapped_column()
    mentor_comment: Mapped[str | None] = mapped_column(Text)
    # When the reflection went to the (current) mentor: their 3- and 5-day clocks.
    mentor_asked_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (UniqueConstraint("placement_id", "number", name="uq_checkin_number"),)


# --- trainer tools ------------------------------------------------------------------------


class Broadcast(Base):
    """A trainer's announcement: drafted, previewed, confirmed once, then delivered as
    outbox rows carrying its id (Outbox.broadcast_id), which the delivery report counts."""

    __tablename__ = "broadcasts"

    id: Mapped[int] = mapped_column(primary_key=True)
    trainer_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    # {"cohorts": [ids], "profile": "CECO"|None, "language": "lv"|None,
    #  "stage": "mooc"|"blended"|"wbl"|None, "inactive": bool}
    audience: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    text: Mapped[str] = mapped_column(Text, default="")  # the default text or caption (HTML)
    variants: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # language -> HTML
    media_kind: Mapped[str | None] = mapped_column(String(16))  # photo | document
    media_file_id: Mapped[str | None] = mapped_column(String(255))
    media_name: Mapped[str | None] = mapped_column(String(255))
    # The file itself: the outbox sends bytes (a file id is only valid for this bot, and
    # the delivery worker uploads attachments); see broadcasts.MEDIA_LIMIT.
    media_data: Mapped[bytes | None] = mapped_column(LargeBinary)
    # draft -> sending (confirmed; rows in the outbox) -> done (reported) | cancelled
    status: Mapped[str] = mapped_column(String(16), default="draft")
    recipients: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column()
    reported_at: Mapped[datetime | None] = mapped_column()
