"""/webinars: a cohort's webinars in chat — add one (local date and time, join link,
modules: by default those released the week before), change it, cancel it (learners who
were reminded are told), add the recording link (the releases planner then tells the
cohort), or import many from an .ics file with a preview before anything is saved."""

from __future__ import annotations

from datetime import datetime
from html import escape

from aiogram import Bot, F, Router
from aiogram.filters import StateFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.roles import HasRole, role_command
from bot.services.cohort_calendar import default_webinar_modules
from bot.services.ics_import import MAX_FILE_BYTES, IcsEvent, IcsProblem, parse_ics
from bot.services.localtime import format_moment, zone
from bot.services.trainer_tools import (
    add_webinar,
    cancel_webinar,
    duplicate_webinar,
    upcoming_webinars,
    webinar_modules_shown,
)
from bot.ui import drop_buttons
from content.loader import Content
from handlers.trainer_common import (
    CohortPick,
    ask_cohort,
    module_list,
    not_active,
    own_cohort,
    parse_local_datetime,
    parse_modules,
    parse_url,
    stop_button,
    stop_markup,
)
from storage.models import Cohort, Role, User, Webinar

router = Router(name="trainer_webinars")
PURPOSE = "wb"
IMPORT_PURPOSE = "wi"
PREVIEW_LINES = 30


class WebinarMenu(CallbackData, prefix="twm"):
    cohort_id: int
    action: str  # list | add | import


class WebinarAction(CallbackData, prefix="twa"):
    webinar_id: int
    action: str  # open | time | link | modules | recording | cancel | cancel_yes


class WebinarDefault(CallbackData, prefix="twd"):
    """Use the default modules (the week before) for the webinar being added/edited."""


class ImportSave(CallbackData, prefix="twi"):
    cohort_id: int


class AddWebinar(StatesGroup):
    when = State()
    link = State()
    modules = State()


class EditWebinar(StatesGroup):
    value = State()


class ImportWebinars(StatesGroup):
    file = State()
    preview = State()


def when_text(moment: datetime, cohort: Cohort, locale: str) -> str:
    return format_moment(moment, zone(cohort.timezone), locale)


async def own_webinar(
    session: AsyncSession, trainer_id: int, webinar_id: int | None
) -> tuple[Webinar, Cohort] | None:
    """The webinar and its cohort, only if the cohort is this trainer's."""
    if webinar_id is None:
        return None
    webinar = await session.get(Webinar, int(webinar_id))
    if webinar is None or webinar.cancelled:
        return None
    cohort = await own_cohort(session, trainer_id, webinar.cohort_id)
    return (webinar, cohort) if cohort is not None else None


# --- the list ------------------------------------------------------------------------------------


async def show_webinars(
    message: Message,
    session: AsyncSession,
    cohort: Cohort,
    content: Content,
    clock: Clock,
    i18n: I18n,
) -> None:
    webinars = await upcoming_webinars(session, cohort.id, clock.now())
    locale = i18n.current_locale
    lines = [
        _("<b>Webinars of {cohort}</b> (times in {timezone}):").format(
            cohort=escape(cohort.name), timezone=cohort.timezone
        )
    ]
    kb = InlineKeyboardBuilder()
    if not webinars:
        lines.append(_("No webinars planned."))
    for webinar in webinars[:40]:
        recording = _(", recording added") if webinar.recording_url else ""
        lines.append(
            _("• {when}: modules {modules}{recording}").format(
                when=escape(when_text(webinar.starts_at, cohort, locale)),
                modules=module_list(webinar_modules_shown(webinar, cohort, content)),
                recording=recording,
            )
        )
        kb.button(
            text=f"✏️ {when_text(webinar.starts_at, cohort, locale)}",
            callback_data=WebinarAction(webinar_id=webinar.id, action="open"),
        )
    kb.button(
        text=_("➕ Add a webinar"), callback_data=WebinarMenu(cohort_id=cohort.id, action="add")
    )
    kb.button(
        text=_("📥 Import an .ics file"),
        callback_data=WebinarMenu(cohort_id=cohort.id, action="import"),
    )
    kb.adjust(1)
    await message.answer("\n".join(lines), reply_markup=kb.as_markup())


