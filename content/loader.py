"""Loads and validates the curriculum; every problem is reported with file, item and reason."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from content.schema import (
    LANGUAGES,
    Calendar,
    Module,
    ModuleFile,
    PrivacyText,
    Question,
    Quiz,
)

M = TypeVar("M", bound=BaseModel)
# libyaml when present: loading the curriculum is then ten times faster.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
CONTENT_DIR = Path(__file__).resolve().parent
_QUIZ_FILE = re.compile(r"^module-(\d{2})\.yaml$")


@dataclass(frozen=True)
class Problem:
    file: str
    item: str
    reason: str

    def __str__(self) -> str:
        return (
            f"{self.file}: {self.item}: {self.reason}"
            if self.item
            else f"{self.file}: {self.reason}"
        )


@dataclass
class Report:
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    def error(self, file: str, item: str, reason: str) -> None:
        self.errors.append(Problem(file, item, reason))

    def warn(self, file: str, item: str, reason: str) -> None:
        self.warnings.append(Problem(file, item, reason))

    def text(self) -> str:
        lines = [f"error: {p}" for p in self.errors] + [f"warning: {p}" for p in self.warnings]
        return "\n".join(lines)


class ContentError(Exception):
    def __init__(self, report: Report) -> None:
        super().__init__(report.text())
        self.report = report


@dataclass(frozen=True)
class Content:
    modules: dict[int, Module]
    calendar: Calendar
    quizzes: dict[int, Quiz]
    privacy: dict[str, PrivacyText]
    warnings: tuple[Problem, ...] = ()

    def question(self, question_id: str) -> Question | None:
        return self._questions.get(question_id)

    @property
    def _questions(self) -> dict[str, Question]:
        cache: dict[str, Question] | None = self.__dict__.get("_qcache")
        if cache is None:
            cache = {q.id: q for quiz in self.quizzes.values() for q in quiz.questions}
            object.__setattr__(self, "_qcache", cache)
        return cache

    def privacy_for(self, lang: str) -> tuple[PrivacyText, str]:
        """The notice in `lang` (else English) and the language it is in."""
        if lang in self.privacy:
            return self.privacy[lang], lang
        return self.privacy["en"], "en"

    def stats(self) -> dict[str, Any]:
        profiles = Counter(p for m in self.modules.values() for p in m.profiles)
        return {
            "modules": len(self.modules),
            "profiles": {"CECO": profiles["CECO"], "DIGY": profiles["DIGY"]},
            "calendar": {"weeks": len(self.calendar.weeks), "slots": self.calendar.slots},
            "quiz_questions": {
                str(number): {
                    lang: sum(1 for q in quiz.questions if lang in q.text) for lang in LANGUAGES
                }
                for number, quiz in sorted(self.quizzes.items())
            },
        }


def _read_yaml(path: Path, root: Path, report: Report) -> Any:
    name = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
    try:
        with path.open(encoding="utf-8") as fh:
            return yaml.load(fh, Loader=_Loader)
    except FileNotFoundError:
        report.error(name, "", "file is missing")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        report.error(name, where, f"not valid YAML: {getattr(exc, 'problem', exc)}")
    return None


def _item_name(data: Any, loc: tuple[int | str, ...]) -> str:
    """Turn pydantic's location into words a trainer can find in the file."""
    parts: list[str] = []
    node = data
    for part in loc:
        if isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
            label = None
            if isinstance(node, dict):
                label = (
                    node.get("id")
                    or (f"module {node['number']}" if "number" in node else None)
                    or (f"week {node['week']}" if "week" in node else None)
                )
            parts.append(str(label) if label else f"#{part + 1}")
        else:
            node = node.get(part) if isinstance(node, dict) else None
            parts.append(str(part))
    return " > ".join(parts)


def _validate(model: type[M], data: Any, file: str, report: Report, item: str = "") -> M | None:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            where = _item_name(data, tuple(err["loc"]))
            where = f"{item} > {where}" if item and where else item or where
            report.error(file, where, str(err["msg"]).removeprefix("Value error, "))
        return None


