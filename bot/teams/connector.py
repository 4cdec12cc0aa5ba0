"""Bot Framework authentication for the Teams adapter: botbuilder configuration, incoming token keys
(through :mod:`bot.teams.keys`), outgoing app tokens fetched off the event loop, and the CloudAdapter."""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botbuilder.core import TurnContext
from botbuilder.integration.aiohttp import (
    CloudAdapter,
    ConfigurationBotFrameworkAuthentication,
    ConfigurationServiceClientCredentialFactory,
)
from botframework.connector.auth import (
    MicrosoftAppCredentials,
    ServiceClientCredentialsFactory,
)
from botframework.connector.auth.jwt_token_extractor import JwtTokenExtractor

from bot.config import TeamsSettings
from bot.teams.keys import (
    TOKEN_WAIT,
    HeldToken,
    KeysUnavailable,
    SigningKey,
    SigningKeys,
)

log = logging.getLogger("chinadesk.teams")
ROUTE = "/api/messages"


@dataclass(frozen=True)
class BotFrameworkConfig:
    """The configuration object botbuilder reads: its attribute names, filled from :class:`TeamsSettings`.

    The optional endpoint overrides are botbuilder's own setting names; they exist for sovereign clouds
    and for the tests, which point token validation at a local OpenID/JWKS server.
    """

    APP_ID: str = ""
    APP_PASSWORD: str = ""
    APP_TYPE: str = "MultiTenant"
    APP_TENANTID: str = ""
    TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL: str | None = None
    TO_BOT_FROM_CHANNEL_TOKEN_ISSUER: str | None = None
    TO_CHANNEL_FROM_BOT_LOGIN_URL: str | None = None
    TO_CHANNEL_FROM_BOT_OAUTH_SCOPE: str | None = None

    @classmethod
    def from_settings(cls, teams: TeamsSettings, **overrides: Any) -> BotFrameworkConfig:
        return cls(
            APP_ID=teams.app_id or "",
            APP_PASSWORD=teams.app_password.get_secret_value() if teams.app_password else "",
            APP_TYPE=teams.app_type if teams.app_id else "MultiTenant",  # (local mode: botbuilder's no-auth path)
            APP_TENANTID=teams.tenant_id or "",
            **overrides,
        )


# --------------------------------------------------------------------------------- signing keys

# The key provider of the request being authenticated (set by TeamsEndpoint.handle around botbuilder's call).
_request_keys: contextvars.ContextVar[SigningKeys | None] = contextvars.ContextVar("teams_signing_keys", default=None)


class ProviderKeys:
    """botbuilder's per-issuer key cache interface (``JwtTokenExtractor.get_open_id_metadata(url).get(kid)``),
    answered from the :class:`SigningKeys` of the request being authenticated: no network call here.

    Installed once, below, in place of botbuilder's ``_OpenIdMetadata`` (which fetches with a blocking
    ``requests.get``); this is the only place that knows how botbuilder asks for keys.
    """

    def __init__(self, url: str) -> None:
        self.url = url

    async def get(self, key_id: str | None) -> SigningKey:
        keys = _request_keys.get()
        if keys is None:  # validation outside a request to our endpoint: never fetch inline
            raise KeysUnavailable("Teams tokens are only checked inside a request to " + ROUTE)
        found = await keys.key(self.url, key_id)
        if found is None:
            raise PermissionError("the token is signed with a key its issuer does not publish")
        return found  # botbuilder reads .public_key and .endorsements


JwtTokenExtractor.get_open_id_metadata = staticmethod(ProviderKeys)  # type: ignore[method-assign]


# ------------------------------------------------------------------------------ outgoing tokens

class OutgoingTokens(ServiceClientCredentialsFactory):
    """botbuilder's credentials factory, wrapped so that a reply never waits on the network *on the loop*.

    botbuilder makes new credentials for every reply, and they sign the request synchronously, on the
    event loop, with MSAL: tenant discovery and a token request to Microsoft's login service, blocking and
    without a timeout. Here one credentials object per audience is kept, and before botbuilder uses it
    its token is fetched in a daemon thread (MSAL with a timeout), at most every
    :data:`TOKEN_FRESH_FOR`; botbuilder's signing then finds it in MSAL's memory cache. A reply waits
    at most :data:`TOKEN_WAIT` seconds for it, else :class:`OutgoingTokenUnavailable`.
    """

    def __init__(self, inner: ServiceClientCredentialsFactory, *, wait: float = TOKEN_WAIT,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.inner = inner
        self.wait = wait
        self._clock = clock
        self._held: dict[tuple[Any, ...], HeldToken] = {}

    async def is_valid_app_id(self, app_id: str) -> bool:
        return await self.inner.is_valid_app_id(app_id)

    async def is_authentication_disabled(self) -> bool:
        return await self.inner.is_authentication_disabled()

    async def create_credentials(self, app_id: str, oauth_scope: str, login_endpoint: str,
                                 validate_authority: bool) -> Any:
        key = (app_id, oauth_scope, login_endpoint, validate_authority)
        held = self._held.get(key)
        if held is None:
            created = await self.inner.create_credentials(app_id, oauth_scope, login_endpoint, validate_authority)
            held = self._held[key] = HeldToken(created)
        if getattr(held.value, "microsoft_app_id", None):  # it will sign the request: token first
            await self._ready(held)
        return held.value

    async def _ready(self, held: HeldToken) -> None:
        await held.get(lambda: _fetch_token(held.value), wait=self.wait, clock=self._clock)


def _fetch_token(credentials: Any) -> Any:
    """(In a worker thread.) Fill the credentials' MSAL cache; MSAL gets the timeout botbuilder never sets.
    Returns the credentials, which the :class:`HeldToken` keeps."""
    if isinstance(credentials, MicrosoftAppCredentials) and credentials.app is None:
        from msal import ConfidentialClientApplication

        credentials.app = ConfidentialClientApplication(
            client_id=credentials.microsoft_app_id, client_credential=credentials.microsoft_app_password,
            authority=credentials.oauth_endpoint, timeout=TOKEN_WAIT * 2,
        )
    credentials.get_access_token()
    return credentials


async def _on_turn_error(turn_context: TurnContext, error: Exception) -> None:
    # The core turns every handler failure into a friendly reply, so an error here is in sending
    # (connector unreachable, conversation gone): log it; trying to send an apology would fail too.
    log.error(
        "Teams turn failed", exc_info=error,
        extra={"activity_type": turn_context.activity.type, "activity_id": turn_context.activity.id},
    )


def make_adapter(teams: TeamsSettings, config: BotFrameworkConfig | None = None,
                 credentials: ServiceClientCredentialsFactory | None = None) -> CloudAdapter:
    """botbuilder's CloudAdapter, authenticated from the settings (or an explicit ``config``).

    ``credentials``: where the bot's own tokens come from (default: the app id and password, from
    Microsoft's login service); always wrapped in :class:`OutgoingTokens`, which fetches them off the loop.
    """
    config = config or BotFrameworkConfig.from_settings(teams)
    tokens = OutgoingTokens(credentials or ConfigurationServiceClientCredentialFactory(config))
    adapter = CloudAdapter(ConfigurationBotFrameworkAuthentication(config, credentials_factory=tokens))
    adapter.on_turn_error = _on_turn_error
    return adapter


