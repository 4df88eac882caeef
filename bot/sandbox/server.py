"""A local, in-process Telegram Bot API server for tests, previews and benchmarks.

The bot under test talks to it unmodified, over real HTTP, through aiogram's own
``AiohttpSession`` pointed at ``TelegramAPIServer.from_base(server.base_url)``.  The server
behaves like Telegram where it matters for a bot: the same URLs, the same request encodings
(multipart/form-data with JSON-encoded complex values, urlencoded, JSON, query string), the
same response envelope and error texts, strict HTML parsing, keyboard/poll/caption limits,
flood control (429 with ``retry_after``), blocked users (403), long polling and webhooks.

Tests (or a terminal sandbox) act as users through :class:`FakeUser` — in process — or
through the JSON control interface under ``/_control/`` from another process.

Everything runs on one asyncio event loop; API handlers do not await between validating a
request and applying it, so there are no races between concurrent requests.

Typical use::

    server = BotAPIServer(per_chat_rate=1)
    await server.start()
    bot = Bot(server.token, session=AiohttpSession(
        api=TelegramAPIServer.from_base(server.base_url)))
    ...  # run the dispatcher
    user = server.user(1001, language_code="it")
    await user.start()
    reply = await user.next_message()   # a SentMessage; edits arrive with edited=True
    await user.press("Next")            # an inline button, by text or callback_data

Control interface (JSON; loopback clients only unless allow_remote_control=True)::

    POST /_control/users/{id}                {"first_name"?, "language_code"?, ...}
    POST /_control/users/{id}/send           {"text": ...}
    POST /_control/users/{id}/start          {"payload"?: ...}
    POST /_control/users/{id}/press          {"data" or "text", "message_id"?}
    POST /_control/users/{id}/answer_poll    {"option_ids": [...], "poll_id"?}
    POST /_control/users/{id}/edit           {"message_id", "text"}
    POST /_control/users/{id}/send_photo|send_document|send_voice|send_sticker
    POST /_control/users/{id}/block | /unblock
    GET  /_control/users/{id}/messages?after=N&timeout=S[&bytes=1]   (long-polls)
    GET  /_control/stats  |  GET /_control/calls?after=N
    POST /_control/updates (a raw update)  |  /rate_limits  |  /fail_next
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import dataclasses
import ipaddress
import json
import logging
import math
import mimetypes
import re
import secrets
import struct
import time
import zlib
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp
from aiohttp import BodyPartReader, MultipartReader, web

from .html import EntityParseError, parse_html, strip_formatted, utf16_len

__all__ = [
    "ApiCall",
    "ApiError",
    "BotAPIServer",
    "CallbackAnswer",
    "FakeUser",
    "SentMessage",
    "StoredFile",
]

logger = logging.getLogger(__name__)

JSONDict = dict[str, Any]

# Telegram's limits (https://core.telegram.org/bots/api, https://limits.tginfo.me).
MAX_TEXT_LENGTH: Final = 4096
MAX_CAPTION_LENGTH: Final = 1024
MAX_CALLBACK_DATA_BYTES: Final = 64
MAX_CALLBACK_ANSWER_LENGTH: Final = 200
MAX_INLINE_BUTTONS: Final = 100
MAX_UPLOAD_BYTES: Final = 50 * 1024 * 1024
MAX_PHOTO_BYTES: Final = 10 * 1024 * 1024
MAX_GETFILE_BYTES: Final = 20 * 1024 * 1024
MAX_POLL_QUESTION: Final = 300
MAX_POLL_OPTION: Final = 100
MIN_POLL_OPTIONS: Final = 2
MAX_POLL_OPTIONS: Final = 12
MAX_POLL_EXPLANATION: Final = 200
MAX_COMMANDS: Final = 100

#: Methods that create a message: they count against both flood limits.
MESSAGE_METHODS: Final = frozenset(
    {
        "sendMessage",
        "sendPoll",
        "sendDocument",
        "sendPhoto",
        "sendVoice",
        "sendAudio",
        "sendVideo",
        "sendAnimation",
    }
)
#: Methods that change a message: they count against the per-chat limit only.
EDIT_METHODS: Final = frozenset({"editMessageText", "editMessageReplyMarkup", "editMessageCaption"})

#: Update kinds aiogram 3.31 (Bot API 10.3) knows; the first of these keys names an update.
UPDATE_TYPES: Final = (
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "business_connection",
    "business_message",
    "edited_business_message",
    "deleted_business_messages",
    "guest_message",
    "message_reaction",
    "message_reaction_count",
    "inline_query",
    "chosen_inline_result",
    "callback_query",
    "shipping_query",
    "pre_checkout_query",
    "purchased_paid_media",
    "poll",
    "poll_answer",
    "my_chat_member",
    "chat_member",
    "chat_join_request",
    "chat_boost",
    "removed_chat_boost",
    "managed_bot",
    "subscription",
    "stopped_message_generation",
)
# What Telegram sends when allowed_updates was never set (or set to []).
_DEFAULT_EXCLUDED_UPDATES: Final = frozenset(
    {"chat_member", "message_reaction", "message_reaction_count"}
)

_INLINE_BUTTON_ACTIONS: Final = (
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)
_CHAT_ACTIONS: Final = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
_COMMAND_SCOPES: Final = frozenset(
    {
        "default",
        "all_private_chats",
        "all_group_chats",
        "all_chat_administrators",
        "chat",
        "chat_administrators",
        "chat_member",
    }
)
_MEDIA_KINDS: Final = frozenset({"document", "photo", "voice", "audio", "video", "animation"})

# Form fields that are plain strings even when they look like JSON ("123", "true", "[x]").
# aiogram sends str values raw and JSON-encodes everything else, so for other fields a
# JSON-looking value is decoded.
_STRING_FIELDS: Final = frozenset(
    {
        "text",
        "caption",
        "question",
        "explanation",
        "description",
        "short_description",
        "name",
        "title",
        "parse_mode",
        "explanation_parse_mode",
        "question_parse_mode",
        "description_parse_mode",
        "callback_query_id",
        "inline_message_id",
        "business_connection_id",
        "message_effect_id",
        "url",
        "secret_token",
        "ip_address",
        "language_code",
        "action",
        "file_id",
        "emoji",
        "performer",
        "document",
        "photo",
        "voice",
        "audio",
        "video",
        "animation",
        "sticker",
        "thumbnail",
    }
)
_NUMBER_RE: Final = re.compile(r"-?\d+(\.\d+)?([eE][+-]?\d+)?")
_COMMAND_RE: Final = re.compile(r"[a-z0-9_]{1,32}")
_SECRET_TOKEN_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,256}")
_SAFE_NAME_RE: Final = re.compile(r"[^A-Za-z0-9._-]+")

_FORBIDDEN_BLOCKED: Final = "Forbidden: bot was blocked by the user"
_CHAT_NOT_FOUND: Final = "Bad Request: chat not found"
_QUERY_TOO_OLD: Final = (
    "Bad Request: query is too old and response timeout expired or query ID is invalid"
)
_NOT_MODIFIED: Final = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)


def _make_png(width: int, height: int) -> bytes:
    """A valid, tiny RGB PNG (the default photo a FakeUser sends)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    raw = b"".join(b"\x00" + b"\xcc\x88\x44" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


#: The photo FakeUser.send_photo sends by default (8x8 PNG).
DEFAULT_PHOTO: Final = _make_png(8, 8)
# Stand-ins for user media the sandbox never decodes.
_FAKE_VOICE: Final = b"OggS" + bytes(60)
_FAKE_STICKER: Final = b"RIFF\x24\x00\x00\x00WEBPVP8 " + bytes(24)


def _image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG/GIF/JPEG/WebP image, or None if it is not one of those."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return int(width), int(height)
    if data.startswith(b"\xff\xd8"):
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                height, width = struct.unpack(">HH", data[i + 5 : i + 9])
                return int(width), int(height)
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                i += 2
                continue
            (segment,) = struct.unpack(">H", data[i + 2 : i + 4])
            i += 2 + int(segment)
        return None
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
        if data[12:16] == b"VP8X":
            return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(
                data[27:30], "little"
            )
        if data[12:16] == b"VP8L":
            bits = int.from_bytes(data[21:25], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if data[12:16] == b"VP8 ":
            width, height = struct.unpack("<HH", data[26:30])
            return int(width) & 0x3FFF, int(height) & 0x3FFF
    return None


class ApiError(Exception):
    """A Bot API error response: ``{"ok": false, "error_code": status, ...}``."""

    def __init__(self, status: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after


# --------------------------------------------------------------------------- records


@dataclass
class ApiCall:
    """One Bot API request as the server saw it."""

    method: str
    params: JSONDict
    time: float  # time.time() when the request arrived
    status: int = 0  # HTTP status of the answer; 0 while still running (a long poll)
    description: str | None = None  # the error description, for failed calls
    result: Any = field(default=None, repr=False)
    files: dict[str, tuple[str, int]] = field(default_factory=dict)  # part -> (name, size)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass
class SentMessage:
    """A message the bot created, as stored (live) or as delivered by ``next_message``.

    ``text`` is the plain text after entity parsing — the caption for media, the question
    for polls; ``raw_text`` is what the bot sent (the HTML source when parse_mode=HTML).
    ``message`` is the Bot API Message object in its current state.
    """

    chat_id: int
    message_id: int
    kind: str  # "text", "poll", "document", "photo", "voice", "audio", "video", "animation"
    method: str
    time: float
    text: str | None = None
    raw_text: str | None = None
    parse_mode: str | None = None
    entities: list[JSONDict] = field(default_factory=list, repr=False)
    reply_markup: JSONDict | None = None
    poll: JSONDict | None = None
    file_id: str | None = None
    file_name: str | None = None
    file_bytes: bytes | None = field(default=None, repr=False)
    mime_type: str | None = None
    edited: bool = False  # on a delivered item: this is an edit; on the stored one: ever edited
    edit_count: int = 0
    deleted: bool = False
    message: JSONDict = field(default_factory=dict, repr=False)

    @property
    def caption(self) -> str | None:
        return self.text if self.kind in _MEDIA_KINDS else None

    @property
    def document_name(self) -> str | None:
        return self.file_name

    @property
    def document_bytes(self) -> bytes | None:
        return self.file_bytes

    @property
    def buttons(self) -> list[JSONDict]:
        """The inline keyboard's buttons, row by row, flattened."""
        rows = (self.reply_markup or {}).get("inline_keyboard") or []
        return [button for row in rows for button in row]

    def button_texts(self) -> list[str]:
        return [str(button.get("text", "")) for button in self.buttons]

    def find_button(self, text_or_data: str) -> JSONDict | None:
        """The inline button whose text or callback_data equals ``text_or_data``."""
        for button in self.buttons:
            if button.get("text") == text_or_data or button.get("callback_data") == text_or_data:
                return button
        return None

    def summary(self) -> str:
        label = f"#{self.message_id} {self.kind}"
        if self.edited:
            label += " (edited)"
        text = (self.text or "").replace("\n", " ")
        if len(text) > 70:
            text = text[:67] + "..."
        parts = [f"{label}: {text!r}"]
        if self.file_name:
            parts.append(f"file={self.file_name!r}")
        if self.buttons:
            parts.append(f"buttons={self.button_texts()}")
        return " ".join(parts)

    def to_dict(self, *, include_bytes: bool = False) -> JSONDict:
        """JSON-safe form (for the control interface); bytes as base64 when asked."""
        data: JSONDict = {
            "chat_id": self.chat_id,
            "message_id": self.message_id,
            "kind": self.kind,
            "method": self.method,
            "time": self.time,
            "text": self.text,
            "raw_text": self.raw_text,
            "parse_mode": self.parse_mode,
            "entities": self.entities,
            "reply_markup": self.reply_markup,
            "poll": self.poll,
            "file_id": self.file_id,
            "file_name": self.file_name,
            "file_size": len(self.file_bytes) if self.file_bytes is not None else None,
            "mime_type": self.mime_type,
            "edited": self.edited,
            "edit_count": self.edit_count,
            "deleted": self.deleted,
            "message": self.message,
        }
        if include_bytes and self.file_bytes is not None:
            data["file_base64"] = base64.b64encode(self.file_bytes).decode("ascii")
        return data


@dataclass
class CallbackAnswer:
    """An answerCallbackQuery call for a FakeUser's button press."""

    query_id: str
    data: str | None
    text: str | None
    show_alert: bool
    url: str | None
    cache_time: int | None
    time: float


@dataclass
class StoredFile:
    """A file known to the server (uploaded by the bot or sent by a FakeUser)."""

    file_id: str
    file_unique_id: str
    file_path: str
    kind: str
    data: bytes = field(repr=False)
    file_name: str | None = None
    mime_type: str | None = None

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass
class _Upload:
    filename: str
    data: bytes
    content_type: str | None


@dataclass(eq=False)  # compared by identity: the same update may be injected twice
class _Pending:
    """A queued, unconfirmed update. ``update_id`` orders it even if the payload is junk."""

    update_id: int
    payload: JSONDict


@dataclass
class _CallbackQuery:
    query_id: str
    user_id: int
    data: str | None
    message_id: int
    answered: bool = False


@dataclass
class _Poll:
    poll_id: str
    chat_id: int
    message_id: int
    question: str
    question_entities: list[JSONDict]
    options: list[str]
    poll_type: str
    is_anonymous: bool
    allows_multiple_answers: bool
    allows_revoting: bool
    correct_option_ids: list[int]
    explanation: str | None
    explanation_entities: list[JSONDict]
    open_period: int | None
    close_date: int | None
    is_closed: bool = False
    votes: dict[int, list[int]] = field(default_factory=dict)

    def closed(self) -> bool:
        return self.is_closed or (self.close_date is not None and time.time() >= self.close_date)

    def to_dict(self) -> JSONDict:
        counts = Counter(option for chosen in self.votes.values() for option in chosen)
        data: JSONDict = {
            "id": self.poll_id,
            "question": self.question,
            "options": [
                {"persistent_id": str(index), "text": text, "voter_count": counts[index]}
                for index, text in enumerate(self.options)
            ],
            "total_voter_count": len(self.votes),
            "is_closed": self.closed(),
            "is_anonymous": self.is_anonymous,
            "type": self.poll_type,
            "allows_multiple_answers": self.allows_multiple_answers,
            "allows_revoting": self.allows_revoting,
            "members_only": False,
        }
        if self.question_entities:
            data["question_entities"] = self.question_entities
        if self.poll_type == "quiz":
            data["correct_option_ids"] = list(self.correct_option_ids)
            data["correct_option_id"] = self.correct_option_ids[0]  # pre-9.6 clients
            if self.explanation:
                data["explanation"] = self.explanation
                if self.explanation_entities:
                    data["explanation_entities"] = self.explanation_entities
        if self.open_period is not None:
            data["open_period"] = self.open_period
        if self.close_date is not None:
            data["close_date"] = self.close_date
        return data


class _Signal:
    """Wake every waiter when something changed; waiters re-check their condition."""

    def __init__(self) -> None:
        self._event: asyncio.Event | None = None

    def notify(self) -> None:
        if self._event is not None:
            self._event.set()
            self._event = None

    async def wait(self, timeout: float) -> None:
        if self._event is None:
            self._event = asyncio.Event()
        event = self._event
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), max(0.0, timeout))


class _RateLimiter:
    """Telegram-style flood control.

    Global: a sliding window — at most ``max(1, floor(rate))`` sends per ``that/rate``
    seconds, which for integer rates is exactly "N per any one second".
    Per chat: a minimum spacing of ``1/rate`` seconds between sends to one chat.
    """

    def __init__(self, global_rate: float | None, per_chat_rate: float | None) -> None:
        self.global_rate: float | None = None
        self.per_chat_rate: float | None = None
        self._window: deque[float] = deque()
        self._last: dict[int, float] = {}
        self.configure(global_rate, per_chat_rate)

    def configure(self, global_rate: float | None, per_chat_rate: float | None) -> None:
        for name, value in (("global_rate", global_rate), ("per_chat_rate", per_chat_rate)):
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be positive or None, got {value!r}")
        self.global_rate = global_rate
        self.per_chat_rate = per_chat_rate

    def acquire(self, chat_id: int, *, count_global: bool, now: float) -> float:
        """Take a slot and return 0, or return the seconds until one frees (taking none)."""
        wait = 0.0
        if count_global and self.global_rate is not None:
            capacity = max(1, math.floor(self.global_rate))
            window = capacity / self.global_rate
            while self._window and self._window[0] <= now - window:
                self._window.popleft()
            if len(self._window) >= capacity:
                wait = self._window[0] + window - now
        if self.per_chat_rate is not None:
            last = self._last.get(chat_id)
            spacing = 1.0 / self.per_chat_rate
            if last is not None and now - last < spacing:
                wait = max(wait, last + spacing - now)
        if wait > 0:
            return wait
        if count_global and self.global_rate is not None:
            self._window.append(now)
        if self.per_chat_rate is not None:
            self._last[chat_id] = now
        return 0.0


def _decode_form_value(name: str, raw: str) -> Any:
    """Form/query values: JSON-looking ones are decoded, except for plain-string fields."""
    if name in _STRING_FIELDS:
        return raw
    stripped = raw.strip()
    if not stripped:
        return raw
    if (
        stripped[0] in '{["'
        or stripped in ("true", "false", "null")
        or _NUMBER_RE.fullmatch(stripped)
    ):
        try:
            return json.loads(stripped)
        except ValueError:
            return raw
    return raw


class _Params:
    """Typed access to a request's parameters with Telegram-like errors."""

    def __init__(self, data: JSONDict, uploads: dict[str, _Upload]) -> None:
        self.data = data
        self.uploads = uploads

    def raw(self, name: str) -> Any:
        return self.data.get(name)

    def has(self, name: str) -> bool:
        value = self.data.get(name)
        return value is not None and value != ""

    def get_str(self, name: str) -> str | None:
        value = self.data.get(name)
        if value is None:
            return None
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (str, int, float)):
            return str(value)
        raise ApiError(400, f'Bad Request: field "{name}" must be of type String')

    def get_int(self, name: str) -> int | None:
        value = self.data.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, bool):
            raise ApiError(400, f'Bad Request: field "{name}" must be of type Integer')
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
            return int(value)
        raise ApiError(400, f'Bad Request: field "{name}" must be of type Integer')

    def get_bool(self, name: str, default: bool) -> bool:
        value = self.data.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, int):
            return value != 0
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
            return value.lower() in ("true", "1")
        raise ApiError(400, f'Bad Request: field "{name}" must be of type Boolean')

    def _json(self, name: str) -> Any:
        value = self.data.get(name)
        if isinstance(value, str):
            if not value.strip():
                return None
            try:
                return json.loads(value)
            except ValueError:
                raise ApiError(400, f"Bad Request: can't parse {name} JSON object") from None
        return value

    def get_obj(self, name: str) -> JSONDict | None:
        value = self._json(name)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise ApiError(400, f"Bad Request: can't parse {name} JSON object")
        return value

    def get_list(self, name: str) -> list[Any] | None:
        value = self._json(name)
        if value is None:
            return None
        if not isinstance(value, list):
            raise ApiError(400, f'Bad Request: field "{name}" must be an Array')
        return value


