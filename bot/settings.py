"""Settings in one typed object, from the environment and an optional `.env` file."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PUBLIC_API_URL = "https://api.telegram.org"
_TOKEN_RE = re.compile(r"^\d+:[A-Za-z0-9_-]+$")
_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


class ConfigError(Exception):
    """A setting is missing or malformed; the message names it in one line."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    bot_token: SecretStr | None = None
    telegram_api_url: str = PUBLIC_API_URL
    database_url: str = "sqlite+aiosqlite:///data/biblio.sqlite3"
    redis_url: str | None = None
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    webhook_listen: str = "0.0.0.0:8080"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Where offline artefacts (sandbox files, SQLite file, backups) go by default.
    data_dir: Path = Path("data")
    content_dir: Path | None = None
    # Delivery limits (Telegram: about 30 messages/s overall, 1 per chat per second).
    send_rate: float = Field(default=30.0, gt=0)
    per_chat_interval: float = Field(default=1.0, ge=0)
    # Which parts of the delivery pipeline this process runs. One bot process runs all;
    # a multi-process deployment may run the planner everywhere (it is idempotent) and the
    # worker in processes of its own (`biblio-bot worker`, PostgreSQL only for several).
    run_scheduler: bool = True
    run_worker: bool = True
    planner_interval: float = Field(default=60.0, gt=0)  # seconds between planner ticks
    # A claimed row belongs to its worker until the lease ends; a crashed worker's rows are
    # taken over after it. Must be well above send_timeout.
    delivery_lease: float = Field(default=60.0, gt=0)
    send_timeout: int = Field(default=20, gt=0)  # seconds for one Bot API request
    delivery_poll_interval: float = Field(default=1.0, gt=0)  # idle worker looks again
    delivery_concurrency: int = Field(default=32, ge=1)  # requests in flight at once
    # Network errors and 5xx: retried after retry_base * 2**(attempt-1) s (at most
    # retry_cap s) until max_attempts, then the row fails.
    delivery_max_attempts: int = Field(default=6, ge=1)
    delivery_retry_base: float = Field(default=5.0, gt=0)
    delivery_retry_cap: float = Field(default=900.0, gt=0)
    # The time zone for quiet hours of people who belong to no cohort (mentors, trainers).
    default_timezone: str = "Europe/Brussels"
    # The course on Moodle, linked from every module release (a placeholder until the
    # programme's Moodle address is configured).
    moodle_url: str = "https://moodle.example.org/course/view.php?id=biblio"

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("bot_token", mode="before")
    @classmethod
    def _token(cls, value: object) -> object:
        if value in ("", None):
            return None
        if not isinstance(value, str) or not _TOKEN_RE.match(value.strip()):
            # Never echo the value: it may be a real token with a typo.
            raise ValueError("must look like 123456:ABC-def (digits, a colon, then letters)")
        return value.strip()

    @field_validator("telegram_api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http(s) address such as https://api.telegram.org")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        value = value.strip()
        # Accept the plain forms people paste and pick the async driver we ship.
        for plain, driver in (
            ("sqlite://", "sqlite+aiosqlite://"),
            ("postgresql://", "postgresql+asyncpg://"),
            ("postgres://", "postgresql+asyncpg://"),
        ):
            if value.startswith(plain):
                value = driver + value[len(plain) :]
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must be a sqlite:/// or postgresql:// address")
        return value

    @field_validator("default_timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("must be a time zone name such as Europe/Riga") from None
        return value

    @field_validator("moodle_url")
    @classmethod
    def _moodle_url(cls, value: str) -> str:
        value = value.strip()
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http(s) address")
        return value

    @field_validator("redis_url", "webhook_url", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis:// address")
        return value

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an https:// address")
        return value

    @model_validator(mode="after")
    def _webhook_pair(self) -> Settings:
        if self.webhook_url:
            secret = self.webhook_secret.get_secret_value() if self.webhook_secret else ""
            if not _SECRET_RE.match(secret):
                raise ValueError(
                    "WEBHOOK_SECRET: required with WEBHOOK_URL, 1-256 characters of A-Z a-z 0-9 _ -"
                )
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def sqlite_path(self) -> Path | None:
        if not self.is_sqlite:
            return None
        path = self.database_url.split(":///", 1)[1] if ":///" in self.database_url else ""
        return None if path in ("", ":memory:") else Path(path)


def load_settings(**overrides: object) -> Settings:
    """Build settings, turning pydantic's report into one line that names the setting."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        err = exc.errors()[0]
        name = "_".join(str(part) for part in err["loc"]).upper()
        reason = str(err["msg"]).removeprefix("Value error, ")
        where = f"{name}: " if name else ""
        raise ConfigError(f"configuration error: {where}{reason}") from None
