"""Slack settings: on, off, or a start-up error that names the variable; secrets never printed."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.config import SLACK_DEFAULT_API_URL, ConfigError, Settings, SlackSettings

REPO = Path(__file__).resolve().parents[1]
CHINADESK = Path(sys.executable).with_name("chinadesk")


def slack(env: dict[str, str], **kw) -> SlackSettings | None:
    return SlackSettings.from_env(env, **kw)


def test_no_slack_variables_means_slack_is_off():
    assert slack({}) is None
    assert Settings.from_env({}).slack is None
    assert slack({"SLACK_API_URL": "http://127.0.0.1:9/api/"}) is None  # a URL alone switches nothing on


def test_single_workspace():
    s = slack({"SLACK_SIGNING_SECRET": "sig", "SLACK_BOT_TOKEN": "xoxb-1"})
    assert s is not None and not s.oauth and not s.socket_mode
    assert s.api_url == SLACK_DEFAULT_API_URL


def test_oauth_installs():
    s = slack({"SLACK_SIGNING_SECRET": "sig", "SLACK_CLIENT_ID": "1.2", "SLACK_CLIENT_SECRET": "cs"})
    assert s is not None and s.oauth and s.client_id == "1.2"


@pytest.mark.parametrize(
    "env, names",
    [
        ({"SLACK_SIGNING_SECRET": "sig"}, ["SLACK_BOT_TOKEN"]),
        ({"SLACK_BOT_TOKEN": "xoxb-1"}, ["SLACK_SIGNING_SECRET"]),
        ({"SLACK_SIGNING_SECRET": "sig", "SLACK_BOT_TOKEN": "xoxb-1", "SLACK_CLIENT_ID": "1.2",
          "SLACK_CLIENT_SECRET": "cs"}, ["SLACK_BOT_TOKEN", "SLACK_CLIENT_ID"]),
        ({"SLACK_SIGNING_SECRET": "sig", "SLACK_CLIENT_ID": "1.2"}, ["SLACK_CLIENT_SECRET"]),
        ({"SLACK_SIGNING_SECRET": "sig", "SLACK_CLIENT_SECRET": "cs"}, ["SLACK_CLIENT_ID"]),
        ({"SLACK_SIGNING_SECRET": "sig", "SLACK_BOT_TOKEN": "xoxp-user-token"}, ["SLACK_BOT_TOKEN"]),
        ({"SLACK_SIGNING_SECRET": "sig", "SLACK_BOT_TOKEN": "xoxb-1", "SLACK_API_URL": "slack.example"},
         ["SLACK_API_URL"]),
    ],
)
def test_partial_or_contradictory_settings_name_the_variable(env: dict[str, str], names: list[str]):
    with pytest.raises(ConfigError) as err:
        slack(env)
    for name in names:
        assert name in str(err.value)
    for value in env.values():
        if value not in ("sig", "cs", "xoxb-1", "xoxp-user-token"):
            continue
        assert value not in str(err.value).replace(name, "")  # the message names variables, not secrets


def test_socket_mode_needs_the_app_token():
    with pytest.raises(ConfigError, match="SLACK_APP_TOKEN"):
        slack({"SLACK_BOT_TOKEN": "xoxb-1"}, socket_mode=True)
    with pytest.raises(ConfigError, match="SLACK_APP_TOKEN"):
        slack({}, socket_mode=True)
    with pytest.raises(ConfigError, match="SLACK_APP_TOKEN"):
        slack({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xoxb-wrong-kind"}, socket_mode=True)
    s = slack({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"}, socket_mode=True)
    assert s is not None and s.socket_mode  # no signing secret needed: nothing arrives over HTTP
    s = slack({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1", "SLACK_SOCKET_MODE": "true"})
    assert s is not None and s.socket_mode


def test_api_url_gets_its_trailing_slash():
    s = slack({"SLACK_SIGNING_SECRET": "s", "SLACK_BOT_TOKEN": "xoxb-1", "SLACK_API_URL": "http://127.0.0.1:5/api"})
    assert s is not None and s.api_url == "http://127.0.0.1:5/api/"


def test_secrets_never_show_in_repr():
    s = Settings.from_env({"SLACK_SIGNING_SECRET": "sig-VERY-SECRET", "SLACK_BOT_TOKEN": "xoxb-VERY-SECRET"})
    assert "VERY-SECRET" not in repr(s) and "VERY-SECRET" not in str(s)


# ------------------------------------------------------------------------------ chinadesk serve


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLACK_", "MICROSOFT_", "DATABASE_URL", "PORT"))}
    env.update(extra)
    return env


def test_serve_with_no_configuration_starts_on_the_embedded_defaults(tmp_path: Path):
    """The README Quick start: ``chinadesk serve`` with nothing set (SQLite in the working directory)."""
    import urllib.request

    port = _free_port()
    proc = subprocess.Popen(
        [str(CHINADESK), "serve", "--port", str(port)], cwd=tmp_path, env=_clean_env(tmp_path),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        body = None
        while time.monotonic() < deadline and body is None:
            if proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
                    body = response.read().decode()
            except OSError:
                time.sleep(0.2)
        assert body is not None, proc.stderr.read() if proc.poll() is not None else "no answer on /healthz"
        assert '"ok"' in body
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=15)
    assert f"listening on http://127.0.0.1:{port}" in err
    assert "Platforms on:" in err and "Slack: off" in err
    assert (tmp_path / "chinadesk.sqlite3").exists()


def test_serve_refuses_partial_slack_settings_naming_the_variable(tmp_path: Path):
    result = subprocess.run(
        [str(CHINADESK), "serve", "--port", str(_free_port())], cwd=tmp_path,
        env=_clean_env(tmp_path, SLACK_SIGNING_SECRET="sig-secret-value"),
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "SLACK_BOT_TOKEN" in result.stderr
    assert "sig-secret-value" not in result.stderr


def test_serve_socket_mode_without_app_token_names_it(tmp_path: Path):
    result = subprocess.run(
        [str(CHINADESK), "serve", "--socket-mode", "--port", str(_free_port())], cwd=tmp_path,
        env=_clean_env(tmp_path, SLACK_BOT_TOKEN="xoxb-1"), capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "SLACK_APP_TOKEN" in result.stderr
