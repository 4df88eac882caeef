"""The bot over real HTTP against the local Bot API server: greetings per language, menus,
fallbacks, errors, malformed updates, groups."""

from __future__ import annotations

import pytest
from aiogram.utils.i18n import I18n

from bot.i18n import LANGUAGES, LOCALES_DIR
from tests.e2e.flows import drain

I18N = I18n(path=LOCALES_DIR, domain="messages")


def tr(msgid: str, lang: str) -> str:
    return I18N.gettext(msgid, locale=lang)


@pytest.mark.parametrize("lang", list(LANGUAGES))
async def test_start_greets_in_telegram_language(bot, tg, lang):
    user = tg.user(100 + len(lang) + list(LANGUAGES).index(lang), language_code=lang)
    await user.start()
    first = await user.next_message()
    assert tr("Choose your language:", lang) in first.text
    if lang != "en":
        assert "Choose your language:" not in first.text
    assert "Hello," not in first.text or lang == "en"


async def test_command_menus_for_every_language(bot, tg):
    menus = {lang: cmds for (scope, lang), cmds in tg.commands.items() if scope == "default"}
    assert set(menus) == {"", *LANGUAGES}
    for lang in LANGUAGES:
        descriptions = {c["command"]: c["description"] for c in menus[lang]}
        assert descriptions["help"] == tr("What I can do", lang)
    assert {c["description"] for c in menus["lv"]} != {c["description"] for c in menus[""]}


async def test_help_language_switch_and_fallbacks(bot, tg):
    user = tg.user(7, language_code="en")
    await user.send("/help")
    assert "/privacy" in (await user.next_message()).text
    await user.send("/language")
    await user.next_message()
    await user.press("lang:el")
    edited = await user.next_message()
    assert edited.edited and edited.text == tr("Language set to English.", "el")
    await user.send("/nonsense")
    assert (await user.next_message()).text == tr(
        "I don't know that command. Send /help to see what I can do.", "el"
    )
    await user.send("hello there")
    assert (await user.next_message()).text == tr(
        "I didn't understand that. Please use the buttons, or send /help to see what I can do.",
        "el",
    )
    await user.send_sticker()
    assert (await user.next_message()).text == tr(
        "I can only read text messages here. Send /help to see what I can do.", "el"
    )


async def test_keeps_answering_after_malformed_updates(bot, tg):
    user = tg.user(8, language_code="it")
    tg.inject_update({"message": {"message_id": "x", "text": 5, "chat": "nope"}})
    tg.inject_update({"callback_query": {"id": 1}})
    await user.send("/help")
    reply = await user.next_message()
    assert tr("Here is what I can do:", "it") in reply.text


async def test_handler_error_apologises_in_user_language(bot, tg, monkeypatch):
    import handlers.common

    def boom(*_a, **_k):
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(handlers.common, "help_text", boom)
    user = tg.user(9, language_code="bg")
    await user.send("/help")
    reply = await user.next_message()
    assert reply.text == tr(
        "Sorry, something went wrong on my side. Please try again in a moment.", "bg"
    )
    monkeypatch.undo()
    await user.send("/help")
    assert tr("Here is what I can do:", "bg") in (await user.next_message()).text


async def test_silent_in_groups(bot, tg):
    tg.inject_update(
        {
            "message": {
                "message_id": 1,
                "date": 0,
                "text": "/help",
                "chat": {"id": -100123, "type": "supergroup", "title": "Library staff"},
                "from": {"id": 11, "is_bot": False, "first_name": "G"},
                "entities": [{"type": "bot_command", "offset": 0, "length": 5}],
            }
        }
    )
    user = tg.user(12)
    await user.send("/help")
    await user.next_message()
    assert not [m for m in tg.sent if m.chat_id == -100123]


async def test_privacy_answers_before_any_enrolment(bot, tg):
    user = tg.user(13, language_code="lv")
    await user.send("/privacy")
    got = await drain(user)
    assert "/delete" in (got[0].text or "") and "Privātuma" in (got[0].text or "")
