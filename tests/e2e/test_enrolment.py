"""Enrolment end to end: five languages, consent first, bad input, resume after restart,
privacy rights, invitations and roles."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from sqlalchemy import Integer, select, text

from bot.i18n import LANGUAGES
from bot.services.cohorts import create_cohort
from bot.services.invites import create_invite
from storage.db import make_engine, make_sessionmaker
from storage.models import Base, ConsentAnswer, ConsentEvent, InviteKind, Learner, Role, User
from tests.e2e.flows import (
    ANSWERS,
    consent,
    drain,
    enrol,
    fill_form,
    forge_press,
    pk,
    rate_skills,
    until_buttons,
)
from tests.e2e.harness import running_bot
from tests.e2e.test_foundation import tr


async def _rows(db_url, model, *where):
    engine = make_engine(db_url)
    try:
        async with make_sessionmaker(engine)() as session:
            return list(await session.scalars(select(model).where(*where)))
    finally:
        await engine.dispose()


async def _all_text(db_url) -> str:
    """Every value in every table, as one string: what a leak check searches."""
    engine = make_engine(db_url)
    chunks: list[str] = []
    try:
        async with engine.connect() as conn:
            for table in Base.metadata.sorted_tables:
                for row in await conn.execute(select(table)):
                    chunks.append(repr(tuple(row)))
    finally:
        await engine.dispose()
    return "\n".join(chunks)


async def _setup(db_url, fn):
    engine = make_engine(db_url)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            return await fn(session)
    finally:
        await engine.dispose()


@pytest.mark.parametrize("lang", list(LANGUAGES))
async def test_enrol_in_each_language(tg, sqlite_url, lang):
    async with running_bot(tg, sqlite_url):
        user = tg.user(500, language_code="en")
        await enrol(user, lang, name="Ēriks Ὀδυσσεύς Иванов")
        assert (
            tr(
                "You are enrolled in {cohort}. I will send you each week's modules and the "
                "webinar reminders. Send /help to see what else I can do.",
                lang,
            ).split("{")[0]
            in user.last().text
        )
    (learner,) = await _rows(sqlite_url, Learner, Learner.user_id == 500)
    assert learner.name == "Ēriks Ὀδυσσεύς Иванов"
    assert learner.years_experience == 12 and learner.profile == "CECO"
    assert set(learner.skills) == {
        "word_processing",
        "spreadsheets",
        "presentations",
        "digital_content",
        "online_work",
    }
    (user_row,) = await _rows(sqlite_url, User, User.id == 500)
    assert user_row.language == lang and user_row.consent_language == lang
    assert user_row.consent_version == 1


async def test_decline_then_consent(tg, sqlite_url):
    async with running_bot(tg, sqlite_url):
        user = tg.user(501, language_code="lv")
        await user.start()
        await until_buttons(user)
        await user.press("lang:lv")
        await until_buttons(user)
        await user.press("cs:0")
        got = await drain(user)
        assert any(
            "/start" in (m.text or "") and m.text != got[0].text for m in got
        ) or "/start" in (got[-1].text or "")
        assert not await _rows(sqlite_url, Learner, Learner.user_id == 501)
        await user.start()
        await until_buttons(user)  # asked again, language remembered
        await user.press("cs:1")
        await until_buttons(user)
        await user.press("jo")
        await fill_form(user)
        await user.press("cf")
        await drain(user)
    events = await _rows(sqlite_url, ConsentEvent, ConsentEvent.user_id == 501)
    assert [e.answer for e in events] == [ConsentAnswer.declined, ConsentAnswer.granted]
    assert all(e.language == "lv" and e.version == 1 for e in events)
    assert await _rows(sqlite_url, Learner, Learner.user_id == 501)


async def test_nothing_typed_is_stored_before_consent(tg, sqlite_url):
    async with running_bot(tg, sqlite_url):
        user = tg.user(502, language_code="it")
        await user.start()
        await until_buttons(user)
        await user.send("Giulia Secretname")
        reply = await drain(user)
        assert reply[0].text == tr("Please choose one of the buttons below.", "it")
        await user.press("lang:it")
        await until_buttons(user)
        await user.send("via Roma 1, Secretville")
        await drain(user)
        await user.press("cs:0")
        await drain(user)
    dump = await _all_text(sqlite_url)
    assert "Secretname" not in dump and "Secretville" not in dump
    (row,) = await _rows(sqlite_url, User, User.id == 502)
    assert row.language == "it" and row.consent_version is None


async def test_bad_input_gets_translated_reask(tg, sqlite_url):
    lang = "lv"
    async with running_bot(tg, sqlite_url):
        user = tg.user(503, language_code=lang)
        await consent(user, lang)
        await until_buttons(user)
        await user.press("jo")
        await drain(user)

        async def expect(action, msgid):
            await action
            got = await drain(user)
            assert got[0].text == tr(msgid, lang), [m.text for m in got]
            assert len(got) == 2  # the explanation, then the same question again
            return got[1]

        await expect(
            user.send("x" * 5000),
            "That is longer than a name can be here (100 characters at most).",
        )
        await expect(user.send_sticker(), "I need a text answer here.")
        await expect(user.send("12345"), "A name needs at least one letter.")
        await user.send("<b>Anna</b> & *Ozola* _x_")
        await drain(user)
        await expect(
            user.send("anna@"), "That does not look like an e-mail address, e.g. name@library.lv."
        )
        await user.press(pk("email", "-"))
        await drain(user)
        await expect(user.send("25-34"), "Please choose one of the buttons below.")
        await expect(user.send_photo(), "Please choose one of the buttons below.")
        for field in ("age_band", "country", "education", "employment"):
            await user.press(pk(field, ANSWERS[field]))
            await drain(user)
        await user.send("Bibliotekāre")
        await drain(user)
        await expect(
            user.send("daudz"), "Please send the number of years as a whole number, e.g. 7."
        )
        await expect(
            user.send("200"), "That seems more years than is possible. Please check the number."
        )
        await expect(user.send("-3"), "Please send the number of years as a whole number, e.g. 7.")
        await user.send("9")
        await drain(user)
        await user.press(pk("heard_from", "web"))
        await drain(user)
        await user.press(pk("profile", "DIGY"))
        await drain(user)
        rated = user.messages[-1]
        await user.press(pk("skills", "2", "word_processing"))
        await drain(user)
        # A double tap on an answered rating changes nothing.
        forge_press(tg, user, pk("skills", "4", "word_processing"), rated)
        assert (await drain(user)) == []
        assert user.answered_callbacks[-1].text == tr("This button is no longer active.", lang)
        for area in ("spreadsheets", "presentations", "digital_content"):
            await user.press(pk("skills", "2", area))
            await drain(user)
        await user.press(pk("skills", "2", "online_work"))
        summary = (await drain(user))[-1]
        # Stored as typed, shown escaped: the markup arrives as text, not formatting.
        assert "<b>Anna</b> & *Ozola* _x_" in summary.text
        await user.press("cf")
        await drain(user)
    (learner,) = await _rows(sqlite_url, Learner, Learner.user_id == 503)
    assert learner.name == "<b>Anna</b> & *Ozola* _x_"
    assert learner.email is None and learner.years_experience == 9


async def test_not_sure_path_recommends_a_profile(tg, sqlite_url):
    async with running_bot(tg, sqlite_url):
        user = tg.user(504, language_code="el")
        await consent(user, "el")
        await until_buttons(user)
        await user.press("jo")
        await drain(user)
        await user.send("Μαρία")
        await drain(user)
        await user.press(pk("email", "-"))
        await drain(user)
        for field in ("age_band", "country", "education", "employment"):
            await user.press(pk(field, ANSWERS[field]))
            await drain(user)
        await user.send("Βιβλιοθηκονόμος")
        await drain(user)
        await user.send("4")
        await drain(user)
        await user.press(pk("heard_from", "social"))
        await drain(user)
        await user.press(pk("profile", "unsure"))
        await drain(user)
        await user.press(pk("profile_enjoy", "systems"))
        await drain(user)
        await user.press(pk("profile_lead", "systems"))
        offer = (await drain(user))[-1]
        assert "DIGY" in offer.text and offer.buttons[0]["callback_data"] == pk(
            "profile_pick", "DIGY"
        )
        await user.press(pk("profile_pick", "DIGY"))
        await drain(user)
        await rate_skills(user, 4)
        await user.press("cf")
        await drain(user)
    (learner,) = await _rows(sqlite_url, Learner, Learner.user_id == 504)
    assert learner.profile == "DIGY"


async def test_leave_midway_and_resume_after_restart(tg, sqlite_url):
    async with running_bot(tg, sqlite_url):
        user = tg.user(505, language_code="bg")
        await consent(user, "bg")
        await until_buttons(user)
        await user.press("jo")
        await drain(user)
        await user.send("Петя")
        await drain(user)
        await user.send("petya@biblioteka.bg")
        await drain(user)
    # A new process: nothing in memory survives, only the store.
    async with running_bot(tg, sqlite_url):
        await user.start()
        got = await drain(user)
        assert got[0].text == tr("Welcome back! Let's continue where you stopped.", "bg")
        assert got[1].text == tr("How old are you?", "bg")
        await user.press(pk("age_band", "25-34"))
        await drain(user)
        for field in ("country", "education", "employment"):
            await user.press(pk(field, ANSWERS[field]))
            await drain(user)
        await user.send("Библиотекар")
        await drain(user)
        await user.send("3")
        await drain(user)
        await user.press(pk("heard_from", "employer"))
        await drain(user)
        await user.press(pk("profile", "CECO"))
        await drain(user)
        await rate_skills(user, 1)
        await user.press("cf")
        await drain(user)
    (learner,) = await _rows(sqlite_url, Learner, Learner.user_id == 505)
    assert learner.name == "Петя" and learner.email == "petya@biblioteka.bg"


async def test_cancel_and_profile_edit(tg, sqlite_url):
    async with running_bot(tg, sqlite_url):
        user = tg.user(506, language_code="en")
        await consent(user)
        await until_buttons(user)
        await user.press("jo")
        await drain(user)
        await user.send("Someone")
        await drain(user)
        await user.send("/cancel")
        assert "Nothing you typed" in (await drain(user))[0].text
        await user.send("more text")
        assert (await drain(user))[0].text.startswith("I didn't understand")
        await user.start()
        await drain(user)
        await user.press("jo")
        await fill_form(user)
        await user.press("cf")
        await drain(user)
        await user.send("/profile")
        await drain(user)
        await user.press("ed:years")
        await drain(user)
        await user.send("15")
        await drain(user)
        await user.press("cf")
        assert (await drain(user))[-1].text == "Saved. Your profile is up to date."
    (learner,) = await _rows(sqlite_url, Learner, Learner.user_id == 506)
    assert learner.years_experience == 15 and learner.name == ANSWERS["name"]


async def test_new_privacy_version_asks_again(tg, sqlite_url):
    from content.loader import load_content
    from content.schema import PrivacyText

    async with running_bot(tg, sqlite_url):
        user = tg.user(507, language_code="en")
        await enrol(user, "en")
    content = load_content()
    changed = dict(content.privacy)
    changed["en"] = PrivacyText(version=2, notice=content.privacy["en"].notice + "\nChanged.")
    new_content = type(content)(content.modules, content.calendar, content.quizzes, changed)
    async with running_bot(tg, sqlite_url, content=new_content):
        await user.start()
        got = await drain(user)
        assert got[0].text.startswith("The privacy notice has changed")
        assert got[-1].buttons  # agree / decline
        await user.press("cs:1")
        assert (await drain(user))[-1].text == "Thank you. Your enrolment is active."
    (row,) = await _rows(sqlite_url, User, User.id == 507)
    assert row.consent_version == 2


async def test_mydata_withdraw_and_delete_leave_nothing(tg, db_url):
    async with running_bot(tg, db_url):
        other = tg.user(599, language_code="en")
        await enrol(other, "en", name="Other Person")
        user = tg.user(508, language_code="en")
        await enrol(user, "en", name="Zelda Uniquename")
        await user.send("/mydata")
        doc = (await drain(user))[0]
        data = json.loads(doc.file_bytes)
        assert data["telegram_id"] == 508
        assert data["data"]["learners"][0]["name"] == "Zelda Uniquename"
        assert {e["answer"] for e in data["data"]["consent_events"]} == {"granted"}
        assert "Other Person" not in doc.file_bytes.decode()
        await user.send("/withdraw")
        assert "withdrawn" in (await drain(user))[0].text
        await user.send("/delete")
        await drain(user)
        await user.press("er:1")
        assert (await drain(user))[-1].text.startswith("Done: everything")
    engine = make_engine(db_url)
    try:
        async with engine.connect() as conn:
            for table in Base.metadata.sorted_tables:
                for column in table.columns:
                    if isinstance(column.type, Integer):
                        count = (
                            await conn.execute(
                                select(text("count(*)")).select_from(table).where(column == 508)
                            )
                        ).scalar_one()
                        assert count == 0, f"{table.name}.{column.name} still refers to 508"
    finally:
        await engine.dispose()
    dump = await _all_text(db_url)
    assert "Uniquename" not in dump
    assert "Other Person" in dump  # erasure is exact: another learner is untouched


async def test_invitation_links(tg, sqlite_url):
    from bot.clock import SystemClock

    now = SystemClock().now()

    async def make(session):
        cohort = await create_cohort(
            session,
            name="Rīga <spring>",
            country="LV",
            language="lv",
            timezone="Europe/Riga",
            mooc_start=date(2027, 1, 11),
            now=now,
        )
        good = await create_invite(session, InviteKind.cohort, now=now, cohort_id=cohort.id)
        old = await create_invite(
            session,
            InviteKind.cohort,
            now=now - timedelta(days=30),
            cohort_id=cohort.id,
            valid_for=timedelta(days=7),
        )
        once = await create_invite(
            session, InviteKind.cohort, now=now, cohort_id=cohort.id, max_uses=1
        )
        return cohort.id, good.token, old.token, once.token

    cohort_id, good, old, once = await _setup(sqlite_url, make)
    async with running_bot(tg, sqlite_url):
        joiner = tg.user(510, language_code="lv")
        await enrol(joiner, "lv", payload=good)
        expired = tg.user(511, language_code="lv")
        await expired.start(old)
        assert (await drain(expired))[0].text.startswith(
            tr("This invitation link has expired. Please ask your trainer for a new one.", "lv")
        )
        first, second = tg.user(512), tg.user(513)
        await first.start(once)
        await drain(first)
        await second.start(once)
        assert "used as many times" in (await drain(second))[0].text
        stranger = tg.user(514)
        await stranger.start("not-a-real-token-at-all")
        assert (await drain(stranger))[0].text.startswith("I don't recognise this invitation link")
    (learner,) = await _rows(sqlite_url, Learner, Learner.user_id == 510)
    assert learner.cohort_id == cohort_id


async def test_trainer_commands_need_the_role(tg, sqlite_url):
    from bot.clock import SystemClock

    now = SystemClock().now()

    async def make(session):
        cohort = await create_cohort(
            session,
            name="Roma 2027",
            country="IT",
            language="it",
            timezone="Europe/Rome",
            mooc_start=date(2027, 2, 1),
            now=now,
        )
        invite = await create_invite(session, InviteKind.trainer, now=now, cohort_id=cohort.id)
        return invite.token

    token = await _setup(sqlite_url, make)
    async with running_bot(tg, sqlite_url):
        learner = tg.user(520, language_code="en")
        for command in ("/cohort_link", "/mentor_invite"):
            await learner.send(command)
            assert (await drain(learner))[0].text == f"{command} is for trainers only."
        trainer = tg.user(521, language_code="en")
        await trainer.start(token)
        assert "You are now a trainer" in (await drain(trainer))[0].text
        await trainer.send("/cohort_link")
        menu = (await drain(trainer))[0]
        assert [b["text"] for b in menu.buttons] == ["Roma 2027"]
        await trainer.press(menu.buttons[0]["callback_data"])
        link = (await drain(trainer))[-1].text
        assert "https://t.me/biblio_test_bot?start=" in link
        # A learner sending the trainer's button data (a forged callback) gets no link.
        await learner.send("/help")
        help_msg = (await drain(learner))[0]
        forge_press(tg, learner, menu.buttons[0]["callback_data"], help_msg)
        await learner.expect_silence(0.5)
        assert [a.text for a in learner.answered_callbacks] == ["This button is no longer active."]
    (row,) = await _rows(sqlite_url, User, User.id == 521)
    assert row.role is Role.trainer
