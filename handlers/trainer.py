"""Trainer tools in chat: their cohorts (a new one in a short conversation, its invitation
link and QR code, its calendar: a week off, or a calendar file of their own), invitation
links for cohorts and workplace mentors. Webinars, broadcasts and the dashboard live in
handlers/trainer_*.py and are included here.

Every trainer command is declared with `role_command(..., Role.trainer)`, every button
handler with `HasRole(Role.trainer)`, and every cohort id — from a button or kept in the
conversation — is checked with `is_trainer_of` again before it is used."""

from __future__ import annotations

import json
import zlib
from datetime import timedelta
from html import escape
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiogram import Bot, F, Router
from aiogram.filters import Command, StateFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import (
    BotCommand,
    BotCommandScopeChat,
    BufferedInputFile,
    CallbackQuery,
    Message,
)
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder
from babel import Locale
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.commands import LEARNER_COMMANDS
from bot.i18n import LANGUAGES
from bot.roles import HasRole, role_command
from bot.services.cohort_calendar import (
    calendar_of,
    check_calendar_file,
    future_weeks,
    release_at,
    shift_calendar,
    week_dates,
)
from bot.services.cohorts import create_cohort, is_trainer_of, trainer_cohorts
from bot.services.invites import create_invite, deep_link
from bot.services.localtime import format_day, zone
from bot.services.registration import N_
from bot.services.trainer_tools import qr_png
from bot.ui import drop_buttons
from content.loader import Content
from content.schema import Calendar
from handlers import trainer_broadcast, trainer_common, trainer_stats, trainer_webinars
from handlers.common import help_text
from handlers.trainer_common import module_list, not_active, own_cohort, parse_date, stop_markup
from storage.models import Cohort, InviteKind, Learner, LearnerStatus, Role, User

router = Router(name="trainer")
COHORT_LINK_VALIDITY = timedelta(days=60)
MENTOR_LINK_VALIDITY = timedelta(days=14)
MAX_CALENDAR_FILE = 200_000
MAX_LISTED = 20

COUNTRIES = ("LV", "IT", "BG", "GR")
TIMEZONES = ("Europe/Riga", "Europe/Rome", "Europe/Sofia", "Europe/Athens")
ZONE_OF_COUNTRY = dict(zip(COUNTRIES, TIMEZONES, strict=True))

# The trainer's command menu (set for their chat when they open /cohorts).
TRAINER_COMMANDS: tuple[tuple[str, str], ...] = (
    ("cohorts", N_("Your groups: new group, invitation link and QR code, calendar")),
    ("webinars", N_("Webinars: add, change, cancel, recording, import an .ics file")),
    ("broadcast", N_("Send an announcement to your learners")),
    ("stats", N_("A group's figures and chart")),
    ("export", N_("A group's progress as a spreadsheet (CSV)")),
    ("cohort_link", N_("A new invitation link for a group")),
    ("mentor_invite", N_("An invitation link for a workplace mentor")),
)


class CohortLink(CallbackData, prefix="cl"):
    cohort_id: int


class CohortAction(CallbackData, prefix="tca"):
    action: str  # link | cal | shift | file | reset | new
    cohort_id: int


class NewPick(CallbackData, prefix="tcn"):
    field: str  # country | language | tz
    value: str


class ShiftWeek(CallbackData, prefix="tcw"):
    cohort_id: int
    week: int
    sig: int  # the calendar it was offered for: a stale button cannot shift twice
    go: int = 0


class NewCohort(StatesGroup):
    name = State()
    country = State()
    language = State()
    timezone = State()
    start = State()


class CalendarUpload(StatesGroup):
    file = State()


router.include_routers(
    trainer_common.router,
    trainer_webinars.router,
    trainer_broadcast.router,
    trainer_stats.router,
)


# --- /help ---------------------------------------------------------------------------------------


@router.message(Command("help"), HasRole(Role.trainer))
async def trainer_help(message: Message, bot: Bot, i18n: I18n) -> None:
    """A trainer's /help: the learner commands, then the trainer tools (also set as the
    command menu of their chat)."""
    await set_trainer_menu(bot, message.chat.id, i18n)
    lines = [help_text(i18n), "", _("<b>Your tools as a trainer:</b>")]
    lines += [
        f"/{name} — {escape(i18n.gettext(text, locale=i18n.current_locale))}"
        for name, text in TRAINER_COMMANDS
    ]
    await message.answer("\n".join(lines))


