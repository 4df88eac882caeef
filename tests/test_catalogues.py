"""Catalogues are complete: every string in the code has a translation in every language,
none fuzzy, and each keeps the English placeholders and tags."""

import re
import subprocess
import sys

import pytest
from babel.messages.pofile import read_po

from bot.i18n import LANGUAGES, LOCALES_DIR

ROOT = LOCALES_DIR.parent
PLACEHOLDER = re.compile(r"\{[a-z_0-9]*\}|%\(\w+\)[sd]|<[^>]+>")


def _catalog(lang):
    with (LOCALES_DIR / lang / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        return read_po(fh, locale=lang)


def _ids(catalog):
    return {m.id if isinstance(m.id, str) else m.id[0] for m in catalog if m.id}


@pytest.fixture(scope="module")
def code_msgids(tmp_path_factory):
    pot = tmp_path_factory.mktemp("pot") / "messages.pot"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "babel.messages.frontend",
            "extract",
            "--no-location",
            "-k",
            "_",
            "-k",
            "__",
            "-k",
            "N_",
            "-o",
            str(pot),
            "bot",
            "handlers",
            "scheduler",
            "storage",
            "content",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    with pot.open("rb") as fh:
        return _ids(read_po(fh))


@pytest.mark.parametrize("lang", list(LANGUAGES))
def test_every_code_string_is_in_the_catalogue(lang, code_msgids):
    missing = code_msgids - _ids(_catalog(lang))
    assert not missing, f"{lang}: run `make extract` and translate: {sorted(missing)[:5]}"


@pytest.mark.parametrize("lang", list(LANGUAGES))
def test_translated_not_fuzzy_same_placeholders(lang):
    problems = []
    for message in _catalog(lang):
        if not message.id:
            continue
        ids = [message.id] if isinstance(message.id, str) else list(message.id)
        strings = [message.string] if isinstance(message.string, str) else list(message.string)
        if message.fuzzy:
            problems.append(f"fuzzy: {ids[0]!r}")
        for s in strings:
            if not s:
                problems.append(f"untranslated: {ids[0]!r}")
            elif sorted(PLACEHOLDER.findall(s)) != sorted(PLACEHOLDER.findall(ids[0])):
                problems.append(f"placeholders differ: {ids[0]!r} -> {s!r}")
    assert not problems, "\n".join(problems)


def test_compiled_catalogues_translate():
    from aiogram.utils.i18n import I18n

    i18n = I18n(path=LOCALES_DIR, domain="messages")
    assert set(i18n.available_locales) >= set(LANGUAGES)
    assert i18n.gettext("Choose your language:", locale="lv") == "Izvēlieties valodu:"
    assert i18n.gettext("Choose your language:", locale="el") != "Choose your language:"