async def _read_part(part: BodyPartReader) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := await part.read_chunk(1 << 16):
        size += len(chunk)
        if size > MAX_UPLOAD_BYTES:
            raise ApiError(413, "Request Entity Too Large")
        chunks.append(chunk)
    return b"".join(chunks)


async def _read_multipart(
    reader: MultipartReader, params: JSONDict, uploads: dict[str, _Upload]
) -> None:
    """Fields into ``params`` (JSON-decoded), file parts into ``uploads``."""
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or not part.name:
            continue  # nested multipart or anonymous parts: Telegram ignores them too
        if part.filename is not None:
            data = await _read_part(part)
            uploads[part.name] = _Upload(part.filename, data, part.headers.get("Content-Type"))
        else:
            params[part.name] = _decode_form_value(part.name, await part.text())


async def _read_request(request: web.Request) -> tuple[JSONDict, dict[str, _Upload]]:
    """Parameters from the query string and the body, whatever encoding the client used."""
    params: JSONDict = {key: _decode_form_value(key, value) for key, value in request.query.items()}
    uploads: dict[str, _Upload] = {}
    if not request.body_exists:
        return params, uploads
    content_type = request.content_type
    if content_type == "multipart/form-data":
        await _read_multipart(await request.multipart(), params, uploads)
    elif content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            raise ApiError(400, "Bad Request: can't parse JSON request body") from None
        if not isinstance(body, dict):
            raise ApiError(400, "Bad Request: the JSON request body must be an object")
        params.update(body)
    elif content_type == "application/x-www-form-urlencoded":
        form = await request.post()
        for key, value in form.items():
            if isinstance(value, str):
                params[key] = _decode_form_value(key, value)
    return params, uploads


def _is_loopback(remote: str | None) -> bool:
    if not remote:
        return False
    try:
        return ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False


def _update_type(payload: JSONDict) -> str | None:
    for key in payload:
        if key in UPDATE_TYPES:
            return key
    return None


def _update_lane(payload: JSONDict) -> Hashable:
    """The chat (or user) an update belongs to: webhook deliveries keep per-lane order."""
    kind = _update_type(payload)
    body = payload.get(kind) if kind else None
    if isinstance(body, dict):
        for path in (("chat", "id"), ("message", "chat", "id"), ("from", "id"), ("user", "id")):
            node: Any = body
            for key in path:
                node = node.get(key) if isinstance(node, dict) else None
            if isinstance(node, int):
                return node
    return "__global__"


def _safe_name(name: str) -> str:
    cleaned = _SAFE_NAME_RE.sub("_", name).strip("._") or "file"
    return cleaned[-80:]


# --------------------------------------------------------------------------- users


