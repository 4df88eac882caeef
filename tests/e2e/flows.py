"""Conversation steps shared by the end-to-end tests (pressing by callback data keeps them
independent of the language shown)."""

from __future__ import annotations

from bot.sandbox.server import BotAPIServer, FakeUser, SentMessage
from bot.services.registration import SKILL_AREAS
from handlers.enrol import Pick


def pk(field: str, value: str, item: str = "") -> str:
    """The callback data of a form button, as the bot packs it."""
    return Pick(field=field, value=value, item=item).pack()


async def drain(user: FakeUser, quiet: float = 0.3) -> list[SentMessage]:
    """Everything the bot sends until it goes quiet."""
    got: list[SentMessage] = []
    while True:
        try:
            got.append(await user.next_message(timeout=quiet if got else 5.0))
        except TimeoutError:
            return got


async def until_buttons(user: FakeUser) -> SentMessage:
    """The next bot message that carries buttons (skipping texts and edits before it)."""
    for _ in range(20):
        sent = await user.next_message()
        if sent.buttons and not sent.edited:
            return sent
    raise AssertionError("no message with buttons arrived")


async def consent(user: FakeUser, lang: str = "en", payload: str | None = None) -> None:
    await user.start(payload)
    await until_buttons(user)
    await user.press(f"lang:{lang}")
    await until_buttons(user)  # the consent question after the notice
    await user.press("cs:1")


ANSWERS = {
    "name": "Anna Bērziņa",
    "email": "anna@biblioteka.lv",
    "age_band": "35-44",
    "country": "LV",
    "education": "master",
    "employment": "library",
    "profession": "Librarian",
    "years": "12",
    "heard_from": "colleague",
    "profile": "CECO",
}


async def rate_skills(user: FakeUser, level: int = 3) -> None:
    for area in SKILL_AREAS:
        await user.press(pk("skills", str(level), area))
        await drain(user)


async def fill_form(user: FakeUser, answers: dict[str, str] | None = None) -> None:
    """From the first form question to the summary."""
    a = {**ANSWERS, **(answers or {})}
    await drain(user)
    for field in ("name", "email"):
        await user.send(a[field])
        await drain(user)
    for field in ("age_band", "country", "education", "employment"):
        await user.press(pk(field, a[field]))
        await drain(user)
    for field in ("profession", "years"):
        await user.send(a[field])
        await drain(user)
    await user.press(pk("heard_from", a["heard_from"]))
    await drain(user)
    await user.press(pk("profile", a["profile"]))
    await drain(user)
    for area in SKILL_AREAS:
        await user.press(pk("skills", "3", area))
        await drain(user)


async def enrol(
    user: FakeUser, lang: str = "en", payload: str | None = None, **answers: str
) -> None:
    await consent(user, lang, payload)
    if payload is None:
        await until_buttons(user)
        await user.press("jo")
    await fill_form(user, answers)
    await user.press("cf")
    await drain(user)


def forge_press(tg: BotAPIServer, user: FakeUser, data: str, message: SentMessage) -> str:
    """A press with any data on any message, as Telegram would deliver it: a double tap
    on buttons since removed, or a forged button."""
    return tg._press(user, message, data)
