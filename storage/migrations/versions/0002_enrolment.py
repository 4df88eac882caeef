"""enrolment: cohorts, invites, consent, learners

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 12:36:04.708678
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.models

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "cohorts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("mooc_start", sa.Date(), nullable=False),
        sa.Column("spec_start", sa.Date(), nullable=True),
        sa.Column("spec_end", sa.Date(), nullable=True),
        sa.Column("self_paced", sa.Boolean(), nullable=False),
        sa.Column("release_hour", sa.SmallInteger(), nullable=False),
        sa.Column("calendar", sa.JSON(), nullable=True),
        sa.Column("created_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "cohort_trainers",
        sa.Column("cohort_id", sa.Integer(), nullable=False),
        sa.Column("trainer_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["cohort_id"], ["cohorts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["trainer_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("cohort_id", "trainer_id"),
    )
    with op.batch_alter_table("cohort_trainers", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_cohort_trainers_trainer_id"), ["trainer_id"], unique=False
        )

    op.create_table(
        "consent_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "answer",
            sa.Enum(
                "granted",
                "declined",
                "withdrawn",
                name="consentanswer",
                native_enum=False,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("consent_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_consent_events_user_id"), ["user_id"], unique=False)

    op.create_table(
        "invites",
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("cohort", "trainer", "mentor", name="invitekind", native_enum=False, length=24),
            nullable=False,
        ),
        sa.Column("cohort_id", sa.Integer(), nullable=True),
        sa.Column("learner_id", sa.BigInteger(), nullable=True),
        sa.Column("created_by", sa.BigInteger(), nullable=True),
        sa.Column("expires_at", storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("max_uses", sa.Integer(), nullable=True),
        sa.Column("uses", sa.Integer(), nullable=False),
        sa.Column("created_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["cohort_id"], ["cohorts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["learner_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("token"),
    )
    op.create_table(
        "learners",
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("cohort_id", sa.Integer(), nullable=True),
        sa.Column(
            "status",
            sa.Enum("enrolled", "withdrawn", name="learnerstatus", native_enum=False, length=24),
            nullable=False,
        ),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("age_band", sa.String(length=16), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("education", sa.String(length=32), nullable=False),
        sa.Column("employment", sa.String(length=32), nullable=False),
        sa.Column("profession", sa.Text(), nullable=False),
        sa.Column("years_experience", sa.SmallInteger(), nullable=False),
        sa.Column("heard_from", sa.String(length=32), nullable=False),
        sa.Column("profile", sa.String(length=4), nullable=False),
        sa.Column("skills", sa.JSON(), nullable=False),
        sa.Column("enrolled_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["cohort_id"], ["cohorts.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id"),
    )
    with op.batch_alter_table("learners", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_learners_cohort_id"), ["cohort_id"], unique=False)

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("consent_version", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("consent_language", sa.String(length=8), nullable=True))


def downgrade() -> None:

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("consent_language")
        batch_op.drop_column("consent_version")

    with op.batch_alter_table("learners", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_learners_cohort_id"))

    op.drop_table("learners")
    op.drop_table("invites")
    with op.batch_alter_table("consent_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consent_events_user_id"))

    op.drop_table("consent_events")
    with op.batch_alter_table("cohort_trainers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cohort_trainers_trainer_id"))

    op.drop_table("cohort_trainers")
    op.drop_table("cohorts")
