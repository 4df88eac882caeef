"""Hostile input: thousands of generated updates through the real dispatcher and the local
Bot API server. No handler may fail, no reply may be one Telegram would reject, and no
generated update may change another learner's data.

250 examples of 20 updates each: 5,000 updates a run, fed one by one through the running
bot's dispatcher (`feed_raw_update`), its replies going over HTTP to the local Bot API server,
which rejects what Telegram would. Hypothesis draws new updates every run and shrinks a
failing batch to a small one before printing it."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from aiogram.types import Update
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlalchemy import select

from bot.roles import PROTECTED_COMMANDS
from bot.telegram_session import clean_updates
from storage.db import make_engine, make_sessionmaker
from storage.models import Base
from tests.e2e.flows import enrol
from tests.e2e.harness import running_bot

pytestmark = pytest.mark.slow

VICTIM = 4242
POOL = list(range(4300, 4308))
COMMANDS = sorted(
    {
        "start",
        "help",
        "language",
        "privacy",
        "mydata",
        "withdraw",
        "delete",
        "cancel",
        "profile",
        "settings",
        "schedule",
        "calendar",
        "quiz",
        "progress",
        "wbl",
        "checkin",
        "mentor_link",
        "stats",
        "export",
        "broadcast",
        "cohorts",
        *PROTECTED_COMMANDS,
    }
)
# Prefixes of callback data the bot issues, so forged presses reach real handlers.
PREFIXES = ["pk", "cs", "jo", "ed", "cf", "lang", "er", "cl", "qz", "wb", "mt", "st", "tr"]
# Rejections that are Telegram's answer to the forgery itself, not a bad reply by the bot.
EXPECTED_REJECTIONS = (
    "query is too old",
    "message to edit not found",
    "message is not modified",
    "message can't be edited",
)

_chars = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
_markup = st.sampled_from(["<", ">", "&", "<b>", "</b>", "&amp;", "&#x;", "*", "_", "`", "\n", "@"])
# Plain unicode mixed with the characters that break HTML, markdown and callback data.
junk = st.lists(st.one_of(_chars, _markup), max_size=6).map("".join)
texts = st.one_of(
    junk,
    st.text(min_size=4000, max_size=5000),
    st.builds(lambda c, a: f"/{c} {a}".strip(), st.sampled_from(COMMANDS), junk),
    st.builds(lambda c, a: f"/{c}@biblio_test_bot{a}", st.sampled_from(COMMANDS), junk),
    st.sampled_from(["<b>x", "</i>", "&amp;", "*_[`", "\u202e", "\x00", "🙂" * 300]),
)
callback_data = st.one_of(
    junk.map(lambda s: s[:64]),
    st.builds(lambda p, a: f"{p}:{a}"[:64], st.sampled_from(PREFIXES), junk),
    st.builds(lambda p, n: f"{p}:{n}", st.sampled_from(PREFIXES), st.integers(-(2**63), 2**63)),
)


@st.composite
def updates(draw: st.DrawFn) -> dict[str, Any]:
    # The victim never sends: whatever changes their data came from someone else.
    user_id = draw(st.sampled_from(POOL))
    sender = {
        "id": user_id,
        "is_bot": False,
        "first_name": draw(junk) or "x",
        "language_code": draw(st.sampled_from(["en", "lv", "it", "bg", "el", "xx", "zh-hans"])),
    }
    chat = {"id": user_id, "type": "private", "first_name": "x"}
    kind = draw(
        st.sampled_from(
            [
                "text",
                "text",
                "text",
                "callback",
                "callback",
                "edited",
                "group",
                "media",
                "poll_answer",
                "member",
                "unknown",
                "malformed",
            ]
        )
    )
    message: dict[str, Any] = {
        "message_id": draw(st.integers(1, 10**6)),
        "date": 0,
        "chat": chat,
        "from": sender,
    }
    if kind in ("text", "edited", "group"):
        text = draw(texts)
        message["text"] = text
        if text.startswith("/"):
            message["entities"] = [
                {
                    "type": "bot_command",
                    "offset": 0,
                    "length": len(text.split(" ")[0].encode("utf-16-le")) // 2,
                }
            ]
        if kind == "group":
            message["chat"] = {"id": -1000000000000 - user_id, "type": "supergroup", "title": "g"}
            return {"message": message}
        if kind == "edited":
            message["edit_date"] = 1
            return {"edited_message": message}
        return {"message": message}
    if kind == "media":
        message[draw(st.sampled_from(["sticker", "photo", "voice", "document", "location"]))] = (
            draw(st.sampled_from([{}, [], {"file_id": "x"}, "nonsense"]))
        )
        return {"message": message}
    if kind == "callback":
        return {
            "callback_query": {
                "id": draw(junk) or "q",
                "from": sender,
                "chat_instance": "1",
                "data": draw(callback_data),
                "message": message,
            }
        }
    if kind == "poll_answer":
        return {
            "poll_answer": {
                "poll_id": draw(junk),
                "user": sender,
                "option_ids": draw(st.lists(st.integers(-3, 12), max_size=3)),
            }
        }
    if kind == "member":
        old, new = draw(st.permutations(["member", "kicked"]))
        bot = {"id": 123456, "is_bot": True, "first_name": "b"}
        return {
            "my_chat_member": {
                "chat": chat,
                "from": sender,
                "date": 0,
                "old_chat_member": {
                    "status": old,
                    "user": bot,
                    **({"until_date": 0} if old == "kicked" else {}),
                },
                "new_chat_member": {
                    "status": new,
                    "user": bot,
                    **({"until_date": 0} if new == "kicked" else {}),
                },
            }
        }
    if kind == "unknown":
        return {draw(st.sampled_from(["business_message", "purchased_paid_media", "zzz"])): {}}
    return draw(
        st.sampled_from(
            [
                {"message": {"text": 5}},
                {"message": {"message_id": "x", "chat": None}},
                {"callback_query": {"id": 1, "from": "me"}},
                {"poll_answer": {"poll_id": None}},
            ]
        )
    )


class _Failures(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def _snapshot(db_url: str, user_id: int) -> dict[str, list[tuple[Any, ...]]]:
    """Every row that refers to one user, in every table."""
    engine = make_engine(db_url)
    out: dict[str, list[tuple[Any, ...]]] = {}
    try:
        async with make_sessionmaker(engine)() as session:
            for table in Base.metadata.sorted_tables:
                cols = [
                    c
                    for c in table.columns
                    if c.name in ("user_id", "recipient_id", "learner_id")
                    or (table.name == "users" and c.name == "id")
                ]
                rows: list[tuple[Any, ...]] = []
                for col in cols:
                    rows += [
                        tuple(r) for r in await session.execute(select(table).where(col == user_id))
                    ]
                out[table.name] = sorted(rows, key=repr)
    finally:
        await engine.dispose()
    out.pop("users", None)  # last_seen_at moves when the victim's own updates arrive
    return out


class Env(tuple):  # type: ignore[type-arg]
    """The fixture's values; a short repr, so a falsifying example prints readably."""

    def __repr__(self) -> str:
        return "<hostile env>"


