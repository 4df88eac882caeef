"""The command menu: one list serves setMyCommands (per language) and /help."""

from __future__ import annotations

from dataclasses import dataclass

from aiogram import Bot
from aiogram.types import BotCommand, BotCommandScopeDefault
from aiogram.utils.i18n import I18n

from bot.i18n import LANGUAGES


@dataclass(frozen=True)
class Command:
    name: str
    description: str  # an English msgid, translated per language

    def translated(self, i18n: I18n, locale: str) -> str:
        return i18n.gettext(self.description, locale=locale)


def _(text: str) -> str:
    """Marks a msgid for extraction; translated later, per language."""
    return text


LEARNER_COMMANDS: tuple[Command, ...] = (
    Command("start", _("Start or continue")),
    Command("help", _("What I can do")),
    Command("language", _("Change the language")),
    Command("privacy", _("What I keep about you and why")),
    Command("quiz", _("Practice quizzes of your modules")),
    Command("progress", _("Your scores and progress")),
    Command("checkin", _("Write your work-based learning reflection")),
    Command("wbl", _("Your placement, hours and reflections")),
    Command("mentor_link", _("A link for your workplace mentor")),
    Command("schedule", _("This week's modules and the next webinar")),
    Command("calendar", _("Your whole schedule as a calendar file")),
    Command("settings", _("Notifications and quiet hours")),
)


async def set_command_menus(bot: Bot, i18n: I18n) -> None:
    """One menu per language, plus the default for any other language (English)."""
    for locale in (None, *LANGUAGES):
        await bot.set_my_commands(
            [
                BotCommand(command=c.name, description=c.translated(i18n, locale or "en"))
                for c in LEARNER_COMMANDS
            ],
            scope=BotCommandScopeDefault(),
            language_code=locale,
        )
