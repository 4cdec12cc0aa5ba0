"""A Teams request can never freeze the server (issue 11, item 1).

Validating a Bot Framework token needs the issuer's signing keys (OpenID metadata, then its JWKS). This
test runs the real ``chinadesk serve`` with a Teams app id and egress that accepts TCP but never answers
(``HTTPS_PROXY`` pointing at a local socket that never replies), POSTs RS256-looking tokens to
``/api/messages``, and meanwhile checks ``/healthz`` and a signed Slack command. It drives HTTP and the
environment only, so it holds whatever SDK validates Teams tokens.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import time
from pathlib import Path

import aiohttp
import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa
from slack_server import FakeSlack, form_body, load_fixture, sign

from tests.serving import Silent, healthz, serve, start_serve

APP_ID = "3f1a7c2e-5b8d-4e6f-9a0b-1c2d3e4f5a6b"
SECRET = "keys-signing-secret-" + "5" * 16
FIXTURES = Path(__file__).parent / "fixtures"


class DeadEgress:
    """An HTTP proxy on 127.0.0.1 standing for an internet that accepts TCP and never answers.

    Requests for 127.0.0.1 (the local Slack stand-in: slack_sdk sends even those through ``HTTPS_PROXY``)
    are forwarded; everything else (an HTTPS tunnel to Microsoft, any other host) is accepted and held
    without a byte in reply.
    """

    def __init__(self) -> None:
        self.held = 0
        self._runner: web.ServerRunner | None = None
        self._forever = asyncio.Event()

    async def start(self) -> DeadEgress:
        self._runner = web.ServerRunner(web.Server(self._handle))
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await self._site.start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.method == "CONNECT" or request.url.host != "127.0.0.1":
            self.held += 1
            await self._forever.wait()  # until the client gives up (or the test ends)
        async with aiohttp.ClientSession() as http, http.request(
            request.method, str(request.url), data=await request.read(),
            headers={k: v for k, v in request.headers.items() if k.lower() in ("content-type", "authorization")},
        ) as forwarded:
            return web.Response(status=forwarded.status, body=await forwarded.read(),
                                content_type=forwarded.content_type)

    async def close(self) -> None:
        self._forever.set()
        if self._runner is not None:
            await self._runner.cleanup()


def bot_framework_looking_token(service_url: str) -> str:
    """Shaped like a Bot Connector token (issuer, audience, key id), signed by a key nobody published."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.UTC)
    claims = {"iss": "https://api.botframework.com", "aud": APP_ID, "serviceurl": service_url,
              "nbf": now - dt.timedelta(minutes=1), "exp": now + dt.timedelta(hours=1)}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "a-key-id-only-microsoft-knows"})


@pytest.fixture(params=["agents", "botbuilder"])
def engine(request: pytest.FixtureRequest) -> str:
    """The guarantee holds on both Teams engines (the Agents SDK, and the deprecated botbuilder)."""
    if request.param == "botbuilder":
        pytest.importorskip("botbuilder.core", reason="the botbuilder engine needs pip install -e '.[botbuilder]'")
    return request.param


def serve_env(tmp_path: Path, slack: FakeSlack, proxy: str, engine: str = "agents") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLACK_", "MICROSOFT_APP", "DATABASE_URL", "TEAMS", "CONNECTIONS__"))
           and k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'keys.sqlite3'}", LOG_FORMAT="json", SCHEDULER="off",
        TEAMS_ENGINE=engine,
        SLACK_SIGNING_SECRET=SECRET, SLACK_BOT_TOKEN=slack.bot_token, SLACK_API_URL=slack.api_url,
        HTTPS_PROXY=proxy, https_proxy=proxy, HTTP_PROXY=proxy, http_proxy=proxy,
    )
    # The Agents SDK engine is configured with the SDK's names, botbuilder with the older ones (both accepted).
    names = (("CONNECTIONS__SERVICE_CONNECTION__SETTINGS__" + n for n in ("CLIENTID", "CLIENTSECRET", "TENANTID"))
             if engine == "agents" else ("MICROSOFT_APP_ID", "MICROSOFT_APP_PASSWORD", "MICROSOFT_APP_TENANT_ID"))
    env.update(zip(names, (APP_ID, "not-a-real-secret", "9c4e2b7a-1d3f-4a5b-8c6d-7e8f9a0b1c2d"), strict=True))
    return env