class _TagChecker(HTMLParser):
    ALLOWED: ClassVar[set[str]] = {"b", "strong", "i", "em", "u", "s", "code", "a"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self.ALLOWED:
            self.problems.append(f"tag <{tag}> is not allowed by Telegram")
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.problems.append(f"</{tag}> does not close the open tag")


def check_html(text: str) -> list[str]:
    checker = _TagChecker()
    checker.feed(text)
    checker.close()
    problems = checker.problems
    if checker.stack:
        problems.append(f"<{checker.stack[-1]}> is never closed")
    if re.search(r"<(?![a-zA-Z/])", text) or re.search(r"&(?!#?\w+;)", text):
        problems.append("a bare < or & must be written &lt; or &amp;")
    return problems


def load_calendar(
    path: Path, modules: dict[int, Module], report: Report, root: Path | None = None
) -> Calendar | None:
    """A calendar file (the recommended one, or a cohort's own) checked against the modules."""
    name = str(path.relative_to(root)) if root and path.is_relative_to(root) else path.name
    data = _read_yaml(path, root or path.parent, report)
    if data is None:
        return None
    calendar = _validate(Calendar, data, name, report)
    if calendar is None:
        return None
    seen: dict[int, int] = {}
    for week in calendar.weeks:
        for number in week.modules:
            if number not in modules:
                report.error(name, f"week {week.week}", f"module {number} does not exist")
            elif number in seen:
                report.warn(
                    name,
                    f"week {week.week}",
                    f"module {number} is already released in week {seen[number]}",
                )
            else:
                seen[number] = week.week
    return calendar


def check_content(root: Path = CONTENT_DIR) -> tuple[Content | None, Report]:
    report = Report()
    modules: dict[int, Module] = {}
    raw = _read_yaml(root / "modules.yaml", root, report)
    if raw is not None:
        parsed = _validate(ModuleFile, raw, "modules.yaml", report)
        for module in parsed.modules if parsed else []:
            if module.number in modules:
                report.error("modules.yaml", f"module {module.number}", "number used twice")
            modules[module.number] = module
            for field_name in ("title", "description"):
                missing = getattr(module, field_name).missing()
                if missing:
                    report.warn(
                        "modules.yaml",
                        f"module {module.number} > {field_name}",
                        f"no text in {', '.join(missing)}; English is shown instead",
                    )

    calendar = load_calendar(root / "calendar.yaml", modules, report, root)

    quizzes: dict[int, Quiz] = {}
    question_ids: dict[str, str] = {}
    for path in sorted((root / "quizzes").glob("*.yaml")):
        name = f"quizzes/{path.name}"
        match = _QUIZ_FILE.match(path.name)
        if not match:
            report.error(name, "", "quiz files are named module-NN.yaml")
            continue
        quiz = _validate(Quiz, _read_yaml(path, root, report), name, report)
        if quiz is None:
            continue
        if quiz.module != int(match.group(1)):
            report.error(
                name, "module", f"says {quiz.module} but the file is for {int(match.group(1))}"
            )
        if quiz.module not in modules:
            report.error(name, "module", f"module {quiz.module} does not exist")
        for question in quiz.questions:
            if question.id in question_ids:
                report.error(name, question.id, f"id already used in {question_ids[question.id]}")
            question_ids[question.id] = name
            if not question.id.startswith(f"m{quiz.module:02d}-"):
                report.error(name, question.id, f"ids in this file start with m{quiz.module:02d}-")
        quizzes[quiz.module] = quiz
    if calendar is not None:
        for number in sorted({n for w in calendar.weeks for n in w.modules} - set(quizzes)):
            report.warn("calendar.yaml", f"module {number}", "has no practice quiz")

    privacy: dict[str, PrivacyText] = {}
    raw_privacy = _read_yaml(root / "privacy.yaml", root, report)
    if raw_privacy is not None:
        if not isinstance(raw_privacy, dict):
            report.error("privacy.yaml", "", "must map each language to its version and notice")
        else:
            for lang, data in raw_privacy.items():
                if lang not in LANGUAGES:
                    report.error("privacy.yaml", str(lang), "unknown language")
                    continue
                text = _validate(PrivacyText, data, "privacy.yaml", report, item=lang)
                if text is None:
                    continue
                for problem in check_html(text.notice):
                    report.error("privacy.yaml", f"{lang} > notice", problem)
                privacy[lang] = text
            if "en" not in raw_privacy:
                report.error("privacy.yaml", "en", "the English notice is missing")

    if report.errors or calendar is None:
        return None, report
    return Content(modules, calendar, quizzes, privacy, tuple(report.warnings)), report


def load_content(root: Path = CONTENT_DIR) -> Content:
    content, report = check_content(root)
    if content is None:
        raise ContentError(report)
    return content