# --- invitation links --------------------------------------------------------------------------


@router.message(*role_command("cohort_link", Role.trainer))
async def cohort_link(message: Message, session: AsyncSession, db_user: User) -> None:
    cohorts = await trainer_cohorts(session, db_user.id)
    if not cohorts:
        await message.answer(_("You have no groups yet."))
        return
    kb = InlineKeyboardBuilder()
    for cohort in cohorts:
        kb.button(text=cohort.name, callback_data=CohortLink(cohort_id=cohort.id))
    kb.adjust(1)
    await message.answer(_("A new invitation link for which group?"), reply_markup=kb.as_markup())


@router.callback_query(CohortLink.filter(), HasRole(Role.trainer))
async def cohort_link_chosen(
    query: CallbackQuery,
    callback_data: CohortLink,
    session: AsyncSession,
    db_user: User,
    clock: Clock,
    bot: Bot,
) -> None:
    # Checked on every press: a forged button cannot reach another trainer's group.
    if not await is_trainer_of(session, db_user.id, callback_data.cohort_id):
        await query.answer(_("This button is no longer active."))
        return
    await query.answer()
    cohort = await session.get(Cohort, callback_data.cohort_id)
    assert cohort is not None
    invite = await create_invite(
        session,
        InviteKind.cohort,
        now=clock.now(),
        cohort_id=cohort.id,
        created_by=db_user.id,
        valid_for=COHORT_LINK_VALIDITY,
    )
    me = await bot.me()
    await bot.send_message(
        db_user.id,
        _("Invitation link for {cohort} (valid for 60 days):\n{link}").format(
            cohort=escape(cohort.name), link=deep_link(me.username or "", invite.token)
        ),
    )


@router.message(*role_command("mentor_invite", Role.trainer))
async def mentor_invite(
    message: Message, session: AsyncSession, db_user: User, clock: Clock, bot: Bot
) -> None:
    invite = await create_invite(
        session,
        InviteKind.mentor,
        now=clock.now(),
        created_by=db_user.id,
        valid_for=MENTOR_LINK_VALIDITY,
        max_uses=1,
    )
    me = await bot.me()
    await message.answer(
        _("Send this link to a workplace mentor. It works once, for 14 days:\n{link}").format(
            link=deep_link(me.username or "", invite.token)
        )
    )


async def send_invitation(
    bot: Bot, chat_id: int, cohort: Cohort, session: AsyncSession, trainer_id: int, clock: Clock
) -> None:
    """A fresh invitation link for the cohort, as text and as a QR code image."""
    invite = await create_invite(
        session,
        InviteKind.cohort,
        now=clock.now(),
        cohort_id=cohort.id,
        created_by=trainer_id,
        valid_for=COHORT_LINK_VALIDITY,
    )
    me = await bot.me()
    link = deep_link(me.username or "", invite.token)
    await bot.send_message(
        chat_id,
        _(
            "Invitation link for {cohort} (valid for 60 days). Share it with your learners, "
            "or show the QR code below on a poster or a slide:\n{link}"
        ).format(cohort=escape(cohort.name), link=link),
    )
    await bot.send_photo(
        chat_id,
        BufferedInputFile(qr_png(link), filename=f"invitation-{cohort.id}.png"),
        caption=_("QR code of the invitation link for {cohort}").format(cohort=escape(cohort.name)),
    )


# --- /cohorts ---------------------------------------------------------------------------------


async def set_trainer_menu(bot: Bot, chat_id: int, i18n: I18n) -> None:
    """The trainer's own command menu in their chat: learner commands and trainer tools."""
    locale = i18n.current_locale
    commands = [
        BotCommand(command=c.name, description=c.translated(i18n, locale)) for c in LEARNER_COMMANDS
    ] + [
        BotCommand(command=name, description=i18n.gettext(text, locale=locale))
        for name, text in TRAINER_COMMANDS
    ]
    await bot.set_my_commands(commands, scope=BotCommandScopeChat(chat_id=chat_id))


async def _learner_counts(session: AsyncSession, cohort_ids: list[int]) -> dict[int, int]:
    if not cohort_ids:
        return {}
    rows = await session.execute(
        select(Learner.cohort_id, func.count())
        .where(Learner.cohort_id.in_(cohort_ids), Learner.status == LearnerStatus.enrolled)
        .group_by(Learner.cohort_id)
    )
    return {int(cohort_id): int(count) for cohort_id, count in rows}


