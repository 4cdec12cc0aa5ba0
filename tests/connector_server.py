"""A local Bot Connector-compatible server (127.0.0.1) that records what the bot sends to Teams.

Activities POSTed to ``/api/messages`` carry a ``serviceUrl``; the bot sends its replies there through
botbuilder's real ConnectorClient. Pointing ``serviceUrl`` at this server lets tests assert on the exact
reply activities (and cards) Teams would receive, over real HTTP, with nothing reaching Microsoft.

Implemented (Bot Connector REST API v3, the calls botbuilder makes):

* ``POST /v3/conversations/{conversationId}/activities`` (send to conversation: new posts, proactive)
* ``POST /v3/conversations/{conversationId}/activities/{activityId}`` (reply to an activity)
* ``PUT  /v3/conversations/{conversationId}/activities/{activityId}`` (update)
* ``POST /v3/conversations`` (create conversation)

``refuse(conversation_id, status)`` makes every call for that conversation fail the way Teams does
when the bot has been removed (403) or the conversation is gone (404), or when Teams is busy (429 with
``Retry-After``) or down (5xx); ``allow(conversation_id)`` ends it.

:class:`KeyServer` plays the Bot Framework token issuer's OpenID metadata + JWKS endpoints, in a
thread (so that it also answers a fetch that blocks the test's event loop: botbuilder's own does).

The Teams harness the ``tests/test_teams*.py`` suites share is here too: :class:`TeamsHarness` (the aiohttp
app with the Teams endpoint, POSTing the Teams payloads of ``tests/fixtures/teams/``), :func:`_harness` on
either engine and, with :func:`use_local_microsoft`, against :class:`KeyServer` and a :class:`LocalLogin`;
and the Adaptive Card checks (:func:`assert_valid_card` against the 1.5 schema, :func:`texts`,
:func:`facts`, :func:`submit_data`). Its fixtures (``connector``, ``engine``, ``teams``) are in conftest.py.
"""

from __future__ import annotations

import datetime as dt
import http.server
import itertools
import json
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.config import Settings
from bot.store import Store
from bot.teams.common import ROUTE, TEAMS_KEY
from bot.teams.engine import setup_teams
from handlers import Desk

CARD = "application/vnd.microsoft.card.adaptive"


@dataclass
class Sent:
    """One call the bot made to the connector."""

    method: str
    path: str
    conversation_id: str
    reply_to_id: str | None
    authorization: str | None
    body: dict[str, Any]

    @property
    def cards(self) -> list[dict[str, Any]]:
        return [a["content"] for a in self.body.get("attachments") or [] if a.get("contentType") == CARD]

    @property
    def card(self) -> dict[str, Any]:
        (card,) = self.cards
        return card


