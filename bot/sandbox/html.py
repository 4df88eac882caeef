"""Strict parser for Telegram's HTML parse mode, used by the sandbox Bot API server.

It mirrors what tdlib's ``parse_html`` does (same tag set, same attribute rules, error
texts modelled on Telegram's), so content that the sandbox accepts is content that real
Telegram accepts.  One deliberate difference: a ``&`` that does not start a valid entity
is an error here, while Telegram silently keeps it.  Unescaped ``&`` in bot text almost
always means user/trainer content was interpolated without ``html.escape`` — and the same
content containing ``<`` would then fail in production — so the sandbox flags it early.

Offsets and lengths of the produced entities are in UTF-16 code units, as in the Bot API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "ALLOWED_TAGS",
    "EntityParseError",
    "parse_html",
    "strip_formatted",
    "utf16_len",
]

#: Tags Telegram's HTML mode understands (lower case; tag names are case-insensitive).
ALLOWED_TAGS = frozenset(
    {
        "a",
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "span",
        "tg-spoiler",
        "tg-emoji",
        "tg-time",
        "code",
        "pre",
        "blockquote",
    }
)

# Simple tags map straight onto an entity type.
_SIMPLE_ENTITY = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "span": "spoiler",
    "tg-spoiler": "spoiler",
}

_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
# tdlib's is_space(); note it does not include Unicode spaces.
_SPACES = " \t\r\n\f\v\0"
# What Telegram trims from both ends of a message text / caption.
_STRIP = " \t\r\n\f\v"


class EntityParseError(ValueError):
    """The text is not valid Telegram HTML; ``str(exc)`` is the Telegram-style reason."""


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units (the unit of Bot API entity offsets)."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


@dataclass
class _Open:
    tag: str
    attrs: dict[str, str]
    offset: int  # UTF-16 offset in the output where the tag's content starts
    language: str | None = None  # set on <pre> by a nested <code class="language-x">


def _byte_offset(source: str, index: int) -> int:
    # Telegram reports byte offsets into the UTF-8 request text.
    return len(source[:index].encode("utf-8", "surrogatepass"))


def _decode_entity(source: str, index: int) -> tuple[str, int] | None:
    """Decode the HTML entity starting at ``source[index] == '&'``.

    Returns the decoded character and the index after the ``;``, or None when the text
    there is not an entity Telegram supports (the four named ones and numeric ones).
    """
    end = source.find(";", index + 1, index + 12)
    if end == -1:
        return None
    body = source[index + 1 : end]
    if body in _NAMED_ENTITIES:
        return _NAMED_ENTITIES[body], end + 1
    if len(body) < 2 or body[0] != "#":
        return None
    digits = body[1:]
    try:
        if digits[0] in "xX":
            if len(digits) < 2 or not all(c in "0123456789abcdefABCDEF" for c in digits[1:]):
                return None
            code = int(digits[1:], 16)
        else:
            if not digits.isascii() or not digits.isdigit():
                return None
            code = int(digits)
    except ValueError:
        return None
    # Surrogates and out-of-range code points are not characters.
    if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return None
    return chr(code), end + 1


def _read_attributes(source: str, i: int, tag: str, begin: int) -> tuple[dict[str, str], int]:
    """Parse attributes after the tag name; returns them and the index of the closing '>'."""
    n = len(source)
    attrs: dict[str, str] = {}
    while True:
        while i < n and source[i] in _SPACES:
            i += 1
        if i >= n:
            raise EntityParseError(
                f"Unclosed start tag at byte offset {_byte_offset(source, begin)}"
            )
        if source[i] == ">":
            return attrs, i
        name_start = i
        while i < n and source[i] not in _SPACES and source[i] not in "=>":
            i += 1
        name = source[name_start:i].lower()
        if not name:
            raise EntityParseError(
                f'Empty attribute name in the tag "{tag}" at byte offset '
                f"{_byte_offset(source, begin)}"
            )
        while i < n and source[i] in _SPACES:
            i += 1
        if i >= n or source[i] != "=":
            if tag == "blockquote" and name == "expandable":
                # The only valueless attribute Telegram accepts.
                attrs[name] = ""
                continue
            raise EntityParseError(
                f'Expected equal sign in declaration of an attribute of the tag "{tag}" '
                f"at byte offset {_byte_offset(source, begin)}"
            )
        i += 1
        while i < n and source[i] in _SPACES:
            i += 1
        if i >= n:
            raise EntityParseError(
                f'Unclosed start tag "{tag}" at byte offset {_byte_offset(source, begin)}'
            )
        if source[i] in "'\"":
            quote = source[i]
            i += 1
            value_chars: list[str] = []
            while i < n and source[i] != quote:
                if source[i] == "&":
                    decoded = _decode_entity(source, i)
                    if decoded is not None:
                        value_chars.append(decoded[0])
                        i = decoded[1]
                        continue
                # Inside attribute values Telegram keeps a stray '&' literally (URLs with
                # query strings); the sandbox does too.
                value_chars.append(source[i])
                i += 1
            if i >= n:
                raise EntityParseError(
                    f"Unclosed start tag at byte offset {_byte_offset(source, begin)}"
                )
            i += 1  # closing quote
            value = "".join(value_chars)
        else:
            # An unquoted "name token": letters, digits, '.', '-'.
            token_start = i
            while i < n and ((source[i].isascii() and source[i].isalnum()) or source[i] in ".-"):
                i += 1
            if i >= n or (source[i] not in _SPACES and source[i] != ">"):
                raise EntityParseError(
                    f"Unexpected end of name token at byte offset {_byte_offset(source, token_start)}"
                )
            value = source[token_start:i].lower()
        attrs.setdefault(name, value)


def _entity_for(open_tag: _Open, length: int, content: str) -> dict[str, Any] | None:
    """Build the Bot API MessageEntity for a closed tag (None = no entity)."""
    tag = open_tag.tag
    base: dict[str, Any] = {"offset": open_tag.offset, "length": length}
    if tag in _SIMPLE_ENTITY:
        return {"type": _SIMPLE_ENTITY[tag], **base}
    if tag == "a":
        # Like Telegram, a link without href points at its own text.
        url = open_tag.attrs.get("href", "") or content
        if url.startswith("tg://user?id="):
            user_id = url.removeprefix("tg://user?id=")
            if user_id.isdigit():
                return {
                    "type": "text_mention",
                    **base,
                    "user": {"id": int(user_id), "is_bot": False, "first_name": "User"},
                }
        if not url.strip():
            # Telegram silently drops links it cannot use.
            return None
        return {"type": "text_link", **base, "url": url}
    if tag == "code":
        return {"type": "code", **base}
    if tag == "pre":
        entity: dict[str, Any] = {"type": "pre", **base}
        if open_tag.language:
            entity["language"] = open_tag.language
        return entity
    if tag == "blockquote":
        kind = "expandable_blockquote" if "expandable" in open_tag.attrs else "blockquote"
        return {"type": kind, **base}
    if tag == "tg-emoji":
        return {"type": "custom_emoji", **base, "custom_emoji_id": open_tag.attrs["emoji-id"]}
    if tag == "tg-time":
        entity = {"type": "date_time", **base, "unix_time": int(open_tag.attrs["unix"])}
        if open_tag.attrs.get("format"):
            entity["date_time_format"] = open_tag.attrs["format"]
        return entity
    return None  # pragma: no cover - ALLOWED_TAGS and this function are kept in sync


def _check_start_tag(source: str, tag: str, attrs: dict[str, str], begin: int) -> None:
    if tag == "span" and attrs.get("class") != "tg-spoiler":
        raise EntityParseError(
            f'Tag "span" must have class "tg-spoiler" at byte offset {_byte_offset(source, begin)}'
        )
    if tag == "tg-emoji" and not attrs.get("emoji-id", "").isdigit():
        raise EntityParseError(
            f'Tag "tg-emoji" must have a numeric "emoji-id" attribute at byte offset '
            f"{_byte_offset(source, begin)}"
        )
    if tag == "tg-time" and not attrs.get("unix", "").isdigit():
        raise EntityParseError(
            f'Tag "tg-time" must have a numeric "unix" attribute at byte offset '
            f"{_byte_offset(source, begin)}"
        )


def parse_html(source: str) -> tuple[str, list[dict[str, Any]]]:
    """Parse Telegram HTML into plain text plus Bot API entity dicts.

    Raises EntityParseError with a Telegram-like reason ("Unsupported start tag ...",
    "Can't find end tag corresponding to start tag ...", ...) on invalid input.
    """
    out: list[str] = []
    u16 = 0  # UTF-16 length of everything in `out`
    out_len = 0  # code-point length of everything in `out` (index into the joined text)
    stack: list[tuple[_Open, int]] = []  # open tag + out_len at its start
    entities: list[dict[str, Any]] = []
    n = len(source)
    i = 0

    def emit(chunk: str) -> None:
        nonlocal u16, out_len
        out.append(chunk)
        u16 += utf16_len(chunk)
        out_len += len(chunk)

    while i < n:
        ch = source[i]
        if ch == "&":
            decoded = _decode_entity(source, i)
            if decoded is None:
                raise EntityParseError(
                    f"Character '&' at byte offset {_byte_offset(source, i)} is not the start "
                    "of an HTML entity; escape it as &amp; (the sandbox is stricter than "
                    "Telegram here)"
                )
            emit(decoded[0])
            i = decoded[1]
            continue
        if ch != "<":
            # Copy a run of plain characters at once.
            j = i + 1
            while j < n and source[j] not in "&<":
                j += 1
            emit(source[i:j])
            i = j
            continue

        begin = i
        i += 1
        if i < n and source[i] == "/":
            # End tag.
            if not stack:
                raise EntityParseError(
                    f"Unexpected end tag at byte offset {_byte_offset(source, begin)}"
                )
            i += 1
            name_start = i
            while i < n and source[i] not in _SPACES and source[i] != ">":
                i += 1
            end_name = source[name_start:i].lower()
            while i < n and source[i] in _SPACES:
                i += 1
            if i >= n or source[i] != ">":
                raise EntityParseError(
                    f"Unclosed end tag at byte offset {_byte_offset(source, begin)}"
                )
            i += 1
            open_tag, start_index = stack[-1]
            if end_name and end_name != open_tag.tag:
                raise EntityParseError(
                    f"Unmatched end tag at byte offset {_byte_offset(source, begin)}, "
                    f'expected "</{open_tag.tag}>", found "</{end_name}>"'
                )
            stack.pop()
            length = u16 - open_tag.offset
            parent = stack[-1][0] if stack else None
            if open_tag.tag == "code" and parent is not None and parent.tag == "pre":
                # <pre><code class="language-x">: the code tag only names the language.
                lang = open_tag.attrs.get("class", "")
                if lang.startswith("language-") and len(lang) > len("language-"):
                    parent.language = lang.removeprefix("language-")
                continue
            if length > 0:
                # The tag's own text is only needed for <a> without href; join lazily.
                content = "".join(out)[start_index:] if open_tag.tag == "a" else ""
                entity = _entity_for(open_tag, length, content)
                if entity is not None:
                    entities.append(entity)
            continue

        # Start tag: the name runs up to a space or '>'.
        while i < n and source[i] not in _SPACES and source[i] != ">":
            i += 1
        if i >= n:
            raise EntityParseError(
                f"Unclosed start tag at byte offset {_byte_offset(source, begin)}"
            )
        tag = source[begin + 1 : i].lower()
        if tag not in ALLOWED_TAGS:
            raise EntityParseError(
                f'Unsupported start tag "{tag}" at byte offset {_byte_offset(source, begin)}'
            )
        attrs, i = _read_attributes(source, i, tag, begin)
        i += 1  # the '>'
        _check_start_tag(source, tag, attrs, begin)
        stack.append((_Open(tag=tag, attrs=attrs, offset=u16), out_len))

    if stack:
        raise EntityParseError(
            f'Can\'t find end tag corresponding to start tag "{stack[-1][0].tag}"'
        )
    # Telegram lists entities by offset, outer (longer) entities first.
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


def strip_formatted(text: str, entities: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Trim leading/trailing whitespace like Telegram does, shifting entities to match."""
    stripped = text.strip(_STRIP)
    if stripped == text:
        return text, entities
    lead = len(text) - len(text.lstrip(_STRIP))
    shift = utf16_len(text[:lead])
    total = utf16_len(stripped)
    result: list[dict[str, Any]] = []
    for entity in entities:
        start = max(0, int(entity["offset"]) - shift)
        end = min(total, int(entity["offset"]) + int(entity["length"]) - shift)
        if end > start:
            result.append({**entity, "offset": start, "length": end - start})
    return stripped, result
