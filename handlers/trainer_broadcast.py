"""/broadcast: the message (a text, or a photo or document with a caption), the audience
(the trainer's cohorts, profile, language, stage, "not active for 7 days"), optional
variants per language, the recipient count and a preview exactly as learners will see
it; sent only after the confirm button, through the outbox; then a delivery report."""

from __future__ import annotations

from html import escape
from typing import Any

from aiogram import Bot, F, Router
from aiogram.filters import StateFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import BufferedInputFile, CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.i18n import LANGUAGES
from bot.roles import HasRole, role_command
from bot.services.broadcasts import (
    CAPTION_LIMIT,
    MEDIA_LIMIT,
    PROFILES,
    STAGES,
    TEXT_LIMIT,
    Audience,
    ConfirmRefused,
    confirm,
    delivery_report,
    outgoing,
    owned_broadcast,
    recipients,
    report_text,
)
from bot.services.cohorts import is_trainer_of, trainer_cohorts
from bot.ui import drop_buttons
from content.loader import Content
from handlers.trainer_common import MAX_BUTTONS, not_active, stop_button, stop_markup
from storage.models import Broadcast, Role, User

router = Router(name="trainer_broadcast")
HEADER_MARGIN = 60  # the header learners see above the text, in the longest language


class BroadcastFlow(StatesGroup):
    message = State()
    audience = State()
    variant = State()


class Aud(CallbackData, prefix="tba"):
    """A press on the audience panel: f = c (cohort v), p, l, s (cycle), i (toggle),
    var (add a variant), vl (variant language v), back, go (preview)."""

    f: str
    v: str = ""


class BcSend(CallbackData, prefix="tbs"):
    broadcast_id: int


class BcDrop(CallbackData, prefix="tbx"):
    broadcast_id: int


class BcReport(CallbackData, prefix="tbr"):
    broadcast_id: int


def stage_name(stage: str | None) -> str:
    names = {
        None: _("all"),
        "mooc": _("MOOC"),
        "blended": _("blended course"),
        "wbl": _("work-based learning (WBL)"),
    }
    return names.get(stage, stage or "")


def _cycle(value: str | None, options: tuple[str, ...]) -> str | None:
    order: list[str | None] = [None, *options]
    return order[(order.index(value) + 1) % len(order)] if value in order else None


async def _panel(
    state: FSMContext, session: AsyncSession, trainer: User, content: Content, clock: Clock
) -> tuple[str, InlineKeyboardMarkup]:
    data = await state.get_data()
    audience = Audience.from_json(data.get("audience"))
    variants: dict[str, str] = dict(data.get("variants") or {})
    cohorts = (await trainer_cohorts(session, trainer.id))[:MAX_BUTTONS]
    chosen = [c for c in cohorts if c.id in audience.cohorts]
    found = await recipients(session, trainer.id, audience, content, clock.now())
    lines = [
        _("<b>Who should get it?</b>"),
        _("Groups: {names}").format(names=escape(", ".join(c.name for c in chosen)) or "—"),
        _("Profile: {value}").format(value=audience.profile or _("all")),
        _("Language: {value}").format(value=LANGUAGES.get(audience.language or "", "") or _("all")),
        _("Stage: {value}").format(value=stage_name(audience.stage)),
        _("Only learners not active for 7 days: {value}").format(
            value=_("yes") if audience.inactive else _("no")
        ),
        _("Language variants: {value}").format(
            value=", ".join(LANGUAGES[code] for code in variants if code in LANGUAGES) or "—"
        ),
        "",
        _("Recipients now: {count}").format(count=len(found)),
    ]
    kb = InlineKeyboardBuilder()
    sizes: list[int] = []
    for cohort in cohorts:
        mark = "✅" if cohort.id in audience.cohorts else "⬜"
        kb.button(text=f"{mark} {cohort.name[:40]}", callback_data=Aud(f="c", v=str(cohort.id)))
        sizes.append(1)
    kb.button(
        text=_("Profile: {value}").format(value=audience.profile or _("all")),
        callback_data=Aud(f="p"),
    )
    kb.button(
        text=_("Language: {value}").format(value=audience.language or _("all")),
        callback_data=Aud(f="l"),
    )
    kb.button(
        text=_("Stage: {value}").format(value=stage_name(audience.stage)),
        callback_data=Aud(f="s"),
    )
    kb.button(
        text=(
            _("✅ Not active for 7 days") if audience.inactive else _("⬜ Not active for 7 days")
        ),
        callback_data=Aud(f="i"),
    )
    kb.button(text=_("🌐 Add a language variant"), callback_data=Aud(f="var"))
    kb.button(text=_("👀 Preview and count"), callback_data=Aud(f="go"))
    stop_button(kb)
    kb.adjust(*sizes, 2, 2, 1, 1, 1)
    return "\n".join(lines), kb.as_markup()