def _language_name(code: str) -> str:
    return LANGUAGES.get(code, code)


@router.message(*role_command("cohorts", Role.trainer))
async def cohorts_command(
    message: Message,
    session: AsyncSession,
    db_user: User,
    state: FSMContext,
    bot: Bot,
    i18n: I18n,
) -> None:
    await state.clear()
    await set_trainer_menu(bot, message.chat.id, i18n)
    every = await trainer_cohorts(session, db_user.id)
    cohorts = every[:MAX_LISTED]  # the newest first; a message holds 4096 characters
    counts = await _learner_counts(session, [c.id for c in cohorts])
    kb = InlineKeyboardBuilder()
    if not cohorts:
        lines = [_("You have no groups yet.")]
    else:
        lines = [_("<b>Your groups</b>"), ""]
        locale = i18n.current_locale
        for cohort in cohorts:
            lines.append(
                _(
                    "• <b>{name}</b>: {country}, {language}, {timezone}; MOOC from {start}; "
                    "learners: {count}"
                ).format(
                    name=escape(cohort.name),
                    country=cohort.country,
                    language=_language_name(cohort.language),
                    timezone=cohort.timezone,
                    start=format_day(release_at(cohort, 1), zone(cohort.timezone), locale),
                    count=counts.get(cohort.id, 0),
                )
            )
            kb.button(
                text=_("🔗 {name}").format(name=cohort.name[:40]),
                callback_data=CohortAction(action="link", cohort_id=cohort.id),
            )
            kb.button(
                text=_("📅 {name}").format(name=cohort.name[:40]),
                callback_data=CohortAction(action="cal", cohort_id=cohort.id),
            )
        if len(every) > len(cohorts):
            lines.append(_("…and {count} more.").format(count=len(every) - len(cohorts)))
        lines += ["", _("🔗 invitation link and QR code · 📅 calendar")]
    kb.button(text=_("➕ New group"), callback_data=CohortAction(action="new", cohort_id=0))
    kb.adjust(*([2] * len(cohorts)), 1)
    await message.answer("\n".join(lines), reply_markup=kb.as_markup())


@router.callback_query(CohortAction.filter(F.action == "new"), HasRole(Role.trainer))
async def new_cohort(query: CallbackQuery, state: FSMContext) -> None:
    await query.answer()
    await state.clear()
    await state.set_state(NewCohort.name)
    if isinstance(query.message, Message):
        await query.message.answer(
            _("A new group. What is its name? For example: Rīga 2027 spring"),
            reply_markup=stop_markup(),
        )


@router.callback_query(CohortAction.filter(F.action != "new"), HasRole(Role.trainer))
async def cohort_action(
    query: CallbackQuery,
    callback_data: CohortAction,
    session: AsyncSession,
    db_user: User,
    state: FSMContext,
    clock: Clock,
    bot: Bot,
    content: Content,
    i18n: I18n,
) -> None:
    cohort = await own_cohort(session, db_user.id, callback_data.cohort_id)
    if cohort is None or not isinstance(query.message, Message):
        await not_active(query)
        return
    await query.answer()
    action = callback_data.action
    if action == "link":
        await send_invitation(bot, query.message.chat.id, cohort, session, db_user.id, clock)
    elif action == "cal":
        await show_calendar(query.message, cohort, content, clock, i18n)
    elif action == "shift":
        await offer_shift(query.message, cohort, content, clock, i18n)
    elif action == "file":
        await state.set_state(CalendarUpload.file)
        await state.update_data(cohort_id=cohort.id)
        await query.message.answer(
            _(
                "Send the calendar of {cohort} as a YAML file (a document), in the format of "
                "the recommended calendar:\n<code>name: {example}\nweeks:\n  - week: 1\n"
                "    modules: [1, 32, 22]</code>"
            ).format(cohort=escape(cohort.name), example="lv-2027"),
            reply_markup=stop_markup(),
        )
    elif action == "reset":
        cohort.calendar = None
        await session.flush()
        await query.message.answer(
            _("{cohort} follows the recommended calendar again.").format(cohort=escape(cohort.name))
        )
        await show_calendar(query.message, cohort, content, clock, i18n)


