"""Trainer services on their own: calendar shifts, the digest's week, audience rules, typed
values, and — on SQLite and PostgreSQL — sending a broadcast once, its report, the
dashboard and the export."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from bot.i18n import make_i18n
from bot.services.broadcasts import (
    Audience,
    ConfirmRefused,
    confirm,
    delivery_report,
    is_blocked,
    learner_stage,
    recipients,
)
from bot.services.cohort_calendar import check_calendar_file, released_modules, shift_calendar
from bot.services.stats import cell, cohort_stats, export_csv, needs_help
from bot.services.trainer_tools import cancel_webinar, digest_moment, qr_png
from content.schema import Calendar
from handlers.trainer_common import parse_date, parse_local_datetime, parse_modules, parse_url
from handlers.trainer_stats import csv_headers
from storage.db import make_engine, make_sessionmaker
from storage.models import Broadcast, Cohort, Outbox, OutboxStatus, Placement, Role, User, Webinar
from tests.e2e.harness import shipped_content
from tests.e2e.trainer_seed import add_cohort, add_learner, add_user

NOW = datetime(2027, 2, 10, 10, 0, tzinfo=UTC)


def test_shift_moves_the_later_weeks():
    calendar = shipped_content().calendar
    shifted = shift_calendar(calendar, 3)
    assert [w.week for w in shifted.weeks] == [1, 2, 4, 5, 6, 7, 8, 9]
    assert [w.modules for w in shifted.weeks] == [w.modules for w in calendar.weeks]
    late = Calendar(name="x", weeks=[{"week": 52, "modules": [1]}])
    with pytest.raises(ValueError):
        shift_calendar(late, 52)


async def test_calendar_file_checks():
    content = shipped_content()
    calendar, errors, _ = await check_calendar_file(b"\xff\xfe\x00", "cal.yaml", content)
    assert calendar is None and "not a text file" in str(errors[0])
    calendar, errors, _ = await check_calendar_file(b"name: x\nweeks: []\n", "my cal.yml", content)
    assert calendar is None and str(errors[0]).startswith("my_cal.yml: weeks")
    calendar, errors, warnings = await check_calendar_file(
        b"name: x\nweeks:\n  - week: 1\n    modules: [1, 1]\n", "x.yaml", content
    )
    assert calendar is not None and not errors and "already released" in str(warnings[0])


def test_digest_week_and_moment():
    wednesday = datetime(2027, 2, 17, 12, 0, tzinfo=UTC)
    moment, label = digest_moment(wednesday, "Europe/Riga")
    assert moment == datetime(2027, 2, 15, 6, 0, tzinfo=UTC)  # Monday 08:00 in Riga
    assert label == "2027-W07"
    sunday_night = datetime(2027, 2, 14, 22, 30, tzinfo=UTC)  # 00:30 Monday in Riga
    assert digest_moment(sunday_night, "Europe/Riga")[1] == "2027-W07"


def test_stages_and_audience_rules():
    cohort = Cohort(spec_start=date(2027, 2, 1))
    assert learner_stage(cohort, True, NOW) == "wbl"
    assert learner_stage(cohort, False, NOW) == "blended"
    assert learner_stage(Cohort(spec_start=date(2027, 6, 1)), False, NOW) == "mooc"
    assert learner_stage(Cohort(spec_start=None), False, NOW) == "mooc"
    audience = Audience.from_json(
        {"cohorts": ["3"], "profile": "CEO", "language": "xx", "stage": "wbl", "inactive": 1}
    )
    assert audience == Audience(cohorts=[3], stage="wbl", inactive=True)
    assert is_blocked("blocked: Forbidden: bot was blocked by the user", True)
    assert is_blocked("inactive: the bot is blocked", True)
    assert is_blocked(None, False)
    assert not is_blocked("rejected: Bad Request: chat not found", True)


def test_typed_values():
    assert parse_date("2027-01-11") == parse_date("11.01.2027") == date(2027, 1, 11)
    assert parse_date("2027-02-30") is None
    # 03:30 does not exist in Riga on 28 March 2027: moved forward by the gap.
    assert parse_local_datetime("2027-03-28 03:30", "Europe/Riga") == datetime(
        2027, 3, 28, 1, 30, tzinfo=UTC
    )
    assert parse_local_datetime("2027-01-18 17:00", "Europe/Riga") == datetime(
        2027, 1, 18, 15, 0, tzinfo=UTC
    )
    for bad in ("2027-01-18", "17:00", "2027-01-18 25:00", "tomorrow at five"):
        assert parse_local_datetime(bad, "Europe/Riga") is None
    content = shipped_content()
    assert parse_modules("1, 32, 22", content) == [1, 32, 22]
    assert parse_modules("1 32 1", content) == [1, 32]
    assert parse_modules("1, 99", content) is None
    assert parse_modules("module one", content) is None
    assert parse_url("https://meet.example.org/x?y=1") == "https://meet.example.org/x?y=1"
    assert parse_url("javascript:alert(1)") is None
    assert parse_url("https://" + "a" * 600) is None


def test_export_cells_are_never_formulas():
    assert cell('=HYPERLINK("http://x")') == '\'=HYPERLINK("http://x")'
    assert cell("@sum") == "'@sum" and cell("-1") == "'-1"
    assert cell("Ēriks") == "Ēriks" and cell(12) == 12


def test_qr_png_is_an_image():
    data = qr_png("https://t.me/biblio_test_bot?start=AbCdEfGhIjKlMnOpQrStUv")
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) < 50_000


async def _session(db_url):
    engine = make_engine(db_url)
    return engine, make_sessionmaker(engine)


async def test_broadcast_once_report_and_figures(db_url):
    content = shipped_content()
    engine, sessionmaker = await _session(db_url)
    try:
        async with sessionmaker() as session, session.begin():
            await add_user(session, 1, NOW, role=Role.trainer)
            await add_user(session, 2, NOW, role=Role.trainer)
            mine = await add_cohort(
                session, "Rīga 2027", NOW, trainer_id=1, spec_start=date(2027, 2, 1)
            )
            theirs = await add_cohort(session, "Roma 2027", NOW, trainer_id=2)
            await add_learner(session, 11, mine.id, "Ēriks", NOW, lang="lv")
            await add_learner(session, 12, mine.id, "Иван", NOW, lang="bg", active=False)
            await add_learner(
                session, 13, mine.id, "Ελένη", NOW, lang="el", last_seen=NOW - timedelta(days=9)
            )
            await add_learner(session, 21, theirs.id, "Giulia", NOW, lang="it")
            session.add(
                Placement(
                    learner_id=13,
                    host_library="Βιβλιοθήκη",
                    start_date=date(2027, 2, 1),
                    status="active",
                    created_at=NOW,
                )
            )
            await session.flush()
            ids = mine.id, theirs.id

        async with sessionmaker() as session, session.begin():
            # Another trainer's cohort in the audience is dropped, whatever the audience says.
            found = await recipients(session, 1, Audience(cohorts=list(ids)), content, NOW)
            assert {r.user_id for r in found} == {11, 12, 13}
            wbl = await recipients(
                session, 1, Audience(cohorts=[ids[0]], stage="wbl"), content, NOW
            )
            assert [r.user_id for r in wbl] == [13]
            blended = Audience(cohorts=[ids[0]], stage="blended")
            assert {r.user_id for r in await recipients(session, 1, blended, content, NOW)} == {
                11,
                12,
            }
            idle = Audience(cohorts=[ids[0]], inactive=True)
            assert [r.user_id for r in await recipients(session, 1, idle, content, NOW)] == [13]
            assert not await recipients(session, 2, Audience(cohorts=[ids[0]]), content, NOW)

            broadcast = Broadcast(
                trainer_id=1,
                audience=Audience(cohorts=[ids[0]]).to_json(),
                text="Hi",
                variants={},
                status="draft",
                recipients=0,
                created_at=NOW,
            )
            session.add(broadcast)
            await session.flush()
            broadcast_id = broadcast.id
            with pytest.raises(ConfirmRefused) as refused:
                await confirm(session, broadcast_id, 2, content, NOW)
            assert refused.value.reason == "not_yours"
            assert (await confirm(session, broadcast_id, 1, content, NOW)).count == 3

        async with sessionmaker() as session, session.begin():
            with pytest.raises(ConfirmRefused) as refused:
                await confirm(session, broadcast_id, 1, content, NOW)
            assert refused.value.reason == "already"
            count = await session.scalar(select(func.count()).select_from(Outbox))
            assert count == 3
            await session.execute(
                update(Outbox).where(Outbox.recipient_id == 11).values(status=OutboxStatus.sent)
            )
            await session.execute(
                update(Outbox)
                .where(Outbox.recipient_id == 12)
                .values(status=OutboxStatus.skipped, error="inactive: the bot is blocked")
            )
            report = await delivery_report(session, broadcast_id)
            assert (report.delivered, report.blocked, report.failed, report.pending) == (1, 1, 0, 1)

        async with sessionmaker() as session, session.begin():
            cohort = await session.get(Cohort, ids[0])
            stats = await cohort_stats(session, cohort, content, NOW)
            assert (stats.enrolled, stats.consented, stats.active_7d, stats.blocked) == (3, 3, 2, 1)
            assert stats.modules_released == released_modules(cohort, content, NOW)
            people = await needs_help(session, cohort, content, NOW)
            assert [(p.user_id, p.reasons) for p in people] == [(13, ["inactive"])]
            with make_i18n().context():
                headers = csv_headers()
            raw = await export_csv(session, cohort, content, NOW, headers)
            table = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
            assert sorted(row[1] for row in table[1:]) == sorted(["Ēriks", "Иван", "Ελένη"])

            # Cancelling a webinar tells only those reminded of it.
            webinar = Webinar(
                cohort_id=cohort.id,
                starts_at=NOW + timedelta(hours=20),
                duration_min=60,
                join_url="https://x.example.org",
                modules=[],
                cancelled=False,
                created_at=NOW,
            )
            session.add(webinar)
            await session.flush()
            for user_id, status in ((11, OutboxStatus.sent), (12, OutboxStatus.pending)):
                session.add(
                    Outbox(
                        key=f"webinar_24h:{webinar.id}@20270211T0600Z:{user_id}",
                        kind="webinar_24h",
                        recipient_id=user_id,
                        payload={"webinar_id": webinar.id},
                        not_before=NOW,
                        status=status,
                        created_at=NOW,
                    )
                )
            await session.flush()
            assert await cancel_webinar(session, webinar, NOW) == 1
            told = await session.scalars(
                select(Outbox.recipient_id).where(Outbox.kind == "webinar_cancelled")
            )
            assert list(told) == [11]
            assert (await session.get(User, 11)) is not None
    finally:
        await engine.dispose()
