"""A cohort's figures for its trainer: who is there and active, how the practice quizzes
go, how work-based learning goes; as text, a chart and a CSV; and who needs help.

Everything counts the cohort's enrolled learners (withdrawn ones are out), and only
learners with a valid consent appear by name (digest, export)."""

from __future__ import annotations

import asyncio
import csv
import io
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.cohort_calendar import released_modules
from bot.services.consent import has_valid_consent
from content.loader import Content
from storage.models import (
    CheckIn,
    Cohort,
    Learner,
    LearnerStatus,
    Placement,
    QuizRound,
    User,
)

PASS_PERCENT = 75  # the programme's pass mark for every test
PASS_MARK = PASS_PERCENT / 100
MAX_ATTEMPTS = 3
INACTIVE_AFTER = timedelta(days=7)
# Check-in states as the WBL feature writes them.
SUBMITTED_STATES = ("submitted", "talk")
REASON_ORDER = ("inactive", "failed_three", "overdue", "support")


@dataclass
class ModuleQuiz:
    module: int
    takers: int = 0
    passed: int = 0
    best_sum: float = 0.0  # sum of each taker's best score (0..1)
    failed_three: int = 0

    @property
    def pass_rate(self) -> float:
        return self.passed / self.takers if self.takers else 0.0

    @property
    def mean_best(self) -> float:
        return self.best_sum / self.takers if self.takers else 0.0


@dataclass
class CohortStats:
    cohort_id: int
    enrolled: int = 0
    consented: int = 0
    active_7d: int = 0
    blocked: int = 0
    modules_released: list[int] = field(default_factory=list)
    quizzes: dict[int, ModuleQuiz] = field(default_factory=dict)
    failed_three: set[int] = field(default_factory=set)  # learners (user ids)
    checkins_due: int = 0
    checkins_submitted: int = 0
    checkins_confirmed: int = 0
    checkins_overdue: int = 0


@dataclass
class LearnerRow:
    learner: Learner
    user: User
    consented: bool


async def cohort_learners(
    session: AsyncSession, cohort_id: int, content: Content
) -> list[LearnerRow]:
    """The cohort's enrolled learners, with their user row and whether consent is valid."""
    rows = await session.execute(
        select(Learner, User)
        .join(User, User.id == Learner.user_id)
        .where(Learner.cohort_id == cohort_id, Learner.status == LearnerStatus.enrolled)
        .order_by(Learner.name, Learner.user_id)
    )
    return [LearnerRow(learner, user, has_valid_consent(user, content)) for learner, user in rows]


@dataclass
class QuizFacts:
    """Per learner and module: finished scored attempts and the best score (0..1)."""

    attempts: dict[tuple[int, int], int] = field(default_factory=dict)
    best: dict[tuple[int, int], float] = field(default_factory=dict)
    passes: set[tuple[int, int]] = field(default_factory=set)

    def passed(self, user_id: int, module: int) -> bool:
        return (user_id, module) in self.passes

    def failed_three(self, user_id: int, module: int) -> bool:
        return self.attempts.get((user_id, module), 0) >= MAX_ATTEMPTS and not self.passed(
            user_id, module
        )


async def quiz_facts(session: AsyncSession, user_ids: list[int]) -> QuizFacts:
    facts = QuizFacts()
    if not user_ids:
        return facts
    rounds = await session.execute(
        select(QuizRound.user_id, QuizRound.module, QuizRound.score, QuizRound.total).where(
            QuizRound.user_id.in_(user_ids),
            QuizRound.kind == "scored",
            QuizRound.status == "finished",
        )
    )
    for user_id, module, score, total in rounds:
        if user_id is None:
            continue
        key = (int(user_id), int(module))
        facts.attempts[key] = facts.attempts.get(key, 0) + 1
        value = (score or 0) / total if total else 0.0
        facts.best[key] = max(facts.best.get(key, 0.0), value)
        if total and (score or 0) * 100 >= total * PASS_PERCENT:  # no rounding at the mark
            facts.passes.add(key)
    return facts