# --- a new cohort -------------------------------------------------------------------------------


def _country_name(code: str, locale: str) -> str:
    try:
        return str(Locale.parse(locale).territories.get(code, code))
    except (ValueError, TypeError):
        return code


def _valid_country(code: str) -> bool:
    return len(code) == 2 and code.isalpha() and code.upper() in Locale("en").territories


async def _ask_country(message: Message, i18n: I18n) -> None:
    kb = InlineKeyboardBuilder()
    for code in COUNTRIES:
        kb.button(
            text=_country_name(code, i18n.current_locale),
            callback_data=NewPick(field="country", value=code),
        )
    kb.adjust(2)
    trainer_common.stop_button(kb)
    await message.answer(
        _("Which country? Choose, or type a two-letter country code (for example LT)."),
        reply_markup=kb.as_markup(),
    )


async def _ask_language(message: Message) -> None:
    kb = InlineKeyboardBuilder()
    for code, name in LANGUAGES.items():
        kb.button(text=name, callback_data=NewPick(field="language", value=code))
    kb.adjust(3)
    trainer_common.stop_button(kb)
    await message.answer(_("The group's language?"), reply_markup=kb.as_markup())


async def _ask_timezone(message: Message, country: str) -> None:
    kb = InlineKeyboardBuilder()
    suggested = ZONE_OF_COUNTRY.get(country)
    for name in sorted(TIMEZONES, key=lambda z: z != suggested):
        kb.button(text=name, callback_data=NewPick(field="tz", value=name))
    kb.adjust(2)
    trainer_common.stop_button(kb)
    await message.answer(
        _(
            "The group's time zone? Choose, or type its name (for example Europe/Vilnius). "
            "Releases and webinar times follow it."
        ),
        reply_markup=kb.as_markup(),
    )


async def _ask_start(message: Message) -> None:
    await message.answer(
        _("When does the group's MOOC start? Send the date, for example 2027-01-11."),
        reply_markup=stop_markup(),
    )


@router.message(StateFilter(NewCohort.name), HasRole(Role.trainer), F.text, ~F.text.startswith("/"))
async def new_cohort_name(message: Message, state: FSMContext, i18n: I18n) -> None:
    name = " ".join((message.text or "").split())
    if not 1 <= len(name) <= 120:
        await message.answer(_("Please send a name of at most 120 characters."))
        return
    await state.update_data(name=name)
    await state.set_state(NewCohort.country)
    await _ask_country(message, i18n)


async def _set_country(message: Message, state: FSMContext, code: str) -> None:
    await state.update_data(country=code.upper())
    await state.set_state(NewCohort.language)
    await _ask_language(message)


async def _set_language(message: Message, state: FSMContext, code: str) -> None:
    await state.update_data(language=code)
    await state.set_state(NewCohort.timezone)
    data = await state.get_data()
    await _ask_timezone(message, str(data.get("country", "")))


async def _set_timezone(message: Message, state: FSMContext, name: str) -> None:
    await state.update_data(timezone=name)
    await state.set_state(NewCohort.start)
    await _ask_start(message)


def _valid_zone(name: str) -> bool:
    if "/" not in name and name != "UTC":
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


@router.callback_query(NewPick.filter(), HasRole(Role.trainer))
async def new_cohort_pick(query: CallbackQuery, callback_data: NewPick, state: FSMContext) -> None:
    expected = {
        "country": NewCohort.country.state,
        "language": NewCohort.language.state,
        "tz": NewCohort.timezone.state,
    }
    if await state.get_state() != expected.get(callback_data.field) or not isinstance(
        query.message, Message
    ):
        await not_active(query)
        return
    value = callback_data.value
    valid = {
        "country": value in COUNTRIES,
        "language": value in LANGUAGES,
        "tz": value in TIMEZONES,
    }
    if not valid[callback_data.field]:
        await not_active(query)
        return
    await query.answer()
    await drop_buttons(query.message)
    if callback_data.field == "country":
        await _set_country(query.message, state, value)
    elif callback_data.field == "language":
        await _set_language(query.message, state, value)
    else:
        await _set_timezone(query.message, state, value)


@router.message(
    StateFilter(NewCohort.country), HasRole(Role.trainer), F.text, ~F.text.startswith("/")
)
async def new_cohort_country(message: Message, state: FSMContext, i18n: I18n) -> None:
    code = (message.text or "").strip().upper()
    if not _valid_country(code):
        await message.answer(_("Please send a two-letter country code, for example LV or GR."))
        return
    await _set_country(message, state, code)


