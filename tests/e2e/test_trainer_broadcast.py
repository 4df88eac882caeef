"""Broadcasts end to end: three languages with variants, a filtered audience over two of
the trainer's cohorts, learners who blocked the bot, a double confirmation, delivery
through the outbox, and the report matching what the Bot API server received."""

from __future__ import annotations

from datetime import UTC, date, datetime

from bot.clock import FrozenClock
from bot.sandbox.server import DEFAULT_PHOTO, _make_png
from handlers.trainer_broadcast import Aud, BcReport, BcSend
from scheduler.planner import plan_once
from scheduler.worker import drain_outbox
from storage.models import Broadcast, LearnerStatus, Outbox, Role
from tests.e2e.flows import drain, forge_press
from tests.e2e.harness import running_bot
from tests.e2e.test_foundation import tr
from tests.e2e.trainer_seed import (
    BOT_OPTIONS,
    add_cohort,
    add_learner,
    add_user,
    in_db,
    known,
    rows,
    say,
    tap,
)

NOW = datetime(2027, 2, 10, 10, 0, tzinfo=UTC)  # midday in Riga and Sofia: no quiet hours
TRAINER, OTHER_TRAINER = 720, 730

# user id: (cohort, language, profile, extra) -- cohort "A" and "B" are the trainer's.
LEARNERS: dict[int, tuple[str, str, str, str]] = {
    801: ("A", "lv", "CECO", ""),
    802: ("A", "lv", "CECO", "blocks before"),
    803: ("A", "el", "CECO", ""),
    804: ("A", "en", "CECO", ""),
    805: ("A", "lv", "DIGY", ""),
    806: ("A", "lv", "CECO", "withdrawn"),
    807: ("A", "lv", "CECO", "no consent"),
    811: ("B", "bg", "CECO", ""),
    812: ("B", "bg", "CECO", "blocks after"),
    813: ("B", "bg", "DIGY", ""),
    821: ("C", "lv", "CECO", ""),
}
HEADER = "📣 <b>Announcement from your trainer</b>"
DEFAULT = "Q&A webinar on Monday at 17:00: bring your questions!"
VARIANTS = {
    "lv": "Jautājumu un atbilžu vebinārs pirmdien plkst. 17:00: ņemiet līdzi jautājumus!",
    "bg": "Уебинар с въпроси и отговори в понеделник в 17:00: елате с въпросите си!",
}


async def _seed(session):
    await add_user(session, TRAINER, NOW, role=Role.trainer)
    await add_user(session, OTHER_TRAINER, NOW, role=Role.trainer)
    cohorts = {
        "A": await add_cohort(session, "Rīga 2027", NOW, trainer_id=TRAINER),
        "B": await add_cohort(
            session,
            "София 2027",
            NOW,
            trainer_id=TRAINER,
            timezone="Europe/Sofia",
            language="bg",
            country="BG",
            start=date(2027, 1, 18),
        ),
        "C": await add_cohort(
            session, "Roma 2027", NOW, trainer_id=OTHER_TRAINER, timezone="Europe/Rome"
        ),
    }
    for user_id, (cohort, lang, profile, extra) in LEARNERS.items():
        await add_learner(
            session,
            user_id,
            cohorts[cohort].id,
            f"Learner {user_id}",
            NOW,
            lang=lang,
            profile=profile,
            status=LearnerStatus.withdrawn if extra == "withdrawn" else LearnerStatus.enrolled,
            consent=extra not in ("withdrawn", "no consent"),
        )
    return {name: c.id for name, c in cohorts.items()}


def _expected_recipients() -> set[int]:
    """Computed from the seed, independently of the bot: A or B, CECO, consent, enrolled."""
    return {
        uid
        for uid, (cohort, _, profile, extra) in LEARNERS.items()
        if cohort in "AB" and profile == "CECO" and extra not in ("withdrawn", "no consent")
    }


