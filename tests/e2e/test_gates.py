"""The two gates every feature sits behind: roles, and a learner's consent."""

from __future__ import annotations

from bot.roles import PROTECTED_COMMANDS
from tests.e2e.flows import drain, enrol
from tests.e2e.test_foundation import tr


async def test_every_protected_command_refuses_a_learner(bot, tg):
    assert PROTECTED_COMMANDS, "no protected command registered"
    learner = tg.user(800, language_code="it")
    for command in sorted(PROTECTED_COMMANDS):
        await learner.send(f"/{command}")
        (reply,) = await drain(learner)
        msgid = (
            "/{command} is for trainers only."
            if {r.value for r in PROTECTED_COMMANDS[command]} == {"trainer"}
            else "/{command} is not available to you."
        )
        assert reply.text == tr(msgid, "it").format(command=command), command


async def test_withdrawn_learner_is_not_processed_until_consent(bot, tg):
    user = tg.user(801, language_code="en")
    await enrol(user, "en")
    await user.send("/withdraw")
    await drain(user)
    await user.send("/profile")
    (reply,) = await drain(user)
    assert reply.text.startswith("You have withdrawn your consent")
    await user.send("/mydata")  # privacy rights stay open
    assert (await drain(user))[0].kind == "document"
    await user.start()
    await drain(user)
    await user.press("cs:1")
    assert (await drain(user))[-1].text == "Thank you. Your enrolment is active."
    await user.send("/profile")
    assert (await drain(user))[0].buttons  # the profile with its edit buttons


async def test_withdrawn_learner_lv_gate_message_translated(bot, tg):
    user = tg.user(802, language_code="lv")
    await enrol(user, "lv")
    await user.send("/withdraw")
    await drain(user)
    await user.send("sveiki")
    (reply,) = await drain(user)
    assert reply.text == tr(
        "You have withdrawn your consent (or the privacy notice has changed), so I am "
        "not processing anything for you. Send /start to give your consent again, or "
        "/delete to erase your data.",
        "lv",
    )