@dataclass
class ConnectorServer:
    sent: list[Sent] = field(default_factory=list)
    conversations: list[dict[str, Any]] = field(default_factory=list)
    refused: dict[str, int] = field(default_factory=dict)
    retry_after: dict[str, int] = field(default_factory=dict)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    _server: TestServer | None = None

    @property
    def url(self) -> str:
        """The ``serviceUrl`` to put in activities (trailing slash, as Teams sends it)."""
        assert self._server is not None, "start() first"
        return str(self._server.make_url("/"))

    async def start(self) -> ConnectorServer:
        app = web.Application()
        app.router.add_post("/v3/conversations", self._create)
        app.router.add_post("/v3/conversations/{conversation_id}/activities", self._activity)
        app.router.add_post("/v3/conversations/{conversation_id}/activities/{activity_id}", self._activity)
        app.router.add_put("/v3/conversations/{conversation_id}/activities/{activity_id}", self._activity)
        self._server = TestServer(app, host="127.0.0.1")
        await self._server.start_server()
        return self

    async def close(self) -> None:
        if self._server is not None:
            await self._server.close()

    def refuse(self, conversation_id: str, status: int = 403, *, retry_after: int | None = None) -> None:
        self.refused[conversation_id] = status
        if retry_after is not None:
            self.retry_after[conversation_id] = retry_after

    def allow(self, conversation_id: str) -> None:
        self.refused.pop(conversation_id, None)
        self.retry_after.pop(conversation_id, None)

    def clear(self) -> None:
        self.sent.clear()

    @property
    def cards(self) -> list[dict[str, Any]]:
        return [card for s in self.sent for card in s.cards]

    async def _activity(self, request: web.Request) -> web.Response:
        conversation_id = request.match_info["conversation_id"]
        if conversation_id in self.refused:
            status = self.refused[conversation_id]
            code = {403: "BotNotInConversationRoster", 404: "ConversationNotFound"}.get(status, "ServiceError")
            after = self.retry_after.get(conversation_id)
            return web.json_response({"error": {"code": code, "message": "refused by test"}}, status=status,
                                     headers={"Retry-After": str(after)} if after is not None else None)
        body = await request.json()
        self.sent.append(Sent(
            method=request.method, path=request.path, conversation_id=conversation_id,
            reply_to_id=request.match_info.get("activity_id"),
            authorization=request.headers.get("Authorization"), body=body,
        ))
        return web.json_response({"id": f"sent-{next(self._ids)}"}, status=201 if request.method == "POST" else 200)

    async def _create(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.conversations.append(body)
        return web.json_response({"id": f"a:created-{uuid.uuid4().hex[:8]}", "activityId": f"sent-{next(self._ids)}"})


class KeyServer:
    """OpenID metadata + JWKS for tokens signed by a test key, served from a thread on 127.0.0.1."""

    def __init__(self, *, endorsements: tuple[str, ...] = ("msteams",)) -> None:
        from cryptography.hazmat.primitives.asymmetric import rsa
        from jwt.algorithms import RSAAlgorithm

        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "test-key-1"
        jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update(kid=self.kid, use="sig", endorsements=list(endorsements))
        self._keys = {"keys": [jwk]}
        self._httpd: http.server.ThreadingHTTPServer | None = None
        self.down = False  # True: every request answers 503 (the issuer's endpoint having an outage)
        self.requests = 0

    def roll_over(self, key: Any, kid: str) -> None:
        """Publish another signing key (the old one stays published) and sign new tokens with it."""
        from jwt.algorithms import RSAAlgorithm

        jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
        jwk.update(kid=kid, use="sig", endorsements=list(self._keys["keys"][0]["endorsements"]))
        self._keys["keys"].append(jwk)
        self.key, self.kid = key, kid

    @property
    def metadata_url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/.well-known/openidconfiguration"

    def start(self) -> KeyServer:
        keys = self._keys
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests += 1
                if owner.down:
                    self.send_error(503)
                    return
                if self.path == "/.well-known/openidconfiguration":
                    payload = {"issuer": "https://api.botframework.com", "jwks_uri": owner.metadata_url.replace(
                        "/.well-known/openidconfiguration", "/keys")}
                elif self.path == "/keys":
                    payload = keys
                else:
                    self.send_error(404)
                    return
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def close(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    def token(
        self, *, app_id: str, service_url: str, issuer: str = "https://api.botframework.com",
        expires_in: int = 3600, key: Any = None,
    ) -> str:
        """A channel-to-bot token like the Bot Connector's (``aud`` = the bot's app id, ``serviceurl``)."""
        import jwt

        now = dt.datetime.now(dt.UTC)
        claims = {
            "iss": issuer, "aud": app_id, "serviceurl": service_url,
            "nbf": now - dt.timedelta(minutes=1), "exp": now + dt.timedelta(seconds=expires_in),
        }
        return jwt.encode(claims, key or self.key, algorithm="RS256", headers={"kid": self.kid})


class HoldingSocket:
    """A TCP server on 127.0.0.1, in a thread, that accepts connections, says nothing, and closes each after
    ``hold`` seconds: egress that "accepts TCP but never answers" (as ``HTTPS_PROXY``), for a bounded time
    so that a client blocking the test's own event loop on it fails the test instead of hanging it."""

    def __init__(self, hold: float) -> None:
        import socket

        self.hold = hold
        self.accepted = 0
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self._stop = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def start(self) -> HoldingSocket:
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            self.accepted += 1
            threading.Timer(self.hold, conn.close).start()

    def close(self) -> None:
        self._stop.set()
        self._sock.close()


# ------------------------------------------------------------ the Teams harness (tests/test_teams*.py)

FIXTURES = Path(__file__).parent / "fixtures" / "teams"
ACCEPTED = (201, 202)  # botbuilder answered 201, the Agents SDK 202: Teams takes any 2xx
APP_ID = "3f1a7c2e-5b8d-4e6f-9a0b-1c2d3e4f5a6b"  # the fixtures' bot is 28:<this>
TENANT = "9c4e2b7a-1d3f-4a5b-8c6d-7e8f9a0b1c2d"
TEAM_ID = "19:Kc2bX7yN4mQ1pR8wT5vZ3aS6dF9gH0jL@thread.tacv2"
CHANNEL_ID = "19:8d4f2a6c1e3b5d7f9a0c2e4b6d8f1a3c@thread.tacv2"
USER_AAD = "6f1c8e2d-4b3a-4c5d-9e8f-0a1b2c3d4e5f"


def card_schema() -> jsonschema.protocols.Validator:
    schema = json.loads((FIXTURES / "adaptive-card-1.5.schema.json").read_text(encoding="utf-8-sig"))
    return jsonschema.Draft6Validator(schema)


SCHEMA = card_schema()


def assert_valid_card(card: dict[str, Any]) -> None:
    errors = sorted(SCHEMA.iter_errors(card), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message[:200]}" for e in errors[:5])
    assert card["version"] == "1.5"


def fixture(name: str, **changes: Any) -> dict[str, Any]:
    data = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    data.update(changes)
    return data


def texts(card: dict[str, Any], *, markdown_only: bool = False) -> list[str]:
    """Every text block's text in a card, in order, containers included: TextBlocks (read as Markdown) and
    RichTextBlocks (their runs joined; never read as Markdown, so left out with ``markdown_only``)."""
    out: list[str] = []

    def walk(items: list[dict[str, Any]]) -> None:
        for item in items:
            if item.get("type") == "TextBlock":
                out.append(item["text"])
            elif item.get("type") == "RichTextBlock" and not markdown_only:
                out.append("".join(run if isinstance(run, str) else run["text"] for run in item["inlines"]))
            walk(item.get("items", []))

    walk(card["body"] if card.get("type") == "AdaptiveCard" else [card])
    return out


def facts(card: dict[str, Any]) -> dict[str, str]:
    return {f["title"]: f["value"] for item in card["body"] if item["type"] == "FactSet" for f in item["facts"]}


def find(card: dict[str, Any], element_id: str) -> dict[str, Any]:
    return next(item for item in card["body"] if item.get("id") == element_id)


def submit_data(card: dict[str, Any]) -> list[dict[str, Any]]:
    return [a["data"] for a in card.get("actions", []) if a["type"] == "Action.Submit"]


class TeamsHarness:
    """The aiohttp app with the Teams endpoint, a store, and the local connector its replies go to."""

    def __init__(self, server: TestServer, connector: ConnectorServer, store: Store | None) -> None:
        self.server = server
        self.connector = connector
        self.store = store

    @property
    def endpoint(self) -> Any:
        return self.server.app[TEAMS_KEY]

    async def post(self, activity: dict[str, Any], *, headers: dict[str, str] | None = None,
                   raw: bytes | None = None) -> tuple[int, Any]:
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        body = raw if raw is not None else json.dumps(activity).encode()
        async with aiohttp.ClientSession() as session, session.post(
            self.server.make_url(ROUTE), data=body, headers=hdrs
        ) as resp:
            text = await resp.text()
            return resp.status, (json.loads(text) if text and resp.content_type == "application/json" else text)

    async def say(self, name: str, **changes: Any) -> list[Sent]:
        """POST a fixture (serviceUrl -> local connector) and return what the bot sent back."""
        before = len(self.connector.sent)
        status, _ = await self.post(fixture(name, serviceUrl=self.connector.url, **changes))
        assert status in (200, *ACCEPTED), status
        return self.connector.sent[before:]


def build_app(settings: Settings, desk: Desk, store: Store | None) -> web.Application:
    """The server under test: the shared Slack + Teams aiohttp app from bot.app.create_app."""
    try:
        from bot.app import create_app
    except ImportError:  # a checkout without the shared server: mount Teams as create_app does
        app = web.Application()
        setup_teams(app, settings=settings, desk=desk, store=store)
        return app
    return create_app(settings, desk, store, background=False)  # tests that need the scheduler drive it


ENGINES = ["agents", "botbuilder"]
LOGIN_TOKEN = "bot-token-from-local-login"


class LocalLogin:
    """Microsoft's login service, played locally: the bot's outgoing token is ``token`` (the Agents SDK's
    token-provider shape: ``get_access_token(resource, scopes)``)."""

    def __init__(self, token: str = LOGIN_TOKEN) -> None:
        self.token = token

    async def get_access_token(self, resource_url: str, scopes: list[str], force_refresh: bool = False) -> str:
        return self.token


def use_local_microsoft(endpoint: Any, keys: KeyServer, login: LocalLogin | None) -> None:
    """Point the endpoint's token validation at the local key server and (with ``login``) its outgoing
    tokens at a local login service, whichever engine it runs on."""
    if endpoint.engine == "agents":
        from bot.teams.agents import OutgoingTokens, make_adapter

        endpoint.key_source = lambda _uri: keys.metadata_url
        if login is not None:
            endpoint.tokens = OutgoingTokens(login)
            endpoint.adapter = endpoint.deliverer.adapter = make_adapter(endpoint.tokens, APP_ID)
        return
    from botframework.connector.auth import MicrosoftAppCredentials, ServiceClientCredentialsFactory

    from bot.teams.connector import BotFrameworkConfig, make_adapter

    class BotbuilderLogin(ServiceClientCredentialsFactory):
        async def is_valid_app_id(self, app_id: str) -> bool:
            return app_id == APP_ID

        async def is_authentication_disabled(self) -> bool:
            return False

        async def create_credentials(self, app_id: str, oauth_scope: str, login_endpoint: str,
                                     validate_authority: bool) -> MicrosoftAppCredentials:
            class Credentials(MicrosoftAppCredentials):
                def get_access_token(self, force_refresh: bool = False) -> str:
                    return login.token  # type: ignore[union-attr]

            credentials = Credentials(app_id, "unused", oauth_scope=oauth_scope)
            credentials.app = "local"  # no MSAL client: the token comes from here
            return credentials

    config = BotFrameworkConfig.from_settings(
        endpoint.settings, TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL=keys.metadata_url,
        TO_BOT_FROM_CHANNEL_TOKEN_ISSUER="https://api.botframework.com")
    endpoint.adapter = endpoint.deliverer.adapter = make_adapter(
        endpoint.settings, config, BotbuilderLogin() if login is not None else None)
    endpoint.metadata_url = keys.metadata_url


async def _harness(desk: Desk, store: Store | None, connector: ConnectorServer, env: dict[str, str],
                   engine: str = "agents", keys: KeyServer | None = None,
                   login: LocalLogin | None = None) -> TestServer:
    app = build_app(Settings.from_env({**env, "TEAMS_ENGINE": engine}), desk, store)
    assert app[TEAMS_KEY].engine == engine
    if keys is not None:  # token validation against the local key server instead of Microsoft's
        use_local_microsoft(app[TEAMS_KEY], keys, login)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server