class FakeUser:
    """A Telegram user in a private chat with the bot, driven by a test."""

    def __init__(
        self,
        server: BotAPIServer,
        user_id: int,
        *,
        first_name: str,
        last_name: str | None,
        username: str | None,
        language_code: str | None,
    ) -> None:
        self.server = server
        self.user_id = user_id
        # Mutable on purpose: change language_code mid-test and later updates carry it.
        self.first_name = first_name
        self.last_name = last_name
        self.username = username
        self.language_code = language_code
        self.known = False  # has ever sent an update: the bot may write to this chat
        self.blocked = False
        #: The reply keyboard currently shown to the user (None after remove_keyboard).
        self.reply_keyboard: JSONDict | None = None
        self._next_message_id = 1
        self._user_messages: dict[int, JSONDict] = {}
        self._cursor = 0  # next index of the chat's feed that next_message returns
        self._answers: list[CallbackAnswer] = []

    def __repr__(self) -> str:
        return f"FakeUser({self.user_id}, {self.first_name!r}, lang={self.language_code!r})"

    # ----- shapes

    @property
    def chat_id(self) -> int:
        return self.user_id

    def user_dict(self) -> JSONDict:
        """The Bot API User object for this user."""
        data: JSONDict = {"id": self.user_id, "is_bot": False, "first_name": self.first_name}
        if self.last_name is not None:
            data["last_name"] = self.last_name
        if self.username is not None:
            data["username"] = self.username
        if self.language_code is not None:
            data["language_code"] = self.language_code
        return data

    def chat_dict(self) -> JSONDict:
        """The Bot API Chat object of the private chat with this user."""
        data: JSONDict = {"id": self.user_id, "type": "private", "first_name": self.first_name}
        if self.last_name is not None:
            data["last_name"] = self.last_name
        if self.username is not None:
            data["username"] = self.username
        return data

    def _new_message_id(self) -> int:
        message_id = self._next_message_id
        self._next_message_id += 1
        return message_id

    def _message_dict(self, message_id: int) -> JSONDict | None:
        """A message of this chat, from either side, as a Message object."""
        if message_id in self._user_messages:
            return self._user_messages[message_id]
        sent = self.server._bot_messages.get((self.user_id, message_id))
        if sent is not None and not sent.deleted:
            return sent.message
        return None

    async def _post(self, content: JSONDict, *, reply_to: int | None = None) -> int:
        """Queue a `message` update from this user; returns its message_id."""
        if self.blocked:
            # Writing to a bot you blocked restarts it, as in the Telegram apps.
            self.server.unblock(self.user_id)
        self.known = True
        message: JSONDict = {
            "message_id": self._new_message_id(),
            "from": self.user_dict(),
            "chat": self.chat_dict(),
            "date": int(time.time()),
        }
        if reply_to is not None:
            replied = self._message_dict(reply_to)
            if replied is None:
                raise LookupError(f"no message {reply_to} in the chat with user {self.user_id}")
            message["reply_to_message"] = {
                k: v for k, v in replied.items() if k != "reply_to_message"
            }
        message.update(content)
        self._user_messages[message["message_id"]] = message
        self.server._queue_update({"message": message})
        await asyncio.sleep(0)
        return int(message["message_id"])

    # ----- acting

    async def send(self, text: str, *, reply_to: int | None = None) -> int:
        """A private text message; "/cmd args" gets a bot_command entity. Returns its id."""
        content: JSONDict = {"text": text}
        if text.startswith("/") and len(text) > 1 and not text[1].isspace():
            command = text.split(maxsplit=1)[0]
            content["entities"] = [
                {"type": "bot_command", "offset": 0, "length": utf16_len(command)}
            ]
        return await self._post(content, reply_to=reply_to)

    async def start(self, payload: str | None = None) -> int:
        """/start, with a deep-link payload when given."""
        return await self.send(f"/start {payload}" if payload else "/start")

    async def send_photo(self, data: bytes = DEFAULT_PHOTO, caption: str | None = None) -> int:
        size = _image_size(data) or (0, 0)
        stored = self.server._store_file("photo", data, "photo.jpg", "image/jpeg")
        content: JSONDict = {
            "photo": [
                {
                    "file_id": stored.file_id,
                    "file_unique_id": stored.file_unique_id,
                    "width": size[0],
                    "height": size[1],
                    "file_size": stored.size,
                }
            ]
        }
        if caption is not None:
            content["caption"] = caption
        return await self._post(content)

    async def send_document(self, filename: str, data: bytes, caption: str | None = None) -> int:
        mime = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        stored = self.server._store_file("document", data, filename, mime)
        content: JSONDict = {
            "document": {
                "file_id": stored.file_id,
                "file_unique_id": stored.file_unique_id,
                "file_name": filename,
                "mime_type": mime,
                "file_size": stored.size,
            }
        }
        if caption is not None:
            content["caption"] = caption
        return await self._post(content)

    async def send_voice(self, duration: int = 3) -> int:
        stored = self.server._store_file("voice", _FAKE_VOICE, "voice.ogg", "audio/ogg")
        return await self._post(
            {
                "voice": {
                    "file_id": stored.file_id,
                    "file_unique_id": stored.file_unique_id,
                    "duration": duration,
                    "mime_type": "audio/ogg",
                    "file_size": stored.size,
                }
            }
        )

    async def send_sticker(self) -> int:
        stored = self.server._store_file("sticker", _FAKE_STICKER, "sticker.webp", "image/webp")
        return await self._post(
            {
                "sticker": {
                    "file_id": stored.file_id,
                    "file_unique_id": stored.file_unique_id,
                    "type": "regular",
                    "width": 512,
                    "height": 512,
                    "is_animated": False,
                    "is_video": False,
                    "emoji": "👍",
                    "file_size": stored.size,
                }
            }
        )

    async def edit(self, message_id: int, text: str) -> None:
        """Edit one of this user's text messages (an edited_message update)."""
        original = self._user_messages.get(message_id)
        if original is None or "text" not in original:
            raise LookupError(f"user {self.user_id} has no text message {message_id} to edit")
        edited = {k: v for k, v in original.items() if k not in ("text", "entities", "edit_date")}
        edited["text"] = text
        edited["edit_date"] = int(time.time())
        if text.startswith("/") and len(text) > 1 and not text[1].isspace():
            command = text.split(maxsplit=1)[0]
            edited["entities"] = [
                {"type": "bot_command", "offset": 0, "length": utf16_len(command)}
            ]
        self._user_messages[message_id] = edited
        self.server._queue_update({"edited_message": edited})
        await asyncio.sleep(0)

    async def press(self, text_or_data: str, message_id: int | None = None) -> str:
        """Press an inline button (matched by text or callback_data); returns the query id.

        Looks at ``message_id`` only when given, else at the latest bot message in this
        chat that has such a button.  Raises LookupError if there is no such button.
        """
        if message_id is not None:
            sent = self.server._bot_messages.get((self.user_id, message_id))
            if sent is None or sent.deleted:
                raise LookupError(f"no bot message {message_id} in the chat with {self.user_id}")
            candidates = [sent]
        else:
            candidates = [m for m in reversed(self.messages) if not m.deleted]
        for sent in candidates:
            button = sent.find_button(text_or_data)
            if button is None:
                continue
            data = button.get("callback_data")
            if not isinstance(data, str):
                kinds = [a for a in _INLINE_BUTTON_ACTIONS if a in button]
                raise LookupError(
                    f"button {button.get('text')!r} on message {sent.message_id} is a "
                    f"{'/'.join(kinds) or 'plain'} button; only callback buttons send updates"
                )
            return self.server._press(self, sent, data)
        seen = "; ".join(
            f"#{m.message_id}: {m.button_texts()}" for m in candidates[:5] if m.buttons
        )
        raise LookupError(
            f"no inline button {text_or_data!r} for user {self.user_id}"
            + (f" (buttons seen: {seen})" if seen else " (no message with buttons)")
        )

    async def answer_poll(self, option_ids: list[int], poll_id: str | None = None) -> None:
        """Vote in a poll (default: the latest poll sent to this chat); [] retracts.

        Raises ValueError for anonymous polls (Telegram tells the bot nothing about who
        voted) and for invalid option ids.  A vote Telegram would not accept — on a closed
        poll, a second answer to a quiz or to a poll without revoting, or retracting one —
        is ignored silently: no update is sent, as in Telegram.
        """
        poll = self.server._find_poll(self, poll_id)
        if poll.is_anonymous:
            raise ValueError(
                f"poll {poll.poll_id} is anonymous: Telegram sends no poll_answer for it "
                "(send it with is_anonymous=False)"
            )
        if len(set(option_ids)) != len(option_ids) or any(
            not 0 <= option < len(poll.options) for option in option_ids
        ):
            raise ValueError(
                f"invalid option ids {option_ids} for a {len(poll.options)}-option poll"
            )
        if len(option_ids) > 1 and not poll.allows_multiple_answers:
            raise ValueError(f"poll {poll.poll_id} allows one answer only, got {option_ids}")
        self.server._vote(self, poll, sorted(option_ids))
        await asyncio.sleep(0)

    # ----- observing

    @property
    def messages(self) -> list[SentMessage]:
        """Every message the bot created in this chat (live objects, edits applied)."""
        return list(self.server._chat_messages.get(self.user_id, []))

    def last(self) -> SentMessage:
        """The latest bot message in this chat that was not deleted."""
        for sent in reversed(self.server._chat_messages.get(self.user_id, [])):
            if not sent.deleted:
                return sent
        raise LookupError(f"the bot has sent nothing to user {self.user_id}")

    @property
    def answered_callbacks(self) -> list[CallbackAnswer]:
        return list(self._answers)

    @property
    def feed(self) -> list[SentMessage]:
        """Everything delivered to this chat, in order: sends and edits (snapshots)."""
        return list(self.server._feeds.get(self.user_id, []))

    async def next_message(self, timeout: float = 5.0) -> SentMessage:
        """The next bot message or edit in this chat not yet returned; waits for it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            feed = self.server._feeds.get(self.user_id, [])
            if self._cursor < len(feed):
                item = feed[self._cursor]
                self._cursor += 1
                return item
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(self._timeout_report(timeout))
            await self.server._feed_signal.wait(remaining)

    async def expect_silence(self, seconds: float = 0.3) -> None:
        """Assert that the bot sends or edits nothing more in this chat for ``seconds``."""
        await asyncio.sleep(seconds)
        feed = self.server._feeds.get(self.user_id, [])
        if self._cursor < len(feed):
            extra = "; ".join(item.summary() for item in feed[self._cursor :])
            raise AssertionError(f"expected silence for user {self.user_id}, got: {extra}")

    def _timeout_report(self, timeout: float) -> str:
        feed = self.server._feeds.get(self.user_id, [])
        lines = [f"no new bot message for user {self.user_id} within {timeout:g}s."]
        if feed:
            lines.append("Already consumed in this chat (latest last):")
            lines.extend(f"  {item.summary()}" for item in feed[-5:])
        else:
            lines.append("The bot has sent nothing to this chat.")
        failed = [c for c in self.server.calls[-200:] if c.status >= 400]
        if failed:
            lines.append("Recent failed API calls:")
            lines.extend(
                f"  {c.method} -> {c.status} {c.description} (chat_id={c.params.get('chat_id')})"
                for c in failed[-5:]
            )
        pending = len(self.server._updates)
        if pending:
            lines.append(
                f"{pending} update(s) not yet fetched by the bot (is it polling? webhook set?)"
            )
        return "\n".join(lines)


# --------------------------------------------------------------------------- server


Handler = Callable[[_Params], Awaitable[Any]]


class BotAPIServer:
    """A Telegram Bot API server on a local port; see the module docstring."""

    def __init__(
        self,
        *,
        token: str = "123456:TEST",
        bot_username: str = "biblio_test_bot",
        global_rate: float | None = None,
        per_chat_rate: float | None = None,
        files_dir: Path | None = None,
        allow_remote_control: bool = False,
        webhook_retry_delay: float = 0.05,
    ) -> None:
        bot_id, sep, secret = token.partition(":")
        if not (bot_id.isdigit() and sep and secret):
            raise ValueError(f"token must look like '<digits>:<secret>', got {token!r}")
        self.token = token
        self.bot_id = int(bot_id)
        self.bot_username = bot_username
        self.files_dir = files_dir
        # /_control/ is unauthenticated: by default only loopback clients may use it.
        self.allow_remote_control = allow_remote_control
        self.webhook_retry_delay = webhook_retry_delay

        # ----- inspection
        self.calls: list[ApiCall] = []
        self.sent: list[SentMessage] = []
        self.count_429 = 0
        self.commands: dict[tuple[str, str], list[JSONDict]] = {}
        self.webhook: JSONDict | None = None
        self.menu_buttons: dict[int | None, JSONDict] = {}
        #: setMyDescription/-ShortDescription/-Name: (kind, language_code or "") -> text
        self.profile: dict[tuple[str, str], str] = {}
        self.files: dict[str, StoredFile] = {}  # by file_id
        self._files_by_path: dict[str, StoredFile] = {}
        self.edits = 0
        self.webhook_last_error: tuple[int, str] | None = None

        # ----- state
        self._limiter = _RateLimiter(global_rate, per_chat_rate)
        self._users: dict[int, FakeUser] = {}
        self._bot_messages: dict[tuple[int, int], SentMessage] = {}
        self._chat_messages: dict[int, list[SentMessage]] = {}
        self._feeds: dict[int, list[SentMessage]] = {}
        self._polls: dict[str, _Poll] = {}
        self._callback_queries: dict[str, _CallbackQuery] = {}
        self._failures: dict[str, deque[tuple[int, str, int | None]]] = {}
        self._updates: list[_Pending] = []
        self._next_update_id = 1
        self._allowed_updates: list[str] = []  # [] = Telegram's default set
        self._poll_generation = 0
        self._file_counter = 0
        self._poll_counter = 0
        self._query_counter = 0
        self._update_signal = _Signal()
        self._feed_signal = _Signal()
        self._closing = False
        self._runner: web.AppRunner | None = None
        self._webhook_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[tuple[int, JSONDict]]] = set()
        self.base_url = ""

        self._methods: dict[str, tuple[str, Handler]] = {}
        for name, handler in (
            ("getMe", self._api_get_me),
            ("getUpdates", self._api_get_updates),
            ("setWebhook", self._api_set_webhook),
            ("deleteWebhook", self._api_delete_webhook),
            ("getWebhookInfo", self._api_get_webhook_info),
            ("setMyCommands", self._api_set_my_commands),
            ("getMyCommands", self._api_get_my_commands),
            ("deleteMyCommands", self._api_delete_my_commands),
            ("setChatMenuButton", self._api_set_chat_menu_button),
            ("getChatMenuButton", self._api_get_chat_menu_button),
            ("setMyDescription", self._profile_setter("description", 512)),
            ("getMyDescription", self._profile_getter("description")),
            ("setMyShortDescription", self._profile_setter("short_description", 120)),
            ("getMyShortDescription", self._profile_getter("short_description")),
            ("setMyName", self._profile_setter("name", 64)),
            ("getMyName", self._profile_getter("name")),
            ("sendMessage", self._api_send_message),
            ("editMessageText", self._api_edit_message_text),
            ("editMessageCaption", self._api_edit_message_caption),
            ("editMessageReplyMarkup", self._api_edit_message_reply_markup),
            ("deleteMessage", self._api_delete_message),
            ("deleteMessages", self._api_delete_messages),
            ("answerCallbackQuery", self._api_answer_callback_query),
            ("sendPoll", self._api_send_poll),
            ("stopPoll", self._api_stop_poll),
            ("sendChatAction", self._api_send_chat_action),
            ("getFile", self._api_get_file),
            ("getChat", self._api_get_chat),
            ("close", self._api_true),
            ("logOut", self._api_true),
        ):
            self._methods[name.lower()] = (name, handler)
        for kind in sorted(_MEDIA_KINDS):
            name = "send" + kind.capitalize()
            self._methods[name.lower()] = (name, self._media_sender(kind, name))

    # ------------------------------------------------------------------ lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on host:port (0 = a free port); ``base_url`` is valid afterwards."""
        if self._runner is not None:
            raise RuntimeError("the server is already running")
        self._closing = False
        app = web.Application(client_max_size=MAX_UPLOAD_BYTES + (1 << 20))
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        app.router.add_get("/_control/stats", self._control_stats)
        app.router.add_get("/_control/calls", self._control_calls)
        app.router.add_post("/_control/updates", self._control_inject)
        app.router.add_post("/_control/rate_limits", self._control_rate_limits)
        app.router.add_post("/_control/fail_next", self._control_fail_next)
        app.router.add_post("/_control/users/{user_id}", self._control_user)
        app.router.add_get("/_control/users/{user_id}/messages", self._control_messages)
        app.router.add_post("/_control/users/{user_id}/{action}", self._control_action)
        # A short shutdown timeout: long polls are woken on stop anyway.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound_host, bound_port = runner.addresses[0][:2]
        shown = f"[{bound_host}]" if ":" in str(bound_host) else str(bound_host)
        self.base_url = f"http://{shown}:{bound_port}"
        if self.webhook is not None:
            self._restart_webhook_worker()

    async def stop(self) -> None:
        """Stop listening; pending long polls return at once."""
        self._closing = True
        self._update_signal.notify()
        self._feed_signal.notify()
        await self._stop_webhook_worker()
        for task in list(self._background):
            task.cancel()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> BotAPIServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # ------------------------------------------------------------------ control (in process)

    @property
    def bot_user(self) -> JSONDict:
        """The bot as a Bot API User object (the ``from`` of its messages)."""
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "BIBLIO test bot",
            "username": self.bot_username,
        }

    @property
    def users(self) -> dict[int, FakeUser]:
        return dict(self._users)

    def user(
        self,
        user_id: int,
        *,
        first_name: str = "Test",
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = "en",
    ) -> FakeUser:
        """The user with this id, created on first use (later calls ignore the keywords;
        a FakeUser's profile attributes can be changed directly)."""
        existing = self._users.get(user_id)
        if existing is not None:
            return existing
        if user_id <= 0 or user_id == self.bot_id:
            raise ValueError(f"invalid user id {user_id}")
        created = FakeUser(
            self,
            user_id,
            first_name=first_name,
            last_name=last_name,
            username=username,
            language_code=language_code,
        )
        self._users[user_id] = created
        return created

    def block(self, user_id: int) -> None:
        """The user blocks the bot: sends to them fail with 403; a my_chat_member update."""
        user = self.user(user_id)
        if user.blocked:
            return
        user.known = True
        user.blocked = True
        self._queue_member_change(user, "member", "kicked")

    def unblock(self, user_id: int) -> None:
        """The user unblocks (restarts) the bot; a my_chat_member update kicked -> member."""
        user = self.user(user_id)
        if not user.blocked:
            return
        user.blocked = False
        self._queue_member_change(user, "kicked", "member")

    def inject_update(self, raw: dict[str, Any]) -> int:
        """Queue any update, even a malformed one, verbatim (update_id added if missing)."""
        return self._queue_update(copy.deepcopy(raw), raw=True)

    def set_rate_limits(self, global_rate: float | None, per_chat_rate: float | None) -> None:
        """Change flood limits (None = unlimited); the send history is kept."""
        self._limiter.configure(global_rate, per_chat_rate)

    def fail_next(
        self,
        method: str,
        status: int,
        description: str,
        retry_after: int | None = None,
        count: int = 1,
    ) -> None:
        """Make the next ``count`` calls of ``method`` ("*" = any) fail with this error."""
        if not 400 <= status <= 599:
            raise ValueError(f"status must be an HTTP error status, got {status}")
        queue = self._failures.setdefault(method.lower(), deque())
        queue.extend([(status, description, retry_after)] * count)

    @property
    def pending_updates(self) -> list[JSONDict]:
        """Updates queued and not yet confirmed by the bot (getUpdates offset / webhook 2xx)."""
        return [pending.payload for pending in self._updates]

    def stats(self) -> JSONDict:
        """Counters for benchmarks and the control interface."""
        return {
            "sends": len(self.sent),
            "edits": self.edits,
            "count_429": self.count_429,
            "calls": dict(Counter(call.method for call in self.calls)),
            "errors": dict(
                Counter(f"{call.method} {call.status}" for call in self.calls if call.status >= 400)
            ),
            "pending_updates": len(self._updates),
            "users": len(self._users),
            "webhook": self.webhook["url"] if self.webhook else None,
        }

    # ------------------------------------------------------------------ updates

    def _queue_update(self, payload: JSONDict, *, raw: bool = False) -> int:
        given = payload.get("update_id") if raw else None
        if isinstance(given, int) and not isinstance(given, bool):
            update_id = given
        else:
            update_id = self._next_update_id
            if not (raw and "update_id" in payload):
                # Keep update_id first, as Telegram does.
                payload = {"update_id": update_id, **payload}
        self._next_update_id = max(self._next_update_id, update_id + 1)
        if self._updates and self._updates[-1].update_id > update_id:
            # Only an injected update with an old id lands out of order: re-sort then.
            self._updates.append(_Pending(update_id, payload))
            self._updates.sort(key=lambda pending: pending.update_id)
        else:
            self._updates.append(_Pending(update_id, payload))
        self._update_signal.notify()
        return update_id

    def _queue_member_change(self, user: FakeUser, old: str, new: str) -> None:
        def member(status: str) -> JSONDict:
            data: JSONDict = {"status": status, "user": self.bot_user}
            if status == "kicked":
                data["until_date"] = 0
            return data

        self._queue_update(
            {
                "my_chat_member": {
                    "chat": user.chat_dict(),
                    "from": user.user_dict(),
                    "date": int(time.time()),
                    "old_chat_member": member(old),
                    "new_chat_member": member(new),
                }
            }
        )

    def _is_wanted(self, payload: JSONDict) -> bool:
        kind = _update_type(payload)
        if kind is None:
            return True  # unknown/malformed: deliver as injected
        if self._allowed_updates:
            return kind in self._allowed_updates
        return kind not in _DEFAULT_EXCLUDED_UPDATES

    def _deliverable(self, limit: int) -> list[_Pending]:
        # Telegram never creates updates of unwanted kinds; dropping them here is the same.
        self._updates = [pending for pending in self._updates if self._is_wanted(pending.payload)]
        return self._updates[:limit]

    def _confirm(self, offset: int | None) -> None:
        if offset is None:
            return
        if offset < 0:
            self._updates = self._updates[offset:]
        else:
            self._updates = [pending for pending in self._updates if pending.update_id >= offset]

    # ------------------------------------------------------------------ user actions

    def _press(self, user: FakeUser, sent: SentMessage, data: str) -> str:
        self._query_counter += 1
        query_id = f"{self.bot_id}{user.user_id}{self._query_counter:06d}"
        self._callback_queries[query_id] = _CallbackQuery(
            query_id, user.user_id, data, sent.message_id
        )
        user.known = True
        self._queue_update(
            {
                "callback_query": {
                    "id": query_id,
                    "from": user.user_dict(),
                    "message": copy.deepcopy(sent.message),
                    "chat_instance": str(-(self.bot_id * 1_000_003 + user.user_id)),
                    "data": data,
                }
            }
        )
        return query_id

    def _find_poll(self, user: FakeUser, poll_id: str | None) -> _Poll:
        if poll_id is not None:
            poll = self._polls.get(poll_id)
            if poll is None:
                raise LookupError(f"no poll {poll_id!r}")
            return poll
        for sent in reversed(self._chat_messages.get(user.user_id, [])):
            if sent.kind == "poll" and sent.poll is not None:
                return self._polls[sent.poll["id"]]
        raise LookupError(f"the bot has sent no poll to user {user.user_id}")

    def _vote(self, user: FakeUser, poll: _Poll, option_ids: list[int]) -> None:
        previous = poll.votes.get(user.user_id)
        may_change = poll.poll_type == "regular" and poll.allows_revoting
        if poll.closed() or (previous is not None and not may_change):
            return  # Telegram's apps do not let the user do this: no update
        if not option_ids:
            if previous is None:
                return
            del poll.votes[user.user_id]
        else:
            poll.votes[user.user_id] = option_ids
        user.known = True
        self._queue_update(
            {
                "poll_answer": {
                    "poll_id": poll.poll_id,
                    "user": user.user_dict(),
                    "option_ids": option_ids,
                    "option_persistent_ids": [str(option) for option in option_ids],
                }
            }
        )
        self._refresh_poll(poll)
        # Bots also get the new state of polls they sent.
        self._queue_update({"poll": poll.to_dict()})

    def _refresh_poll(self, poll: _Poll) -> None:
        sent = self._bot_messages.get((poll.chat_id, poll.message_id))
        if sent is not None:
            sent.poll = poll.to_dict()
            sent.message = {**sent.message, "poll": sent.poll}

    # ------------------------------------------------------------------ files

    def _store_file(
        self, kind: str, data: bytes, file_name: str | None, mime_type: str | None
    ) -> StoredFile:
        self._file_counter += 1
        number = self._file_counter
        prefix = {"photo": "AgAC", "voice": "AwAC", "sticker": "CAAC"}.get(kind, "BQAC")
        file_id = f"{prefix}SbX{number:06d}{secrets.token_urlsafe(12)}"
        folder = {"photo": "photos", "voice": "voice", "sticker": "stickers"}.get(kind, kind + "s")
        path = f"{folder}/file_{number}_{_safe_name(file_name or kind)}"
        stored = StoredFile(
            file_id=file_id,
            file_unique_id=f"AQADSbX{number:06d}",
            file_path=path,
            kind=kind,
            data=data,
            file_name=file_name,
            mime_type=mime_type,
        )
        self.files[file_id] = stored
        self._files_by_path[path] = stored
        if self.files_dir is not None:
            self._write_file(stored)
        return stored

    def _write_file(self, stored: StoredFile) -> None:
        # Synchronous on purpose: keeps the API handler atomic; files are small.
        assert self.files_dir is not None
        target = self.files_dir / stored.file_path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(stored.data)

    # ------------------------------------------------------------------ HTTP: Bot API

    async def _handle_api(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        method = request.match_info["method"]
        try:
            params, uploads = await _read_request(request)
        except ApiError as error:
            return self._error_response(error)
        except web.HTTPRequestEntityTooLarge:
            return self._error_response(ApiError(413, "Request Entity Too Large"))
        except (ValueError, aiohttp.ClientPayloadError) as exc:
            # A broken body (bad multipart, bad encoding): answer like Telegram, don't crash.
            return self._error_response(ApiError(400, f"Bad Request: can't parse request: {exc}"))
        status, body = await self._execute(token, method, params, uploads)
        return web.json_response(body, status=status)

    @staticmethod
    def _error_response(error: ApiError) -> web.Response:
        body: JSONDict = {"ok": False, "error_code": error.status, "description": error.description}
        if error.retry_after is not None:
            body["parameters"] = {"retry_after": error.retry_after}
        return web.json_response(body, status=error.status)

    async def _execute(
        self, token: str, method: str, params: JSONDict, uploads: dict[str, _Upload]
    ) -> tuple[int, JSONDict]:
        """Run one API method; returns the HTTP status and the response body."""
        entry = self._methods.get(method.lower())
        call = ApiCall(
            method=entry[0] if entry else method,
            params=params,
            time=time.time(),
            files={name: (up.filename, len(up.data)) for name, up in uploads.items()},
        )
        self.calls.append(call)
        try:
            if token != self.token:
                raise ApiError(401, "Unauthorized")
            if entry is None:
                raise ApiError(404, "Not Found: method not found")
            self._consume_failure(entry[0])
            result = await entry[1](_Params(params, uploads))
        except ApiError as error:
            call.status = error.status
            call.description = error.description
            if error.status == 429:
                self.count_429 += 1
            body: JSONDict = {
                "ok": False,
                "error_code": error.status,
                "description": error.description,
            }
            if error.retry_after is not None:
                body["parameters"] = {"retry_after": error.retry_after}
            return error.status, body
        except Exception as exc:
            # A bug in the sandbox itself: make it loud, but answer like a server would.
            logger.exception("sandbox Bot API server failed on %s", method)
            call.status = 500
            call.description = f"Internal Server Error: sandbox bug: {exc!r}"
            return 500, {"ok": False, "error_code": 500, "description": call.description}
        call.status = 200
        call.result = result
        return 200, {"ok": True, "result": result}

    def _consume_failure(self, method: str) -> None:
        for key in (method.lower(), "*"):
            queue = self._failures.get(key)
            if queue:
                status, description, retry_after = queue.popleft()
                raise ApiError(status, description, retry_after)

    async def _handle_file(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return self._error_response(ApiError(401, "Unauthorized"))
        stored = self._files_by_path.get(request.match_info["path"])
        if stored is None:
            return self._error_response(ApiError(404, "Not Found"))
        return web.Response(
            body=stored.data, content_type=stored.mime_type or "application/octet-stream"
        )

    # ------------------------------------------------------------------ shared validation

    def _chat(self, params: _Params, *, allow_blocked: bool = False) -> FakeUser:
        """The private chat named by chat_id; 400 if the bot may not know it, 403 if blocked."""
        raw = params.raw("chat_id")
        if raw is None or raw == "":
            raise ApiError(400, "Bad Request: chat_id is empty")
        try:
            chat_id = params.get_int("chat_id")
        except ApiError:
            chat_id = None  # "@username": private chats cannot be addressed that way
        if chat_id == self.bot_id:
            raise ApiError(403, "Forbidden: bot can't send messages to bots")
        user = self._users.get(chat_id) if chat_id is not None else None
        if user is None or not user.known:
            raise ApiError(400, _CHAT_NOT_FOUND)
        if user.blocked and not allow_blocked:
            raise ApiError(403, _FORBIDDEN_BLOCKED)
        return user

    def _format(
        self, raw: str, parse_mode: str | None, entities: list[Any] | None, what: str
    ) -> tuple[str, list[JSONDict]]:
        """Apply parse_mode (HTML only) or explicit entities; trim like Telegram."""
        mode = (parse_mode or "").strip()
        if mode.lower() == "html":
            try:
                text, parsed = parse_html(raw)
            except EntityParseError as error:
                raise ApiError(400, f"Bad Request: can't parse entities: {error}") from None
        elif mode.lower() in ("markdown", "markdownv2"):
            raise ApiError(
                400,
                f"Bad Request: parse_mode {mode} is not supported by the sandbox Bot API "
                "server; use HTML",
            )
        elif mode:
            raise ApiError(400, f"Bad Request: unsupported parse_mode {mode!r}")
        else:
            text = raw
            parsed = self._check_entities(raw, entities or [], what)
        return strip_formatted(text, parsed)

    @staticmethod
    def _check_entities(text: str, entities: list[Any], what: str) -> list[JSONDict]:
        total = utf16_len(text)
        checked: list[JSONDict] = []
        for entity in entities:
            if not (
                isinstance(entity, dict)
                and isinstance(entity.get("type"), str)
                and isinstance(entity.get("offset"), int)
                and isinstance(entity.get("length"), int)
                and entity["offset"] >= 0
                and entity["length"] > 0
                and entity["offset"] + entity["length"] <= total
            ):
                raise ApiError(
                    400, f"Bad Request: can't parse entities in {what}: invalid entity {entity!r}"
                )
            checked.append(dict(entity))
        return checked

    def _validate_markup(self, markup: JSONDict | None, *, inline_only: bool) -> JSONDict | None:
        """Check a reply_markup like Telegram; an empty inline keyboard means none."""
        if markup is None:
            return None
        if "inline_keyboard" in markup:
            rows = markup["inline_keyboard"]
            if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
                raise ApiError(
                    400,
                    'Bad Request: field "inline_keyboard" of the InlineKeyboardMarkup must be '
                    "an Array of Arrays",
                )
            buttons = [button for row in rows for button in row]
            if len(buttons) > MAX_INLINE_BUTTONS:
                raise ApiError(400, "Bad Request: reply markup is too long")
            for button in buttons:
                self._validate_inline_button(button)
            return markup if buttons else None
        if inline_only:
            raise ApiError(400, "Bad Request: inline keyboard expected")
        if "keyboard" in markup:
            rows = markup["keyboard"]
            if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
                raise ApiError(
                    400,
                    'Bad Request: field "keyboard" of the ReplyKeyboardMarkup must be an Array '
                    "of Arrays",
                )
            for button in (button for row in rows for button in row):
                text = button.get("text") if isinstance(button, dict) else button
                if not isinstance(text, str) or not text:
                    raise ApiError(
                        400, "Bad Request: can't parse keyboard button: Text must be non-empty"
                    )
            return markup
        if markup.get("remove_keyboard") is True or markup.get("force_reply") is True:
            return markup
        raise ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")

    @staticmethod
    def _validate_inline_button(button: Any) -> None:
        prefix = "Bad Request: can't parse inline keyboard button: "
        if not isinstance(button, dict):
            raise ApiError(400, prefix + "InlineKeyboardButton must be an Object")
        text = button.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ApiError(400, prefix + "Text must be a non-empty String")
        actions = [name for name in _INLINE_BUTTON_ACTIONS if button.get(name) is not None]
        if not actions:
            raise ApiError(400, prefix + "Text buttons are unallowed in the inline keyboard")
        if len(actions) > 1:
            raise ApiError(
                400, prefix + f"exactly one action field must be set, got {', '.join(actions)}"
            )
        if actions[0] == "callback_data":
            data = button["callback_data"]
            if (
                not isinstance(data, str)
                or not data
                or len(data.encode("utf-8")) > MAX_CALLBACK_DATA_BYTES
            ):
                raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
        elif actions[0] == "url":
            url = button["url"]
            parts = urlsplit(url) if isinstance(url, str) else None
            if (
                parts is None
                or parts.scheme not in ("http", "https", "tg", "ton")
                or (parts.scheme in ("http", "https") and not parts.netloc)
            ):
                raise ApiError(
                    400, f"Bad Request: inline keyboard button URL '{url}' is invalid: Wrong URL"
                )

    def _reply_to(self, chat: FakeUser, params: _Params) -> JSONDict | None:
        reply_parameters = params.get_obj("reply_parameters")
        if reply_parameters is not None:
            message_id = reply_parameters.get("message_id")
            allow = bool(reply_parameters.get("allow_sending_without_reply"))
        else:
            message_id = params.get_int("reply_to_message_id")
            allow = params.get_bool("allow_sending_without_reply", False)
        if message_id is None:
            return None
        replied = chat._message_dict(message_id) if isinstance(message_id, int) else None
        if replied is None:
            if allow:
                return None
            raise ApiError(400, "Bad Request: message to be replied not found")
        return {k: v for k, v in replied.items() if k != "reply_to_message"}

    def _acquire(self, chat: FakeUser, *, count_global: bool) -> None:
        wait = self._limiter.acquire(chat.user_id, count_global=count_global, now=time.monotonic())
        if wait > 0:
            retry_after = max(1, math.ceil(wait))
            raise ApiError(429, f"Too Many Requests: retry after {retry_after}", retry_after)

    def _caption(self, params: _Params) -> tuple[str | None, str | None, list[JSONDict]]:
        raw = params.get_str("caption")
        if raw is None or raw == "":
            return None, None, []
        parse_mode = params.get_str("parse_mode")
        caption, entities = self._format(
            raw, parse_mode, params.get_list("caption_entities"), "caption"
        )
        if len(caption) > MAX_CAPTION_LENGTH:
            raise ApiError(400, "Bad Request: message caption is too long")
        return caption, raw, entities

    # ------------------------------------------------------------------ messages

    def _create_message(
        self,
        chat: FakeUser,
        *,
        kind: str,
        method: str,
        content: JSONDict,
        markup: JSONDict | None,
        reply_to: JSONDict | None,
        text: str | None = None,
        raw_text: str | None = None,
        parse_mode: str | None = None,
        entities: list[JSONDict] | None = None,
        stored: StoredFile | None = None,
        poll: JSONDict | None = None,
    ) -> JSONDict:
        message: JSONDict = {
            "message_id": chat._new_message_id(),
            "from": self.bot_user,
            "chat": chat.chat_dict(),
            "date": int(time.time()),
        }
        if reply_to is not None:
            message["reply_to_message"] = reply_to
        message.update(content)
        # Telegram echoes only inline keyboards in the Message object.
        if markup is not None and "inline_keyboard" in markup:
            message["reply_markup"] = markup
        sent = SentMessage(
            chat_id=chat.user_id,
            message_id=message["message_id"],
            kind=kind,
            method=method,
            time=time.time(),
            text=text,
            raw_text=raw_text,
            parse_mode=parse_mode,
            entities=entities or [],
            reply_markup=markup,
            poll=poll,
            file_id=stored.file_id if stored else None,
            file_name=stored.file_name if stored else None,
            file_bytes=stored.data if stored else None,
            mime_type=stored.mime_type if stored else None,
            message=message,
        )
        if markup is not None:
            if "keyboard" in markup:
                chat.reply_keyboard = markup
            elif markup.get("remove_keyboard"):
                chat.reply_keyboard = None
        self.sent.append(sent)
        self._bot_messages[(chat.user_id, sent.message_id)] = sent
        self._chat_messages.setdefault(chat.user_id, []).append(sent)
        self._publish(sent, edited=False)
        return message

    def _publish(self, sent: SentMessage, *, edited: bool) -> None:
        # Deliver a snapshot: later edits change the live object, not what was delivered.
        self._feeds.setdefault(sent.chat_id, []).append(dataclasses.replace(sent, edited=edited))
        self._feed_signal.notify()

    def _message_to_edit(self, params: _Params) -> tuple[FakeUser, SentMessage]:
        if params.has("inline_message_id"):
            raise ApiError(400, "Bad Request: MESSAGE_ID_INVALID")  # no inline mode here
        chat = self._chat(params)
        message_id = params.get_int("message_id")
        if message_id is None:
            raise ApiError(400, "Bad Request: message identifier is not specified")
        sent = self._bot_messages.get((chat.user_id, message_id))
        if sent is None or sent.deleted:
            if message_id in chat._user_messages:
                raise ApiError(400, "Bad Request: message can't be edited")
            raise ApiError(400, "Bad Request: message to edit not found")
        return chat, sent

    def _apply_edit(
        self,
        chat: FakeUser,
        sent: SentMessage,
        *,
        drop: tuple[str, ...],
        content: JSONDict,
        markup: JSONDict | None,
        fields: JSONDict | None = None,
    ) -> JSONDict:
        """Apply a validated edit (after flood control) and deliver it as an edit."""
        self._acquire(chat, count_global=False)
        message = {
            k: v
            for k, v in sent.message.items()
            if k not in drop and k not in ("reply_markup", "edit_date")
        }
        message.update(content)
        if markup is not None:
            message["reply_markup"] = markup
        message["edit_date"] = int(time.time())
        sent.message = message
        sent.reply_markup = markup
        for name, value in (fields or {}).items():
            setattr(sent, name, value)
        sent.edited = True
        sent.edit_count += 1
        self.edits += 1
        self._publish(sent, edited=True)
        return message

    async def _api_send_message(self, params: _Params) -> JSONDict:
        chat = self._chat(params)
        raw = params.get_str("text")
        if raw is None or raw == "":
            raise ApiError(400, "Bad Request: message text is empty")
        parse_mode = params.get_str("parse_mode")
        text, entities = self._format(raw, parse_mode, params.get_list("entities"), "text")
        if not text:
            raise ApiError(400, "Bad Request: message text is empty")
        if len(text) > MAX_TEXT_LENGTH:
            raise ApiError(400, "Bad Request: message is too long")
        markup = self._validate_markup(params.get_obj("reply_markup"), inline_only=False)
        reply_to = self._reply_to(chat, params)
        self._acquire(chat, count_global=True)
        content: JSONDict = {"text": text}
        if entities:
            content["entities"] = entities
        return self._create_message(
            chat,
            kind="text",
            method="sendMessage",
            content=content,
            markup=markup,
            reply_to=reply_to,
            text=text,
            raw_text=raw,
            parse_mode=parse_mode or None,
            entities=entities,
        )

    async def _api_edit_message_text(self, params: _Params) -> JSONDict:
        chat, sent = self._message_to_edit(params)
        if sent.kind != "text":
            raise ApiError(400, "Bad Request: there is no text in the message to edit")
        raw = params.get_str("text")
        if raw is None or raw == "":
            raise ApiError(400, "Bad Request: message text is empty")
        parse_mode = params.get_str("parse_mode")
        text, entities = self._format(raw, parse_mode, params.get_list("entities"), "text")
        if not text:
            raise ApiError(400, "Bad Request: message text is empty")
        if len(text) > MAX_TEXT_LENGTH:
            raise ApiError(400, "Bad Request: message is too long")
        # Like Telegram: an edit without reply_markup removes the inline keyboard.
        markup = self._validate_markup(params.get_obj("reply_markup"), inline_only=True)
        if text == sent.text and entities == sent.entities and markup == sent.reply_markup:
            raise ApiError(400, _NOT_MODIFIED)
        content: JSONDict = {"text": text}
        if entities:
            content["entities"] = entities
        return self._apply_edit(
            chat,
            sent,
            drop=("text", "entities"),
            content=content,
            markup=markup,
            fields={
                "text": text,
                "raw_text": raw,
                "entities": entities,
                "parse_mode": parse_mode or None,
            },
        )

    async def _api_edit_message_caption(self, params: _Params) -> JSONDict:
        chat, sent = self._message_to_edit(params)
        if sent.kind not in _MEDIA_KINDS:
            raise ApiError(400, "Bad Request: there is no caption in the message to edit")
        caption, raw, entities = self._caption(params)
        markup = self._validate_markup(params.get_obj("reply_markup"), inline_only=True)
        if caption == sent.text and entities == sent.entities and markup == sent.reply_markup:
            raise ApiError(400, _NOT_MODIFIED)
        content: JSONDict = {}
        if caption:
            content["caption"] = caption
            if entities:
                content["caption_entities"] = entities
        return self._apply_edit(
            chat,
            sent,
            drop=("caption", "caption_entities"),
            content=content,
            markup=markup,
            fields={
                "text": caption,
                "raw_text": raw,
                "entities": entities,
                "parse_mode": (params.get_str("parse_mode") or None) if caption else None,
            },
        )

    async def _api_edit_message_reply_markup(self, params: _Params) -> JSONDict:
        chat, sent = self._message_to_edit(params)
        markup = self._validate_markup(params.get_obj("reply_markup"), inline_only=True)
        if markup == sent.reply_markup:
            raise ApiError(400, _NOT_MODIFIED)
        return self._apply_edit(chat, sent, drop=(), content={}, markup=markup)

    async def _api_delete_message(self, params: _Params) -> bool:
        chat = self._chat(params, allow_blocked=True)
        message_id = params.get_int("message_id")
        if message_id is None:
            raise ApiError(400, "Bad Request: message identifier is not specified")
        self._delete(chat, message_id)
        return True

    async def _api_delete_messages(self, params: _Params) -> bool:
        chat = self._chat(params, allow_blocked=True)
        ids = params.get_list("message_ids") or []
        if not 1 <= len(ids) <= 100 or not all(isinstance(i, int) for i in ids):
            raise ApiError(400, "Bad Request: message identifiers are invalid")
        for message_id in ids:
            # deleteMessages skips messages that cannot be found.
            with contextlib.suppress(ApiError):
                self._delete(chat, message_id)
        return True

    def _delete(self, chat: FakeUser, message_id: int) -> None:
        sent = self._bot_messages.get((chat.user_id, message_id))
        if sent is not None and not sent.deleted:
            sent.deleted = True
            return
        if chat._user_messages.pop(message_id, None) is not None:
            return
        raise ApiError(400, "Bad Request: message to delete not found")

    async def _api_answer_callback_query(self, params: _Params) -> bool:
        query_id = params.get_str("callback_query_id") or ""
        query = self._callback_queries.get(query_id)
        if query is None or query.answered:
            raise ApiError(400, _QUERY_TOO_OLD)
        text = params.get_str("text")
        if text is not None and len(text) > MAX_CALLBACK_ANSWER_LENGTH:
            raise ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
        query.answered = True
        self._users[query.user_id]._answers.append(
            CallbackAnswer(
                query_id=query_id,
                data=query.data,
                text=text,
                show_alert=params.get_bool("show_alert", False),
                url=params.get_str("url"),
                cache_time=params.get_int("cache_time"),
                time=time.time(),
            )
        )
        return True

    async def _api_send_chat_action(self, params: _Params) -> bool:
        self._chat(params)
        action = params.get_str("action")
        if action not in _CHAT_ACTIONS:
            raise ApiError(400, "Bad Request: wrong parameter action in request")
        return True

    # ------------------------------------------------------------------ polls

    def _poll_text(
        self, raw: str, parse_mode: str | None, entities: list[Any] | None, what: str
    ) -> tuple[str, list[JSONDict]]:
        text, parsed = self._format(raw, parse_mode, entities, what)
        # Telegram keeps only custom emoji in poll questions and options.
        return text, [e for e in parsed if e.get("type") == "custom_emoji"]

    async def _api_send_poll(self, params: _Params) -> JSONDict:
        chat = self._chat(params)
        question, question_entities = self._poll_text(
            params.get_str("question") or "",
            params.get_str("question_parse_mode"),
            params.get_list("question_entities"),
            "question",
        )
        if not question:
            raise ApiError(400, "Bad Request: poll question must be non-empty")
        if len(question) > MAX_POLL_QUESTION:
            raise ApiError(
                400, f"Bad Request: poll question length must not exceed {MAX_POLL_QUESTION}"
            )
        raw_options = params.get_list("options")
        if raw_options is None:
            raise ApiError(400, 'Bad Request: parameter "options" is required')
        if len(raw_options) < MIN_POLL_OPTIONS:
            raise ApiError(400, "Bad Request: poll must have at least 2 option")
        if len(raw_options) > MAX_POLL_OPTIONS:
            raise ApiError(
                400, f"Bad Request: poll can't have more than {MAX_POLL_OPTIONS} options"
            )
        options: list[str] = []
        for item in raw_options:
            # InputPollOption objects, or plain strings as older clients send.
            if isinstance(item, dict):
                raw_text = item.get("text")
                option_mode = item.get("text_parse_mode")
                option_entities = item.get("text_entities")
            else:
                raw_text, option_mode, option_entities = item, None, None
            if not isinstance(raw_text, (str, int, float)) or isinstance(raw_text, bool):
                raise ApiError(400, "Bad Request: can't parse poll option: text must be a String")
            text, _ = self._poll_text(
                str(raw_text),
                option_mode if isinstance(option_mode, str) else None,
                option_entities if isinstance(option_entities, list) else None,
                "poll option",
            )
            if not text:
                raise ApiError(400, "Bad Request: poll options must be non-empty")
            if len(text) > MAX_POLL_OPTION:
                raise ApiError(
                    400, f"Bad Request: poll options length must not exceed {MAX_POLL_OPTION}"
                )
            options.append(text)
        poll_type = params.get_str("type") or "regular"
        if poll_type not in ("regular", "quiz"):
            raise ApiError(400, "Bad Request: wrong poll type specified")
        is_quiz = poll_type == "quiz"
        allows_multiple = params.get_bool("allows_multiple_answers", False)
        correct: list[int] = []
        if is_quiz:
            listed = params.get_list("correct_option_ids")
            single = params.get_int("correct_option_id")
            if listed is not None:
                if not all(isinstance(i, int) and not isinstance(i, bool) for i in listed):
                    raise ApiError(400, "Bad Request: QUIZ_CORRECT_ANSWER_INVALID")
                correct = list(listed)
            elif single is not None:
                correct = [single]
            if not correct:
                raise ApiError(400, "Bad Request: QUIZ_CORRECT_ANSWERS_EMPTY")
            if any(not 0 <= i < len(options) for i in correct) or correct != sorted(set(correct)):
                raise ApiError(400, "Bad Request: QUIZ_CORRECT_ANSWER_INVALID")
            if len(correct) > 1 and not allows_multiple:
                raise ApiError(400, "Bad Request: QUIZ_CORRECT_ANSWERS_TOO_MUCH")
        explanation: str | None = None
        explanation_entities: list[JSONDict] = []
        raw_explanation = params.get_str("explanation")
        if is_quiz and raw_explanation:
            explanation, explanation_entities = self._format(
                raw_explanation,
                params.get_str("explanation_parse_mode"),
                params.get_list("explanation_entities"),
                "explanation",
            )
            if len(explanation) > MAX_POLL_EXPLANATION:
                raise ApiError(400, "Bad Request: explanation is too long")
            if explanation.count("\n") > 2:
                raise ApiError(400, "Bad Request: explanation can't contain more than 2 line feeds")
        open_period = params.get_int("open_period")
        close_date = params.get_int("close_date")
        if open_period is not None and close_date is not None:
            raise ApiError(400, "Bad Request: can't use open_period and close_date together")
        if open_period is not None:
            if not 5 <= open_period <= 2_628_000:
                raise ApiError(400, "Bad Request: poll open period is invalid")
            close_date_effective: int | None = int(time.time()) + open_period
        else:
            close_date_effective = close_date
        markup = self._validate_markup(params.get_obj("reply_markup"), inline_only=False)
        reply_to = self._reply_to(chat, params)
        self._acquire(chat, count_global=True)

        self._poll_counter += 1
        poll = _Poll(
            poll_id=str(5_000_000_000_000_000_000 + self._poll_counter),
            chat_id=chat.user_id,
            message_id=chat._next_message_id,  # the id _create_message is about to take
            question=question,
            question_entities=question_entities,
            options=options,
            poll_type=poll_type,
            is_anonymous=params.get_bool("is_anonymous", True),
            allows_multiple_answers=allows_multiple,
            allows_revoting=params.get_bool("allows_revoting", not is_quiz),
            correct_option_ids=correct,
            explanation=explanation,
            explanation_entities=explanation_entities,
            open_period=open_period,
            close_date=close_date_effective,
            is_closed=params.get_bool("is_closed", False),
        )
        self._polls[poll.poll_id] = poll
        poll_dict = poll.to_dict()
        return self._create_message(
            chat,
            kind="poll",
            method="sendPoll",
            content={"poll": poll_dict},
            markup=markup,
            reply_to=reply_to,
            text=question,
            raw_text=params.get_str("question"),
            parse_mode=params.get_str("question_parse_mode") or None,
            poll=poll_dict,
        )

    async def _api_stop_poll(self, params: _Params) -> JSONDict:
        chat = self._chat(params, allow_blocked=True)
        message_id = params.get_int("message_id")
        sent = self._bot_messages.get((chat.user_id, message_id or 0))
        if sent is None or sent.deleted or sent.kind != "poll" or sent.poll is None:
            raise ApiError(400, "Bad Request: message with poll to stop not found")
        poll = self._polls[sent.poll["id"]]
        if poll.closed():
            raise ApiError(400, "Bad Request: poll has already been closed")
        markup = self._validate_markup(params.get_obj("reply_markup"), inline_only=True)
        poll.is_closed = True
        self._refresh_poll(poll)
        sent.reply_markup = markup
        message = {k: v for k, v in sent.message.items() if k != "reply_markup"}
        if markup is not None:
            message["reply_markup"] = markup
        sent.message = message
        poll_dict = poll.to_dict()
        self._queue_update({"poll": poll_dict})  # bots get updates on polls they stop
        return poll_dict

    # ------------------------------------------------------------------ media

    def _media_sender(self, kind: str, method: str) -> Handler:
        async def send(params: _Params) -> JSONDict:
            return self._send_media(params, kind, method)

        return send

    def _input_file(self, params: _Params, kind: str) -> StoredFile | _Upload:
        value = params.raw(kind)
        upload: _Upload | None = None
        if isinstance(value, str) and value.startswith("attach://"):
            upload = params.uploads.get(value.removeprefix("attach://"))
            if upload is None:
                raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        elif kind in params.uploads:
            upload = params.uploads[kind]
        elif isinstance(value, str) and value:
            if value.startswith(("http://", "https://")):
                raise ApiError(
                    400,
                    "Bad Request: failed to get HTTP URL content (the sandbox does not fetch "
                    "URLs; upload the file)",
                )
            stored = self.files.get(value)
            if stored is None:
                raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
            if stored.kind != kind:
                raise ApiError(
                    400,
                    f"Bad Request: can't use file of type {stored.kind.title()} as {kind.title()}",
                )
            return stored
        else:
            raise ApiError(400, f"Bad Request: there is no {kind} in the request")
        if not upload.data:
            raise ApiError(400, "Bad Request: file must be non-empty")
        return upload

    def _send_media(self, params: _Params, kind: str, method: str) -> JSONDict:
        chat = self._chat(params)
        source = self._input_file(params, kind)
        data = source.data
        size: tuple[int, int] | None = None
        if kind == "photo":
            if len(data) > MAX_PHOTO_BYTES:
                raise ApiError(400, "Bad Request: PHOTO_INVALID_DIMENSIONS")
            size = _image_size(data)
            if size is None:
                raise ApiError(400, "Bad Request: IMAGE_PROCESS_FAILED")
            if size[0] + size[1] > 10_000 or min(size) == 0 or max(size) > 20 * min(size):
                raise ApiError(400, "Bad Request: PHOTO_INVALID_DIMENSIONS")
        caption, raw_caption, entities = self._caption(params)
        markup = self._validate_markup(params.get_obj("reply_markup"), inline_only=False)
        reply_to = self._reply_to(chat, params)
        self._acquire(chat, count_global=True)

        if isinstance(source, StoredFile):
            stored = source
        else:
            name = source.filename or kind
            mime = source.content_type
            if not mime or mime == "application/octet-stream":
                mime = mimetypes.guess_type(name)[0] or mime or "application/octet-stream"
            stored = self._store_file(kind, data, name, mime)
        ids = {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id}
        duration = params.get_int("duration") or 0
        media: Any
        if kind == "photo":
            width, height = size or (0, 0)
            media = [{**ids, "width": width, "height": height, "file_size": stored.size}]
        elif kind == "voice":
            media = {
                **ids,
                "duration": duration,
                "mime_type": stored.mime_type,
                "file_size": stored.size,
            }
        else:
            media = {
                **ids,
                "file_name": stored.file_name,
                "mime_type": stored.mime_type,
                "file_size": stored.size,
            }
            if kind in ("audio", "video", "animation"):
                media["duration"] = duration
            if kind in ("video", "animation"):
                media["width"] = params.get_int("width") or 0
                media["height"] = params.get_int("height") or 0
        content: JSONDict = {kind: media}
        if caption:
            content["caption"] = caption
            if entities:
                content["caption_entities"] = entities
        return self._create_message(
            chat,
            kind=kind,
            method=method,
            content=content,
            markup=markup,
            reply_to=reply_to,
            text=caption,
            raw_text=raw_caption,
            parse_mode=(params.get_str("parse_mode") or None) if caption else None,
            entities=entities,
            stored=stored,
        )

    async def _api_get_file(self, params: _Params) -> JSONDict:
        stored = self.files.get(params.get_str("file_id") or "")
        if stored is None:
            raise ApiError(400, "Bad Request: wrong file_id or the file is temporarily unavailable")
        if stored.size > MAX_GETFILE_BYTES:
            raise ApiError(400, "Bad Request: file is too big")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.size,
            "file_path": stored.file_path,
        }

    # ------------------------------------------------------------------ bot & chat info

    async def _api_true(self, params: _Params) -> bool:
        return True

    async def _api_get_me(self, params: _Params) -> JSONDict:
        return {
            **self.bot_user,
            "can_join_groups": False,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _api_get_chat(self, params: _Params) -> JSONDict:
        chat = self._chat(params, allow_blocked=True)
        return {
            **chat.chat_dict(),
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": True,
                "limited_gifts": True,
                "unique_gifts": True,
                "premium_subscription": True,
                "gifts_from_channels": True,
            },
        }

    def _command_key(self, params: _Params) -> tuple[str, str]:
        scope = params.get_obj("scope") or {"type": "default"}
        scope_type = scope.get("type")
        if scope_type not in _COMMAND_SCOPES:
            raise ApiError(400, "Bad Request: can't parse BotCommandScope: unknown scope type")
        # Chat-bound scopes are told apart by their chat (and user).
        if scope_type in ("chat", "chat_administrators"):
            scope_type = f"{scope_type}:{scope.get('chat_id')}"
        elif scope_type == "chat_member":
            scope_type = f"chat_member:{scope.get('chat_id')}:{scope.get('user_id')}"
        return str(scope_type), params.get_str("language_code") or ""

    async def _api_set_my_commands(self, params: _Params) -> bool:
        key = self._command_key(params)
        commands = params.get_list("commands")
        if commands is None:
            raise ApiError(400, 'Bad Request: parameter "commands" is required')
        if len(commands) > MAX_COMMANDS:
            raise ApiError(400, "Bad Request: BOT_COMMANDS_TOO_MUCH")
        checked: list[JSONDict] = []
        for command in commands:
            if not isinstance(command, dict):
                raise ApiError(400, "Bad Request: can't parse BotCommand: must be an Object")
            name, description = command.get("command"), command.get("description")
            if not isinstance(name, str) or not _COMMAND_RE.fullmatch(name):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not isinstance(description, str) or not 1 <= len(description.strip()) <= 256:
                raise ApiError(400, "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID")
            checked.append({"command": name, "description": description})
        if checked:
            self.commands[key] = checked
        else:
            self.commands.pop(key, None)
        return True

    async def _api_get_my_commands(self, params: _Params) -> list[JSONDict]:
        return list(self.commands.get(self._command_key(params), []))

    async def _api_delete_my_commands(self, params: _Params) -> bool:
        self.commands.pop(self._command_key(params), None)
        return True

    async def _api_set_chat_menu_button(self, params: _Params) -> bool:
        chat_id: int | None = None
        if params.has("chat_id"):
            chat_id = self._chat(params, allow_blocked=True).user_id
        button = params.get_obj("menu_button") or {"type": "default"}
        if button.get("type") not in ("default", "commands", "web_app"):
            raise ApiError(400, "Bad Request: can't parse menu button: unknown type")
        self.menu_buttons[chat_id] = button
        return True

    async def _api_get_chat_menu_button(self, params: _Params) -> JSONDict:
        chat_id = self._chat(params, allow_blocked=True).user_id if params.has("chat_id") else None
        return self.menu_buttons.get(chat_id) or self.menu_buttons.get(None) or {"type": "default"}

    def _profile_setter(self, kind: str, limit: int) -> Handler:
        async def setter(params: _Params) -> bool:
            value = params.get_str(kind) or ""
            if len(value) > limit:
                raise ApiError(400, f"Bad Request: {kind} is too long")
            key = (kind, params.get_str("language_code") or "")
            if value:
                self.profile[key] = value
            else:
                self.profile.pop(key, None)
            return True

        return setter

    def _profile_getter(self, kind: str) -> Handler:
        async def getter(params: _Params) -> JSONDict:
            language = params.get_str("language_code") or ""
            value = self.profile.get((kind, language), self.profile.get((kind, ""), ""))
            if kind == "name" and not value:
                value = str(self.bot_user["first_name"])
            return {kind: value}

        return getter

    # ------------------------------------------------------------------ getUpdates

    async def _api_get_updates(self, params: _Params) -> list[JSONDict]:
        if self.webhook is not None:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use "
                "deleteWebhook to delete the webhook first",
            )
        limit = min(100, max(1, params.get_int("limit") or 100))
        timeout = max(0, params.get_int("timeout") or 0)
        allowed = params.get_list("allowed_updates")
        if allowed is not None:
            # Telegram remembers the last allowed_updates given.
            self._allowed_updates = [str(kind) for kind in allowed]
        self._confirm(params.get_int("offset"))
        # A newer getUpdates ends an older waiting one, as Telegram does.
        self._poll_generation += 1
        generation = self._poll_generation
        self._update_signal.notify()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            batch = self._deliverable(limit)
            if batch or self._closing:
                return [pending.payload for pending in batch]
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            await self._update_signal.wait(remaining)
            if generation != self._poll_generation:
                raise ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; make sure that only "
                    "one bot instance is running",
                )
            if self.webhook is not None:
                raise ApiError(
                    409,
                    "Conflict: can't use getUpdates method while webhook is active; use "
                    "deleteWebhook to delete the webhook first",
                )

    # ------------------------------------------------------------------ webhooks

    async def _api_set_webhook(self, params: _Params) -> bool:
        url = params.get_str("url") or ""
        if not url:
            # Telegram: setWebhook with an empty url removes the webhook.
            return await self._api_delete_webhook(params)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            # Telegram demands HTTPS; the sandbox also accepts plain HTTP for local apps.
            raise ApiError(
                400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"
            )
        secret = params.get_str("secret_token")
        if secret is not None and secret != "" and not _SECRET_TOKEN_RE.fullmatch(secret):
            raise ApiError(400, "Bad Request: secret token contains unallowed characters")
        max_connections = params.get_int("max_connections") or 40
        if not 1 <= max_connections <= 100:
            raise ApiError(400, "Bad Request: bad webhook: max_connections must be in 1..100")
        allowed = params.get_list("allowed_updates")
        if allowed is not None:
            self._allowed_updates = [str(kind) for kind in allowed]
        if params.get_bool("drop_pending_updates", False):
            self._updates.clear()
        self.webhook = {
            "url": url,
            "secret_token": secret or None,
            "max_connections": max_connections,
            "ip_address": params.get_str("ip_address"),
            "allowed_updates": allowed,
        }
        self.webhook_last_error = None
        self._restart_webhook_worker()
        self._update_signal.notify()  # a waiting getUpdates now conflicts
        return True

    async def _api_delete_webhook(self, params: _Params) -> bool:
        if params.get_bool("drop_pending_updates", False):
            self._updates.clear()
        self.webhook = None
        await self._stop_webhook_worker()
        return True

    async def _api_get_webhook_info(self, params: _Params) -> JSONDict:
        info: JSONDict = {
            "url": self.webhook["url"] if self.webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if self.webhook is not None:
            info["max_connections"] = self.webhook["max_connections"]
            if self.webhook["ip_address"]:
                info["ip_address"] = self.webhook["ip_address"]
            if self._allowed_updates:
                info["allowed_updates"] = list(self._allowed_updates)
            if self.webhook_last_error is not None:
                info["last_error_date"], info["last_error_message"] = self.webhook_last_error
        return info

    def _restart_webhook_worker(self) -> None:
        if self._webhook_task is not None:
            self._webhook_task.cancel()
            self._webhook_task = None
        if self.webhook is not None and self._runner is not None and not self._closing:
            self._webhook_task = asyncio.create_task(
                self._webhook_worker(dict(self.webhook)), name="sandbox-webhook"
            )

    async def _stop_webhook_worker(self) -> None:
        task, self._webhook_task = self._webhook_task, None
        if task is not None:
            task.cancel()
            # wait() rather than `await task`: never swallow our own caller's cancellation.
            await asyncio.wait([task])

    async def _webhook_worker(self, hook: JSONDict) -> None:
        """POST queued updates to the webhook: in order per chat, retried until 2xx."""
        in_flight: dict[Hashable, asyncio.Task[None]] = {}
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            try:
                while not self._closing:
                    lanes_seen: set[Hashable] = set()
                    for pending in self._deliverable(len(self._updates)):
                        lane = _update_lane(pending.payload)
                        if lane in lanes_seen:
                            continue  # an earlier update of this chat goes first
                        lanes_seen.add(lane)
                        if lane in in_flight:
                            continue
                        if len(in_flight) >= hook["max_connections"]:
                            break
                        in_flight[lane] = asyncio.create_task(
                            self._push_update(session, hook, pending, lane, in_flight)
                        )
                    await self._update_signal.wait(1.0)
            finally:
                for task in in_flight.values():
                    task.cancel()
                await asyncio.gather(*in_flight.values(), return_exceptions=True)

    async def _push_update(
        self,
        session: aiohttp.ClientSession,
        hook: JSONDict,
        pending: _Pending,
        lane: Hashable,
        in_flight: dict[Hashable, asyncio.Task[None]],
    ) -> None:
        headers = {}
        if hook["secret_token"]:
            headers["X-Telegram-Bot-Api-Secret-Token"] = hook["secret_token"]
        delay = self.webhook_retry_delay
        try:
            while pending in self._updates:
                try:
                    async with session.post(
                        hook["url"], json=pending.payload, headers=headers
                    ) as response:
                        if 200 <= response.status < 300:
                            reply = await self._read_webhook_reply(response)
                            if pending in self._updates:
                                self._updates.remove(pending)
                            if reply is not None:
                                self._run_webhook_reply(*reply)
                            return
                        await response.read()
                        error = (
                            f"Wrong response from the webhook: {response.status} {response.reason}"
                        )
                except (aiohttp.ClientError, TimeoutError, ApiError) as exc:
                    error = f"Connection failed: {type(exc).__name__}: {exc}"
                self.webhook_last_error = (int(time.time()), error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        finally:
            in_flight.pop(lane, None)
            self._update_signal.notify()

    @staticmethod
    async def _read_webhook_reply(
        response: aiohttp.ClientResponse,
    ) -> tuple[JSONDict, dict[str, _Upload]] | None:
        """A webhook may answer with a method call — as JSON or, as aiogram does, as
        multipart/form-data with a "method" field; Telegram then runs it."""
        params: JSONDict = {}
        uploads: dict[str, _Upload] = {}
        if response.content_type == "multipart/form-data":
            reader = MultipartReader(response.headers, response.content)
            await _read_multipart(reader, params, uploads)
        elif response.content_type == "application/json":
            try:
                body = json.loads(await response.read())
            except ValueError:
                return None
            if not isinstance(body, dict):
                return None
            params = body
        else:
            await response.read()
            return None
        return (params, uploads) if isinstance(params.get("method"), str) else None

    def _run_webhook_reply(self, params: JSONDict, uploads: dict[str, _Upload]) -> None:
        method = str(params.pop("method"))
        # In its own task: the method may be deleteWebhook, which stops this very worker.
        task = asyncio.create_task(self._execute(self.token, method, params, uploads))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ------------------------------------------------------------------ HTTP: control

    def _control_allowed(self, request: web.Request) -> None:
        if not self.allow_remote_control and not _is_loopback(request.remote):
            raise web.HTTPForbidden(text="the sandbox control interface is loopback-only")

    @staticmethod
    async def _control_body(request: web.Request) -> JSONDict:
        if not request.body_exists:
            return {}
        try:
            body = await request.json()
        except ValueError:
            raise web.HTTPBadRequest(text="the body must be JSON") from None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text="the body must be a JSON object")
        return body

    def _control_user_id(self, request: web.Request) -> int:
        try:
            return int(request.match_info["user_id"])
        except ValueError:
            raise web.HTTPBadRequest(text="user id must be an integer") from None

    async def _control_stats(self, request: web.Request) -> web.Response:
        self._control_allowed(request)
        return web.json_response({"ok": True, **self.stats()})

    async def _control_calls(self, request: web.Request) -> web.Response:
        self._control_allowed(request)
        after = int(request.query.get("after", "0"))
        calls = [
            {
                "index": index,
                "method": call.method,
                "params": call.params,
                "time": call.time,
                "status": call.status,
                "description": call.description,
            }
            for index, call in enumerate(self.calls[after:], start=after)
        ]
        return web.json_response({"ok": True, "calls": calls, "next": after + len(calls)})

    async def _control_inject(self, request: web.Request) -> web.Response:
        self._control_allowed(request)
        update_id = self.inject_update(await self._control_body(request))
        return web.json_response({"ok": True, "update_id": update_id})

    async def _control_rate_limits(self, request: web.Request) -> web.Response:
        self._control_allowed(request)
        body = await self._control_body(request)
        try:
            self.set_rate_limits(body.get("global_rate"), body.get("per_chat_rate"))
        except (TypeError, ValueError) as exc:
            return web.json_response({"ok": False, "error": str(exc)}, status=400)
        return web.json_response({"ok": True})

    async def _control_fail_next(self, request: web.Request) -> web.Response:
        self._control_allowed(request)
        body = await self._control_body(request)
        try:
            self.fail_next(
                str(body["method"]),
                int(body["status"]),
                str(body.get("description", "Internal Server Error")),
                body.get("retry_after"),
                int(body.get("count", 1)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            return web.json_response({"ok": False, "error": repr(exc)}, status=400)
        return web.json_response({"ok": True})

    async def _control_user(self, request: web.Request) -> web.Response:
        """Create a user or update its profile: first_name, last_name, username, language_code."""
        self._control_allowed(request)
        user = self.user(self._control_user_id(request))
        body = await self._control_body(request)
        for name in ("first_name", "last_name", "username", "language_code"):
            if name in body:
                setattr(user, name, body[name])
        return web.json_response({"ok": True, "user": user.user_dict(), "known": user.known})

    async def _control_action(self, request: web.Request) -> web.Response:
        self._control_allowed(request)
        user = self.user(self._control_user_id(request))
        action = request.match_info["action"]
        body = await self._control_body(request)
        result: JSONDict
        try:
            if action == "send":
                result = {"message_id": await user.send(str(body["text"]))}
            elif action == "start":
                result = {"message_id": await user.start(body.get("payload"))}
            elif action == "press":
                key = body.get("data", body.get("text"))
                if not isinstance(key, str):
                    raise ValueError('give "data" or "text"')
                message_id = body.get("message_id")
                result = {
                    "callback_query_id": await user.press(
                        key, int(message_id) if message_id is not None else None
                    )
                }
            elif action == "answer_poll":
                await user.answer_poll(list(body.get("option_ids", [])), body.get("poll_id"))
                result = {}
            elif action == "edit":
                await user.edit(int(body["message_id"]), str(body["text"]))
                result = {}
            elif action == "send_photo":
                data = base64.b64decode(body["data_base64"]) if "data_base64" in body else None
                result = {
                    "message_id": await user.send_photo(data or DEFAULT_PHOTO, body.get("caption"))
                }
            elif action == "send_document":
                result = {
                    "message_id": await user.send_document(
                        str(body["filename"]),
                        base64.b64decode(body.get("data_base64", "")),
                        body.get("caption"),
                    )
                }
            elif action == "send_voice":
                result = {"message_id": await user.send_voice(int(body.get("duration", 3)))}
            elif action == "send_sticker":
                result = {"message_id": await user.send_sticker()}
            elif action == "block":
                self.block(user.user_id)
                result = {}
            elif action == "unblock":
                self.unblock(user.user_id)
                result = {}
            else:
                return web.json_response(
                    {"ok": False, "error": f"unknown action {action!r}"}, status=404
                )
        except LookupError as exc:
            return web.json_response({"ok": False, "error": str(exc)}, status=404)
        except (KeyError, TypeError, ValueError) as exc:
            return web.json_response({"ok": False, "error": repr(exc)}, status=400)
        return web.json_response({"ok": True, **result})

    async def _control_messages(self, request: web.Request) -> web.Response:
        """Feed items (sends and edits) from index ``after``; long-polls up to ``timeout``."""
        self._control_allowed(request)
        user_id = self._control_user_id(request)
        try:
            after = max(0, int(request.query.get("after", "0")))
            timeout = min(60.0, max(0.0, float(request.query.get("timeout", "0"))))
        except ValueError:
            raise web.HTTPBadRequest(text="after and timeout must be numbers") from None
        include_bytes = request.query.get("bytes", "") in ("1", "true", "yes")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            feed = self._feeds.get(user_id, [])
            remaining = deadline - loop.time()
            if len(feed) > after or remaining <= 0 or self._closing:
                break
            await self._feed_signal.wait(remaining)
        items = [
            {"index": index, **item.to_dict(include_bytes=include_bytes)}
            for index, item in enumerate(feed[after:], start=after)
        ]
        return web.json_response({"ok": True, "messages": items, "next": after + len(items)})
