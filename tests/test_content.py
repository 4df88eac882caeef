"""The shipped curriculum validates, has the programme's figures, and the validator
rejects each kind of mistake with file, item and reason."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from content.loader import CONTENT_DIR, check_content, load_content
from content.schema import LANGUAGES


@pytest.fixture(scope="module")
def content():
    return load_content()


def test_shipped_content_checks(content):
    assert content is not None
    _, report = check_content()
    assert report.errors == []
    # The only warning is the programme's own repeat of module 11.
    assert [str(w) for w in report.warnings] == [
        "calendar.yaml: week 6: module 11 is already released in week 4"
    ]


def test_programme_figures(content):
    stats = content.stats()
    assert stats["modules"] == 38
    assert stats["profiles"] == {"CECO": 35, "DIGY": 28}
    assert stats["calendar"] == {"weeks": 8, "slots": 26}
    calendar_modules = {n for w in content.calendar.weeks for n in w.modules}
    assert len(calendar_modules) == 25
    assert set(stats["quiz_questions"]) == {str(n) for n in calendar_modules}
    for number, counts in stats["quiz_questions"].items():
        assert counts["en"] >= 8, number
        assert counts["lv"] >= 8, number


def test_profiles_as_in_the_seed(content):
    ceco_only = {n for n, m in content.modules.items() if m.profiles == ["CECO"]}
    digy_only = {n for n, m in content.modules.items() if m.profiles == ["DIGY"]}
    assert ceco_only == {2, 3, 7, 8, 23, 25, 27, 28, 30, 33}
    assert digy_only == {12, 14, 19}
    for number, module in content.modules.items():
        assert module.area == ("digital" if number <= 20 else "entrepreneurial")
        for lang in LANGUAGES:
            assert getattr(module.title, lang), (number, lang)
            assert getattr(module.description, lang), (number, lang)


def test_calendar_as_in_the_seed(content):
    weeks = {w.week: w.modules for w in content.calendar.weeks}
    assert weeks == {
        1: [1, 32, 22],
        2: [21, 3, 4],
        3: [5, 6, 27],
        4: [10, 11, 29],
        5: [9, 13, 26],
        6: [15, 16, 34, 11],
        7: [17, 18, 31],
        8: [20, 24, 35, 38],
    }


def test_quiz_answers_move_between_positions(content):
    for number, quiz in content.quizzes.items():
        positions = {q.answer for q in quiz.questions}
        assert len(positions) >= 3, f"module {number}: the answer sits in too few positions"


def test_privacy_in_every_language(content):
    assert set(content.privacy) == set(LANGUAGES)
    for text in content.privacy.values():
        assert text.version >= 1
        assert "/delete" in text.notice and "/mydata" in text.notice


def test_cli_stats_json():
    out = subprocess.run(
        [sys.executable, "-m", "bot", "content", "stats", "--json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    stats = json.loads(out)
    assert stats["modules"] == 38 and stats["calendar"]["slots"] == 26


# --- the validator rejects each kind of error ---------------------------------------------


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "content"
    shutil.copytree(CONTENT_DIR, root, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return root


def _edit(path: Path, change):
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def _first_quiz(root: Path) -> Path:
    return sorted((root / "quizzes").glob("module-*.yaml"))[0]


def _errors(root):
    content, report = check_content(root)
    assert content is None
    return [str(e) for e in report.errors]


def test_unknown_module_in_calendar(tree):
    _edit(tree / "calendar.yaml", lambda d: d["weeks"][0]["modules"].append(77))
    assert _errors(tree) == ["calendar.yaml: week 1: module 77 does not exist"]


def test_answer_list_means_two_correct(tree):
    quiz = _first_quiz(tree)
    _edit(quiz, lambda d: d["questions"][0].update(answer=[0, 1]))
    (error,) = _errors(tree)
    assert error.startswith(f"quizzes/{quiz.name}: questions > m")
    assert "exactly one option must be correct" in error


def test_duplicate_option_text(tree):
    quiz = _first_quiz(tree)

    def dup(d):
        opts = d["questions"][1]["text"]["en"]["options"]
        opts[1] = opts[0]

    _edit(quiz, dup)
    (error,) = _errors(tree)
    assert "two options read the same" in error and "> text > en > options" in error


def test_text_over_telegram_limit(tree):
    quiz = _first_quiz(tree)
    _edit(quiz, lambda d: d["questions"][0]["text"]["lv"].update(question="x" * 301))
    (error,) = _errors(tree)
    assert "text > lv > question" in error and "300 characters" in error
    _edit(quiz, lambda d: d["questions"][0]["text"]["lv"].update(question="ok?"))
    _edit(quiz, lambda d: d["questions"][0]["text"]["en"]["options"].__setitem__(0, "o" * 101))
    assert "100 characters" in _errors(tree)[0]


def test_missing_english(tree):
    quiz = _first_quiz(tree)
    _edit(quiz, lambda d: d["questions"][2]["text"].pop("en"))
    (error,) = _errors(tree)
    assert "the English text is missing" in error


def test_duplicate_question_id(tree):
    quiz = _first_quiz(tree)

    def dup(d):
        d["questions"][1]["id"] = d["questions"][0]["id"]

    _edit(quiz, dup)
    (error,) = _errors(tree)
    assert "id already used" in error


def test_answer_out_of_range_and_option_count_mismatch(tree):
    quiz = _first_quiz(tree)
    _edit(quiz, lambda d: d["questions"][0].update(answer=9))
    assert "answer 9 is not an option" in _errors(tree)[0]
    _edit(quiz, lambda d: d["questions"][0].update(answer=0))
    _edit(quiz, lambda d: d["questions"][3]["text"]["lv"]["options"].pop())
    assert "different numbers of options" in _errors(tree)[0]


def test_bad_yaml_and_missing_file(tree):
    (tree / "calendar.yaml").write_text("weeks: [1, 2\n", encoding="utf-8")
    (tree / "privacy.yaml").unlink()
    errors = _errors(tree)
    assert any(e.startswith("calendar.yaml: line") and "not valid YAML" in e for e in errors)
    assert "privacy.yaml: file is missing" in errors


def test_module_profile_and_privacy_html(tree):
    _edit(tree / "modules.yaml", lambda d: d["modules"][0].update(profiles=["CECO", "XYZ"]))
    _edit(tree / "privacy.yaml", lambda d: d["lv"].update(notice="<b>Sveiki <script>"))
    errors = _errors(tree)
    assert any(e.startswith("modules.yaml: modules > module 1 > profiles") for e in errors)
    assert any("privacy.yaml: lv > notice: tag <script>" in e for e in errors)


def test_cli_check_exits_nonzero_with_report(tree):
    _edit(tree / "calendar.yaml", lambda d: d["weeks"][1]["modules"].append(99))
    result = subprocess.run(
        [sys.executable, "-m", "bot", "content", "check", "--dir", str(tree)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "error: calendar.yaml: week 2: module 99 does not exist" in result.stdout
