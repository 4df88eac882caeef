"""The learner's control over notifications and their own schedule:
/settings (mute kinds, quiet hours), /schedule (this week and the next webinar, in local
time), /calendar (the whole schedule as an .ics file); and the my_chat_member updates
that say a person blocked or unblocked the bot."""

from __future__ import annotations

from html import escape

from aiogram import Router
from aiogram.enums import ChatMemberStatus
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    ChatMemberUpdated,
    InlineKeyboardMarkup,
    Message,
)
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.services import consent as consent_service
from bot.services.cohorts import cohort_title
from bot.services.localtime import (
    DEFAULT_QUIET_END,
    DEFAULT_QUIET_START,
    MINUTES_PER_DAY,
    format_moment,
    hhmm,
)
from bot.services.outbox import MUTABLE_KINDS
from bot.services.releases import (
    cohort_webinars,
    cohort_zone,
    current_release,
    learner_schedule,
    module_line,
    practise_keyboard,
    schedule_ics,
    upcoming_webinars,
)
from bot.settings import Settings
from content.loader import Content
from storage.models import Cohort, Learner, LearnerStatus, User, UserSettings
from storage.repo import insert_ignore

router = Router(name="settings")

QUIET_STEP = 60  # minutes per press


class SettingsAction(CallbackData, prefix="st"):
    action: str  # mute | qs | qe | qoff | qdef
    value: str = ""


# --- helpers -----------------------------------------------------------------------------


async def user_settings(session: AsyncSession, user_id: int) -> UserSettings:
    await insert_ignore(
        session,
        UserSettings,
        [
            {
                "user_id": user_id,
                "muted": [],
                "quiet_start": DEFAULT_QUIET_START,
                "quiet_end": DEFAULT_QUIET_END,
            }
        ],
    )
    row = await session.get(UserSettings, user_id)
    assert row is not None
    return row


async def _enrolment(
    session: AsyncSession, user: User
) -> tuple[Learner, Cohort] | tuple[None, None]:
    learner = await session.get(Learner, user.id)
    if learner is None or learner.status is not LearnerStatus.enrolled or not learner.cohort_id:
        return None, None
    cohort = await session.get(Cohort, learner.cohort_id)
    if cohort is None:
        return None, None
    return learner, cohort


async def _local_zone_name(session: AsyncSession, user: User, settings: Settings) -> str:
    _learner, cohort = await _enrolment(session, user)
    return cohort.timezone if cohort is not None else settings.default_timezone


def settings_text(choices: UserSettings, zone_name: str) -> str:
    lines = [
        "<b>" + escape(_("Notifications")) + "</b>",
        escape(_("Press a button to turn a kind of message on or off.")),
        "",
    ]
    if choices.quiet_start == choices.quiet_end:
        lines.append(escape(_("Quiet hours: off.")))
    else:
        lines.append(
            escape(
                _("Quiet hours: {start}–{end} ({zone} time).").format(
                    start=hhmm(choices.quiet_start), end=hhmm(choices.quiet_end), zone=zone_name
                )
            )
        )
        lines.append(escape(_("Messages that can wait are held until your quiet hours end.")))
    return "\n".join(lines)


def settings_keyboard(choices: UserSettings) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    muted = set(choices.muted or [])
    for kind, label in MUTABLE_KINDS.items():
        text = (
            _("🔕 {kind}: off").format(kind=_(label))
            if kind in muted
            else _("🔔 {kind}: on").format(kind=_(label))
        )
        kb.button(text=text, callback_data=SettingsAction(action="mute", value=kind))
    kb.button(
        text=_("Quiet hours start earlier"), callback_data=SettingsAction(action="qs", value="-")
    )
    kb.button(
        text=_("Quiet hours start later"), callback_data=SettingsAction(action="qs", value="+")
    )
    kb.button(
        text=_("Quiet hours end earlier"), callback_data=SettingsAction(action="qe", value="-")
    )
    kb.button(text=_("Quiet hours end later"), callback_data=SettingsAction(action="qe", value="+"))
    if choices.quiet_start == choices.quiet_end:
        kb.button(text=_("Default quiet hours"), callback_data=SettingsAction(action="qdef"))
    else:
        kb.button(text=_("No quiet hours"), callback_data=SettingsAction(action="qoff"))
    kb.adjust(*([1] * len(MUTABLE_KINDS)), 2, 2, 1)
    return kb.as_markup()


def apply_action(choices: UserSettings, action: str, value: str) -> bool:
    """Change the settings as a button says; False for a button that means nothing."""
    if action == "mute":
        if value not in MUTABLE_KINDS:
            return False
        muted = list(choices.muted or [])
        choices.muted = [k for k in muted if k != value] if value in muted else [*muted, value]
    elif action in ("qs", "qe") and value in ("-", "+"):
        step = QUIET_STEP if value == "+" else -QUIET_STEP
        if action == "qs":
            choices.quiet_start = (choices.quiet_start + step) % MINUTES_PER_DAY
        else:
            choices.quiet_end = (choices.quiet_end + step) % MINUTES_PER_DAY
    elif action == "qoff":
        choices.quiet_start = choices.quiet_end = 0
    elif action == "qdef":
        choices.quiet_start, choices.quiet_end = DEFAULT_QUIET_START, DEFAULT_QUIET_END
    else:
        return False
    return True


