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
    Integer,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
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
