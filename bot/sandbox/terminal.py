"""`biblio-bot sandbox`: the local Bot API server and the bot, and a chat in this terminal.

No token and no network needed: a trainer can try every conversation as a learner, a
trainer or a mentor. Buttons and poll options are numbered; type the number to choose.
"""

from __future__ import annotations

import asyncio
import sys
from contextlib import suppress
from pathlib import Path

from pydantic import SecretStr
from sqlalchemy import select

from bot.app import build_app
from bot.sandbox.server import BotAPIServer, FakeUser, SentMessage
from bot.settings import Settings
from storage.migrate import upgrade_async
from storage.models import Role, User

SANDBOX_DB = "sqlite+aiosqlite:///data/sandbox.sqlite3"
PEOPLE: dict[str, tuple[int, str, Role]] = {
    "learner": (1001, "Anna", Role.learner),
    "trainer": (2001, "Marta", Role.trainer),
    "mentor": (3001, "Jānis", Role.mentor),
}
HELP = """Sandbox commands (everything else goes to the bot as you typed it):
  1, 2, ...          press button N of the latest message, or vote option N of a poll
  \\text              send text that starts with a digit or a colon, as typed
  :as ROLE           talk as the learner, trainer or mentor
  :lang CODE         the Telegram app language of the current person (en, lv, it, bg, el)
  :photo | :sticker | :voice    send one of those
  :doc PATH          send a file as a document
  :block | :unblock  block or unblock the bot as the current person
  :help | :quit"""

BOLD, DIM, RESET = "\033[1m", "\033[2m", "\033[0m"


class Terminal:
    def __init__(self, server: BotAPIServer, files_dir: Path, color: bool) -> None:
        self.server = server
        self.files_dir = files_dir
        self.color = color
        self.people: dict[str, FakeUser] = {}
        self.current = "learner"

    def _c(self, code: str, text: str) -> str:
        return f"{code}{text}{RESET}" if self.color else text

    def person(self, role: str | None = None) -> FakeUser:
        role = role or self.current
        if role not in self.people:
            user_id, name, _ = PEOPLE[role]
            self.people[role] = self.server.user(user_id, first_name=name, language_code="en")
        return self.people[role]

    def render(self, role: str, sent: SentMessage) -> str:
        who = self._c(DIM, f"[bot → {role}]")
        lines = [f"{who}{' (edited)' if sent.edited else ''}"]
        if sent.kind == "poll" and sent.poll:
            lines.append(self._c(BOLD, str(sent.poll.get("question", ""))))
            for i, option in enumerate(sent.poll.get("options", []), 1):
                lines.append(f"  ({i}) {option.get('text', '')}")
        elif sent.file_bytes is not None:
            self.files_dir.mkdir(parents=True, exist_ok=True)
            target = self.files_dir / f"{sent.message_id}-{sent.file_name or sent.kind}"
            target.write_bytes(sent.file_bytes)
            lines.append(f"📎 {sent.kind}: {target}")
            if sent.text:
                lines.append(sent.text)
        elif sent.text:
            lines.append(sent.text)
        for i, button in enumerate(sent.buttons, 1):
            lines.append(self._c(BOLD, f"  [{i}] {button.get('text', '')}"))
        return "\n".join(lines)

    async def show(self, role: str) -> None:
        user = self.person(role)
        while True:
            sent = await user.next_message(timeout=3600)
            print("\n" + self.render(role, sent), flush=True)

    async def settle(self, first: float = 5.0, quiet: float = 0.4) -> None:
        """Wait for the bot's answer to finish arriving, so piped input reads like a chat."""
        loop = asyncio.get_running_loop()

        def feed() -> int:
            return sum(len(u.feed) for u in self.people.values())

        start, count = loop.time(), feed()
        last_change = None
        while loop.time() - start < first + 30:
            await asyncio.sleep(0.05)
            if feed() != count:
                count, last_change = feed(), loop.time()
            elif (last_change is None and loop.time() - start > first) or (
                last_change is not None and loop.time() - last_change > quiet
            ):
                return

    async def handle(self, line: str) -> bool:
        """One line typed by the person; False to quit."""
        user = self.person()
        text = line.rstrip("\n")
        if not text.strip():
            return True
        if text.startswith("\\"):
            await user.send(text[1:])
            return True
        if text.strip().isdigit():
            await self._choose(user, int(text.strip()))
            return True
        if text.startswith(":"):
            return await self._local(user, text[1:].split())
        await user.send(text)
        return True

    async def _choose(self, user: FakeUser, number: int) -> None:
        for sent in reversed(user.messages):
            if sent.deleted:
                continue
            if sent.kind == "poll" and sent.poll and not sent.poll.get("is_closed"):
                await user.answer_poll([number - 1], poll_id=str(sent.poll.get("id")))
                return
            buttons = sent.buttons
            if buttons:
                if 1 <= number <= len(buttons):
                    button = buttons[number - 1]
                    await user.press(
                        str(button.get("callback_data") or button.get("text")), sent.message_id
                    )
                else:
                    print(f"(no button {number}: choose 1-{len(buttons)})")
                return
        await user.send(str(number))

    async def _local(self, user: FakeUser, words: list[str]) -> bool:
        command, args = (words[0], words[1:]) if words else ("help", [])
        if command in ("quit", "q", "exit"):
            return False
        if command == "as" and args and args[0] in PEOPLE:
            self.current = args[0]
            print(f"(you are now the {args[0]}, {PEOPLE[args[0]][1]})")
        elif command == "lang" and args:
            user.language_code = args[0]
            print(f"(Telegram app language: {args[0]})")
        elif command == "photo":
            await user.send_photo()
        elif command == "sticker":
            await user.send_sticker()
        elif command == "voice":
            await user.send_voice()
        elif command == "doc" and args:
            path = Path(args[0])
            data = await asyncio.to_thread(path.read_bytes)
            await user.send_document(path.name, data)
        elif command == "block":
            self.server.block(user.user_id)
        elif command == "unblock":
            self.server.unblock(user.user_id)
        else:
            print(HELP)
        return True


