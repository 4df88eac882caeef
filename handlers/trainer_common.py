"""Pieces the trainer conversations share: choosing one of *their* cohorts, stopping a
conversation, and reading dates, times, links and module lists typed in chat.

The rule "a trainer sees only their cohorts" is checked again on every button press and
at every step that uses a cohort id kept in the conversation: a forged or stale button
never reaches another trainer's cohort."""

from __future__ import annotations

import re
from datetime import date, datetime
from zoneinfo import ZoneInfo

from aiogram import Router
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder
from sqlalchemy.ext.asyncio import AsyncSession

from bot.roles import HasRole
from bot.services.cohorts import is_trainer_of, trainer_cohorts
from bot.services.localtime import at_local
from bot.ui import drop_buttons
from content.loader import Content
from storage.models import Cohort, Role

router = Router(name="trainer_common")
MAX_URL = 500
MAX_BUTTONS = 40  # Telegram allows 100 buttons on a message
_URL = re.compile(r"^https?://[^\s/$.?#][^\s]*$", re.IGNORECASE)


class TrainerCancel(CallbackData, prefix="tx"):
    pass


class CohortPick(CallbackData, prefix="tp"):
    """Which cohort a command is for: `purpose` names the command (wb, st, ex, bc)."""

    purpose: str
    cohort_id: int


def stop_button(kb: InlineKeyboardBuilder) -> None:
    kb.button(text=_("✖️ Stop"), callback_data=TrainerCancel())


def stop_markup() -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    stop_button(kb)
    return kb.as_markup()


async def not_active(query: CallbackQuery) -> None:
    await query.answer(_("This button is no longer active."))


async def own_cohort(
    session: AsyncSession, trainer_id: int, cohort_id: int | None
) -> Cohort | None:
    """The cohort, only if this trainer runs it."""
    if cohort_id is None or not await is_trainer_of(session, trainer_id, int(cohort_id)):
        return None
    return await session.get(Cohort, int(cohort_id))


async def ask_cohort(
    message: Message, session: AsyncSession, trainer_id: int, purpose: str, question: str
) -> Cohort | None:
    """The trainer's only cohort, or a question with one button per cohort (then None)."""
    cohorts = await trainer_cohorts(session, trainer_id)
    if not cohorts:
        await message.answer(_("You have no groups yet. Send /cohorts to create one."))
        return None
    if len(cohorts) == 1:
        return cohorts[0]
    kb = InlineKeyboardBuilder()
    for cohort in cohorts[:MAX_BUTTONS]:  # the newest first
        kb.button(text=cohort.name, callback_data=CohortPick(purpose=purpose, cohort_id=cohort.id))
    kb.adjust(1)
    await message.answer(question, reply_markup=kb.as_markup())
    return None


@router.callback_query(TrainerCancel.filter(), HasRole(Role.trainer))
async def stop(query: CallbackQuery, state: FSMContext) -> None:
    await state.clear()
    await query.answer()
    if isinstance(query.message, Message):
        await drop_buttons(query.message)
        await query.message.answer(_("Stopped. Nothing was changed."))


# --- reading typed values ------------------------------------------------------------------


def parse_date(text: str) -> date | None:
    value = text.strip()
    for pattern in ("%Y-%m-%d", "%d.%m.%Y", "%d/%m/%Y"):
        try:
            return datetime.strptime(value, pattern).date()
        except ValueError:
            continue
    return None


def parse_local_datetime(text: str, timezone: str) -> datetime | None:
    """ "2027-01-18 17:00" (or 18.01.2027 17:00) in the cohort's zone, as UTC."""
    parts = text.strip().replace("T", " ").split()
    if len(parts) != 2:
        return None
    day = parse_date(parts[0])
    match = re.fullmatch(r"(\d{1,2})[:.](\d{2})", parts[1])
    if day is None or match is None:
        return None
    hour, minute = int(match.group(1)), int(match.group(2))
    if hour > 23 or minute > 59:
        return None
    return at_local(day, hour * 60 + minute, ZoneInfo(timezone))


def parse_url(text: str) -> str | None:
    value = text.strip()
    if len(value) > MAX_URL or not _URL.match(value):
        return None
    return value


def parse_modules(text: str, content: Content) -> list[int] | None:
    """ "1, 32, 22" -> [1, 32, 22]; None when a number is not a module."""
    numbers = re.findall(r"\d+", text)
    if not numbers or re.search(r"[^\d,;\s]", text.strip()):
        return None
    modules: list[int] = []
    for raw in numbers:
        number = int(raw)
        if number not in content.modules:
            return None
        if number not in modules:
            modules.append(number)
    return modules


def module_list(modules: list[int]) -> str:
    return ", ".join(str(m) for m in modules) if modules else "—"
