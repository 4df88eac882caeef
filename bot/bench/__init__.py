"""`biblio-bot bench NAME`: performance figures, measured side by side in one run.

Each benchmark is a module here with `async def run(quick: bool) -> dict[str, Any]`
(one JSON object of figures) and `def describe(result) -> str` (the human-readable
report). `bench all` runs them one after another."""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from typing import Any

BENCHES: dict[str, str] = {
    "delivery": "bot.bench.delivery",
    "quiz": "bot.bench.quiz",
}


def available() -> list[str]:
    found = []
    for name, module in BENCHES.items():
        try:
            importlib.import_module(module)
        except ModuleNotFoundError:
            continue
        found.append(name)
    return found


def run(name: str, *, as_json: bool, quick: bool) -> int:
    names = available() if name == "all" else [name]
    for bench in names:
        if bench not in BENCHES:
            print(
                f"unknown benchmark {bench!r}; choose from: {', '.join(available())}, all",
                file=sys.stderr,
            )
            return 2
        module: Any = importlib.import_module(BENCHES[bench])
        result: dict[str, Any] = asyncio.run(module.run(quick=quick))
        if as_json:
            print(json.dumps(result if name != "all" else {bench: result}))
        else:
            print(f"== {bench}")
            print(module.describe(result))
    return 0