def _needs_consent_text() -> str:
    return _("Please send /start and accept the privacy notice first.")


# --- /settings ---------------------------------------------------------------------------


@router.message(Command("settings"))
async def settings_command(
    message: Message,
    session: AsyncSession,
    db_user: User,
    content: Content,
    settings: Settings,
) -> None:
    if not consent_service.has_valid_consent(db_user, content):
        await message.answer(_needs_consent_text())
        return
    choices = await user_settings(session, db_user.id)
    zone_name = await _local_zone_name(session, db_user, settings)
    await message.answer(settings_text(choices, zone_name), reply_markup=settings_keyboard(choices))


@router.callback_query(SettingsAction.filter())
async def settings_pressed(
    query: CallbackQuery,
    callback_data: SettingsAction,
    session: AsyncSession,
    db_user: User,
    content: Content,
    settings: Settings,
) -> None:
    if not consent_service.has_valid_consent(db_user, content):
        await query.answer(_needs_consent_text(), show_alert=True)
        return
    choices = await user_settings(session, db_user.id)
    if not apply_action(choices, callback_data.action, callback_data.value):
        await query.answer(_("This button is no longer active."))
        return
    await session.flush()
    await query.answer(_("Saved."))
    if isinstance(query.message, Message):
        zone_name = await _local_zone_name(session, db_user, settings)
        await query.message.edit_text(
            settings_text(choices, zone_name), reply_markup=settings_keyboard(choices)
        )


# --- /schedule and /calendar -------------------------------------------------------------


@router.message(Command("schedule"))
async def schedule_command(
    message: Message,
    session: AsyncSession,
    db_user: User,
    content: Content,
    clock: Clock,
    i18n: I18n,
) -> None:
    learner, cohort = await _enrolment(session, db_user)
    if learner is None or cohort is None:
        await message.answer(_("You are not enrolled yet. Send /start to enrol."))
        return
    now = clock.now()
    lang = i18n.current_locale
    tz = cohort_zone(cohort)
    schedule = learner_schedule(cohort, learner, content)
    current = current_release(schedule, now)
    lines = [
        "<b>" + escape(_("Your schedule")) + "</b> — " + escape(cohort_title(cohort)),
        escape(_("Times are in {zone} time.").format(zone=tz.key)),
        "",
    ]
    shown = current or schedule[0]
    if current is None:
        lines.append(
            "<b>"
            + escape(
                _("The course starts on {when} with week {week}:").format(
                    when=format_moment(shown.at, tz, lang), week=shown.week
                )
            )
            + "</b>"
        )
    else:
        lines.append(
            "<b>"
            + escape(
                _("This week: week {week}, open since {when}").format(
                    week=shown.week, when=format_moment(shown.at, tz, lang)
                )
            )
            + "</b>"
        )
    modules = [n for n in shown.modules if n in content.modules]
    lines += [module_line(content, n, learner.profile, lang) for n in modules]
    later = [r for r in schedule if r.at > now and r is not shown]
    lines.append("")
    if later:
        lines.append(
            escape(
                _("Next: week {week} on {when}.").format(
                    week=later[0].week, when=format_moment(later[0].at, tz, lang)
                )
            )
        )
    elif current is not None:
        lines.append(escape(_("All the weeks of the course are open.")))
    webinars = await upcoming_webinars(session, cohort.id, now, limit=1)
    webinar = webinars[0] if webinars else None
    if webinar is None:
        lines.append(escape(_("No webinar is scheduled yet.")))
    else:
        lines.append(
            escape(
                _("Next webinar: {when}.").format(when=format_moment(webinar.starts_at, tz, lang))
            )
            + " "
            + '<a href="{url}">{label}</a>'.format(
                url=escape(webinar.join_url, quote=True), label=escape(_("Join the webinar"))
            )
        )
    await message.answer(
        "\n".join(lines), reply_markup=practise_keyboard(modules) if current else None
    )


@router.message(Command("calendar"))
async def calendar_command(
    message: Message,
    session: AsyncSession,
    db_user: User,
    content: Content,
    clock: Clock,
    i18n: I18n,
) -> None:
    learner, cohort = await _enrolment(session, db_user)
    if learner is None or cohort is None:
        await message.answer(_("You are not enrolled yet. Send /start to enrol."))
        return
    webinars = await cohort_webinars(session, cohort.id)
    data = schedule_ics(cohort, learner, content, webinars, i18n.current_locale, clock.now())
    await message.answer_document(
        BufferedInputFile(data, filename="biblio-schedule.ics"),
        caption=_(
            "Your BIBLIO schedule: module releases and webinars. Open the file to add "
            "them to your calendar."
        ),
    )


# --- blocked / unblocked -----------------------------------------------------------------


@router.my_chat_member()
async def membership_changed(event: ChatMemberUpdated, db_user: User | None = None) -> None:
    """Telegram tells us when a person blocks the bot (kicked) or starts it again."""
    if event.chat.type != "private" or db_user is None:
        return
    status = event.new_chat_member.status
    if status == ChatMemberStatus.KICKED:
        db_user.is_active = False
    elif status == ChatMemberStatus.MEMBER:
        db_user.is_active = True
