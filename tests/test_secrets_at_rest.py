"""Secrets at rest (issue 11, item 8): the SQLite file is private, OAuth bot tokens are encrypted when a
key is configured (``TOKEN_ENCRYPTION_KEY``, rotation by a comma-separated list), and no log level ever
prints a token or a secret. Everything goes through the real OAuth install over HTTP (FakeSlack)."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography.fernet import Fernet
from slack_server import FakeSlack, SlackSender

from bot.app import SLACK_KEY, create_app
from bot.config import ConfigError, Settings
from bot.observability import configure_logging
from bot.store import StoreError, open_store
from handlers import Desk
from tests.conftest import restored_logging
from tests.test_slack_oauth import ACME, acme_event, install

SECRET = "at-rest-signing-secret-" + "1" * 12
CLIENT_SECRET = "at-rest-client-secret-" + "2" * 12
METRICS_TOKEN = "metrics-token-" + "4" * 12
BOT_TOKEN = "xoxb-acme-token"  # what tests.test_slack_oauth.install has FakeSlack hand out


def oauth_env(api: FakeSlack, db: Path, **extra: str) -> dict[str, str]:
    return {"SLACK_SIGNING_SECRET": SECRET, "SLACK_CLIENT_ID": "1234.5678", "SLACK_CLIENT_SECRET": CLIENT_SECRET,
            "SLACK_API_URL": api.api_url, "DATABASE_URL": f"sqlite:///{db}", **extra}


async def serving(env: dict[str, str], desk: Desk) -> TestClient:
    """The app owning its store (opened from DATABASE_URL with the settings' key), as `chinadesk serve` runs it."""
    client = TestClient(TestServer(create_app(Settings.from_env(env), desk, background=False)))
    await client.start_server()
    return client


async def answer_a_mention(client: TestClient, api: FakeSlack, event_id: str) -> str:
    """A mention in the installed workspace; returns the token the answer was posted with."""
    event = acme_event("app_mention", event_id)
    event["event"]["text"] = f"<@{ACME.bot_user_id}> what does the facial recognition filing involve?"
    event["event"]["ts"] = event["event"]["event_ts"] = f"17000000{len(api.calls)}.0001"
    assert (await SlackSender(client, SECRET).event(event)).status == 200
    await client.app[SLACK_KEY].drain()
    return api.calls_to("chat.postMessage")[-1].token or ""


def raw_bytes(db: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (db, Path(f"{db}-wal")) if p.exists())


def stored_data(db: Path) -> dict:
    with sqlite3.connect(db) as conn:
        (data,) = conn.execute("SELECT data FROM installations WHERE workspace = ?", (ACME.team_id,)).fetchone()
    return json.loads(data)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "data" / "chinadesk.sqlite3"


# ------------------------------------------------------------------------------------ file mode


async def test_the_sqlite_file_and_its_wal_and_shm_are_created_private(db: Path):
    old = os.umask(0o022)  # the usual umask, which gives 0644 files
    try:
        store = open_store(f"sqlite:///{db}")
        await store.open()
        await store.claim_once("k")  # a write: the -wal and -shm files exist from here
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in db.parent.iterdir()}
        await store.close()
    finally:
        os.umask(old)
    assert set(modes) >= {db.name, f"{db.name}-wal", f"{db.name}-shm"}
    assert all(mode == 0o600 for mode in modes.values()), {k: oct(v) for k, v in modes.items()}


# ------------------------------------------------------------------------------- tokens at rest


async def test_oauth_tokens_are_encrypted_at_rest_and_still_used(slack_api: FakeSlack, desk: Desk, db: Path):
    key = Fernet.generate_key().decode()
    client = await serving(oauth_env(slack_api, db, TOKEN_ENCRYPTION_KEY=key), desk)
    try:
        assert (await install(client, slack_api))[0] == 200
        assert await answer_a_mention(client, slack_api, "EvRest1") == BOT_TOKEN
    finally:
        await client.close()
    assert BOT_TOKEN.encode() not in raw_bytes(db)
    assert "bot_token" not in json.dumps(stored_data(db))
    # The same key reads it back in a new process.
    client = await serving(oauth_env(slack_api, db, TOKEN_ENCRYPTION_KEY=key), desk)
    try:
        assert await answer_a_mention(client, slack_api, "EvRest2") == BOT_TOKEN
    finally:
        await client.close()


