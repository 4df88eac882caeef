"""One factory builds the bot, the dispatcher and the store from settings."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage
from aiogram.fsm.storage.memory import SimpleEventIsolation
from aiogram.utils.i18n import I18n
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.clock import Clock, SystemClock
from bot.commands import set_command_menus
from bot.features import load_features
from bot.i18n import StoredLanguageMiddleware, make_i18n
from bot.middlewares import DbSessionMiddleware
from bot.settings import Settings
from bot.telegram_session import StaleCallbackMiddleware, TolerantSession
from content.loader import Content, load_content
from handlers import routers
from handlers.quiz import AnswerLane
from scheduler.worker import DeliveryConfig, DeliveryWorker
from storage.db import make_engine, make_sessionmaker
from storage.fsm import SQLStorage

if TYPE_CHECKING:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

log = logging.getLogger(__name__)


@dataclass
class App:
    settings: Settings
    bot: Bot
    dp: Dispatcher
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    i18n: I18n
    content: Content
    clock: Clock = field(default_factory=SystemClock)
    # The delivery worker (scheduler/worker.py); its loop runs as worker_task when
    # RUN_WORKER is on. Tests call scheduler.worker.drain_outbox(app) instead.
    delivery: DeliveryWorker = field(init=False)
    worker_task: asyncio.Task[None] | None = field(default=None, init=False)
    scheduler: AsyncIOScheduler | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.delivery = DeliveryWorker(
            bot=self.bot,
            sessionmaker=self.sessionmaker,
            content=self.content,
            i18n=self.i18n,
            clock=self.clock,
            config=DeliveryConfig.from_settings(self.settings),
            settings=self.settings,
        )

    async def on_startup(self) -> None:
        me = await self.bot.get_me()
        log.info("connected as @%s (id %s)", me.username, me.id)
        await set_command_menus(self.bot, self.i18n)
        await self.start_delivery()

    async def start_delivery(self) -> None:
        """The planner (every minute and now) and the delivery worker, as the settings say."""
        if self.settings.run_scheduler and self.scheduler is None:
            from scheduler.planner import plan_once, start_scheduler

            self.scheduler = start_scheduler(
                lambda: plan_once(self), self.settings.planner_interval
            )
        if self.settings.run_worker and self.worker_task is None:
            self.worker_task = asyncio.create_task(self.delivery.run(), name="delivery-worker")

    async def stop_delivery(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
            self.scheduler = None
        task, self.worker_task = self.worker_task, None
        if task is not None:
            self.delivery.stop()
            try:
                # Sends in flight finish and their outcomes are committed.
                await asyncio.wait_for(task, self.settings.send_timeout + 10)
            except TimeoutError:
                log.warning("the delivery worker did not stop in time")
            except Exception:
                log.exception("the delivery worker failed")

    async def on_shutdown(self) -> None:
        await self.stop_delivery()

    async def close(self) -> None:
        await self.stop_delivery()
        await self.dp.storage.close()
        await self.dp.fsm.events_isolation.close()
        await self.bot.session.close()
        await self.engine.dispose()


def make_bot(settings: Settings) -> Bot:
    if settings.bot_token is None:
        raise ValueError("BOT_TOKEN is required to build the bot")
    session = TolerantSession(api=TelegramAPIServer.from_base(settings.telegram_api_url))
    session.middleware(StaleCallbackMiddleware())
    return Bot(
        settings.bot_token.get_secret_value(),
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
    )


def _fsm(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> tuple[BaseStorage, BaseEventIsolation]:
    if settings.redis_url:
        from aiogram.fsm.storage.redis import RedisStorage

        storage = RedisStorage.from_url(settings.redis_url)
        return storage, storage.create_isolation()
    # One process: a per-chat lock in memory keeps one user's updates in order.
    return SQLStorage(sessionmaker), SimpleEventIsolation()


def build_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    content: Content | None = None,
    engine: AsyncEngine | None = None,
) -> App:
    load_features()
    clock = clock or SystemClock()
    if content is None:
        content = load_content(settings.content_dir) if settings.content_dir else load_content()
    engine = engine or make_engine(settings.database_url)
    sessionmaker = make_sessionmaker(engine)
    i18n = make_i18n()
    storage, isolation = _fsm(settings, sessionmaker)
    dp = Dispatcher(storage=storage, events_isolation=isolation, disable_fsm=True)
    # Poll answers take the practice quizzes' lane (handlers/quiz.py: recorded in batches)
    # ahead of the FSM and the per-update session; every other update goes on as before.
    quiz_lane = AnswerLane(sessionmaker, content, clock, i18n)
    dp["quiz_lane"] = quiz_lane
    dp.update.outer_middleware(quiz_lane.middleware)
    dp.update.outer_middleware(dp.fsm)
    dp.shutdown.register(quiz_lane.close)
    dp["sessionmaker"] = sessionmaker
    dp["content"] = content
    dp["clock"] = clock
    dp["settings"] = settings
    # The errors router needs it even when a failure comes before the i18n middleware.
    dp["i18n"] = i18n
    dp.update.outer_middleware(DbSessionMiddleware(sessionmaker, clock))
    dp.update.outer_middleware(StoredLanguageMiddleware(i18n))
    dp.include_routers(*routers())
    bot = make_bot(settings)
    app = App(settings, bot, dp, engine, sessionmaker, i18n, content, clock)
    dp.startup.register(app.on_startup)
    dp.shutdown.register(app.on_shutdown)
    return app
