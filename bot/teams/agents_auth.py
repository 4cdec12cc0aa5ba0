"""The Agents SDK engine's dealings with Microsoft's identity services, kept off the event loop.

* Signing keys: the SDK fetches them with ``PyJWKClient`` (urllib, 30 s timeout) in a worker thread of the
  loop's default executor, for the request that needs them. :class:`ProviderKeys` answers its look-ups
  instead from :class:`bot.teams.keys.SigningKeys` (aiohttp, timeout, cached, refreshed in the
  background): :class:`KeysUnavailable` while none could be fetched (503), an unknown key 401.
* The bot's own token (MSAL: blocking, no timeout, tenant discovery on first use):
  :class:`OutgoingTokens` fetches it in a daemon thread at most every :data:`TOKEN_FRESH_FOR`; a reply
  waits at most :data:`TOKEN_WAIT` (then :class:`OutgoingTokenUnavailable`: 503, Teams delivers again).
* :class:`ConnectorClients`: the SDK's connector-client factory, with that token and a timeout on every
  call to the Bot Connector.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt
from microsoft_agents.hosting.core import (
    AuthenticationConstants,
    ChannelServiceClientFactoryBase,
    ClaimsIdentity,
)
from microsoft_agents.hosting.core.authorization.jwt import JwtTokenValidator
from microsoft_agents.hosting.core.connector.client import UserTokenClient
from microsoft_agents.hosting.core.connector.teams import TeamsConnectorClient

from bot.teams.common import ROUTE, is_loopback_url
from bot.teams.keys import (
    TOKEN_WAIT,
    HeldToken,
    KeysUnavailable,
    SigningKeys,
)

log = logging.getLogger("chinadesk.teams")

CONNECTOR_TIMEOUT = 30.0  # seconds for one call to the Bot Connector (Teams answers in well under a second)

# --------------------------------------------------------------------------------- signing keys

@dataclass
class _KeyRequest:
    keys: SigningKeys
    source: Callable[[str], str]  # the SDK's JWKS URI -> where to fetch it (the same, but for tests)
    channel_id: str | None  # the activity's channel: a Bot Framework key must be endorsed for it


_request_keys: contextvars.ContextVar[_KeyRequest | None] = contextvars.ContextVar("agents_signing_keys",
                                                                                    default=None)


class ProviderKeys:
    """The SDK's signing-key look-up (``JwtTokenValidator._jwk_client_manager.get_signing_key``), answered from
    the :class:`SigningKeys` of the request being authenticated: no network call, no executor thread.

    Installed once, below; this is the only place that knows how the SDK asks for keys.
    """

    async def get_signing_key(self, jwks_uri: str, header: dict[str, Any]) -> Any:
        request = _request_keys.get()
        if request is None:  # validation outside a request to our endpoint: never fetch inline
            raise KeysUnavailable("Teams tokens are only checked inside a request to " + ROUTE)
        found = await request.keys.key(request.source(jwks_uri), header.get("kid"))
        if found is None:
            raise jwt.PyJWKClientError("the token is signed with a key its issuer does not publish")
        if found.endorsements and request.channel_id and request.channel_id not in found.endorsements:
            # botbuilder's rule, kept: a Bot Framework key only signs for the channels it endorses.
            raise jwt.PyJWKClientError("the signing key is not endorsed for this channel")
        return found.public_key


JwtTokenValidator._jwk_client_manager = ProviderKeys()  # type: ignore[assignment]


# ------------------------------------------------------------------------------ outgoing tokens

class TokenProvider:
    """Where the bot's own tokens come from: ``await get_access_token(resource, scopes)`` (the SDK's
    ``AccessTokenProviderBase`` shape; MSAL's ``MsalAuth`` in production, a local stand-in in tests)."""

    async def get_access_token(self, resource_url: str, scopes: list[str], force_refresh: bool = False) -> str:
        raise NotImplementedError  # pragma: no cover


class OutgoingTokens:
    """The bot's tokens per audience, fetched in a daemon thread (MSAL blocks, without a timeout, and does
    tenant discovery on first use) and kept for :data:`TOKEN_FRESH_FOR`. A reply waits at most ``wait``
    seconds, else :class:`OutgoingTokenUnavailable`; after a failure replies fail at once for a while."""

    def __init__(self, provider: Any, *, wait: float = TOKEN_WAIT, clock: Callable[[], float] = time.monotonic) -> None:
        self.provider = provider
        self.wait = wait
        self._clock = clock
        self._held: dict[tuple[str, tuple[str, ...]], HeldToken] = {}

    async def token(self, audience: str, scopes: list[str] | None) -> str:
        held = self._held.setdefault((audience, tuple(scopes or ())), HeldToken())
        provider = self.provider
        return await held.get(lambda: asyncio.run(provider.get_access_token(audience, list(scopes or ()))),
                              wait=self.wait, clock=self._clock, valid=bool)


class ConnectorClients(ChannelServiceClientFactoryBase):
    """The SDK's connector-client factory: the Bot Connector at the activity's ``serviceUrl``, with the bot's
    token from :class:`OutgoingTokens` (none in local mode, where only loopback URLs are allowed) and a
    timeout on every call. No user-token (SSO) client: this bot signs nobody in."""

    def __init__(self, tokens: OutgoingTokens | None, *, app_id: str = "", timeout: float = CONNECTOR_TIMEOUT) -> None:
        self.tokens = tokens  # None: local mode
        self.app_id = app_id or "local-mode"
        self.timeout = timeout

    async def create_connector_client(self, context: Any, claims_identity: ClaimsIdentity, service_url: str,
                                      audience: str, scopes: list[str] | None = None,
                                      use_anonymous: bool = False) -> TeamsConnectorClient:
        if self.tokens is None:
            if not is_loopback_url(service_url):
                raise PermissionError("local mode only replies to loopback service URLs")
            token = ""
        else:
            token = await self.tokens.token(audience or AuthenticationConstants.AGENTS_SDK_SCOPE,
                                            scopes or [f"{AuthenticationConstants.AGENTS_SDK_SCOPE}/.default"])
        endpoint = service_url if service_url.endswith("/") else service_url + "/"
        session = aiohttp.ClientSession(base_url=endpoint, timeout=aiohttp.ClientTimeout(total=self.timeout))
        return TeamsConnectorClient(endpoint=endpoint, token=token, session=session)

    async def create_user_token_client(self, context: Any, claims_identity: ClaimsIdentity,
                                       use_anonymous: bool = False) -> UserTokenClient:
        return UserTokenClient(app_id=claims_identity.get_app_id() or self.app_id,
                               endpoint=AuthenticationConstants.AGENTS_SDK_OAUTH_URL, token="")