async def test_broadcast_in_three_languages_with_report(tg, sqlite_url):
    await in_db(sqlite_url, _seed)
    expected = _expected_recipients()
    assert expected == {801, 802, 803, 804, 811, 812}
    async with running_bot(tg, sqlite_url, clock=FrozenClock(NOW), **BOT_OPTIONS) as app:
        trainer = known(tg, TRAINER)[0]
        learners = {uid: known(tg, uid, lang=LEARNERS[uid][1])[0] for uid in LEARNERS}
        tg.block(802)
        await say(trainer, "/broadcast")
        (panel,) = await say(trainer, DEFAULT)
        assert "Groups: София 2027, Rīga 2027" in panel.text  # the latest MOOC first
        assert "Recipients now: 8" in panel.text
        await trainer.press(Aud(f="p").pack())
        (edited,) = await drain(trainer)
        assert "Profile: CECO" in edited.text and "Recipients now: 6" in edited.text

        for lang, text in VARIANTS.items():
            await tap(trainer, Aud(f="var").pack())
            await tap(trainer, Aud(f="vl", v=lang).pack())
            (panel,) = await say(trainer, text)
        assert "Language variants: Latviešu, Български" in panel.text

        got = await tap(trainer, Aud(f="go").pack())
        previews = [
            m for m in got if DEFAULT in (m.text or "") or m.text.endswith(tuple(VARIANTS.values()))
        ]
        assert len(previews) == 3
        confirm = got[-1]
        assert "Recipients: 6. Send it now?" in confirm.text
        assert "Among them, blocked the bot: 1" in confirm.text
        (draft,) = await rows(sqlite_url, Broadcast)
        assert draft.status == "draft" and not await rows(sqlite_url, Outbox)

        tg.block(812)  # after the preview, before delivery: the send gets a 403
        send = BcSend(broadcast_id=draft.id).pack()
        forge_press(tg, trainer, send, confirm)
        forge_press(tg, trainer, send, confirm)  # the double tap
        got = [m for m in await drain(trainer) if not m.edited]
        assert [m.text.split(".")[0] for m in got] == ["Sending now (recipients: 6)"]
        assert "This announcement has been sent already." in [
            a.text for a in trainer.answered_callbacks
        ]
        planned = await rows(sqlite_url, Outbox, Outbox.broadcast_id == draft.id)
        assert {row.recipient_id for row in planned} == expected

        await drain_outbox(app)
        received = {
            uid: [
                m
                for m in learners[uid].messages
                if "webinar" in (m.text or "").lower()
                or any(v in (m.text or "") for v in VARIANTS.values())
            ]
            for uid in LEARNERS
        }
        got_it = {uid for uid, messages in received.items() if messages}
        assert got_it == expected - {802, 812}
        assert all(len(received[uid]) == 1 for uid in got_it)  # once each
        by_lang = {uid: received[uid][0].text for uid in got_it}
        assert VARIANTS["lv"] in by_lang[801]
        assert VARIANTS["bg"] in by_lang[811]
        assert DEFAULT in by_lang[803] and DEFAULT in by_lang[804]  # el: no variant
        # The preview is exactly what learners got (HTML included).
        assert {p.raw_text for p in previews} == {
            received[uid][0].raw_text for uid in (801, 804, 811)
        }

        # The report comes by itself once nothing is pending, and matches the server.
        await plan_once(app)
        await drain_outbox(app)
        report = [m for m in trainer.messages if (m.text or "").startswith("Broadcast #")]
        assert len(report) == 1
        delivered = sum(1 for uid in LEARNERS if received[uid])
        assert f"Delivered: {delivered}\n" in report[0].text
        assert "Blocked the bot: 2\nFailed: 0\nPending: 0" in report[0].text
        await plan_once(app)  # reported once only
        await drain_outbox(app)
        assert len([m for m in trainer.messages if (m.text or "").startswith("Broadcast #")]) == 1

        # And again on request.
        got = await tap(trainer, BcReport(broadcast_id=draft.id).pack())
        assert f"Delivered: {delivered}\nBlocked the bot: 2" in got[0].text
    (done,) = await rows(sqlite_url, Broadcast)
    assert done.status == "done" and done.recipients == 6


async def test_photo_broadcast_to_one_cohort(tg, sqlite_url):
    cohorts = await in_db(sqlite_url, _seed)
    poster = _make_png(64, 48)
    assert poster != DEFAULT_PHOTO
    async with running_bot(tg, sqlite_url, clock=FrozenClock(NOW), **BOT_OPTIONS) as app:
        trainer = known(tg, TRAINER)[0]
        learners = {uid: known(tg, uid)[0] for uid in (811, 812, 813, 801)}
        await say(trainer, "/broadcast")
        caption = "Poster for the library open day"
        await trainer.send_photo(poster, caption=caption)
        await drain(trainer)  # the audience panel
        # Only cohort B: untick A.
        await trainer.press(Aud(f="c", v=str(cohorts["A"])).pack())
        (edited,) = await drain(trainer)
        assert "Groups: София 2027" in edited.text and "Recipients now: 3" in edited.text
        got = await tap(trainer, Aud(f="go").pack())
        preview = next(m for m in got if m.kind == "photo")
        assert preview.file_bytes == poster
        await tap(trainer, got[-1].buttons[0]["callback_data"])
        await drain_outbox(app)
        for uid in (811, 812, 813):
            (photo,) = [m for m in learners[uid].messages if m.kind == "photo"]
            assert photo.file_bytes == poster
            # The learners of cohort B read Bulgarian; the trainer's preview is in English.
            assert photo.raw_text == f"{tr(HEADER, 'bg')}\n\n{caption}"
        assert preview.raw_text == f"{HEADER}\n\n{caption}"
        assert tr(HEADER, "bg") != HEADER
        assert not learners[801].messages