async def test_keys_rotate_through_a_comma_separated_list(slack_api: FakeSlack, desk: Desk, db: Path):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    client = await serving(oauth_env(slack_api, db, TOKEN_ENCRYPTION_KEY=old), desk)
    try:
        assert (await install(client, slack_api))[0] == 200
    finally:
        await client.close()
    # New key first, old key after: start-up re-encrypts every stored installation with the new key.
    client = await serving(oauth_env(slack_api, db, TOKEN_ENCRYPTION_KEY=f"{new}, {old}"), desk)
    try:
        assert await answer_a_mention(client, slack_api, "EvRotate1") == BOT_TOKEN
    finally:
        await client.close()
    sealed = stored_data(db)
    json.loads(Fernet(new.encode()).decrypt(next(iter(sealed.values())).encode()))  # readable with the new key alone
    # So the old key can go.
    client = await serving(oauth_env(slack_api, db, TOKEN_ENCRYPTION_KEY=new), desk)
    try:
        assert await answer_a_mention(client, slack_api, "EvRotate2") == BOT_TOKEN
    finally:
        await client.close()
    # Only the retired key: start-up refuses, naming the variable.
    store = open_store(f"sqlite:///{db}", token_keys=old)
    with pytest.raises(StoreError, match="TOKEN_ENCRYPTION_KEY"):
        await store.open()
    await store.close()


async def test_tokens_stored_before_a_key_was_set_are_encrypted_once_it_is(slack_api: FakeSlack, desk: Desk,
                                                                           db: Path):
    client = await serving(oauth_env(slack_api, db), desk)
    try:
        assert (await install(client, slack_api))[0] == 200
    finally:
        await client.close()
    assert BOT_TOKEN in json.dumps(stored_data(db))  # no key: stored as it was
    key = Fernet.generate_key().decode()
    client = await serving(oauth_env(slack_api, db, TOKEN_ENCRYPTION_KEY=key), desk)
    try:
        assert await answer_a_mention(client, slack_api, "EvLate1") == BOT_TOKEN
    finally:
        await client.close()
    assert BOT_TOKEN not in json.dumps(stored_data(db))
    # Encrypted rows without the key: a clear refusal at start-up, not a workspace that stops answering.
    store = open_store(f"sqlite:///{db}")
    with pytest.raises(StoreError, match="TOKEN_ENCRYPTION_KEY"):
        await store.open()
    await store.close()


@pytest.mark.parametrize("value", ["not-a-key", "Zm9v", f"{Fernet.generate_key().decode()},oops"])
def test_a_malformed_key_stops_start_up_naming_the_variable(value: str):
    with pytest.raises(ConfigError, match="TOKEN_ENCRYPTION_KEY") as info:
        Settings.from_env({"TOKEN_ENCRYPTION_KEY": value})
    assert value not in str(info.value)


# ----------------------------------------------------------------------------------------- logs


@pytest.fixture
def debug_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """configure_logging as `LOG_LEVEL=DEBUG chinadesk serve` does, its stderr a buffer the test reads.

    (A buffer that stays open: aiosqlite's worker thread may still log a line after the test's end.)
    """
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)  # (the handler keeps it, whatever pytest's capture does later)
    with restored_logging():
        configure_logging("DEBUG", "json", env={"SLACK_SIGNING_SECRET": SECRET, "SLACK_CLIENT_SECRET": CLIENT_SECRET,
                                                "METRICS_TOKEN": METRICS_TOKEN})
        yield stderr


async def test_debug_logs_never_print_a_token_or_a_secret(debug_logs: io.StringIO, slack_api: FakeSlack,
                                                          desk: Desk, db: Path):
    env = oauth_env(slack_api, db, METRICS_TOKEN=METRICS_TOKEN)
    client = await serving(env, desk)  # no encryption key: the token goes into the SQL parameters as it is
    try:
        assert (await install(client, slack_api))[0] == 200
        assert await answer_a_mention(client, slack_api, "EvDebug1") == BOT_TOKEN
    finally:
        await client.close()
    err = debug_logs.getvalue()
    assert "oauth.v2.access" in err and "INSERT INTO installations" in err  # DEBUG really was on
    for secret in (BOT_TOKEN, CLIENT_SECRET, SECRET, METRICS_TOKEN):
        assert secret not in err, f"{secret[:12]}... is in the DEBUG logs"
    assert "[redacted]" in err
