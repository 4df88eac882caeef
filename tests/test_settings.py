import subprocess
import sys

import pytest

from bot.settings import PUBLIC_API_URL, ConfigError, load_settings


def test_defaults():
    s = load_settings()
    assert s.bot_token is None
    assert s.telegram_api_url == PUBLIC_API_URL
    assert s.database_url.startswith("sqlite+aiosqlite:///data/")
    assert s.webhook_url is None


def test_plain_urls_get_the_async_driver(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db:5432/biblio")
    assert load_settings().database_url == "postgresql+asyncpg://u@db:5432/biblio"
    monkeypatch.setenv("DATABASE_URL", "sqlite:///x.db")
    assert load_settings().database_url == "sqlite+aiosqlite:///x.db"


def test_api_url_any_address(monkeypatch):
    monkeypatch.setenv("TELEGRAM_API_URL", "http://127.0.0.1:8081/")
    assert load_settings().telegram_api_url == "http://127.0.0.1:8081"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BOT_TOKEN", "not-a-token"),
        ("DATABASE_URL", "mysql://x"),
        ("TELEGRAM_API_URL", "ftp://x"),
        ("REDIS_URL", "localhost:6379"),
        ("LOG_LEVEL", "LOUD"),
        ("SEND_RATE", "-3"),
    ],
)
def test_malformed_setting_names_it(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    text = str(err.value)
    assert text.startswith("configuration error: ")
    assert name in text
    assert "\n" not in text


def test_webhook_needs_secret(monkeypatch):
    monkeypatch.setenv("WEBHOOK_URL", "https://bot.example.org/hook")
    with pytest.raises(ConfigError, match="WEBHOOK_SECRET"):
        load_settings()
    monkeypatch.setenv("WEBHOOK_SECRET", "s3cret_value")
    assert load_settings().webhook_url == "https://bot.example.org/hook"


def _run_cli(*args, env):
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_cli_reports_bad_setting_in_one_line_exit_2(tmp_path):
    secret = "123456:SECRETsecretSECRETsecret"
    env = {"PATH": "/usr/bin:/bin", "BOT_TOKEN": secret, "DATABASE_URL": "mysql://nope"}
    result = _run_cli("run", env=env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "configuration error: DATABASE_URL: must be a sqlite:/// or postgresql:// address"
    ]
    assert "Traceback" not in result.stderr
    assert "SECRETsecret" not in result.stderr + result.stdout


def test_cli_run_without_token_explains(tmp_path):
    result = _run_cli("run", env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 2
    assert "BOT_TOKEN is not set" in result.stderr
    assert "sandbox" in result.stderr


def test_redacting_formatter_hides_token():
    import logging

    from bot.logging_setup import RedactingFormatter

    token = "123456:AAbbCCddEEffGGhh"
    fmt = RedactingFormatter("%(message)s", [token, token.split(":")[1]])
    record = logging.LogRecord("x", logging.INFO, "", 0, "url /bot%s/getMe", (token,), None)
    assert fmt.format(record) == "url /bot[REDACTED]/getMe"
