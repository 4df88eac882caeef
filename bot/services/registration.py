"""Rules of the registration form: the choices offered and how typed answers are checked.

Plain and typed, so they are unit-tested apart from Telegram. Error values are English
msgids; the handler translates them into the learner's language."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from email_validator import EmailNotValidError, validate_email


def N_(text: str) -> str:
    """Marks a msgid for extraction; translated where it is shown."""
    return text


AGE_BANDS: dict[str, str] = {
    "18-24": N_("18–24"),
    "25-34": N_("25–34"),
    "35-44": N_("35–44"),
    "45-54": N_("45–54"),
    "55-64": N_("55–64"),
    "65+": N_("65 or older"),
}
# Youngest age in each band: the bound for plausible years of experience.
_AGE_FLOOR = {"18-24": 18, "25-34": 25, "35-44": 35, "45-54": 45, "55-64": 55, "65+": 65}
COUNTRIES: dict[str, str] = {
    "LV": N_("Latvia"),
    "IT": N_("Italy"),
    "BG": N_("Bulgaria"),
    "GR": N_("Greece"),
    "XX": N_("Another country"),
}
EDUCATION: dict[str, str] = {
    "secondary": N_("Secondary school"),
    "vocational": N_("Vocational or college"),
    "bachelor": N_("Bachelor's degree"),
    "master": N_("Master's degree"),
    "doctorate": N_("Doctorate"),
}
EMPLOYMENT: dict[str, str] = {
    "library": N_("Working in a library"),
    "other_job": N_("Working elsewhere"),
    "unemployed": N_("Looking for work"),
    "student": N_("Studying"),
    "other": N_("Other"),
}
HEARD_FROM: dict[str, str] = {
    "employer": N_("My library or employer"),
    "colleague": N_("A colleague"),
    "association": N_("A library association"),
    "social": N_("Social media"),
    "web": N_("A website or newsletter"),
    "other": N_("Other"),
}
PROFILES: dict[str, str] = {
    "CECO": N_("Community Engagement and Communication Officer"),
    "DIGY": N_("Digital Transformation Facilitator"),
}
PROFILE_PITCH: dict[str, str] = {
    "CECO": N_(
        "works with library users, partners and the community: events, campaigns, outreach."
    ),
    "DIGY": N_(
        "builds the library's digital capacity: systems, tools, data and colleagues' skills."
    ),
}
# The seed's "business card": the computer skills a learner states before training.
SKILL_AREAS: dict[str, str] = {
    "word_processing": N_("Word processing"),
    "spreadsheets": N_("Spreadsheets"),
    "presentations": N_("Presentations"),
    "digital_content": N_("Documents with text, images and tables"),
    "online_work": N_("Working online (cloud, video calls)"),
}
SKILL_LEVELS: dict[str, str] = {
    "1": N_("New to it"),
    "2": N_("Basic"),
    "3": N_("Confident"),
    "4": N_("Could teach others"),
}

NAME_MAX = 100
PROFESSION_MAX = 120
YEARS_MAX = 60


@dataclass(frozen=True)
class Invalid:
    reason: str  # an English msgid


def check_name(text: str) -> str | Invalid:
    value = " ".join(text.split())
    if not value:
        return Invalid(N_("Please type your name."))
    if len(value) > NAME_MAX:
        return Invalid(N_("That is longer than a name can be here (100 characters at most)."))
    if not any(ch.isalpha() for ch in value):
        return Invalid(N_("A name needs at least one letter."))
    return value  # stored as typed; escaped wherever it is shown


def check_email(text: str) -> str | Invalid:
    value = text.strip()
    if len(value) > 254 or " " in value:
        return Invalid(N_("That does not look like an e-mail address, e.g. name@library.lv."))
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError:
        return Invalid(N_("That does not look like an e-mail address, e.g. name@library.lv."))


def check_profession(text: str) -> str | Invalid:
    value = " ".join(text.split())
    if len(value) < 2:
        return Invalid(N_("Please write your profession or job title in a few words."))
    if len(value) > PROFESSION_MAX:
        return Invalid(N_("Please keep it shorter: 120 characters at most."))
    return value


def check_years(text: str, age_band: str | None) -> int | Invalid:
    value = text.strip()
    if not re.fullmatch(r"\d{1,3}", value):
        return Invalid(N_("Please send the number of years as a whole number, e.g. 7."))
    years = int(value)
    ceiling = YEARS_MAX
    if age_band in _AGE_FLOOR:
        # Nobody works from birth: allow from age 14 onward at the youngest of the band.
        ceiling = min(ceiling, max(_AGE_FLOOR[age_band] + 9 - 14, 0))
    if years > ceiling:
        return Invalid(N_("That seems more years than is possible. Please check the number."))
    return years


Answer = Literal["people", "systems"]


def recommend_profile(enjoy: Answer, lead: Answer) -> str:
    """Two short questions: what the person enjoys and what they would rather lead.
    When they point different ways, what they would lead decides: it is the job."""
    if enjoy == lead:
        return "CECO" if enjoy == "people" else "DIGY"
    return "CECO" if lead == "people" else "DIGY"