async def _send_panel(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    trainer: User,
    content: Content,
    clock: Clock,
) -> None:
    text, markup = await _panel(state, session, trainer, content, clock)
    await message.answer(text, reply_markup=markup)


@router.message(*role_command("broadcast", Role.trainer))
async def broadcast_command(
    message: Message, state: FSMContext, session: AsyncSession, db_user: User
) -> None:
    await state.clear()
    cohorts = await trainer_cohorts(session, db_user.id)
    if not cohorts:
        await message.answer(_("You have no groups yet. Send /cohorts to create one."))
        return
    await state.set_state(BroadcastFlow.message)
    await state.update_data(audience=Audience(cohorts=[c.id for c in cohorts]).to_json())
    await message.answer(
        _(
            "Send the announcement: a text, or a photo or a document with a caption. "
            "Formatting (bold, italics, links) is kept. Then you choose who gets it."
        ),
        reply_markup=stop_markup(),
    )


def _plain_length(message: Message) -> int:
    return len(message.text or message.caption or "")


@router.message(StateFilter(BroadcastFlow.message), HasRole(Role.trainer), ~F.text.startswith("/"))
async def broadcast_message(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    db_user: User,
    content: Content,
    clock: Clock,
    bot: Bot,
) -> None:
    values: dict[str, Any] = {"media_kind": None, "media_file_id": None, "media_name": None}
    if message.photo:
        photo = message.photo[-1]
        values.update(media_kind="photo", media_file_id=photo.file_id, media_name="photo.jpg")
        size, limit = photo.file_size or 0, CAPTION_LIMIT
    elif message.document:
        document = message.document
        values.update(
            media_kind="document",
            media_file_id=document.file_id,
            media_name=document.file_name or "document",
        )
        size, limit = document.file_size or 0, CAPTION_LIMIT
    elif message.text:
        size, limit = 0, TEXT_LIMIT
    else:
        await message.answer(
            _("Please send a text, or a photo or a document with a caption."),
            reply_markup=stop_markup(),
        )
        return
    if size > MEDIA_LIMIT:
        await message.answer(
            _("This file is too large for an announcement (at most 10 MB)."),
            reply_markup=stop_markup(),
        )
        return
    if _plain_length(message) + HEADER_MARGIN > limit:
        await message.answer(
            _("This text is too long: at most {limit} characters, please.").format(
                limit=limit - HEADER_MARGIN
            ),
            reply_markup=stop_markup(),
        )
        return
    values["text"] = message.html_text if (message.text or message.caption) else ""
    await state.update_data(**values, variants={})
    await state.set_state(BroadcastFlow.audience)
    await _send_panel(message, state, session, db_user, content, clock)


