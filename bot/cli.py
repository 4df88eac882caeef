"""`biblio-bot` (also `python -m bot`): run, worker, sandbox, db, content, bench."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from bot.settings import ConfigError, Settings, load_settings

log = logging.getLogger("biblio-bot")

EXIT_CONFIG = 2


def _settings(log_file: Path | None = None) -> Settings:
    settings = load_settings()
    from bot.logging_setup import setup_logging

    secrets = [settings.bot_token.get_secret_value()] if settings.bot_token else []
    if settings.webhook_secret:
        secrets.append(settings.webhook_secret.get_secret_value())
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
    setup_logging(settings.log_level, secrets, str(log_file) if log_file else None)
    return settings


def _content_or_exit(root: Path | None) -> object:
    from content.loader import CONTENT_DIR, ContentError, load_content

    try:
        return load_content(root or CONTENT_DIR)
    except ContentError as exc:
        print("the content does not validate:", file=sys.stderr)
        print(exc.report.text(), file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None


def cmd_run(args: argparse.Namespace) -> int:
    settings = _settings()
    if settings.bot_token is None:
        print(
            "configuration error: BOT_TOKEN is not set (run `biblio-bot sandbox`, or `make run`,"
            " to try the bot offline)",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    _content_or_exit(settings.content_dir)
    from bot.app import build_app
    from bot.runner import run_polling, run_webhook
    from storage.migrate import upgrade

    upgrade(settings.database_url)
    app = build_app(settings)
    asyncio.run(run_webhook(app) if settings.webhook_url else run_polling(app))
    return 0


def cmd_sandbox(args: argparse.Namespace) -> int:
    # The chat owns the terminal; the log goes to a file beside the sandbox's database.
    log_file = Path("data/sandbox.log")
    settings = _settings(log_file)
    print(f"(log: {log_file})")
    _content_or_exit(settings.content_dir)
    from bot.sandbox.terminal import run_sandbox

    result: int = asyncio.run(run_sandbox(settings, role=args.role, files_dir=Path(args.files)))
    return result


def cmd_db(args: argparse.Namespace) -> int:
    settings = _settings()
    from storage import migrate

    if args.action == "upgrade":
        migrate.upgrade(settings.database_url, args.revision or "head")
    elif args.action == "downgrade":
        migrate.downgrade(settings.database_url, args.revision or "-1")
    elif args.action == "revision":
        migrate.revision(settings.database_url, args.message or "change")
    print(f"database {args.action}: done")
    return 0


def cmd_content(args: argparse.Namespace) -> int:
    from content.loader import CONTENT_DIR, check_content

    root = Path(args.dir) if args.dir else CONTENT_DIR
    content, report = check_content(root)
    if args.action == "check":
        if report.errors or report.warnings:
            print(report.text())
        if content is None:
            print(f"{len(report.errors)} error(s): the content does not validate", file=sys.stderr)
            return 1
        print(
            f"content ok: {len(content.modules)} modules, {len(content.quizzes)} quizzes, "
            f"{len(report.warnings)} warning(s)"
        )
        return 0
    if content is None:
        print(report.text(), file=sys.stderr)
        return 1
    stats = content.stats()
    if args.json:
        print(json.dumps(stats, ensure_ascii=False))
    else:
        print(f"modules: {stats['modules']}  profiles: {stats['profiles']}")
        print(f"calendar: {stats['calendar']['weeks']} weeks, {stats['calendar']['slots']} slots")
        for number, langs in stats["quiz_questions"].items():
            print(f"  module {number:>2}: " + "  ".join(f"{k} {v}" for k, v in langs.items()))
    return 0


async def _bot_username(settings: Settings) -> str | None:
    if settings.bot_token is None:
        return None
    from bot.app import make_bot

    bot = make_bot(settings)
    try:
        return (await bot.get_me()).username
    except Exception as exc:  # offline: the link is printed with a placeholder
        log.warning("could not ask Telegram for the bot's name: %s", type(exc).__name__)
        return None
    finally:
        await bot.session.close()


def cmd_invite(args: argparse.Namespace) -> int:
    settings = _settings()
    from bot.clock import SystemClock
    from bot.services.invites import create_invite, deep_link
    from storage.db import make_engine, make_sessionmaker
    from storage.migrate import upgrade
    from storage.models import InviteKind

    upgrade(settings.database_url)

    async def make() -> tuple[str, str | None]:
        engine = make_engine(settings.database_url)
        try:
            async with make_sessionmaker(engine)() as session, session.begin():
                invite = await create_invite(
                    session,
                    InviteKind(args.kind),
                    now=SystemClock().now(),
                    cohort_id=args.cohort,
                    valid_for=timedelta(days=args.days),
                    max_uses=args.uses,
                )
                token = invite.token
        finally:
            await engine.dispose()
        return token, await _bot_username(settings)

    if args.kind == "cohort" and args.cohort is None:
        print(
            "a cohort invitation needs --cohort ID (see `biblio-bot cohort list`)", file=sys.stderr
        )
        return EXIT_CONFIG
    token, username = asyncio.run(make())
    print(deep_link(username or "YOUR_BOT", token))
    if username is None:
        print(f"(replace YOUR_BOT with the bot's username; or send: /start {token})")
    return 0


def cmd_cohort(args: argparse.Namespace) -> int:
    settings = _settings()
    from datetime import date

    from sqlalchemy import select

    from bot.clock import SystemClock
    from bot.services.cohorts import create_cohort
    from storage.db import make_engine, make_sessionmaker
    from storage.migrate import upgrade
    from storage.models import Cohort

    upgrade(settings.database_url)

    async def act() -> list[str]:
        engine = make_engine(settings.database_url)
        try:
            async with make_sessionmaker(engine)() as session, session.begin():
                if args.action == "add":
                    cohort = await create_cohort(
                        session,
                        name=args.name,
                        country=args.country,
                        language=args.language,
                        timezone=args.timezone,
                        mooc_start=date.fromisoformat(args.start),
                        now=SystemClock().now(),
                        trainer_id=args.trainer,
                    )
                    return [f"cohort {cohort.id} created: {cohort.name}"]
                rows = await session.scalars(select(Cohort).order_by(Cohort.id))
                return [
                    f"{c.id}\t{c.name}\t{c.country}\t{c.language}\t{c.timezone}\t{c.mooc_start}"
                    for c in rows
                ]
        finally:
            await engine.dispose()

    if args.action == "add" and not all(
        (args.name, args.country, args.language, args.timezone, args.start)
    ):
        print(
            "cohort add needs --name, --country, --language, --timezone and --start",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    try:
        lines = asyncio.run(act())
    except (ValueError, KeyError) as exc:
        print(f"cohort {args.action}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print("\n".join(lines) if lines else "no cohorts yet")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    settings = _settings()
    if settings.bot_token is None:
        print("configuration error: BOT_TOKEN is not set", file=sys.stderr)
        return EXIT_CONFIG
    content: Any = _content_or_exit(settings.content_dir)
    from scheduler.worker import serve
    from storage.migrate import upgrade

    upgrade(settings.database_url)
    return asyncio.run(serve(settings, once=args.once, planner=args.planner, content=content))


def cmd_backup(args: argparse.Namespace) -> int:
    settings = _settings()
    from bot.backup import pg_dump_command, sqlite_backup

    path = settings.sqlite_path
    if not settings.is_sqlite:
        print("PostgreSQL: back up with pg_dump, e.g.\n  " + pg_dump_command(settings.database_url))
        return 0
    if path is None:
        print("backup: an in-memory database cannot be backed up", file=sys.stderr)
        return EXIT_CONFIG
    try:
        target = sqlite_backup(path, Path(args.to))
    except FileNotFoundError as exc:
        print(f"backup: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(f"backup written: {target}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from bot import bench

    logging.basicConfig(level=logging.WARNING)
    return bench.run(args.name, as_json=args.json, quick=args.quick)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="biblio-bot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("run", help="run the bot (polling, or webhook when WEBHOOK_URL is set)")

    sandbox = sub.add_parser("sandbox", help="chat with the bot offline, in this terminal")
    sandbox.add_argument("--role", choices=["learner", "trainer", "mentor"], default="learner")
    sandbox.add_argument("--files", default="sandbox-files", help="where files the bot sends go")

    db = sub.add_parser("db", help="database migrations")
    db.add_argument("action", choices=["upgrade", "downgrade", "revision"])
    db.add_argument("revision", nargs="?", help="target revision (default head / -1)")
    db.add_argument("-m", "--message", help="message for a new revision")

    content = sub.add_parser("content", help="validate the curriculum or print its figures")
    content.add_argument("action", choices=["check", "stats"])
    content.add_argument("--json", action="store_true", help="one JSON object")
    content.add_argument("--dir", help="content folder (default: the shipped one)")

    invite = sub.add_parser("invite", help="print an invitation link (the first trainer's, say)")
    invite.add_argument("kind", choices=["trainer", "mentor", "cohort"])
    invite.add_argument("--cohort", type=int, help="the cohort (for a cohort link)")
    invite.add_argument("--days", type=int, default=14, help="valid for this many days")
    invite.add_argument("--uses", type=int, default=1, help="how many people may use it")

    cohort = sub.add_parser("cohort", help="add or list cohorts")
    cohort.add_argument("action", choices=["add", "list"])
    cohort.add_argument("--name")
    cohort.add_argument("--country", help="ISO code: LV, IT, BG, GR")
    cohort.add_argument("--language", choices=["en", "lv", "it", "bg", "el"])
    cohort.add_argument("--timezone", help="e.g. Europe/Riga")
    cohort.add_argument("--start", help="MOOC start date, YYYY-MM-DD")
    cohort.add_argument("--trainer", type=int, help="Telegram id of its trainer")

    worker = sub.add_parser(
        "worker",
        help="run only the delivery worker (several may run on PostgreSQL; set RUN_WORKER=false"
        " for the bot processes then)",
    )
    worker.add_argument("--once", action="store_true", help="send what is due now, then exit")
    worker.add_argument(
        "--planner", action="store_true", help="also run the planner tick every minute"
    )

    backup = sub.add_parser("backup", help="copy the SQLite store safely (pg_dump hint otherwise)")
    backup.add_argument("--to", default="data/backups", help="folder for the copy")

    bench = sub.add_parser("bench", help="measure performance figures (see bot/bench/)")
    bench.add_argument("name", help="a benchmark name, or all")
    bench.add_argument("--json", action="store_true", help="one JSON object")
    bench.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    return parser


COMMANDS = {
    "bench": cmd_bench,
    "worker": cmd_worker,
    "backup": cmd_backup,
    "run": cmd_run,
    "sandbox": cmd_sandbox,
    "db": cmd_db,
    "content": cmd_content,
    "invite": cmd_invite,
    "cohort": cmd_cohort,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130