@router.message(
    StateFilter(NewCohort.language), HasRole(Role.trainer), F.text, ~F.text.startswith("/")
)
async def new_cohort_language(message: Message) -> None:
    await message.answer(_("Please choose one of the buttons above."))


@router.message(
    StateFilter(NewCohort.timezone), HasRole(Role.trainer), F.text, ~F.text.startswith("/")
)
async def new_cohort_timezone(message: Message, state: FSMContext) -> None:
    name = (message.text or "").strip()
    if not _valid_zone(name):
        await message.answer(
            _(
                "I don't know the time zone {name}. Please send a name like Europe/Riga, "
                "Europe/Rome, Europe/Sofia or Europe/Athens."
            ).format(name=escape(name[:64]))
        )
        return
    await _set_timezone(message, state, name)


@router.message(
    StateFilter(NewCohort.start), HasRole(Role.trainer), F.text, ~F.text.startswith("/")
)
async def new_cohort_start(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    db_user: User,
    clock: Clock,
    bot: Bot,
) -> None:
    start = parse_date(message.text or "")
    today = clock.now().date()
    if start is None:
        await message.answer(_("Please send the date as YYYY-MM-DD, for example 2027-01-11."))
        return
    if not today - timedelta(days=365) <= start <= today + timedelta(days=3 * 365):
        await message.answer(_("Please send a date within a year ago and three years ahead."))
        return
    data: dict[str, Any] = await state.get_data()
    await state.clear()
    cohort = await create_cohort(
        session,
        name=str(data["name"]),
        country=str(data["country"]),
        language=str(data["language"]),
        timezone=str(data["timezone"]),
        mooc_start=start,
        now=clock.now(),
        trainer_id=db_user.id,
    )
    await message.answer(_("The group {cohort} is created.").format(cohort=escape(cohort.name)))
    await send_invitation(bot, message.chat.id, cohort, session, db_user.id, clock)


# --- the calendar -----------------------------------------------------------------------------


def calendar_signature(calendar: Calendar) -> int:
    raw = json.dumps(calendar.model_dump(mode="json"), sort_keys=True).encode()
    return zlib.crc32(raw) & 0xFFFFFF


async def show_calendar(
    message: Message, cohort: Cohort, content: Content, clock: Clock, i18n: I18n
) -> None:
    calendar = calendar_of(cohort, content)
    now = clock.now()
    tz = zone(cohort.timezone)
    locale = i18n.current_locale
    kind = _("its own calendar") if cohort.calendar else _("the recommended calendar")
    lines = [
        _("<b>Calendar of {cohort}</b> ({kind}):").format(cohort=escape(cohort.name), kind=kind)
    ]
    for week, _day, modules in week_dates(cohort, calendar):
        opens = release_at(cohort, week)
        mark = "✓" if opens <= now else "·"
        lines.append(
            _("{mark} Week {week}, {day}: modules {modules}").format(
                mark=mark,
                week=week,
                day=format_day(opens, tz, locale),
                modules=module_list(modules),
            )
        )
    lines += ["", _("✓ released")]
    kb = InlineKeyboardBuilder()
    if future_weeks(cohort, calendar, now):
        kb.button(
            text=_("⏸ A week off (shift the weeks)"),
            callback_data=CohortAction(action="shift", cohort_id=cohort.id),
        )
    kb.button(
        text=_("📄 Replace with a calendar file"),
        callback_data=CohortAction(action="file", cohort_id=cohort.id),
    )
    if cohort.calendar:
        kb.button(
            text=_("↩️ Back to the recommended calendar"),
            callback_data=CohortAction(action="reset", cohort_id=cohort.id),
        )
    kb.adjust(1)
    await message.answer("\n".join(lines), reply_markup=kb.as_markup())


