"""Languages, gettext catalogues and the middleware that picks each update's locale."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiogram.types import TelegramObject, User
from aiogram.utils.i18n import I18n, I18nMiddleware

from storage import models

ROOT = Path(__file__).resolve().parent.parent
LOCALES_DIR = ROOT / "locales"
DOMAIN = "messages"
DEFAULT_LANGUAGE = "en"
# Order is the order of the /language buttons; names are each language's own.
LANGUAGES: dict[str, str] = {
    "en": "English",
    "lv": "Latviešu",
    "it": "Italiano",
    "bg": "Български",
    "el": "Ελληνικά",
}


def supported(code: str | None) -> str | None:
    """Map a Telegram language_code ("lv", "it-IT", "el-GR") to one we speak."""
    if not code:
        return None
    base = code.split("-")[0].split("_")[0].lower()
    return base if base in LANGUAGES else None


def resolve_language(stored: str | None, telegram_code: str | None) -> str:
    """The stored choice, else Telegram's language_code, else English."""
    return supported(stored) or supported(telegram_code) or DEFAULT_LANGUAGE


def make_i18n() -> I18n:
    missing = [
        lang
        for lang in LANGUAGES
        if not (LOCALES_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.mo").exists()
    ]
    if missing:
        raise RuntimeError(f"catalogues not compiled for {', '.join(missing)}: run `make locales`")
    return I18n(path=LOCALES_DIR, default_locale=DEFAULT_LANGUAGE, domain=DOMAIN)


class StoredLanguageMiddleware(I18nMiddleware):
    """Reads the language the user chose (loaded by the DB middleware as `db_user`)."""

    async def get_locale(self, event: TelegramObject, data: dict[str, Any]) -> str:
        db_user: models.User | None = data.get("db_user")
        tg_user: User | None = data.get("event_from_user")
        return resolve_language(
            db_user.language if db_user else None, tg_user.language_code if tg_user else None
        )
