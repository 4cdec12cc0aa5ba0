"""Teams authentication over real HTTP (the harness of ``test_teams.py``): local mode's warning and loopback
rule, Bot Connector tokens checked against a local key server (forged, expired, misaddressed: 401), the
bot's own tokens from a local login service, a hanging login service or key issuer never freezing the server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.config import Settings
from bot.store import Store
from bot.teams.common import ROUTE
from handlers import Desk
from handlers.request import Reply
from tests.connector_server import (
    ACCEPTED,
    APP_ID,
    LOGIN_TOKEN,
    TENANT,
    ConnectorServer,
    HoldingSocket,
    KeyServer,
    LocalLogin,
    TeamsHarness,
    _harness,
    build_app,
    fixture,
)

# ------------------------------------------------------------------------------- authentication


async def test_local_mode_warns_loudly(desk: Desk, caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.WARNING, logger="chinadesk.teams"):
        build_app(Settings.from_env({"DATABASE_URL": "sqlite:///:memory:"}), desk, None)
    (record,) = [r for r in caplog.records if r.name == "chinadesk.teams"]
    assert record.levelno == logging.WARNING and "LOCAL MODE" in record.getMessage()
    assert "WITHOUT any token check" in record.getMessage()


async def test_local_mode_refuses_non_loopback_service_urls(teams: TeamsHarness):
    status, _ = await teams.post(fixture("personal_message.json", id="remote"))  # smba.trafficmanager.net
    assert status == 403
    assert teams.connector.sent == []


SECURED_ENV = {"MICROSOFT_APP_ID": APP_ID, "MICROSOFT_APP_PASSWORD": "not-a-real-secret",
               "MICROSOFT_APP_TENANT_ID": TENANT}


@pytest.fixture
async def secured(desk: Desk, store: Store, connector: ConnectorServer, engine: str) -> AsyncIterator[TeamsHarness]:
    """The endpoint with an app id: every request must carry a valid Bot Connector token (from the local
    key server); the bot's own tokens come from a local stand-in for Microsoft's login service."""
    keys = KeyServer().start()
    server = await _harness(desk, store, connector, SECURED_ENV, engine, keys, LocalLogin())
    harness = TeamsHarness(server, connector, store)
    harness.keys = keys  # type: ignore[attr-defined]
    yield harness
    await server.close()
    keys.close()


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Bearer not-a-jwt", "Basic dXNlcjpwYXNz"])
async def test_with_an_app_id_requests_without_a_valid_token_get_401(secured: TeamsHarness, authorization):
    headers = {"Authorization": authorization} if authorization is not None else {}
    status, _ = await secured.post(fixture("personal_message.json", serviceUrl=secured.connector.url), headers=headers)
    assert status == 401
    assert secured.connector.sent == []


async def test_with_an_app_id_forged_expired_or_misaddressed_tokens_get_401(secured: TeamsHarness):
    from cryptography.hazmat.primitives.asymmetric import rsa

    keys: KeyServer = secured.keys  # type: ignore[attr-defined]
    url = secured.connector.url
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    bad_tokens = [
        keys.token(app_id=APP_ID, service_url=url, key=other_key),  # signed by someone else
        keys.token(app_id=APP_ID, service_url=url, expires_in=-3600),  # expired
        keys.token(app_id="0b5d7f9a-2c4e-4f6a-8b0d-1e3f5a7c9e2b", service_url=url),  # for another bot
        keys.token(app_id=APP_ID, service_url="https://elsewhere.example/"),  # serviceUrl does not match
        keys.token(app_id=APP_ID, service_url=url, issuer="https://evil.example"),  # wrong issuer
    ]
    for i, token in enumerate(bad_tokens):
        activity = fixture("personal_message.json", serviceUrl=url, id=f"forged-{i}")
        status, _ = await secured.post(activity, headers={"Authorization": f"Bearer {token}"})
        assert status == 401, i
    assert secured.connector.sent == []


async def test_with_an_app_id_a_valid_token_is_accepted(secured: TeamsHarness):
    keys: KeyServer = secured.keys  # type: ignore[attr-defined]
    token = keys.token(app_id=APP_ID, service_url=secured.connector.url)
    status, _ = await secured.post(fixture("personal_message.json", serviceUrl=secured.connector.url),
                                   headers={"Authorization": f"Bearer {token}"})
    assert status in ACCEPTED
    (sent,) = secured.connector.sent
    assert sent.card["body"][0]["text"].startswith("Facial recognition technology application")
    assert sent.authorization == f"Bearer {LOGIN_TOKEN}"  # the reply carries the bot's own token
    # So does a proactive post (a reminder) through the reference that message stored.
    personal = fixture("personal_message.json")["conversation"]["id"]
    await secured.endpoint.deliverer.deliver_reply(personal, Reply(kind="reminder", title="Due soon", text="x"))
    assert secured.connector.sent[-1].authorization == f"Bearer {LOGIN_TOKEN}"
    assert secured.connector.sent[-1].path == f"/v3/conversations/{personal}/activities"


async def test_a_reply_never_blocks_the_server_while_microsofts_login_service_hangs(
    desk: Desk, store: Store, connector: ConnectorServer, monkeypatch: pytest.MonkeyPatch, engine: str,
):
    """The bot's own token comes from Microsoft's login service (MSAL, blocking): with egress that accepts
    and never answers, a valid Teams message gets a quick 503 and every other request is answered meanwhile."""
    keys = KeyServer().start()
    egress = HoldingSocket(hold=4).start()
    server = await _harness(desk, store, connector, SECURED_ENV, engine, keys)  # the real login client
    try:
        harness = TeamsHarness(server, connector, store)
        for name in ("HTTPS_PROXY", "https_proxy"):
            monkeypatch.setenv(name, egress.url)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
        token = keys.token(app_id=APP_ID, service_url=connector.url)
        started = asyncio.get_running_loop().time()
        reply = asyncio.ensure_future(harness.post(fixture("personal_message.json", serviceUrl=connector.url),
                                                   headers={"Authorization": f"Bearer {token}"}))
        await asyncio.sleep(0.5)  # the token request is out, unanswered
        async with aiohttp.ClientSession() as session, session.get(
            server.make_url("/healthz"), timeout=aiohttp.ClientTimeout(total=1)) as resp:
            assert resp.status == 200
        assert asyncio.get_running_loop().time() - started < 1.5, "the server froze while the login service hung"
        status, _ = await reply
        assert status == 503
        assert egress.accepted >= 1, "the token request never went out: the test proves nothing"
        assert connector.sent == []
    finally:
        await server.close()
        keys.close()
        egress.close()


async def test_while_signing_keys_cannot_be_fetched_teams_gets_503_then_recovers(secured: TeamsHarness):
    from bot.teams.keys import SigningKeys

    keys: KeyServer = secured.keys  # type: ignore[attr-defined]
    await secured.endpoint.keys.close()
    secured.endpoint.keys = SigningKeys(retry_min=0.05, retry_max=0.2)  # (seconds: the default waits longer)
    keys.down = True
    token = keys.token(app_id=APP_ID, service_url=secured.connector.url)
    activity = fixture("personal_message.json", serviceUrl=secured.connector.url)
    hdrs = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as session, session.post(
        secured.server.make_url(ROUTE), json=activity, headers=hdrs) as resp:
        assert resp.status == 503 and int(resp.headers["Retry-After"]) > 0
    assert secured.connector.sent == []

    keys.down = False  # the issuer answers again: the background retry fetches the keys
    for _ in range(100):
        status, _ = await secured.post(activity, headers=hdrs)
        if status != 503:
            break
        await asyncio.sleep(0.05)
    assert status in ACCEPTED
    assert len(secured.connector.sent) == 1
    await secured.endpoint.keys.close()


async def test_a_token_signed_with_a_new_key_is_accepted_after_one_refetch(secured: TeamsHarness):
    from cryptography.hazmat.primitives.asymmetric import rsa

    from bot.teams.keys import REFETCH_UNKNOWN_AFTER, SigningKeys

    keys: KeyServer = secured.keys  # type: ignore[attr-defined]
    now = [1000.0]
    await secured.endpoint.keys.close()
    secured.endpoint.keys = SigningKeys(clock=lambda: now[0])
    url = secured.connector.url

    async def post(n: int) -> int:
        token = keys.token(app_id=APP_ID, service_url=url)
        activity = fixture("personal_message.json", serviceUrl=url, id=f"rolled-{n}")
        return (await secured.post(activity, headers={"Authorization": f"Bearer {token}"}))[0]

    assert await post(1) in ACCEPTED
    fetched = keys.requests
    keys.roll_over(rsa.generate_private_key(public_exponent=65537, key_size=2048), "test-key-2")
    # Just fetched: an unknown key id is not worth another fetch yet (nobody can make us fetch at will).
    assert await post(2) == 401
    assert keys.requests == fetched
    now[0] += REFETCH_UNKNOWN_AFTER  # later: the issuer may well have rolled its keys over; look once
    assert await post(3) in ACCEPTED
    assert keys.requests == fetched + 2  # the metadata and the key set, once
    assert len(secured.connector.sent) == 2
    await secured.endpoint.keys.close()
