"""Imports every feature module once, so that their outbox renderers and planners are
registered in any process (bot, worker, planner, benchmarks)."""

from __future__ import annotations

import importlib

FEATURE_MODULES = (
    "bot.services.releases",
    "bot.services.quiz",
    "bot.services.wbl",
    "bot.services.trainer_tools",
    "bot.services.retention",
)


def load_features() -> None:
    for name in FEATURE_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a feature that exists but fails to import is a bug
                raise
