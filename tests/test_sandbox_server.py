"""The sandbox Bot API server, driven by a real aiogram Bot and Dispatcher over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiogram import Bot, Dispatcher, F
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.types import (
    BotCommand,
    BotCommandScopeAllPrivateChats,
    BufferedInputFile,
    CallbackQuery,
    ChatMemberUpdated,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputPollOption,
    Message,
    PollAnswer,
)
from aiohttp import web

from bot.sandbox.html import EntityParseError, parse_html
from bot.sandbox.server import BotAPIServer


@pytest.fixture
async def server() -> AsyncIterator[BotAPIServer]:
    srv = BotAPIServer()
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


def make_bot(server: BotAPIServer, token: str | None = None) -> Bot:
    api = TelegramAPIServer.from_base(server.base_url)
    return Bot(token or server.token, session=AiohttpSession(api=api))


@pytest.fixture
async def bot(server: BotAPIServer) -> AsyncIterator[Bot]:
    instance = make_bot(server)
    try:
        yield instance
    finally:
        await instance.session.close()


@contextlib.asynccontextmanager
async def polling(dp: Dispatcher, bot: Bot) -> AsyncIterator[None]:
    task = asyncio.create_task(
        dp.start_polling(bot, handle_signals=False, close_bot_session=False, polling_timeout=1)
    )
    try:
        yield
    finally:
        with contextlib.suppress(RuntimeError):  # polling may not have started yet
            await dp.stop_polling()
        if not task.done():
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def keyboard(*buttons: tuple[str, str]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=t, callback_data=d)] for t, d in buttons]
    )


async def known_user(server: BotAPIServer, user_id: int = 1) -> Any:
    """A user who has written to the bot (so the bot may write back)."""
    user = server.user(user_id)
    await user.send("hi")
    return user


# --------------------------------------------------------------------------- dialogue


async def test_start_gets_a_reply_with_language_and_payload(server: BotAPIServer, bot: Bot) -> None:
    dp = Dispatcher()
    seen: dict[str, Any] = {}

    @dp.message(CommandStart())
    async def start(message: Message, command: CommandObject) -> None:
        assert message.from_user is not None
        seen["lang"] = message.from_user.language_code
        await message.answer(
            f"Hello, <b>{message.from_user.first_name}</b>! [{command.args}]", parse_mode="HTML"
        )

    user = server.user(10, first_name="Ada", language_code="it")
    async with polling(dp, bot):
        await user.start("course-7")
        reply = await user.next_message()
    assert reply.text == "Hello, Ada! [course-7]"
    assert reply.raw_text == "Hello, <b>Ada</b>! [course-7]"
    assert reply.entities == [{"type": "bold", "offset": 7, "length": 3}]
    assert seen["lang"] == "it"
    assert user.last() is user.messages[0]
    assert server.sent[0].chat_id == 10
    assert any(c.method == "getUpdates" for c in server.calls)


async def test_inline_button_press_reaches_the_callback_handler(
    server: BotAPIServer, bot: Bot
) -> None:
    dp = Dispatcher()

    @dp.message(Command("menu"))
    async def menu(message: Message) -> None:
        await message.answer("Page 1", reply_markup=keyboard(("Next ▶", "page:2")))

    @dp.callback_query(F.data == "page:2")
    async def next_page(query: CallbackQuery) -> None:
        await query.answer("Loading", show_alert=True)
        assert isinstance(query.message, Message)
        await query.message.edit_text("Page 2")

    user = server.user(11)
    async with polling(dp, bot):
        await user.send("/menu")
        menu_message = await user.next_message()
        assert menu_message.button_texts() == ["Next ▶"]
        await user.press("Next ▶")
        edit = await user.next_message()
        # Also by callback_data, on an explicit message: no buttons left after the edit.
        with pytest.raises(LookupError):
            await user.press("page:2", message_id=menu_message.message_id)
    assert edit.edited and edit.text == "Page 2"
    assert edit.message_id == menu_message.message_id
    assert menu_message.text == "Page 1"  # delivered items are snapshots
    live = user.last()
    assert live.text == "Page 2" and live.edited and live.reply_markup is None
    [answer] = user.answered_callbacks
    assert (answer.text, answer.show_alert, answer.data) == ("Loading", True, "page:2")


async def test_poll_answer_reaches_the_dispatcher(server: BotAPIServer, bot: Bot) -> None:
    dp = Dispatcher()
    answers: asyncio.Queue[PollAnswer] = asyncio.Queue()

    @dp.message(Command("poll"))
    async def send_poll(message: Message) -> None:
        await message.answer_poll(
            "Favourite format?",
            [InputPollOption(text="Book"), InputPollOption(text="Audio"), "Film"],  # type: ignore[list-item]
            is_anonymous=False,
        )

    @dp.poll_answer()
    async def on_answer(answer: PollAnswer) -> None:
        await answers.put(answer)

    user = server.user(12)
    async with polling(dp, bot):
        await user.send("/poll")
        sent = await user.next_message()
        assert sent.kind == "poll" and sent.poll is not None
        assert [o["text"] for o in sent.poll["options"]] == ["Book", "Audio", "Film"]
        await user.answer_poll([1])
        answer = await asyncio.wait_for(answers.get(), 5)
    assert answer.poll_id == sent.poll["id"]
    assert answer.option_ids == [1]
    assert answer.user is not None and answer.user.id == 12
    assert user.last().poll is not None and user.last().poll["options"][1]["voter_count"] == 1  # type: ignore[index]


# --------------------------------------------------------------------------- validation


async def test_html_is_parsed_strictly(server: BotAPIServer, bot: Bot) -> None:
    user = await known_user(server)
    for bad in ("<b>x", "a < b", "R&D", "<b>x</i>", "<br>", '<span class="x">y</span>'):
        with pytest.raises(TelegramBadRequest, match="can't parse entities"):
            await bot.send_message(user.user_id, bad, parse_mode="HTML")
    message = await bot.send_message(user.user_id, "&lt;b&gt; &amp; &#128512;", parse_mode="HTML")
    assert message.text == "<b> & 😀"
    rich = await bot.send_message(
        user.user_id,
        '<b>Bold <i>both</i></b> 😀 <a href="https://example.org/?a=1&b=2">link</a>\n'
        '<pre><code class="language-python">x = 1</code></pre>',
        parse_mode="HTML",
    )
    assert rich.text == "Bold both 😀 link\nx = 1"
    kinds = [(e.type, e.offset, e.length) for e in rich.entities or []]
    # 😀 is two UTF-16 code units: "link" starts at 13.
    assert kinds == [("bold", 0, 9), ("italic", 5, 4), ("text_link", 13, 4), ("pre", 18, 5)]
    assert (rich.entities or [])[3].language == "python"
    # Without parse_mode the text is taken literally.
    plain = await bot.send_message(user.user_id, "a < b & <b>")
    assert plain.text == "a < b & <b>"
    with pytest.raises(TelegramBadRequest, match="not supported by the sandbox"):
        await bot.send_message(user.user_id, "*x*", parse_mode="MarkdownV2")


def test_html_parser_error_texts() -> None:
    with pytest.raises(EntityParseError, match='Unsupported start tag "" at byte offset 2'):
        parse_html("a < b")
    with pytest.raises(EntityParseError, match="Can't find end tag corresponding to start tag"):
        parse_html("<b>x")
    with pytest.raises(EntityParseError, match='expected "</b>", found "</i>"'):
        parse_html("<b>x</i>")
    assert parse_html("<blockquote expandable>q</blockquote>")[1][0]["type"] == (
        "expandable_blockquote"
    )
    assert parse_html("<tg-spoiler>s</tg-spoiler><span class='tg-spoiler'>t</span>")[1] == [
        {"type": "spoiler", "offset": 0, "length": 1},
        {"type": "spoiler", "offset": 1, "length": 1},
    ]


async def test_text_length_limits(server: BotAPIServer, bot: Bot) -> None:
    user = await known_user(server)
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(user.user_id, "x" * 4097)
    await bot.send_message(user.user_id, "<b>" + "x" * 4096 + "</b>", parse_mode="HTML")
    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await bot.send_message(user.user_id, "<b> </b>", parse_mode="HTML")
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(424242, "hello")


async def test_callback_data_is_limited_to_64_bytes(server: BotAPIServer, bot: Bot) -> None:
    user = await known_user(server)
    await bot.send_message(user.user_id, "ok", reply_markup=keyboard(("A", "й" * 32)))
    for data in ("x" * 65, "й" * 33):
        with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
            await bot.send_message(user.user_id, "no", reply_markup=keyboard(("A", data)))
    with pytest.raises(TelegramBadRequest, match="Text buttons are unallowed"):
        await bot.send_message(
            user.user_id,
            "no",
            reply_markup=InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="A")]]),
        )


async def test_quiz_poll_limits_and_answers(server: BotAPIServer, bot: Bot) -> None:
    user = await known_user(server)
    chat = user.user_id

    async def quiz(**kwargs: Any) -> Message:
        args: dict[str, Any] = {
            "chat_id": chat,
            "question": "2 + 2?",
            "options": ["3", "4"],
            "type": "quiz",
            "correct_option_id": 1,
            "is_anonymous": False,
        }
        args.update(kwargs)
        return await bot.send_poll(**args)

    bad_cases: list[tuple[dict[str, Any], str]] = [
        ({"correct_option_id": None}, "QUIZ_CORRECT_ANSWERS_EMPTY"),
        ({"correct_option_id": 2}, "QUIZ_CORRECT_ANSWER_INVALID"),
        ({"options": ["only"]}, "at least 2 option"),
        ({"options": [str(i) for i in range(13)]}, "more than 12 options"),
        ({"options": ["a", "x" * 101]}, "must not exceed 100"),
        ({"question": "q" * 301}, "must not exceed 300"),
        ({"explanation": "e" * 201}, "explanation is too long"),
    ]
    for kwargs, error in bad_cases:
        with pytest.raises(TelegramBadRequest, match=error):
            await quiz(**kwargs)

    sent = await quiz(explanation="Two <b>pairs</b>", explanation_parse_mode="HTML")
    assert sent.poll is not None and sent.poll.type == "quiz"
    assert sent.poll.correct_option_ids == [1]
    assert sent.poll.explanation == "Two pairs"
    assert not sent.poll.is_anonymous and not sent.poll.allows_revoting

    await user.answer_poll([0])
    await user.answer_poll([1])  # a quiz is answered once: the second vote is ignored
    answers = [u["poll_answer"] for u in server.pending_updates if "poll_answer" in u]
    assert [a["option_ids"] for a in answers] == [[0]]

    anonymous = await quiz(is_anonymous=None)  # Telegram's default: anonymous
    assert anonymous.poll is not None and anonymous.poll.is_anonymous
    with pytest.raises(ValueError, match="anonymous"):
        await user.answer_poll([1])

    stopped = await bot.stop_poll(chat, sent.message_id)
    assert stopped.is_closed
    with pytest.raises(TelegramBadRequest, match="already been closed"):
        await bot.stop_poll(chat, sent.message_id)


async def test_edits_follow_telegram_rules(server: BotAPIServer, bot: Bot) -> None:
    user = await known_user(server)
    sent = await bot.send_message(user.user_id, "v1", reply_markup=keyboard(("A", "a")))
    await user.next_message()
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text(
            text="v1",
            chat_id=user.user_id,
            message_id=sent.message_id,
            reply_markup=keyboard(("A", "a")),
        )
    edited = await bot.edit_message_reply_markup(
        chat_id=user.user_id, message_id=sent.message_id, reply_markup=keyboard(("B", "b"))
    )
    assert isinstance(edited, Message) and edited.edit_date is not None
    update = await user.next_message()
    assert update.edited and update.button_texts() == ["B"]
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text(text="x", chat_id=user.user_id, message_id=999)
    assert await bot.delete_message(user.user_id, sent.message_id)
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_message(user.user_id, sent.message_id)
    await user.expect_silence(0.05)


# --------------------------------------------------------------------------- limits & errors


async def test_per_chat_flood_limit_gives_retry_after() -> None:
    async with BotAPIServer(per_chat_rate=1) as server:
        bot = make_bot(server)
        try:
            user = await known_user(server)
            with pytest.raises(TelegramRetryAfter) as caught:
                for i in range(20):
                    await bot.send_message(user.user_id, f"message {i}")
            assert caught.value.retry_after >= 1
            assert server.count_429 == 1
            assert len(user.messages) == 1
            other = await known_user(server, 2)
            await bot.send_message(other.user_id, "another chat is not limited")
            server.set_rate_limits(global_rate=1, per_chat_rate=None)
            third = await known_user(server, 3)
            await bot.send_message(third.user_id, "1")
            with pytest.raises(TelegramRetryAfter):
                await bot.send_message(user.user_id, "global limit")
        finally:
            await bot.session.close()


async def test_injected_failures(server: BotAPIServer, bot: Bot) -> None:
    user = await known_user(server)
    server.fail_next("sendMessage", 502, "Bad Gateway")
    server.fail_next("sendMessage", 429, "Too Many Requests: retry after 3", retry_after=3)
    with pytest.raises(TelegramServerError):
        await bot.send_message(user.user_id, "x")
    with pytest.raises(TelegramRetryAfter) as caught:
        await bot.send_message(user.user_id, "x")
    assert caught.value.retry_after == 3
    await bot.send_message(user.user_id, "now it works")
    assert server.count_429 == 1


async def test_blocked_user(server: BotAPIServer, bot: Bot) -> None:
    dp = Dispatcher()
    changes: asyncio.Queue[ChatMemberUpdated] = asyncio.Queue()

    @dp.my_chat_member()
    async def on_member(update: ChatMemberUpdated) -> None:
        await changes.put(update)

    user = await known_user(server, 13)
    async with polling(dp, bot):
        server.block(13)
        change = await asyncio.wait_for(changes.get(), 5)
        assert (change.old_chat_member.status, change.new_chat_member.status) == (
            "member",
            "kicked",
        )
        assert change.from_user.id == 13
        with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
            await bot.send_message(13, "still there?")
        await user.send("/start")  # writing to the bot again unblocks it
        change = await asyncio.wait_for(changes.get(), 5)
        assert change.new_chat_member.status == "member"
    await bot.send_message(13, "welcome back")


async def test_wrong_token_and_unknown_method(server: BotAPIServer) -> None:
    wrong = make_bot(server, token="999:WRONG")
    try:
        with pytest.raises(TelegramUnauthorizedError):
            await wrong.get_me()
    finally:
        await wrong.session.close()
    url = f"{server.base_url}/bot{server.token}/fooBar"
    async with aiohttp.ClientSession() as http, http.post(url) as response:
        assert response.status == 404
        assert await response.json() == {
            "ok": False,
            "error_code": 404,
            "description": "Not Found: method not found",
        }


# --------------------------------------------------------------------------- transport


async def test_malformed_update_is_delivered_raw(server: BotAPIServer) -> None:
    update_id = server.inject_update({"message": {"text": "no chat, no date"}})
    url = f"{server.base_url}/bot{server.token}/getUpdates"
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as response:
            body = await response.json()
        assert body == {
            "ok": True,
            "result": [{"update_id": update_id, "message": {"text": "no chat, no date"}}],
        }
        # Confirming with offset forgets it; long polling then waits and returns [].
        async with http.post(url, json={"offset": update_id + 1, "timeout": 0}) as response:
            assert (await response.json())["result"] == []


async def test_long_polling_wakes_up_on_new_update(server: BotAPIServer) -> None:
    url = f"{server.base_url}/bot{server.token}/getUpdates?timeout=5"
    async with aiohttp.ClientSession() as http:
        request = asyncio.create_task(http.get(url))
        await asyncio.sleep(0.1)
        await server.user(5).send("wake up")
        response = await asyncio.wait_for(request, 2)
        body = await response.json()
    assert body["result"][0]["message"]["text"] == "wake up"
    assert body["result"][0]["message"]["from"]["language_code"] == "en"


async def test_get_updates_offsets_filters_and_conflicts(server: BotAPIServer) -> None:
    url = f"{server.base_url}/bot{server.token}/getUpdates"
    user = server.user(6)
    await user.send("one")
    server.inject_update({"callback_query": {"id": "q"}})
    async with aiohttp.ClientSession() as http:
        # Unwanted kinds are dropped, as Telegram never creates them.
        async with http.post(url, json={"allowed_updates": ["callback_query"]}) as response:
            [only] = (await response.json())["result"]
        assert "callback_query" in only
        # A newer getUpdates ends an older waiting one with 409.
        first = asyncio.create_task(
            http.post(url, json={"offset": only["update_id"] + 1, "timeout": 5})
        )
        await asyncio.sleep(0.1)
        async with http.post(url, json={"timeout": 0}) as response:
            assert (await response.json())["result"] == []
        async with await first as response:
            assert response.status == 409
            assert (
                "terminated by other getUpdates request" in (await response.json())["description"]
            )


async def test_next_message_timeout_explains_what_happened(server: BotAPIServer, bot: Bot) -> None:
    user = await known_user(server)
    await bot.send_message(user.user_id, "first")
    with pytest.raises(TelegramBadRequest):
        await bot.send_message(user.user_id, "<b>broken", parse_mode="HTML")
    assert (await user.next_message()).text == "first"
    with pytest.raises(TimeoutError) as caught:
        await user.next_message(timeout=0.05)
    report = str(caught.value)
    assert "first" in report and "sendMessage -> 400 Bad Request: can't parse entities" in report


async def test_other_encodings_are_accepted(server: BotAPIServer) -> None:
    user = await known_user(server)
    base = f"{server.base_url}/bot{server.token}"
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{base}/sendMessage",
            json={
                "chat_id": user.user_id,
                "text": "123",
                "reply_markup": {"inline_keyboard": [[{"text": "Go", "callback_data": "go"}]]},
            },
        ) as response:
            assert (await response.json())["result"]["text"] == "123"
        async with http.get(f"{base}/sendMessage?chat_id={user.user_id}&text=true") as response:
            assert (await response.json())["result"]["text"] == "true"
    assert [m.text for m in user.messages] == ["123", "true"]
    assert user.messages[0].button_texts() == ["Go"]


async def test_webhook_push_with_secret_and_retry(server: BotAPIServer, bot: Bot) -> None:
    received: list[tuple[str | None, dict[str, Any]]] = []
    attempts = 0

    async def hook(request: web.Request) -> web.Response:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            return web.Response(status=500)  # the first delivery fails and is retried
        received.append(
            (request.headers.get("X-Telegram-Bot-Api-Secret-Token"), await request.json())
        )
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        assert await bot.set_webhook(f"http://127.0.0.1:{port}/hook", secret_token="s3cret")
        with pytest.raises(TelegramConflictError, match="webhook is active"):
            await bot.get_updates()
        user = server.user(14)
        await user.send("one")
        await user.send("two")
        for _ in range(200):
            if len(received) == 2:
                break
            await asyncio.sleep(0.01)
        assert [secret for secret, _ in received] == ["s3cret", "s3cret"]
        assert [u["message"]["text"] for _, u in received] == ["one", "two"]
        assert attempts == 3
        info = await bot.get_webhook_info()
        assert info.url.endswith("/hook") and info.pending_update_count == 0
        assert info.last_error_message is not None and "500" in info.last_error_message
        assert await bot.delete_webhook()
        assert await bot.get_updates(timeout=0) == []
    finally:
        await runner.cleanup()


async def test_documents_roundtrip(server: BotAPIServer, bot: Bot, tmp_path: Any) -> None:
    server.files_dir = tmp_path
    dp = Dispatcher()
    downloaded: asyncio.Queue[bytes] = asyncio.Queue()

    @dp.message(F.document)
    async def on_document(message: Message) -> None:
        assert message.document is not None
        data = await message.bot.download(message.document)  # type: ignore[union-attr]
        assert data is not None
        await downloaded.put(data.read())

    user = server.user(15)
    async with polling(dp, bot):
        await user.send_document("notes.txt", b"user notes")
        assert await asyncio.wait_for(downloaded.get(), 5) == b"user notes"

    payload = b"%PDF-1.4 certificate"
    message = await bot.send_document(
        user.user_id,
        BufferedInputFile(payload, filename="certificate.pdf"),
        caption="Your <b>certificate</b>",
        parse_mode="HTML",
    )
    assert message.document is not None and message.document.file_name == "certificate.pdf"
    assert message.caption == "Your certificate"
    sent = user.last()
    assert (sent.kind, sent.document_name, sent.document_bytes) == (
        "document",
        "certificate.pdf",
        payload,
    )
    assert sent.caption == "Your certificate" and sent.mime_type == "application/pdf"
    file = await bot.get_file(message.document.file_id)
    assert file.file_path is not None
    data = await bot.download_file(file.file_path)
    assert data is not None and data.read() == payload
    assert (tmp_path / file.file_path).read_bytes() == payload
    with pytest.raises(TelegramBadRequest, match="message caption is too long"):
        await bot.send_document(user.user_id, message.document.file_id, caption="c" * 1025)
    # Re-sending by file_id works; a photo must be an image.
    await bot.send_document(user.user_id, message.document.file_id)
    with pytest.raises(TelegramBadRequest, match="IMAGE_PROCESS_FAILED"):
        await bot.send_photo(user.user_id, BufferedInputFile(payload, filename="x.jpg"))


async def test_commands_menu_and_chat_info(server: BotAPIServer, bot: Bot) -> None:
    commands = [BotCommand(command="start", description="Start")]
    assert await bot.set_my_commands(commands)
    assert await bot.set_my_commands(
        [BotCommand(command="help", description="Aiuto")],
        scope=BotCommandScopeAllPrivateChats(),
        language_code="it",
    )
    assert server.commands == {
        ("default", ""): [{"command": "start", "description": "Start"}],
        ("all_private_chats", "it"): [{"command": "help", "description": "Aiuto"}],
    }
    assert [c.command for c in await bot.get_my_commands()] == ["start"]
    with pytest.raises(TelegramBadRequest, match="BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand(command="Start", description="x")])
    me = await bot.get_me()
    assert (me.id, me.username, me.is_bot) == (123456, "biblio_test_bot", True)
    user = await known_user(server, 16)
    chat = await bot.get_chat(user.user_id)
    assert chat.type == "private" and chat.first_name == "Test"
    assert await bot.send_chat_action(user.user_id, "typing")


async def test_control_interface(server: BotAPIServer, bot: Bot) -> None:
    dp = Dispatcher()

    @dp.message(CommandStart())
    async def start(message: Message) -> None:
        await message.answer("Choose", reply_markup=keyboard(("Yes", "y")))

    @dp.callback_query()
    async def pressed(query: CallbackQuery) -> None:
        await query.answer()
        assert query.message is not None
        await bot.send_message(query.message.chat.id, f"you said {query.data}")

    base = f"{server.base_url}/_control"
    async with polling(dp, bot), aiohttp.ClientSession() as http:
        async with http.post(f"{base}/users/20", json={"language_code": "lv"}) as response:
            assert (await response.json())["user"]["language_code"] == "lv"
        async with http.post(f"{base}/users/20/start", json={}) as response:
            assert (await response.json())["ok"]
        async with http.get(f"{base}/users/20/messages?after=0&timeout=5") as response:
            body = await response.json()
        assert [m["text"] for m in body["messages"]] == ["Choose"]
        async with http.post(f"{base}/users/20/press", json={"text": "Yes"}) as response:
            assert (await response.json())["ok"]
        async with http.get(f"{base}/users/20/messages?after={body['next']}&timeout=5") as response:
            assert [m["text"] for m in (await response.json())["messages"]] == ["you said y"]
        async with http.post(f"{base}/users/20/press", json={"data": "nope"}) as response:
            assert response.status == 404
        async with http.get(f"{base}/stats") as response:
            stats = await response.json()
    assert stats["sends"] == 2 and stats["calls"]["answerCallbackQuery"] == 1
