"""Who may do what: one filter that every protected handler uses.

A protected command is declared with `role_command`, which both guards the handler and
records the command, so the fallback can tell a learner "this is for trainers" rather
than "unknown command"."""

from __future__ import annotations

from typing import Any

from aiogram.filters import Command, Filter
from aiogram.types import TelegramObject

from storage.models import Role, User

# command name -> the roles allowed to use it
PROTECTED_COMMANDS: dict[str, frozenset[Role]] = {}


def allowed(user: User | None, roles: frozenset[Role]) -> bool:
    return user is not None and user.role in roles


class HasRole(Filter):
    def __init__(self, *roles: Role) -> None:
        self.roles = frozenset(roles)

    async def __call__(self, event: TelegramObject, db_user: User | None = None, **_: Any) -> bool:
        return allowed(db_user, self.roles)


def role_command(name: str, *roles: Role) -> tuple[Filter, Filter]:
    """Filters for a handler of `/name` that only the given roles may use."""
    PROTECTED_COMMANDS[name] = frozenset(roles)
    return Command(name), HasRole(*roles)
