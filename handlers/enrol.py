"""Enrolment in conversation: language, consent, then the programme's registration form.

The form's answers live in the conversation state (the SQL store), so a learner who
leaves mid-way continues where they stopped, even after a restart. Nothing typed is
kept before consent: the only steps before it are buttons. /profile reuses the same
steps to edit a confirmed registration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from typing import Any

from aiogram import F, Router
from aiogram.filters import Command, CommandObject, CommandStart, StateFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.i18n import LANGUAGES
from bot.services import consent as consent_service
from bot.services import registration as reg
from bot.services.cohorts import cohort_title, open_cohort
from bot.services.invites import InviteProblem, use_invite
from bot.services.releases import plan_catch_up
from bot.ui import drop_buttons
from content.loader import Content
from handlers.common import LanguageChoice, help_text, language_keyboard
from storage.models import (
    Cohort,
    CohortTrainer,
    ConsentAnswer,
    InviteKind,
    Learner,
    LearnerStatus,
    Role,
    User,
)
from storage.repo import insert_ignore

router = Router(name="enrol")


class Enrol(StatesGroup):
    language = State()
    consent = State()
    cohort = State()
    name = State()
    email = State()
    age_band = State()
    country = State()
    education = State()
    employment = State()
    profession = State()
    years = State()
    heard_from = State()
    profile = State()
    profile_enjoy = State()
    profile_lead = State()
    profile_pick = State()
    skills = State()
    summary = State()


class Pick(CallbackData, prefix="pk"):
    field: str
    value: str
    item: str = ""  # for ratings: the area rated, so a double tap cannot rate the next one


class Consent(CallbackData, prefix="cs"):
    yes: bool


class JoinOpen(CallbackData, prefix="jo"):
    pass


class Edit(CallbackData, prefix="ed"):
    field: str


class Confirm(CallbackData, prefix="cf"):
    pass


@dataclass(frozen=True)
class Step:
    field: str
    state: State
    prompt: str  # English msgid
    choices: dict[str, str] | None = None  # value -> label msgid
    check: Callable[[str, dict[str, Any]], Any] | None = None
    optional: bool = False
    columns: int = 2


STEPS: tuple[Step, ...] = (
    Step(
        "name",
        Enrol.name,
        reg.N_("What is your name? (first name and surname)"),
        check=lambda text, _a: reg.check_name(text),
    ),
    Step(
        "email",
        Enrol.email,
        reg.N_(
            "Your e-mail address, so that your trainer can reach you outside Telegram. "
            "It is optional: press Skip if you prefer."
        ),
        check=lambda text, _a: reg.check_email(text),
        optional=True,
    ),
    Step("age_band", Enrol.age_band, reg.N_("How old are you?"), choices=reg.AGE_BANDS, columns=3),
    Step(
        "country",
        Enrol.country,
        reg.N_("Which country do you work or live in?"),
        choices=reg.COUNTRIES,
    ),
    Step(
        "education",
        Enrol.education,
        reg.N_("Your highest level of education?"),
        choices=reg.EDUCATION,
        columns=1,
    ),
    Step(
        "employment",
        Enrol.employment,
        reg.N_("What is your current employment status?"),
        choices=reg.EMPLOYMENT,
        columns=1,
    ),
    Step(
        "profession",
        Enrol.profession,
        reg.N_("What is your profession or job title? (e.g. librarian, library director)"),
        check=lambda text, _a: reg.check_profession(text),
    ),
    Step(
        "years",
        Enrol.years,
        reg.N_("How many years of experience do you have in this profession?"),
        check=lambda text, answers: reg.check_years(text, answers.get("age_band")),
    ),
    Step(
        "heard_from",
        Enrol.heard_from,
        reg.N_("How did you hear about the course?"),
        choices=reg.HEARD_FROM,
        columns=1,
    ),
    Step(
        "profile",
        Enrol.profile,
        reg.N_("Which job-role profile will you follow?"),
        choices={**reg.PROFILES, "unsure": reg.N_("Not sure yet")},
        columns=1,
    ),
    Step(
        "skills",
        Enrol.skills,
        reg.N_("How would you rate your skills?"),
        choices=reg.SKILL_LEVELS,
        columns=2,
    ),
)
STEP_BY_FIELD = {s.field: s for s in STEPS}
STEP_BY_STATE = {s.state.state: s for s in STEPS}
TEXT_STATES = [s.state for s in STEPS if s.choices is None]
PROFILE_QUESTIONS = {
    "profile_enjoy": (
        Enrol.profile_enjoy,
        reg.N_("What do you enjoy more at work?"),
        {
            "people": reg.N_("Working with people, partners and the community"),
            "systems": reg.N_("Working with systems, devices and data"),
        },
    ),
    "profile_lead": (
        Enrol.profile_lead,
        reg.N_("Which project would you rather lead?"),
        {
            "people": reg.N_("A campaign that brings new users to the library"),
            "systems": reg.N_("Moving a library service online"),
        },
    ),
}
REGISTRATION_STATES = [s for s in Enrol.__states__ if s not in (Enrol.language, Enrol.consent)]


# --- rendering ---------------------------------------------------------------------------


def _keyboard(step: Step, answers: dict[str, Any]) -> InlineKeyboardMarkup | None:
    kb = InlineKeyboardBuilder()
    if step.choices:
        item = (_next_skill(answers) or "") if step.field == "skills" else ""
        for value, label in step.choices.items():
            kb.button(text=_(label), callback_data=Pick(field=step.field, value=value, item=item))
        kb.adjust(step.columns)
    if step.optional:
        kb.button(text=_("Skip"), callback_data=Pick(field=step.field, value="-"))
    return kb.as_markup() if step.choices or step.optional else None


def _next_skill(answers: dict[str, Any]) -> str | None:
    rated = answers.get("skills", {})
    return next((area for area in reg.SKILL_AREAS if area not in rated), None)


def next_step(answers: dict[str, Any]) -> Step | None:
    """The first question not yet answered; None when the form is complete."""
    for step in STEPS:
        if step.field == "skills":
            if _next_skill(answers) is not None:
                return step
        elif step.field not in answers:
            return step
    return None


async def ask(message: Message, state: FSMContext, step: Step | None) -> None:
    data = await state.get_data()
    answers: dict[str, Any] = data.get("answers", {})
    if step is None:
        await show_summary(message, state)
        return
    await state.set_state(step.state)
    prompt = _(step.prompt)
    if step.field == "skills":
        area = _next_skill(answers)
        assert area is not None
        if area == next(iter(reg.SKILL_AREAS)):
            prompt = _(
                "Last step: a short self-assessment of your computer skills, "
                "to help your trainer. {prompt}"
            ).format(prompt=prompt)
        prompt += "\n\n<b>" + escape(_(reg.SKILL_AREAS[area])) + "</b>"
    elif step.field == "profile":
        prompt += "\n\n" + "\n".join(
            f"<b>{code}</b> — {escape(_(reg.PROFILES[code]))}: {escape(_(reg.PROFILE_PITCH[code]))}"
            for code in reg.PROFILES
        )
    await message.answer(prompt, reply_markup=_keyboard(step, answers))


def _answer_label(field: str, value: Any) -> str:
    step = STEP_BY_FIELD[field]
    if value is None or value == "":
        return "—"
    if field == "skills":
        return "; ".join(
            f"{escape(_(reg.SKILL_AREAS[a]))}: {escape(_(reg.SKILL_LEVELS[str(v)]))}"
            for a, v in value.items()
            if a in reg.SKILL_AREAS and str(v) in reg.SKILL_LEVELS
        )
    if field == "profile":
        return f"{value} — {escape(_(reg.PROFILES.get(value, value)))}"
    if step.choices and value in step.choices:
        return escape(_(step.choices[value]))
    return escape(str(value))


FIELD_LABELS: dict[str, str] = {
    "name": reg.N_("Name"),
    "email": reg.N_("E-mail"),
    "age_band": reg.N_("Age"),
    "country": reg.N_("Country"),
    "education": reg.N_("Education"),
    "employment": reg.N_("Employment"),
    "profession": reg.N_("Profession"),
    "years": reg.N_("Years of experience"),
    "heard_from": reg.N_("Heard about the course from"),
    "profile": reg.N_("Profile"),
    "skills": reg.N_("Computer skills"),
}


def summary_text(answers: dict[str, Any]) -> str:
    return "\n".join(
        f"<b>{escape(_(label))}:</b> {_answer_label(field, answers.get(field))}"
        for field, label in FIELD_LABELS.items()
    )


async def show_summary(message: Message, state: FSMContext) -> None:
    data = await state.get_data()
    answers = data.get("answers", {})
    await state.set_state(Enrol.summary)
    await state.update_data(editing=None)
    kb = InlineKeyboardBuilder()
    for field, label in FIELD_LABELS.items():
        kb.button(text="✏️ " + _(label), callback_data=Edit(field=field))
    kb.adjust(2)
    confirm = _("✅ Save changes") if data.get("mode") == "profile" else _("✅ Confirm")
    kb.row(*InlineKeyboardBuilder().button(text=confirm, callback_data=Confirm()).buttons)
    title = (
        _("Your profile. Press a button to change an answer.")
        if data.get("mode") == "profile"
        else _("Please check your answers. Press a button to change one, or confirm.")
    )
    await message.answer(title + "\n\n" + summary_text(answers), reply_markup=kb.as_markup())


async def _after_answer(message: Message, state: FSMContext, answers: dict[str, Any]) -> None:
    data = await state.get_data()
    await state.update_data(answers=answers)
    editing = data.get("editing")
    if editing and (editing != "skills" or _next_skill(answers) is None):
        await show_summary(message, state)
        return
    await ask(message, state, next_step(answers))


# --- /start, language and consent ---------------------------------------------------------


async def _ask_language(message: Message, state: FSMContext, name: str) -> None:
    await state.set_state(Enrol.language)
    await message.answer(
        _(
            "Hello, {name}! I am the BIBLIO assistant. I help library professionals "
            "through the BIBLIO training: module releases, webinar reminders, practice "
            "quizzes and work-based learning."
        ).format(name=escape(name))
        + "\n\n"
        + _("Choose your language:"),
        reply_markup=language_keyboard(),
    )


async def _ask_consent(message: Message, state: FSMContext, content: Content, lang: str) -> None:
    await state.set_state(Enrol.consent)
    notice, _shown = content.privacy_for(lang)
    kb = InlineKeyboardBuilder()
    kb.button(text=_("✅ I agree"), callback_data=Consent(yes=True))
    kb.button(text=_("No, thanks"), callback_data=Consent(yes=False))
    await message.answer(notice.notice)
    await message.answer(
        _(
            "Do you agree that I keep and use your data as described above? "
            "You can withdraw at any time with /withdraw."
        ),
        reply_markup=kb.as_markup(),
    )


def _invite_problem_text(problem: InviteProblem) -> str:
    if problem is InviteProblem.expired:
        return _("This invitation link has expired. Please ask your trainer for a new one.")
    if problem is InviteProblem.used_up:
        return _(
            "This invitation link has been used as many times as it allows. "
            "Please ask your trainer for a new one."
        )
    return _(
        "I don't recognise this invitation link. Please check it, or ask your trainer "
        "for a new one."
    )


@router.message(CommandStart())
async def start(
    message: Message,
    command: CommandObject,
    state: FSMContext,
    session: AsyncSession,
    db_user: User,
    content: Content,
    clock: Clock,
    i18n: I18n,
) -> None:
    name = message.from_user.first_name if message.from_user else ""
    payload = (command.args or "").strip()
    if payload:
        invite = await use_invite(session, payload, clock.now())
        if isinstance(invite, InviteProblem):
            await message.answer(
                _invite_problem_text(invite)
                + "\n\n"
                + _("You can still join the open MOOC: send /start.")
            )
            return
        if invite.kind is InviteKind.trainer:
            db_user.role = Role.trainer
            if invite.cohort_id is not None:
                await insert_ignore(
                    session,
                    CohortTrainer,
                    [{"cohort_id": invite.cohort_id, "trainer_id": db_user.id}],
                )
            await message.answer(
                _(
                    "Welcome, {name}! You are now a trainer in the BIBLIO bot. "
                    "Send /help to see your tools."
                ).format(name=escape(name))
            )
            return
        if invite.kind is InviteKind.mentor:
            if invite.learner_id is not None:
                # A learner's own link (/mentor_link): mentor of that learner's placement.
                from handlers.mentor import open_mentor_link

                await open_mentor_link(message, session, db_user, invite, clock, i18n)
                return
            if db_user.role is Role.learner:
                db_user.role = Role.mentor
            await message.answer(
                _(
                    "Welcome, {name}! You are now a workplace mentor in the "
                    "BIBLIO bot. Send /help to see your tools."
                ).format(name=escape(name))
            )
            return
        await state.update_data(cohort_id=invite.cohort_id)
        learner = await session.get(Learner, db_user.id)
        if learner is not None and learner.status is LearnerStatus.enrolled:
            cohort = await session.get(Cohort, invite.cohort_id)
            learner.cohort_id = invite.cohort_id
            await message.answer(
                _("You have joined the group {cohort}.").format(
                    cohort=escape(cohort_title(cohort) if cohort else "")
                )
            )
            return

    learner = await session.get(Learner, db_user.id)
    if learner is not None and learner.status is LearnerStatus.enrolled:
        if not consent_service.has_valid_consent(db_user, content):
            await message.answer(
                _("The privacy notice has changed. Please read it and tell me whether you agree.")
            )
            await _ask_consent(message, state, content, i18n.current_locale)
            return
        await message.answer(
            _("Welcome back, {name}!").format(name=escape(name)) + "\n\n" + help_text(i18n)
        )
        return

    current = await state.get_state()
    if current in {s.state for s in REGISTRATION_STATES if s is not Enrol.cohort}:
        await message.answer(_("Welcome back! Let's continue where you stopped."))
        await _reask(message, state)
        return
    if db_user.language is None:
        await _ask_language(message, state, name)
        return
    if not consent_service.has_valid_consent(db_user, content):
        await _ask_consent(message, state, content, i18n.current_locale)
        return
    await _choose_cohort(message, state, session, clock)


@router.callback_query(StateFilter(Enrol.language), LanguageChoice.filter())
async def language_picked(
    query: CallbackQuery,
    callback_data: LanguageChoice,
    state: FSMContext,
    db_user: User,
    content: Content,
    i18n: I18n,
) -> None:
    await query.answer()
    if callback_data.code not in LANGUAGES or not isinstance(query.message, Message):
        return
    db_user.language = callback_data.code
    with i18n.use_locale(callback_data.code):
        await drop_buttons(query.message)
        await _ask_consent(query.message, state, content, callback_data.code)


@router.callback_query(StateFilter(Enrol.consent), Consent.filter())
async def consent_answered(
    query: CallbackQuery,
    callback_data: Consent,
    state: FSMContext,
    session: AsyncSession,
    db_user: User,
    content: Content,
    clock: Clock,
    i18n: I18n,
) -> None:
    await query.answer()
    if not isinstance(query.message, Message):
        return
    await drop_buttons(query.message)
    answer = ConsentAnswer.granted if callback_data.yes else ConsentAnswer.declined
    await consent_service.record(
        session, db_user, answer, language=i18n.current_locale, content=content, now=clock.now()
    )
    if not callback_data.yes:
        data = await state.get_data()
        await state.clear()
        if data.get("cohort_id"):
            await state.update_data(cohort_id=data["cohort_id"])
        await query.message.answer(
            _(
                "Understood. I have kept only your Telegram ID, your language and this answer; "
                "without your consent I cannot enrol you or send you course messages. "
                "If you change your mind, send /start."
            )
        )
        return
    learner = await session.get(Learner, db_user.id)
    if learner is not None:
        # Consent renewed (a new notice) or given again after a withdrawal.
        learner.status = LearnerStatus.enrolled
        await state.clear()
        await query.message.answer(_("Thank you. Your enrolment is active."))
        return
    await _choose_cohort(query.message, state, session, clock)


async def _choose_cohort(
    message: Message, state: FSMContext, session: AsyncSession, clock: Clock
) -> None:
    data = await state.get_data()
    cohort = await session.get(Cohort, data["cohort_id"]) if data.get("cohort_id") else None
    if cohort is not None:
        await message.answer(
            _(
                "You are joining the group {cohort}. A few questions follow; "
                "/cancel stops at any time."
            ).format(cohort=escape(cohort_title(cohort)))
        )
        await ask(message, state, next_step(data.get("answers", {})))
        return
    await _choose_cohort_prompt(message, state)


@router.callback_query(StateFilter(Enrol.cohort), JoinOpen.filter())
async def join_open(
    query: CallbackQuery, state: FSMContext, session: AsyncSession, clock: Clock
) -> None:
    await query.answer()
    if not isinstance(query.message, Message):
        return
    await drop_buttons(query.message)
    cohort = await open_cohort(session, clock.now())
    await state.update_data(cohort_id=cohort.id)
    await _choose_cohort(query.message, state, session, clock)


# --- the form ----------------------------------------------------------------------------


async def _reask(message: Message, state: FSMContext) -> None:
    current = await state.get_state()
    data = await state.get_data()
    if current == Enrol.summary.state:
        await show_summary(message, state)
    elif current in (Enrol.profile_enjoy.state, Enrol.profile_lead.state):
        key = "profile_enjoy" if current == Enrol.profile_enjoy.state else "profile_lead"
        await _ask_profile_question(message, state, key)
    elif current == Enrol.profile_pick.state:
        await _offer_profile(message, state, data.get("recommended", "CECO"))
    elif current == Enrol.cohort.state:
        await _choose_cohort_prompt(message, state)
    elif current in STEP_BY_STATE:
        await ask(message, state, STEP_BY_STATE[current])
    else:
        await ask(message, state, next_step(data.get("answers", {})))


async def _choose_cohort_prompt(message: Message, state: FSMContext) -> None:
    await state.set_state(Enrol.cohort)
    kb = InlineKeyboardBuilder()
    kb.button(text=_("Join the open MOOC"), callback_data=JoinOpen())
    await message.answer(
        _(
            "Anyone can join the open BIBLIO MOOC: 8 weeks of modules, self-paced, in English. "
            "If your trainer gave you a link for your group, open that link instead."
        ),
        reply_markup=kb.as_markup(),
    )


@router.message(Command("cancel"))
async def cancel(message: Message, state: FSMContext) -> None:
    current = await state.get_state()
    data = await state.get_data()
    await state.clear()
    if current is None:
        await message.answer(_("There is nothing to cancel."))
    elif data.get("mode") == "profile":
        await message.answer(_("Stopped. Your profile is unchanged."))
    elif not current.startswith("Enrol:"):
        await message.answer(_("Stopped. Nothing was changed."))
    else:
        await message.answer(
            _(
                "Stopped. Nothing you typed in the form was kept. "
                "Send /start whenever you want to begin again."
            )
        )


@router.message(StateFilter(*TEXT_STATES), F.text, ~F.text.startswith("/"))
async def text_answer(message: Message, state: FSMContext) -> None:
    step = STEP_BY_STATE[await state.get_state() or ""]
    data = await state.get_data()
    answers: dict[str, Any] = dict(data.get("answers", {}))
    assert step.check is not None and message.text is not None
    result = step.check(message.text, answers)
    if isinstance(result, reg.Invalid):
        await message.answer(_(result.reason))
        await ask(message, state, step)
        return
    answers[step.field] = result
    await _after_answer(message, state, answers)


@router.callback_query(Pick.filter(F.field.in_(STEP_BY_FIELD)))
async def picked(query: CallbackQuery, callback_data: Pick, state: FSMContext) -> None:
    current = await state.get_state()
    message = query.message
    step = STEP_BY_FIELD.get(callback_data.field)
    data = await state.get_data()
    answers: dict[str, Any] = dict(data.get("answers", {}))
    value = callback_data.value
    # A press counts only on the question being asked now (not a stale or doubled tap).
    valid = (
        step is not None
        and current == step.state.state
        and isinstance(message, Message)
        and (
            (step.optional and value == "-") or (step.choices is not None and value in step.choices)
        )
        and (step.field != "skills" or callback_data.item == _next_skill(answers))
    )
    if not valid or step is None or not isinstance(message, Message):
        await query.answer(_("This button is no longer active."))
        return
    await query.answer()
    await drop_buttons(message)
    if step.optional and value == "-":
        answers[step.field] = None
    elif step.field == "skills":
        answers["skills"] = {**answers.get("skills", {}), callback_data.item: int(value)}
        if _next_skill(answers) is not None:
            await state.update_data(answers=answers)
            await ask(message, state, step)
            return
    elif step.field == "profile" and value == "unsure":
        await _ask_profile_question(message, state, "profile_enjoy")
        return
    else:
        answers[step.field] = value
    await _after_answer(message, state, answers)


async def _ask_profile_question(message: Message, state: FSMContext, key: str) -> None:
    question_state, prompt, options = PROFILE_QUESTIONS[key]
    await state.set_state(question_state)
    kb = InlineKeyboardBuilder()
    for value, label in options.items():
        kb.button(text=_(label), callback_data=Pick(field=key, value=value))
    kb.adjust(1)
    await message.answer(_(prompt), reply_markup=kb.as_markup())


async def _offer_profile(message: Message, state: FSMContext, recommended: str) -> None:
    await state.set_state(Enrol.profile_pick)
    await state.update_data(recommended=recommended)
    other = "DIGY" if recommended == "CECO" else "CECO"
    kb = InlineKeyboardBuilder()
    kb.button(
        text=_("{profile} (recommended)").format(profile=recommended),
        callback_data=Pick(field="profile_pick", value=recommended),
    )
    kb.button(text=other, callback_data=Pick(field="profile_pick", value=other))
    kb.adjust(1)
    await message.answer(
        _(
            "From your answers, I recommend <b>{profile}</b> — {title}: {pitch} "
            "You can still choose the other one."
        ).format(
            profile=recommended,
            title=escape(_(reg.PROFILES[recommended])),
            pitch=escape(_(reg.PROFILE_PITCH[recommended])),
        ),
        reply_markup=kb.as_markup(),
    )


@router.callback_query(
    StateFilter(Enrol.profile_enjoy, Enrol.profile_lead, Enrol.profile_pick),
    Pick.filter(F.field.in_({"profile_enjoy", "profile_lead", "profile_pick"})),
)
async def profile_question(query: CallbackQuery, callback_data: Pick, state: FSMContext) -> None:
    message = query.message
    current = await state.get_state()
    if current != f"Enrol:{callback_data.field}" or not isinstance(message, Message):
        await query.answer(_("This button is no longer active."))
        return
    await query.answer()
    await drop_buttons(message)
    data = await state.get_data()
    if callback_data.field == "profile_enjoy" and callback_data.value in ("people", "systems"):
        await state.update_data(enjoy=callback_data.value)
        await _ask_profile_question(message, state, "profile_lead")
    elif callback_data.field == "profile_lead" and callback_data.value in ("people", "systems"):
        recommended = reg.recommend_profile(data.get("enjoy", "people"), callback_data.value)  # type: ignore[arg-type]
        await _offer_profile(message, state, recommended)
    elif callback_data.field == "profile_pick" and callback_data.value in reg.PROFILES:
        answers = dict(data.get("answers", {}))
        answers["profile"] = callback_data.value
        await _after_answer(message, state, answers)


@router.callback_query(StateFilter(Enrol.summary), Edit.filter())
async def edit_field(query: CallbackQuery, callback_data: Edit, state: FSMContext) -> None:
    step = STEP_BY_FIELD.get(callback_data.field)
    if step is None or not isinstance(query.message, Message):
        await query.answer(_("This button is no longer active."))
        return
    await query.answer()
    await drop_buttons(query.message)
    data = await state.get_data()
    if step.field == "skills":  # the ratings are asked again from the first area
        await state.update_data(answers={**data.get("answers", {}), "skills": {}})
    await state.update_data(editing=step.field)
    await ask(query.message, state, step)


@router.callback_query(StateFilter(Enrol.summary), Confirm.filter())
async def confirm(
    query: CallbackQuery,
    state: FSMContext,
    session: AsyncSession,
    db_user: User,
    content: Content,
    clock: Clock,
) -> None:
    message = query.message
    if not isinstance(message, Message):
        return
    data = await state.get_data()
    answers: dict[str, Any] = data.get("answers", {})
    if next_step(answers) is not None:
        await query.answer()
        await ask(message, state, next_step(answers))
        return
    if not consent_service.has_valid_consent(db_user, content):
        await query.answer()
        await _ask_consent(message, state, content, db_user.language or "en")
        return
    await query.answer()
    await drop_buttons(message)
    learner = await session.get(Learner, db_user.id)
    now = clock.now()
    fields = {
        "name": answers["name"],
        "email": answers.get("email"),
        "age_band": answers["age_band"],
        "country": answers["country"],
        "education": answers["education"],
        "employment": answers["employment"],
        "profession": answers["profession"],
        "years_experience": int(answers["years"]),
        "heard_from": answers["heard_from"],
        "profile": answers["profile"],
        "skills": dict(answers["skills"]),
    }
    profile_mode = data.get("mode") == "profile"
    if learner is None:
        cohort_id = data.get("cohort_id") or (await open_cohort(session, now)).id
        learner = Learner(user_id=db_user.id, cohort_id=cohort_id, enrolled_at=now, **fields)
        session.add(learner)
    else:
        for key, value in fields.items():
            setattr(learner, key, value)
        learner.status = LearnerStatus.enrolled
        learner.updated_at = now
        if data.get("cohort_id") and not profile_mode:
            learner.cohort_id = data["cohort_id"]
    await session.flush()
    await plan_catch_up(session, learner, content, now)
    await state.clear()
    if profile_mode:
        await message.answer(_("Saved. Your profile is up to date."))
        return
    cohort = await session.get(Cohort, learner.cohort_id) if learner.cohort_id else None
    await message.answer(
        _(
            "You are enrolled in {cohort}. I will send you each week's modules and the "
            "webinar reminders. Send /help to see what else I can do."
        ).format(cohort=escape(cohort_title(cohort) if cohort else ""))
    )


@router.message(Command("profile"))
async def profile(
    message: Message, state: FSMContext, session: AsyncSession, db_user: User
) -> None:
    learner = await session.get(Learner, db_user.id)
    if learner is None or learner.status is not LearnerStatus.enrolled:
        await message.answer(_("You are not enrolled yet. Send /start to enrol."))
        return
    answers = {
        "name": learner.name,
        "email": learner.email,
        "age_band": learner.age_band,
        "country": learner.country,
        "education": learner.education,
        "employment": learner.employment,
        "profession": learner.profession,
        "years": learner.years_experience,
        "heard_from": learner.heard_from,
        "profile": learner.profile,
        "skills": dict(learner.skills),
    }
    await state.set_data({"mode": "profile", "answers": answers})
    await show_summary(message, state)


@router.message(StateFilter(*REGISTRATION_STATES), ~F.text.startswith("/"))
async def unexpected(message: Message, state: FSMContext) -> None:
    """A sticker where text is wanted, or text where a button is: explain, ask again."""
    current = await state.get_state()
    if current in {s.state for s in TEXT_STATES}:
        await message.answer(_("I need a text answer here."))
    else:
        await message.answer(_("Please choose one of the buttons below."))
    await _reask(message, state)


@router.message(StateFilter(Enrol.language, Enrol.consent), ~F.text.startswith("/"))
async def unexpected_before_consent(
    message: Message, state: FSMContext, db_user: User, content: Content, i18n: I18n
) -> None:
    # Nothing typed here is kept: we only point back to the buttons.
    await message.answer(_("Please choose one of the buttons below."))
    if await state.get_state() == Enrol.language.state:
        await message.answer(_("Choose your language:"), reply_markup=language_keyboard())
    else:
        await _ask_consent(message, state, content, i18n.current_locale)
