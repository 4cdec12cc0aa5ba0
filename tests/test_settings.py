"""Settings (pydantic-settings): one model per concern, today's variable names, errors that name the
variable (exit 2), and the README's tables printed from the models."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import ConfigError, Settings
from bot.config_doc import CONCERNS, README_BEGIN, README_END, variables_markdown

REPO = Path(__file__).resolve().parents[1]
CHINADESK = Path(sys.executable).with_name("chinadesk")


def readme_tables() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert README_BEGIN in text and README_END in text, "README lost its settings-table markers"
    return text[text.index(README_BEGIN): text.index(README_END) + len(README_END)]


def test_readme_tables_are_the_models_tables():
    # Fails when a variable is added, renamed or re-described in bot/config.py without `python -m bot.config_doc`
    # being pasted into the README (or the README edited by hand).
    assert readme_tables() == variables_markdown()


def test_python_m_bot_config_doc_prints_the_tables():
    out = subprocess.run([sys.executable, "-m", "bot.config_doc"], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == variables_markdown()


def test_every_variable_the_code_has_always_read_is_in_a_model():
    names = {name for _, model in CONCERNS for name, _ in model.variables()}
    assert names >= {
        "PORT", "DATABASE_URL", "SCHEDULER", "LOG_LEVEL", "LOG_FORMAT", "METRICS_TOKEN", "METRICS_PORT",
        "DEFAULT_TIMEZONE", "CONTENT_STALE_DAYS", "SLACK_SIGNING_SECRET", "SLACK_BOT_TOKEN", "SLACK_CLIENT_ID",
        "SLACK_CLIENT_SECRET", "SLACK_REDIRECT_URI", "SLACK_SCOPES", "SLACK_APP_TOKEN", "SLACK_SOCKET_MODE",
        "SLACK_API_URL", "TOKEN_ENCRYPTION_KEY", "MICROSOFT_APP_ID", "MICROSOFT_APP_PASSWORD", "MICROSOFT_APP_TYPE",
        "MICROSOFT_APP_TENANT_ID", "TEAMS",
    }


def test_defaults_are_a_sqlite_file_here_and_local_mode(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = Settings.from_env({})
    assert s.database_url == f"sqlite:///{tmp_path / 'chinadesk.sqlite3'}"
    assert s.slack is None and s.teams is not None and s.teams.local_mode
    assert (s.server.port, s.log_level, s.log_format, s.stale_days) == (8080, "INFO", "auto", 365)
    assert s.scheduler.enabled and s.scheduler.metrics_port == 0


def test_values_are_read_and_normalised():
    s = Settings.from_env({"PORT": "9000", "LOG_LEVEL": "debug", "LOG_FORMAT": " JSON ", "SCHEDULER": "off",
                           "CONTENT_STALE_DAYS": "30", "DEFAULT_TIMEZONE": "Europe/London", "TEAMS": "false",
                           "SLACK_SCOPES": "commands, chat:write", "SLACK_BOT_TOKEN": "xoxb-1",
                           "SLACK_SIGNING_SECRET": "sig", "CHINADESK_CACHE_DIR": "/tmp/x"})
    assert (s.server.port, s.log_level, s.log_format, s.stale_days) == (9000, "DEBUG", "json", 30)
    assert s.default_timezone == "Europe/London" and not s.scheduler.enabled and s.teams is None
    assert s.slack is not None and s.slack.scopes == ("commands", "chat:write")
    assert s.store.cache_dir == "/tmp/x"


def test_the_process_environment_does_not_leak_into_an_explicit_mapping(monkeypatch):
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-from-the-shell")
    monkeypatch.setenv("PORT", "1234")
    s = Settings.from_env({})
    assert s.slack is None and s.server.port == 8080


@pytest.mark.parametrize("env, name", [
    ({"PORT": "eighty"}, "PORT"),
    ({"PORT": "70000"}, "PORT"),
    ({"CONTENT_STALE_DAYS": "a year"}, "CONTENT_STALE_DAYS"),
    ({"LOG_LEVEL": "loud"}, "LOG_LEVEL"),
    ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
    ({"SCHEDULER": "sometimes"}, "SCHEDULER"),
    ({"METRICS_PORT": "-1"}, "METRICS_PORT"),
    ({"DEFAULT_TIMEZONE": "Mars/Olympus"}, "DEFAULT_TIMEZONE"),
    ({"SLACK_SOCKET_MODE": "maybe"}, "SLACK_SOCKET_MODE"),
    ({"TEAMS": "sometimes"}, "TEAMS"),
    ({"MICROSOFT_APP_TYPE": "Weird"}, "MICROSOFT_APP_TYPE"),
    ({"TOKEN_ENCRYPTION_KEY": "not-a-key-SECRET"}, "TOKEN_ENCRYPTION_KEY"),
])
def test_a_bad_value_names_its_variable(env, name):
    with pytest.raises(ConfigError) as err:
        Settings.from_env(env)
    message = str(err.value)
    assert message.startswith(name + " ") and "\n" not in message
    assert "SECRET" not in message  # a secret's value is never echoed


@pytest.mark.parametrize("argv, env", [
    (["ask", "/china-filing"], {"CONTENT_STALE_DAYS": "soon"}),
    (["content", "check"], {"CONTENT_STALE_DAYS": "soon"}),
    (["ask", "/china-filing"], {"LOG_FORMAT": "xml"}),
    (["ask", "/china-filing"], {"SLACK_BOT_TOKEN": "xoxb-1"}),  # Slack half set: names what is missing
])
def test_a_bad_variable_makes_the_cli_exit_2_naming_it(tmp_path, argv, env):
    full = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", **env}
    out = subprocess.run([str(CHINADESK), *argv], capture_output=True, text=True, env=full, cwd=tmp_path, timeout=120)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    named = next(iter(env)) if "SLACK_BOT_TOKEN" not in env else "SLACK_SIGNING_SECRET"
    assert named in out.stderr


def test_every_secret_setting_is_scrubbed_from_the_logs():
    from bot.config import SDK_SETTINGS, TEAMS_ENV_NAMES
    from bot.observability import SECRET_VARIABLES

    secrets = {name for _, model in CONCERNS for name, info in model.variables()
               if (info.json_schema_extra or {}).get("secret")}
    # and the Agents SDK's names for them (mapped onto the older names before the models read them)
    secrets |= {SDK_SETTINGS + sdk for sdk, old in TEAMS_ENV_NAMES.items() if old in secrets}
    assert secrets == set(SECRET_VARIABLES)