@router.message(*role_command("webinars", Role.trainer))
async def webinars_command(
    message: Message,
    session: AsyncSession,
    db_user: User,
    state: FSMContext,
    content: Content,
    clock: Clock,
    i18n: I18n,
) -> None:
    await state.clear()
    cohort = await ask_cohort(message, session, db_user.id, PURPOSE, _("Webinars of which group?"))
    if cohort is not None:
        await show_webinars(message, session, cohort, content, clock, i18n)


@router.callback_query(CohortPick.filter(F.purpose == PURPOSE), HasRole(Role.trainer))
async def webinars_cohort(
    query: CallbackQuery,
    callback_data: CohortPick,
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
    await query.answer()
    await show_webinars(query.message, session, cohort, content, clock, i18n)


@router.callback_query(WebinarMenu.filter(), HasRole(Role.trainer))
async def webinar_menu(
    query: CallbackQuery,
    callback_data: WebinarMenu,
    session: AsyncSession,
    db_user: User,
    state: FSMContext,
) -> None:
    cohort = await own_cohort(session, db_user.id, callback_data.cohort_id)
    if cohort is None or not isinstance(query.message, Message):
        await not_active(query)
        return
    await query.answer()
    await state.clear()
    await state.update_data(cohort_id=cohort.id)
    if callback_data.action == "import":
        await state.set_state(ImportWebinars.file)
        await query.message.answer(
            _(
                "Send the .ics file (as exported by Moodle or any calendar app) as a document. "
                "Each event becomes a webinar of {cohort}; times without a time zone are read "
                "in {timezone}. You will see them all before anything is saved."
            ).format(cohort=escape(cohort.name), timezone=cohort.timezone),
            reply_markup=stop_markup(),
        )
        return
    await state.set_state(AddWebinar.when)
    await query.message.answer(
        _(
            "A new webinar of {cohort}. When is it? Send the date and the local time "
            "({timezone}), for example 2027-01-18 17:00."
        ).format(cohort=escape(cohort.name), timezone=cohort.timezone),
        reply_markup=stop_markup(),
    )


# --- adding one ------------------------------------------------------------------------------


async def _state_cohort(
    state: FSMContext, session: AsyncSession, trainer_id: int, message: Message
) -> Cohort | None:
    data = await state.get_data()
    cohort = await own_cohort(session, trainer_id, data.get("cohort_id"))
    if cohort is None:
        await state.clear()
        await message.answer(_("This group is not one of yours any more."))
    return cohort


async def _read_when(message: Message, cohort: Cohort, clock: Clock) -> datetime | None:
    moment = parse_local_datetime(message.text or "", cohort.timezone)
    if moment is None:
        await message.answer(
            _("Please send the date and time like 2027-01-18 17:00."), reply_markup=stop_markup()
        )
        return None
    if moment <= clock.now():
        await message.answer(
            _("That moment has passed. Please send a future date and time."),
            reply_markup=stop_markup(),
        )
        return None
    return moment


@router.message(
    StateFilter(AddWebinar.when), HasRole(Role.trainer), F.text, ~F.text.startswith("/")
)
async def add_when(
    message: Message, state: FSMContext, session: AsyncSession, db_user: User, clock: Clock
) -> None:
    cohort = await _state_cohort(state, session, db_user.id, message)
    if cohort is None:
        return
    moment = await _read_when(message, cohort, clock)
    if moment is None:
        return
    await state.update_data(starts_at=moment.isoformat())
    await state.set_state(AddWebinar.link)
    await message.answer(
        _("The join link (the meeting address, https://...)?"), reply_markup=stop_markup()
    )


@router.message(
    StateFilter(AddWebinar.link), HasRole(Role.trainer), F.text, ~F.text.startswith("/")
)
async def add_link(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    db_user: User,
    content: Content,
) -> None:
    cohort = await _state_cohort(state, session, db_user.id, message)
    if cohort is None:
        return
    url = parse_url(message.text or "")
    if url is None:
        await message.answer(
            _("Please send a web address starting with https://"), reply_markup=stop_markup()
        )
        return
    await state.update_data(join_url=url)
    await state.set_state(AddWebinar.modules)
    data = await state.get_data()
    starts_at = datetime.fromisoformat(str(data["starts_at"]))
    default = default_webinar_modules(cohort, content, starts_at)
    kb = InlineKeyboardBuilder()
    if default:
        kb.button(
            text=_("✅ Modules {modules}").format(modules=module_list(default)),
            callback_data=WebinarDefault(),
        )
    stop_button(kb)
    kb.adjust(1)
    await message.answer(
        _(
            "Which modules does it cover? By default those released the week before: {modules}. "
            "Press the button, or type the module numbers, for example 1, 32, 22."
        ).format(modules=module_list(default)),
        reply_markup=kb.as_markup(),
    )


async def _save_new(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    db_user: User,
    content: Content,
    clock: Clock,
    i18n: I18n,
    modules: list[int] | None,
) -> None:
    cohort = await _state_cohort(state, session, db_user.id, message)
    if cohort is None:
        return
    data = await state.get_data()
    starts_at = datetime.fromisoformat(str(data["starts_at"]))
    await state.clear()
    webinar = await add_webinar(
        session,
        cohort,
        content,
        starts_at=starts_at,
        join_url=str(data["join_url"]),
        now=clock.now(),
        modules=modules,
    )
    await message.answer(
        _(
            "Saved: webinar on {when}, modules {modules}. Learners get reminders a day and an hour before."
        ).format(
            when=escape(when_text(webinar.starts_at, cohort, i18n.current_locale)),
            modules=module_list(webinar_modules_shown(webinar, cohort, content)),
        )
    )
    await show_webinars(message, session, cohort, content, clock, i18n)


@router.message(
    StateFilter(AddWebinar.modules), HasRole(Role.trainer), F.text, ~F.text.startswith("/")
)
async def add_modules(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    db_user: User,
    content: Content,
    clock: Clock,
    i18n: I18n,
) -> None:
    modules = parse_modules(message.text or "", content)
    if modules is None:
        await message.answer(
            _("Please type module numbers (1-38) separated by commas, for example 1, 32, 22."),
            reply_markup=stop_markup(),
        )
        return
    await _save_new(message, state, session, db_user, content, clock, i18n, modules)


@router.callback_query(WebinarDefault.filter(), HasRole(Role.trainer))
async def default_modules(
    query: CallbackQuery,
    state: FSMContext,
    session: AsyncSession,
    db_user: User,
    content: Content,
    clock: Clock,
    i18n: I18n,
) -> None:
    current = await state.get_state()
    if not isinstance(query.message, Message) or current not in (
        AddWebinar.modules.state,
        EditWebinar.value.state,
    ):
        await not_active(query)
        return
    await query.answer()
    await drop_buttons(query.message)
    if current == AddWebinar.modules.state:
        await _save_new(query.message, state, session, db_user, content, clock, i18n, None)
        return
    data = await state.get_data()
    found = await own_webinar(session, db_user.id, data.get("webinar_id"))
    await state.clear()
    if found is None or data.get("field") != "modules":
        await query.message.answer(_("This webinar can no longer be changed."))
        return
    webinar, cohort = found
    webinar.modules = []
    await session.flush()
    await _show_webinar(query.message, webinar, cohort, content, i18n)


# --- one webinar -------------------------------------------------------------------------------


async def _show_webinar(
    message: Message, webinar: Webinar, cohort: Cohort, content: Content, i18n: I18n
) -> None:
    locale = i18n.current_locale
    lines = [
        _("<b>Webinar of {cohort}</b>").format(cohort=escape(cohort.name)),
        _("When: {when} ({timezone})").format(
            when=escape(when_text(webinar.starts_at, cohort, locale)), timezone=cohort.timezone
        ),
        _("Join link: {url}").format(url=escape(webinar.join_url)),
        _("Modules: {modules}").format(
            modules=module_list(webinar_modules_shown(webinar, cohort, content))
        ),
        _("Recording: {url}").format(url=escape(webinar.recording_url or "—")),
    ]
    kb = InlineKeyboardBuilder()
    for action, label in (
        ("time", _("🕒 Change the time")),
        ("link", _("🔗 Change the join link")),
        ("modules", _("📚 Change the modules")),
        ("recording", _("🎬 Add the recording link")),
        ("cancel", _("✖️ Cancel the webinar")),
    ):
        kb.button(text=label, callback_data=WebinarAction(webinar_id=webinar.id, action=action))
    kb.adjust(1)
    await message.answer("\n".join(lines), reply_markup=kb.as_markup())


@router.callback_query(WebinarAction.filter(), HasRole(Role.trainer))
async def webinar_action(
    query: CallbackQuery,
    callback_data: WebinarAction,
    session: AsyncSession,
    db_user: User,
    state: FSMContext,
    content: Content,
    clock: Clock,
    i18n: I18n,
) -> None:
    found = await own_webinar(session, db_user.id, callback_data.webinar_id)
    if found is None or not isinstance(query.message, Message):
        await not_active(query)
        return
    webinar, cohort = found
    await query.answer()
    action = callback_data.action
    locale = i18n.current_locale
    if action == "open":
        await state.clear()
        await _show_webinar(query.message, webinar, cohort, content, i18n)
        return
    if action == "cancel":
        kb = InlineKeyboardBuilder()
        kb.button(
            text=_("✖️ Yes, cancel it"),
            callback_data=WebinarAction(webinar_id=webinar.id, action="cancel_yes"),
        )
        stop_button(kb)
        kb.adjust(1)
        await query.message.answer(
            _(
                "Cancel the webinar on {when}? Learners who were reminded of it will be told."
            ).format(when=escape(when_text(webinar.starts_at, cohort, locale))),
            reply_markup=kb.as_markup(),
        )
        return
    if action == "cancel_yes":
        await drop_buttons(query.message)
        told = await cancel_webinar(session, webinar, clock.now())
        await state.clear()
        await query.message.answer(
            _(
                "The webinar on {when} is cancelled. Learners told (they had been reminded): {count}."
            ).format(when=escape(when_text(webinar.starts_at, cohort, locale)), count=told)
        )
        return
    prompts = {
        "time": _("The new date and local time ({timezone}), for example 2027-01-18 17:00?").format(
            timezone=cohort.timezone
        ),
        "link": _("The new join link (https://...)?"),
        "modules": _(
            "The modules it covers? Type their numbers, for example 1, 32, 22, or press the "
            "button for those released the week before: {modules}."
        ).format(modules=module_list(default_webinar_modules(cohort, content, webinar.starts_at))),
        "recording": _(
            "The recording link (https://...)? Learners of {cohort} will be told it is available."
        ).format(cohort=escape(cohort.name)),
    }
    if action not in prompts:
        return
    await state.clear()
    await state.set_state(EditWebinar.value)
    await state.update_data(webinar_id=webinar.id, field=action)
    kb = InlineKeyboardBuilder()
    if action == "modules":
        kb.button(text=_("✅ The week before"), callback_data=WebinarDefault())
    stop_button(kb)
    kb.adjust(1)
    await query.message.answer(prompts[action], reply_markup=kb.as_markup())


@router.message(
    StateFilter(EditWebinar.value), HasRole(Role.trainer), F.text, ~F.text.startswith("/")
)
async def edit_value(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    db_user: User,
    content: Content,
    clock: Clock,
    i18n: I18n,
) -> None:
    data = await state.get_data()
    found = await own_webinar(session, db_user.id, data.get("webinar_id"))
    if found is None:
        await state.clear()
        await message.answer(_("This webinar can no longer be changed."))
        return
    webinar, cohort = found
    field = data.get("field")
    text = message.text or ""
    if field == "time":
        moment = await _read_when(message, cohort, clock)
        if moment is None:
            return
        webinar.starts_at = moment
    elif field in ("link", "recording"):
        url = parse_url(text)
        if url is None:
            await message.answer(
                _("Please send a web address starting with https://"), reply_markup=stop_markup()
            )
            return
        if field == "link":
            webinar.join_url = url
        else:
            webinar.recording_url = url
    elif field == "modules":
        modules = parse_modules(text, content)
        if modules is None:
            await message.answer(
                _("Please type module numbers (1-38) separated by commas, for example 1, 32, 22."),
                reply_markup=stop_markup(),
            )
            return
        webinar.modules = modules
    else:
        await state.clear()
        return
    await state.clear()
    await session.flush()
    await message.answer(_("Saved."))
    await _show_webinar(message, webinar, cohort, content, i18n)


# --- importing an .ics file -----------------------------------------------------------------


def _problem_line(problem: IcsProblem, file_name: str) -> str:
    reason = _(problem.reason).format(**problem.args)
    where = problem.event or file_name
    return f"• <b>{escape(where)}</b>: {escape(reason)}"


@router.message(StateFilter(ImportWebinars.file), HasRole(Role.trainer), F.document)
async def import_file(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    db_user: User,
    content: Content,
    clock: Clock,
    bot: Bot,
    i18n: I18n,
) -> None:
    cohort = await _state_cohort(state, session, db_user.id, message)
    if cohort is None:
        return
    document = message.document
    assert document is not None
    await import_document(
        message,
        state,
        session,
        cohort,
        content,
        clock,
        bot,
        i18n,
        file_id=document.file_id,
        name=document.file_name or "calendar.ics",
        size=document.file_size or 0,
    )


@router.message(
    StateFilter(None),
    HasRole(Role.trainer),
    F.document.file_name.lower().endswith(".ics"),
)
async def ics_without_command(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    db_user: User,
    content: Content,
    clock: Clock,
    bot: Bot,
    i18n: I18n,
) -> None:
    """An .ics file sent without /webinars: imported for the trainer's group (asked which
    one when they have several)."""
    document = message.document
    assert document is not None
    await state.update_data(
        ics_file_id=document.file_id,
        ics_name=document.file_name or "calendar.ics",
        ics_size=document.file_size or 0,
    )
    cohort = await ask_cohort(
        message, session, db_user.id, IMPORT_PURPOSE, _("Webinars for which group?")
    )
    if cohort is not None:
        await _import_kept_file(message, state, session, cohort, content, clock, bot, i18n)


@router.callback_query(CohortPick.filter(F.purpose == IMPORT_PURPOSE), HasRole(Role.trainer))
async def ics_cohort_chosen(
    query: CallbackQuery,
    callback_data: CohortPick,
    state: FSMContext,
    session: AsyncSession,
    db_user: User,
    content: Content,
    clock: Clock,
    bot: Bot,
    i18n: I18n,
) -> None:
    cohort = await own_cohort(session, db_user.id, callback_data.cohort_id)
    data = await state.get_data()
    if cohort is None or not data.get("ics_file_id") or not isinstance(query.message, Message):
        await not_active(query)
        return
    await query.answer()
    await drop_buttons(query.message)
    await _import_kept_file(query.message, state, session, cohort, content, clock, bot, i18n)


async def _import_kept_file(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    cohort: Cohort,
    content: Content,
    clock: Clock,
    bot: Bot,
    i18n: I18n,
) -> None:
    data = await state.get_data()
    await state.clear()
    await state.set_state(ImportWebinars.file)
    await state.update_data(cohort_id=cohort.id)
    await import_document(
        message,
        state,
        session,
        cohort,
        content,
        clock,
        bot,
        i18n,
        file_id=str(data["ics_file_id"]),
        name=str(data.get("ics_name") or "calendar.ics"),
        size=int(data.get("ics_size") or 0),
    )


async def import_document(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    cohort: Cohort,
    content: Content,
    clock: Clock,
    bot: Bot,
    i18n: I18n,
    *,
    file_id: str,
    name: str,
    size: int,
) -> None:
    """Read an .ics file and show what it would add; nothing is saved before the button."""
    if size > MAX_FILE_BYTES:
        await message.answer(
            _("{file} is too large for a webinar calendar (at most 1 MB).").format(
                file=escape(name)
            ),
            reply_markup=stop_markup(),
        )
        return
    downloaded = await bot.download(file_id)
    data = downloaded.read() if downloaded is not None else b""
    result = parse_ics(data, cohort.timezone, clock.now())
    locale = i18n.current_locale
    if result.file_error or not result.events:
        lines = [_("I could not take any webinar from {file}:").format(file=escape(name))]
        lines += [_problem_line(p, name) for p in result.errors[:20]]
        lines.append(_("Please correct the file and send it again, or press Stop."))
        await message.answer("\n".join(lines), reply_markup=stop_markup())
        return
    lines = [
        _("Webinars found in {file} for {cohort}: <b>{count}</b> (times in {timezone}):").format(
            count=len(result.events),
            file=escape(name),
            cohort=escape(cohort.name),
            timezone=cohort.timezone,
        )
    ]
    for event in result.events[:PREVIEW_LINES]:
        modules = default_webinar_modules(cohort, content, event.starts_at)
        duplicate = await duplicate_webinar(session, cohort.id, event.starts_at)
        lines.append(
            _("• {when}: {title}, modules {modules}{duplicate}").format(
                when=escape(when_text(event.starts_at, cohort, locale)),
                title=escape(event.title),
                modules=module_list(modules),
                duplicate=_(" (already planned: skipped)") if duplicate else "",
            )
        )
    if len(result.events) > PREVIEW_LINES:
        lines.append(_("…and {count} more.").format(count=len(result.events) - PREVIEW_LINES))
    if result.errors:
        lines += ["", _("<b>Not imported:</b>")]
        lines += [_problem_line(p, name) for p in result.errors[:20]]
    if result.notes:
        lines += ["", _("<b>Notes:</b>")]
        lines += [_problem_line(p, name) for p in result.notes[:20]]
    await state.update_data(events=[e.to_json() for e in result.events])
    await state.set_state(ImportWebinars.preview)
    kb = InlineKeyboardBuilder()
    kb.button(
        text=_("✅ Save them ({count})").format(count=len(result.events)),
        callback_data=ImportSave(cohort_id=cohort.id),
    )
    stop_button(kb)
    kb.adjust(1)
    await message.answer("\n".join(lines)[:4000], reply_markup=kb.as_markup())


@router.message(StateFilter(ImportWebinars.file), HasRole(Role.trainer), ~F.text.startswith("/"))
async def import_expected(message: Message) -> None:
    await message.answer(
        _("Please send the .ics file as a document, or press Stop."), reply_markup=stop_markup()
    )


@router.callback_query(ImportSave.filter(), HasRole(Role.trainer))
async def import_save(
    query: CallbackQuery,
    callback_data: ImportSave,
    state: FSMContext,
    session: AsyncSession,
    db_user: User,
    content: Content,
    clock: Clock,
) -> None:
    data = await state.get_data()
    cohort = await own_cohort(session, db_user.id, callback_data.cohort_id)
    if (
        cohort is None
        or await state.get_state() != ImportWebinars.preview.state
        or data.get("cohort_id") != cohort.id
        or not isinstance(query.message, Message)
    ):
        await not_active(query)
        return
    await query.answer()
    await drop_buttons(query.message)
    await state.clear()  # a second press finds no preview: saved once
    saved = skipped = 0
    for raw in data.get("events", []):
        event = IcsEvent.from_json(raw)
        if await duplicate_webinar(session, cohort.id, event.starts_at):
            skipped += 1
            continue
        await add_webinar(
            session,
            cohort,
            content,
            starts_at=event.starts_at,
            join_url=event.join_url,
            now=clock.now(),
            duration_min=event.duration_min,
        )
        saved += 1
    await query.message.answer(
        _("Webinars saved for {cohort}: {count}.").format(count=saved, cohort=escape(cohort.name))
        + (
            " " + _("Already planned, so skipped: {count}.").format(count=skipped)
            if skipped
            else ""
        )
    )