@router.callback_query(Aud.filter(), HasRole(Role.trainer))
async def audience_press(
    query: CallbackQuery,
    callback_data: Aud,
    state: FSMContext,
    session: AsyncSession,
    db_user: User,
    content: Content,
    clock: Clock,
    bot: Bot,
    i18n: I18n,
) -> None:
    if await state.get_state() != BroadcastFlow.audience.state or not isinstance(
        query.message, Message
    ):
        await not_active(query)
        return
    data = await state.get_data()
    audience = Audience.from_json(data.get("audience"))
    field = callback_data.f
    if field == "c":
        cohort_id = int(callback_data.v) if callback_data.v.isdigit() else -1
        # Checked on every press: a forged button cannot add another trainer's cohort.
        if not await is_trainer_of(session, db_user.id, cohort_id):
            await not_active(query)
            return
        if cohort_id in audience.cohorts:
            audience.cohorts.remove(cohort_id)
        else:
            audience.cohorts.append(cohort_id)
    elif field == "p":
        audience.profile = _cycle(audience.profile, PROFILES)
    elif field == "l":
        audience.language = _cycle(audience.language, tuple(LANGUAGES))
    elif field == "s":
        audience.stage = _cycle(audience.stage, STAGES)
    elif field == "i":
        audience.inactive = not audience.inactive
    elif field == "var":
        await query.answer()
        kb = InlineKeyboardBuilder()
        for code, name in LANGUAGES.items():
            kb.button(text=name, callback_data=Aud(f="vl", v=code))
        kb.button(text=_("↩️ Back"), callback_data=Aud(f="back"))
        kb.adjust(3)
        await query.message.edit_text(
            _(
                "Learners whose language has a variant get it; everyone else gets the "
                "message you sent first. A variant for which language?"
            ),
            reply_markup=kb.as_markup(),
        )
        return
    elif field == "vl":
        if callback_data.v not in LANGUAGES:
            await not_active(query)
            return
        await query.answer()
        await drop_buttons(query.message)
        await state.update_data(variant_lang=callback_data.v)
        await state.set_state(BroadcastFlow.variant)
        media = data.get("media_kind")
        await query.message.answer(
            (
                _("Send the caption in {language}.") if media else _("Send the text in {language}.")
            ).format(language=LANGUAGES[callback_data.v]),
            reply_markup=stop_markup(),
        )
        return
    elif field == "go":
        await _preview(query, state, session, db_user, content, clock, bot, i18n)
        return
    elif field != "back":
        await not_active(query)
        return
    await query.answer()
    await state.update_data(audience=audience.to_json())
    text, markup = await _panel(state, session, db_user, content, clock)
    await query.message.edit_text(text, reply_markup=markup)


@router.message(
    StateFilter(BroadcastFlow.variant), HasRole(Role.trainer), F.text, ~F.text.startswith("/")
)
async def variant_text(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    db_user: User,
    content: Content,
    clock: Clock,
) -> None:
    data = await state.get_data()
    language = str(data.get("variant_lang", ""))
    limit = CAPTION_LIMIT if data.get("media_kind") else TEXT_LIMIT
    if language not in LANGUAGES:
        await state.set_state(BroadcastFlow.audience)
        await _send_panel(message, state, session, db_user, content, clock)
        return
    if _plain_length(message) + HEADER_MARGIN > limit:
        await message.answer(
            _("This text is too long: at most {limit} characters, please.").format(
                limit=limit - HEADER_MARGIN
            ),
            reply_markup=stop_markup(),
        )
        return
    variants = dict(data.get("variants") or {})
    variants[language] = message.html_text
    await state.update_data(variants=variants)
    await state.set_state(BroadcastFlow.audience)
    await _send_panel(message, state, session, db_user, content, clock)


# --- preview and confirmation --------------------------------------------------------------


async def send_preview(
    bot: Bot, chat_id: int, broadcast: Broadcast, language: str, i18n: I18n
) -> None:
    """The message exactly as a learner in `language` gets it from the outbox."""
    with i18n.use_locale(language):
        out = outgoing(broadcast, language)
    if out.photo is not None:
        await bot.send_photo(
            chat_id, BufferedInputFile(out.photo, filename="image.png"), caption=out.text
        )
    elif out.document is not None:
        name, raw = out.document
        await bot.send_document(chat_id, BufferedInputFile(raw, filename=name), caption=out.text)
    else:
        await bot.send_message(chat_id, out.text)