async def checkins_of(session: AsyncSession, user_ids: list[int]) -> list[tuple[int, CheckIn]]:
    if not user_ids:
        return []
    rows = await session.execute(
        select(Placement.learner_id, CheckIn)
        .join(CheckIn, CheckIn.placement_id == Placement.id)
        .where(Placement.learner_id.in_(user_ids))
    )
    return [(int(learner_id), checkin) for learner_id, checkin in rows]


def checkin_state(checkin: CheckIn, now: datetime) -> str:
    """due | submitted | confirmed | overdue | upcoming"""
    if checkin.status == "confirmed":
        return "confirmed"
    if checkin.status in SUBMITTED_STATES:
        return "submitted"
    if checkin.status == "overdue":
        return "overdue"
    return "due" if checkin.due_at <= now else "upcoming"


async def cohort_stats(
    session: AsyncSession, cohort: Cohort, content: Content, now: datetime
) -> CohortStats:
    stats = CohortStats(cohort.id)
    learners = await cohort_learners(session, cohort.id, content)
    stats.enrolled = len(learners)
    stats.consented = sum(1 for r in learners if r.consented)
    stats.active_7d = sum(1 for r in learners if r.user.last_seen_at >= now - INACTIVE_AFTER)
    stats.blocked = sum(1 for r in learners if not r.user.is_active)
    stats.modules_released = released_modules(cohort, content, now)

    ids = [r.learner.user_id for r in learners]
    facts = await quiz_facts(session, ids)
    per_module: dict[int, ModuleQuiz] = {}
    for (user_id, module), best in facts.best.items():
        entry = per_module.setdefault(module, ModuleQuiz(module))
        entry.takers += 1
        entry.best_sum += best
        if facts.passed(user_id, module):
            entry.passed += 1
        elif facts.failed_three(user_id, module):
            entry.failed_three += 1
            stats.failed_three.add(user_id)
    stats.quizzes = dict(sorted(per_module.items()))

    for _, checkin in await checkins_of(session, ids):
        state = checkin_state(checkin, now)
        if state == "due":
            stats.checkins_due += 1
        elif state == "submitted":
            stats.checkins_submitted += 1
        elif state == "confirmed":
            stats.checkins_confirmed += 1
        elif state == "overdue":
            stats.checkins_overdue += 1
    return stats


# --- who needs help -----------------------------------------------------------------------


@dataclass
class NeedsHelp:
    user_id: int
    name: str
    cohort_id: int
    reasons: list[str] = field(default_factory=list)  # inactive | failed_three | overdue | support


async def needs_help(
    session: AsyncSession, cohort: Cohort, content: Content, now: datetime
) -> list[NeedsHelp]:
    """Consented learners who need the trainer: inactive 7+ days, three failed attempts,
    an overdue check-in, or a support request not settled yet."""
    learners = [r for r in await cohort_learners(session, cohort.id, content) if r.consented]
    ids = [r.learner.user_id for r in learners]
    facts = await quiz_facts(session, ids)
    reasons: dict[int, list[str]] = defaultdict(list)
    for row in learners:
        if row.user.last_seen_at < now - INACTIVE_AFTER:
            reasons[row.learner.user_id].append("inactive")
    for user_id, module in sorted(facts.attempts):
        if facts.failed_three(user_id, module) and "failed_three" not in reasons[user_id]:
            reasons[user_id].append("failed_three")
    for user_id, checkin in await checkins_of(session, ids):
        state = checkin_state(checkin, now)
        if state == "overdue" and "overdue" not in reasons[user_id]:
            reasons[user_id].append("overdue")
        if checkin.needs_support and state != "confirmed" and "support" not in reasons[user_id]:
            reasons[user_id].append("support")
    return [
        NeedsHelp(
            r.learner.user_id,
            r.learner.name,
            cohort.id,
            sorted(reasons[r.learner.user_id], key=REASON_ORDER.index),
        )
        for r in learners
        if reasons.get(r.learner.user_id)
    ]