async def _seed_people(settings: Settings) -> None:
    """The trainer and mentor of the sandbox get their roles without an invitation."""
    from storage.db import make_engine, make_sessionmaker

    engine = make_engine(settings.database_url)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            for user_id, _name, role in PEOPLE.values():
                user = await session.scalar(select(User).where(User.id == user_id))
                if user is None:
                    session.add(User(id=user_id, role=role))
                elif role is not Role.learner:
                    user.role = role
    finally:
        await engine.dispose()


async def _lines() -> asyncio.Queue[str | None]:
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    loop = asyncio.get_running_loop()

    def reader() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(queue.put_nowait, line)
        loop.call_soon_threadsafe(queue.put_nowait, None)

    loop.run_in_executor(None, reader)
    return queue


async def run_sandbox(settings: Settings, *, role: str, files_dir: Path) -> int:
    server = BotAPIServer(files_dir=files_dir / "uploads")
    await server.start()
    database_url = (
        settings.database_url if "DATABASE_URL" in settings.model_fields_set else SANDBOX_DB
    )
    # model_copy does not validate: give each field its final type.
    settings = settings.model_copy(
        update={
            "bot_token": SecretStr(server.token),
            "telegram_api_url": server.base_url,
            "database_url": database_url,
        }
    )
    await upgrade_async(database_url)
    await _seed_people(settings)
    app = build_app(settings)
    polling = asyncio.create_task(
        app.dp.start_polling(
            app.bot, handle_signals=False, polling_timeout=10, close_bot_session=False
        )
    )
    terminal = Terminal(server, files_dir, color=sys.stdout.isatty())
    terminal.current = role
    printers = [asyncio.create_task(terminal.show(r)) for r in PEOPLE]
    print(f"BIBLIO sandbox: a local Bot API server at {server.base_url}, the bot, and you.")
    print(f"You are the {role}. Say hello: /start   (:help for sandbox commands)")
    lines = await _lines()
    try:
        while (line := await lines.get()) is not None:
            if not await terminal.handle(line):
                break
            await terminal.settle()
    finally:
        for task in printers:
            task.cancel()
        with suppress(Exception):
            await app.dp.stop_polling()
        await asyncio.gather(polling, *printers, return_exceptions=True)
        await app.close()
        await server.stop()
    return 0
