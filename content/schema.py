"""The typed schema of the curriculum files (see content/README.md)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

LANGUAGES: tuple[str, ...] = ("en", "lv", "it", "bg", "el")
Profile = Literal["CECO", "DIGY"]
Area = Literal["digital", "entrepreneurial"]

# Telegram's native quiz poll limits.
QUESTION_MAX = 300
OPTION_MAX = 100
EXPLANATION_MAX = 200
EXPLANATION_MAX_LINE_FEEDS = 2

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Localized(Strict):
    """A text in each language; English is required and is the fallback."""

    en: Text
    lv: Text | None = None
    it: Text | None = None
    bg: Text | None = None
    el: Text | None = None

    def get(self, lang: str) -> tuple[str, bool]:
        """The text in `lang`, and whether it is the English fallback."""
        value = getattr(self, lang, None) if lang in LANGUAGES else None
        return (value, False) if value else (self.en, lang != "en")

    def missing(self) -> list[str]:
        return [lang for lang in LANGUAGES if not getattr(self, lang)]


class Module(Strict):
    number: int = Field(ge=1, le=99)
    area: Area
    profiles: list[Profile] = Field(min_length=1, max_length=2)
    hours: float = Field(gt=0, le=10)
    title: Localized
    description: Localized

    @field_validator("profiles")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a profile is listed twice")
        return value


class ModuleFile(Strict):
    modules: list[Module] = Field(min_length=1)


class CalendarWeek(Strict):
    week: int = Field(ge=1, le=52)
    modules: list[int] = Field(min_length=1)


class Calendar(Strict):
    name: Text
    weeks: list[CalendarWeek] = Field(min_length=1)
    # The module whose practice quiz stands for the MOOC's final online assessment: 75 %
    # on it earns the certificate of completion. Optional; a cohort's own calendar sets it.
    final_assessment: int | None = Field(default=None, ge=1, le=99)

    @model_validator(mode="after")
    def _weeks_in_order(self) -> Calendar:
        numbers = [w.week for w in self.weeks]
        if len(set(numbers)) != len(numbers):
            raise ValueError("a week number appears twice")
        if numbers != sorted(numbers):
            raise ValueError("weeks must be listed in order")
        if self.final_assessment is not None and not any(
            self.final_assessment in w.modules for w in self.weeks
        ):
            raise ValueError(f"final_assessment {self.final_assessment} is in no week")
        return self

    @property
    def slots(self) -> int:
        return sum(len(w.modules) for w in self.weeks)

    def modules_of_week(self, week: int) -> list[int]:
        return next((w.modules for w in self.weeks if w.week == week), [])


class QuestionText(Strict):
    question: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=QUESTION_MAX)
    ]
    options: list[
        Annotated[
            str, StringConstraints(strip_whitespace=True, min_length=1, max_length=OPTION_MAX)
        ]
    ] = Field(min_length=3, max_length=4)
    explanation: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=EXPLANATION_MAX)
    ]

    @field_validator("options")
    @classmethod
    def _distinct_options(cls, value: list[str]) -> list[str]:
        if len({v.casefold() for v in value}) != len(value):
            raise ValueError("two options read the same, so more than one would be correct")
        return value

    @field_validator("explanation")
    @classmethod
    def _line_feeds(cls, value: str) -> str:
        if value.count("\n") > EXPLANATION_MAX_LINE_FEEDS:
            raise ValueError("Telegram allows at most 2 line feeds in a quiz explanation")
        return value


class Question(Strict):
    id: Annotated[str, StringConstraints(pattern=r"^m\d{2}-q\d{2,3}$")]
    answer: int = Field(ge=0)
    text: dict[str, QuestionText]

    @field_validator("answer", mode="before")
    @classmethod
    def _one_answer(cls, value: Any) -> Any:
        if isinstance(value, list):
            raise ValueError("exactly one option must be correct: give one index, not a list")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Question:
        unknown = sorted(set(self.text) - set(LANGUAGES))
        if unknown:
            raise ValueError(f"unknown language {', '.join(unknown)}")
        if "en" not in self.text:
            raise ValueError("the English text is missing")
        sizes = {lang: len(t.options) for lang, t in self.text.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"languages have different numbers of options: {sizes}")
        if self.answer >= sizes["en"]:
            raise ValueError(f"answer {self.answer} is not an option (0-{sizes['en'] - 1})")
        return self

    def localized(self, lang: str) -> tuple[QuestionText, bool]:
        if lang in self.text:
            return self.text[lang], False
        return self.text["en"], lang != "en"


class Quiz(Strict):
    module: int = Field(ge=1, le=99)
    questions: list[Question] = Field(min_length=1)


class PrivacyText(Strict):
    version: int = Field(ge=1)
    notice: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4096)]