@pytest.fixture
async def hostile(tg, sqlite_url):
    async with running_bot(tg, sqlite_url) as app:
        victim = tg.user(VICTIM, language_code="lv")
        await enrol(victim, "lv", name="Victim Protected")
        for uid in POOL:
            await tg.user(uid).send("/help")
            await tg.user(uid).next_message()
        failures = _Failures()
        logging.getLogger().addHandler(failures)
        try:
            yield Env((app, tg, sqlite_url, failures, await _snapshot(sqlite_url, VICTIM)))
        finally:
            logging.getLogger().removeHandler(failures)


FED = {"updates": 0}


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(batch=st.lists(updates(), min_size=20, max_size=20))
async def test_generated_updates_break_nothing(hostile, batch):
    app, tg, db_url, failures, victim_before = hostile
    calls_before = len(tg.calls)
    failures.records.clear()  # each example is judged on its own updates
    for raw in batch:
        raw = {"update_id": 10**9 + FED["updates"], **raw}
        FED["updates"] += 1
        try:
            Update.model_validate(raw, context={"bot": app.bot})
        except ValidationError:
            # Polling drops it and moves on (bot/telegram_session.py): check exactly that.
            assert clean_updates([raw], app.bot) == [{"update_id": raw["update_id"]}]
            continue
        await app.dp.feed_raw_update(app.bot, raw)
    rejected = [
        (c.method, c.status, c.description)
        for c in tg.calls[calls_before:]
        if c.status >= 400 and not any(r in (c.description or "") for r in EXPECTED_REJECTIONS)
    ]
    assert not rejected, f"replies Telegram would reject: {rejected[:5]}"
    assert not failures.records, [r.getMessage() for r in failures.records[:3]]
    assert await _snapshot(db_url, VICTIM) == victim_before
