"""Developer tool: fill catalogue entries from a YAML file of translations.

    python tools/po_fill.py translations.yaml [--lang lv]

The YAML maps each English msgid to {lv: ..., it: ..., bg: ..., el: ...}. English
entries are filled with the msgid itself. Existing translations are overwritten only
when the YAML gives one. Fuzzy flags are cleared for the entries it fills."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml
from babel.messages.pofile import read_po, write_po

LOCALES = Path(__file__).resolve().parent.parent / "locales"


def main(path: str, only: str | None = None) -> int:
    table: dict[str, dict[str, str]] = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    for po_path in sorted(LOCALES.glob("*/LC_MESSAGES/messages.po")):
        lang = po_path.parent.parent.name
        if only is not None and lang != only:
            continue
        with po_path.open("rb") as fh:
            catalog = read_po(fh, locale=lang)
        for message in catalog:
            if not message.id:
                continue
            key = message.id if isinstance(message.id, str) else message.id[0]
            if lang == "en":
                message.string = message.id if isinstance(message.id, str) else tuple(message.id)
                message.flags.discard("fuzzy")
            elif key in table and lang in table[key]:
                message.string = table[key][lang]
                message.flags.discard("fuzzy")
        with po_path.open("wb") as fh:
            write_po(fh, catalog, width=0, omit_header=False, no_location=True)
    return 0


if __name__ == "__main__":
    args = sys.argv[1:]
    lang = args[args.index("--lang") + 1] if "--lang" in args else None
    raise SystemExit(main(args[0], lang))