async def test_unanswered_key_fetches_never_freeze_the_server(tmp_path: Path, engine: str):
    egress = await DeadEgress().start()
    async with FakeSlack() as slack:
        proc, port, lines = await start_serve(serve_env(tmp_path, slack, egress.url, engine), tmp_path)
        base = f"http://127.0.0.1:{port}"
        teams: list[asyncio.Future] = []
        try:
            activity = json.loads((FIXTURES / "teams" / "personal_message.json").read_text())
            token = bot_framework_looking_token(activity["serviceUrl"])

            async def teams_post(http: aiohttp.ClientSession, n: int) -> tuple[int, float]:
                started = time.monotonic()
                async with http.post(f"{base}/api/messages", json=dict(activity, id=f"freeze-{n}"),
                                     headers={"Authorization": f"Bearer {token}"},
                                     timeout=aiohttp.ClientTimeout(total=8)) as resp:
                    return resp.status, time.monotonic() - started

            async with aiohttp.ClientSession() as http:
                teams += [asyncio.ensure_future(teams_post(http, n)) for n in range(3)]
                await asyncio.sleep(0.3)  # the key fetch is under way

                # While the keys cannot be fetched, the process answers everything else on time.
                for _ in range(8):
                    async with http.get(f"{base}/healthz", timeout=aiohttp.ClientTimeout(total=1)) as resp:
                        assert resp.status == 200
                    await asyncio.sleep(0.25)
                fields = dict(load_fixture("slash_command"), command="/china-filing", text="facial-recognition",
                              response_url=slack.response_url())
                body = form_body(fields)
                async with http.post(f"{base}/slack/events", data=body.encode(), timeout=aiohttp.ClientTimeout(total=3),
                                     headers={"Content-Type": "application/x-www-form-urlencoded",
                                              **sign(body, SECRET)}) as resp:
                    assert resp.status == 200
                    assert "Facial recognition" in await resp.text()

                # The Teams requests themselves got a quick "not now" / "not authenticated", not a hang.
                for status, took in await asyncio.gather(*teams):
                    assert status in (401, 503), status
                    assert took < 5, f"a Teams request waited {took:.1f}s for signing keys"
                assert egress.held >= 1, "the key fetch never went out: the test proves nothing"

            signalled = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            _out, err = await asyncio.wait_for(proc.communicate(), 15)
            assert proc.returncode == 0, ("".join(lines) + err.decode())[-3000:]
            assert time.monotonic() - signalled < 10
        finally:
            for task in teams:
                task.cancel()
            await asyncio.gather(*teams, return_exceptions=True)
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            await egress.close()


async def test_sigterm_is_not_held_up_by_a_teams_connector_that_never_answers(tmp_path: Path, engine: str):
    """A Teams reply goes to the conversation's serviceUrl; when that accepts the connection and never
    answers, the reply waits (off the event loop), and SIGTERM still stops the process within 10 s."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLACK_", "MICROSOFT_APP", "DATABASE_URL", "TEAMS", "CONNECTIONS__"))}
    env.update(DATABASE_URL=f"sqlite:///{tmp_path / 'connector.sqlite3'}", LOG_FORMAT="json", SCHEDULER="off",
               TEAMS_ENGINE=engine)
    async with Silent() as connector, serve(env, tmp_path) as server:
        activity = json.loads((FIXTURES / "teams" / "personal_message.json").read_text())
        activity["serviceUrl"] = connector.url  # local mode replies to loopback service URLs only
        async with aiohttp.ClientSession() as http:
            reply = asyncio.ensure_future(http.post(f"http://127.0.0.1:{server.port}/api/messages", json=activity))
            await asyncio.sleep(1.5)  # the reply to the connector is under way, unanswered
            assert await healthz(server.port or 0) == 200
            code, took, log = await server.stop(signal.SIGTERM)
            reply.cancel()
            await asyncio.gather(reply, return_exceptions=True)
    assert code == 0, log[-2000:]
    assert took < 10, f"SIGTERM took {took:.1f}s"

