"""`biblio-bot run` as a real process: killed with SIGKILL mid-conversation and started
again, it continues the conversation where the user was."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from storage.db import make_engine, make_sessionmaker
from storage.models import Learner
from tests.e2e.flows import ANSWERS, consent, drain, pk, rate_skills, until_buttons
from tests.e2e.harness import BotProcess
from tests.e2e.test_foundation import tr

pytestmark = pytest.mark.slow


async def test_sigkill_mid_conversation_then_resume(tg, sqlite_url, tmp_path):
    proc = BotProcess(tg, sqlite_url, tmp_path / "bot.log")
    await proc.start()
    try:
        # The real entry point set the menus in every language.
        assert {lang for (_scope, lang) in tg.commands} == {"", "en", "lv", "it", "bg", "el"}
        user = tg.user(700, language_code="lv")
        await consent(user, "lv")
        await until_buttons(user)
        await user.press("jo")
        await drain(user)
        await user.send("Līga")
        await drain(user)
        await user.send("liga@biblioteka.lv")
        question = (await drain(user))[-1]
        assert question.text == tr("How old are you?", "lv")

        proc.kill()  # no shutdown, no flush: only what was committed survives
        await proc.start()

        # The button of the question asked before the crash still works.
        await user.press(pk("age_band", "25-34"), message_id=question.message_id)
        assert (await drain(user))[-1].text == tr("Which country do you work or live in?", "lv")
        for field in ("country", "education", "employment"):
            await user.press(pk(field, ANSWERS[field]))
            await drain(user)
        proc.kill()
        await proc.start()
        await user.send("Bibliotekāre")
        await drain(user)
        await user.send("5")
        await drain(user)
        await user.press(pk("heard_from", "web"))
        await drain(user)
        await user.press(pk("profile", "DIGY"))
        await drain(user)
        await rate_skills(user, 3)
        await user.press("cf")
        await drain(user)
    finally:
        proc.stop()
    engine = make_engine(sqlite_url)
    try:
        async with make_sessionmaker(engine)() as session:
            learner = await session.scalar(select(Learner).where(Learner.user_id == 700))
    finally:
        await engine.dispose()
    assert learner is not None
    assert (learner.name, learner.email, learner.age_band) == (
        "Līga",
        "liga@biblioteka.lv",
        "25-34",
    )
    assert learner.profile == "DIGY" and learner.years_experience == 5
    # Nothing was asked twice: each question was sent once.
    texts = [m.text for m in user.messages]
    assert texts.count(tr("Which country do you work or live in?", "lv")) == 1