# --- export ---------------------------------------------------------------------------------

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cell(value: object) -> object:
    """A typed-in text that a spreadsheet would run as a formula is kept as text."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


async def export_csv(
    session: AsyncSession,
    cohort: Cohort,
    content: Content,
    now: datetime,
    headers: dict[str, str],
) -> bytes:
    """One row per learner with a valid consent, UTF-8 with a BOM (spreadsheets then read
    Latvian, Bulgarian and Greek names right). `headers` maps column keys to titles."""
    learners = [r for r in await cohort_learners(session, cohort.id, content) if r.consented]
    ids = [r.learner.user_id for r in learners]
    facts = await quiz_facts(session, ids)
    modules = sorted(set(released_modules(cohort, content, now)) | {m for (_, m) in facts.attempts})
    checkins: dict[int, list[CheckIn]] = defaultdict(list)
    for user_id, checkin in await checkins_of(session, ids):
        checkins[user_id].append(checkin)

    out = io.StringIO()
    writer = csv.writer(out)
    columns = [
        "telegram_id",
        "name",
        "email",
        "language",
        "country",
        "profile",
        "enrolled_at",
        "last_seen",
        "blocked",
        "modules_passed",
    ]
    writer.writerow(
        [headers.get(c, c) for c in columns]
        + [headers["module_best"].format(module=m) for m in modules]
        + [headers["module_attempts"].format(module=m) for m in modules]
        + [headers.get("checkins_confirmed", "checkins_confirmed")]
    )
    for row in learners:
        uid = row.learner.user_id
        passed = sum(1 for m in modules if facts.passed(uid, m))
        writer.writerow(
            [
                uid,
                cell(row.learner.name),
                cell(row.learner.email or ""),
                row.user.language or "",
                row.learner.country,
                row.learner.profile,
                row.learner.enrolled_at.date().isoformat(),
                row.user.last_seen_at.date().isoformat(),
                "1" if not row.user.is_active else "0",
                passed,
            ]
            + [
                f"{round(facts.best[(uid, m)] * 100)}" if (uid, m) in facts.best else ""
                for m in modules
            ]
            + [facts.attempts.get((uid, m), 0) for m in modules]
            + [sum(1 for c in checkins[uid] if c.status == "confirmed")]
        )
    return out.getvalue().encode("utf-8-sig")


# --- chart ----------------------------------------------------------------------------------


@dataclass
class ChartLabels:
    title: str
    learners: str
    bars: list[str]  # enrolled, consented, active, blocked
    quizzes: str
    pass_rate: str
    mean_best: str
    module: str
    no_quizzes: str


def _chart_png(stats: CohortStats, labels: ChartLabels) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.5), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2, width_ratios=[1, 2])
    fig.suptitle(labels.title)
    values = [stats.enrolled, stats.consented, stats.active_7d, stats.blocked]
    bars = left.bar(labels.bars, values, color=["#4c72b0", "#55a868", "#8172b2", "#c44e52"])
    left.bar_label(bars)
    left.set_title(labels.learners)
    left.tick_params(axis="x", labelrotation=20)
    right.set_title(labels.quizzes)
    if stats.quizzes:
        modules = list(stats.quizzes)
        xs = list(range(len(modules)))
        width = 0.4
        right.bar(
            [x - width / 2 for x in xs],
            [stats.quizzes[m].pass_rate * 100 for m in modules],
            width,
            label=labels.pass_rate,
            color="#55a868",
        )
        right.bar(
            [x + width / 2 for x in xs],
            [stats.quizzes[m].mean_best * 100 for m in modules],
            width,
            label=labels.mean_best,
            color="#4c72b0",
        )
        right.axhline(PASS_MARK * 100, color="#c44e52", linestyle="--", linewidth=1)
        right.set_xticks(xs, [str(m) for m in modules])
        right.set_xlabel(labels.module)
        right.set_ylim(0, 100)
        right.set_ylabel("%")
        right.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncols=2, frameon=False)
    else:
        right.text(0.5, 0.5, labels.no_quizzes, ha="center", va="center")
        right.set_axis_off()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


async def chart_png(stats: CohortStats, labels: ChartLabels) -> bytes:
    return await asyncio.to_thread(_chart_png, stats, labels)