async def _preview(
    query: CallbackQuery,
    state: FSMContext,
    session: AsyncSession,
    trainer: User,
    content: Content,
    clock: Clock,
    bot: Bot,
    i18n: I18n,
) -> None:
    assert isinstance(query.message, Message)
    data = await state.get_data()
    audience = Audience.from_json(data.get("audience"))
    now = clock.now()
    found = await recipients(session, trainer.id, audience, content, now)
    if not found:
        await query.answer(_("No learner matches this audience."), show_alert=True)
        return
    await query.answer()
    await drop_buttons(query.message)
    media_data: bytes | None = None
    if data.get("media_file_id"):
        downloaded = await bot.download(str(data["media_file_id"]))
        media_data = downloaded.read() if downloaded is not None else None
    broadcast = Broadcast(
        trainer_id=trainer.id,
        audience=audience.to_json(),
        text=str(data.get("text") or ""),
        variants=dict(data.get("variants") or {}),
        media_kind=data.get("media_kind"),
        media_file_id=data.get("media_file_id"),
        media_name=data.get("media_name"),
        media_data=media_data,
        status="draft",
        recipients=len(found),
        created_at=now,
    )
    session.add(broadcast)
    await session.flush()
    await state.clear()
    chat_id = query.message.chat.id
    variants = [code for code in LANGUAGES if code in broadcast.variants]
    default_languages = sorted({r.language for r in found} - set(variants))
    await bot.send_message(
        chat_id,
        _("Preview, exactly as learners will see it. The default message:"),
    )
    await send_preview(bot, chat_id, broadcast, i18n.current_locale, i18n)
    for code in variants:
        await bot.send_message(
            chat_id, _("Learners in {language} get:").format(language=LANGUAGES[code])
        )
        await send_preview(bot, chat_id, broadcast, code, i18n)
    blocked = sum(1 for r in found if r.blocked)
    lines = [
        _("Recipients: {count}. Send it now?").format(count=len(found)),
        _("By language: {languages}").format(
            languages=", ".join(
                f"{code} {sum(1 for r in found if r.language == code)}"
                for code in LANGUAGES
                if any(r.language == code for r in found)
            )
        ),
    ]
    if default_languages and variants:
        lines.append(
            _("The default message goes to: {languages}").format(
                languages=", ".join(default_languages)
            )
        )
    if blocked:
        lines.append(
            _("Among them, blocked the bot: {count} (the report counts them).").format(
                count=blocked
            )
        )
    kb = InlineKeyboardBuilder()
    kb.button(
        text=_("✅ Send now ({count})").format(count=len(found)),
        callback_data=BcSend(broadcast_id=broadcast.id),
    )
    kb.button(text=_("✖️ Cancel"), callback_data=BcDrop(broadcast_id=broadcast.id))
    kb.adjust(1)
    await bot.send_message(chat_id, "\n".join(lines), reply_markup=kb.as_markup())


def report_markup(broadcast_id: int) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    kb.button(text=_("📊 Delivery report"), callback_data=BcReport(broadcast_id=broadcast_id))
    return kb.as_markup()


@router.callback_query(BcSend.filter(), HasRole(Role.trainer))
async def send_broadcast(
    query: CallbackQuery,
    callback_data: BcSend,
    session: AsyncSession,
    db_user: User,
    content: Content,
    clock: Clock,
) -> None:
    if not isinstance(query.message, Message):
        await not_active(query)
        return
    try:
        sent = await confirm(session, callback_data.broadcast_id, db_user.id, content, clock.now())
    except ConfirmRefused as refused:
        if refused.reason == "already":
            await query.answer(_("This announcement has been sent already."))
        elif refused.reason == "empty":
            await query.answer(_("No learner matches this audience any more."), show_alert=True)
        else:
            await not_active(query)
        return
    await query.answer()
    await drop_buttons(query.message)
    await query.message.answer(
        _(
            "Sending now (recipients: {count}). You will get the delivery report when it "
            "is done; press the button to see it now."
        ).format(count=sent.count),
        reply_markup=report_markup(callback_data.broadcast_id),
    )


@router.callback_query(BcDrop.filter(), HasRole(Role.trainer))
async def drop_broadcast(
    query: CallbackQuery, callback_data: BcDrop, session: AsyncSession, db_user: User
) -> None:
    broadcast = await owned_broadcast(session, callback_data.broadcast_id, db_user.id)
    if broadcast is None or not isinstance(query.message, Message):
        await not_active(query)
        return
    done = await session.execute(
        update(Broadcast)
        .where(Broadcast.id == broadcast.id, Broadcast.status == "draft")
        .values(status="cancelled", media_data=None)
        .execution_options(synchronize_session=False)
    )
    if getattr(done, "rowcount", 0) != 1:
        await query.answer(_("This announcement has been sent already."))
        return
    await query.answer()
    await drop_buttons(query.message)
    await query.message.answer(_("Cancelled: nothing was sent."))


@router.callback_query(BcReport.filter(), HasRole(Role.trainer))
async def broadcast_report(
    query: CallbackQuery, callback_data: BcReport, session: AsyncSession, db_user: User
) -> None:
    broadcast = await owned_broadcast(session, callback_data.broadcast_id, db_user.id)
    if broadcast is None or not isinstance(query.message, Message):
        await not_active(query)
        return
    await query.answer()
    report = await delivery_report(session, broadcast.id)
    await query.message.answer(
        report_text(broadcast, report), reply_markup=report_markup(broadcast.id)
    )