async def offer_shift(
    message: Message, cohort: Cohort, content: Content, clock: Clock, i18n: I18n
) -> None:
    calendar = calendar_of(cohort, content)
    weeks = future_weeks(cohort, calendar, clock.now())
    if not weeks:
        await message.answer(_("Every week of this calendar is released already."))
        return
    sig = calendar_signature(calendar)
    kb = InlineKeyboardBuilder()
    tz = zone(cohort.timezone)
    for week in weeks:
        kb.button(
            text=_("From week {week} ({day})").format(
                week=week, day=format_day(release_at(cohort, week), tz, i18n.current_locale)
            ),
            callback_data=ShiftWeek(cohort_id=cohort.id, week=week, sig=sig),
        )
    kb.adjust(1)
    trainer_common.stop_button(kb)
    await message.answer(
        _("A week off: from which week should everything move one week later?"),
        reply_markup=kb.as_markup(),
    )


@router.callback_query(ShiftWeek.filter(), HasRole(Role.trainer))
async def shift_week(
    query: CallbackQuery,
    callback_data: ShiftWeek,
    session: AsyncSession,
    db_user: User,
    content: Content,
    clock: Clock,
    i18n: I18n,
) -> None:
    cohort = await own_cohort(session, db_user.id, callback_data.cohort_id)
    if cohort is None or not isinstance(query.message, Message):
        await not_active(query)
        return
    calendar = calendar_of(cohort, content)
    week = callback_data.week
    # A stale button (the calendar changed since, or this very shift was done) does nothing.
    if calendar_signature(calendar) != callback_data.sig or week not in future_weeks(
        cohort, calendar, clock.now()
    ):
        await not_active(query)
        return
    await query.answer()
    await drop_buttons(query.message)
    tz = zone(cohort.timezone)
    if not callback_data.go:
        kb = InlineKeyboardBuilder()
        kb.button(
            text=_("✅ Yes, shift"),
            callback_data=ShiftWeek(cohort_id=cohort.id, week=week, sig=callback_data.sig, go=1),
        )
        trainer_common.stop_button(kb)
        await query.message.answer(
            _(
                "Week {week} and every later week move one week later: week {week} then "
                "opens on {day}. Shift?"
            ).format(
                week=week,
                day=format_day(
                    release_at(cohort, week) + timedelta(weeks=1), tz, i18n.current_locale
                ),
            ),
            reply_markup=kb.as_markup(),
        )
        return
    try:
        shifted = shift_calendar(calendar, week)
    except ValueError:
        await query.message.answer(_("The calendar cannot run past week 52."))
        return
    cohort.calendar = shifted.model_dump(mode="json", exclude_none=True)
    await session.flush()
    await query.message.answer(
        _("Done: from week {week} on, everything is one week later.").format(week=week)
    )
    await show_calendar(query.message, cohort, content, clock, i18n)


@router.message(StateFilter(CalendarUpload.file), HasRole(Role.trainer), F.document)
async def calendar_file(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    db_user: User,
    content: Content,
    clock: Clock,
    bot: Bot,
    i18n: I18n,
) -> None:
    data = await state.get_data()
    cohort = await own_cohort(session, db_user.id, data.get("cohort_id"))
    if cohort is None:
        await state.clear()
        await message.answer(_("This group is not one of yours any more."))
        return
    document = message.document
    assert document is not None
    name = document.file_name or "calendar.yaml"
    if (document.file_size or 0) > MAX_CALENDAR_FILE:
        await message.answer(_("This file is too large for a calendar (at most 200 kB)."))
        return
    downloaded = await bot.download(document.file_id)
    raw = downloaded.read() if downloaded is not None else b""
    calendar, errors, warnings = await check_calendar_file(raw, name, content)
    if calendar is None:
        lines = [_("The calendar was not changed. Please correct the file and send it again:")]
        lines += [f"• {escape(str(p))}" for p in errors[:20]]
        await message.answer("\n".join(lines), reply_markup=stop_markup())
        return
    await state.clear()
    cohort.calendar = calendar.model_dump(mode="json", exclude_none=True)
    await session.flush()
    lines = [
        _("{cohort} now follows the calendar in {file}.").format(
            cohort=escape(cohort.name), file=escape(name)
        )
    ]
    if warnings:
        lines.append(_("Please check:"))
        lines += [f"• {escape(str(p))}" for p in warnings[:20]]
    await message.answer("\n".join(lines))
    await show_calendar(message, cohort, content, clock, i18n)


@router.message(StateFilter(CalendarUpload.file), HasRole(Role.trainer), ~F.text.startswith("/"))
async def calendar_file_expected(message: Message) -> None:
    await message.answer(
        _("Please send the calendar as a file (a document), or press Stop."),
        reply_markup=stop_markup(),
    )
