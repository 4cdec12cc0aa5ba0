"""Bot Framework authentication for the Teams adapter: botbuilder configuration, incoming token keys
(through :mod:`bot.teams.keys`), outgoing app tokens fetched off the event loop, and the CloudAdapter."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
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
from bot.teams.keys import KeysUnavailable, SigningKey, SigningKeys

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

TOKEN_WAIT = 5.0  # seconds a reply waits for Microsoft's login service before giving up (503, retried)
TOKEN_FRESH_FOR = 30 * 60.0  # an app token lives 60-90 minutes: fetch it again (off the loop) well before
TOKEN_RETRY_AFTER = 30.0  # after a failed fetch, replies fail at once for this long instead of waiting again


class OutgoingTokenUnavailable(Exception):
    """The bot's own token (to call the Bot Connector) could not be had in time."""


@dataclass
class _HeldCredentials:
    credentials: Any
    fresh_until: float = 0.0
    failed_until: float = 0.0
    error: str = ""
    fetch: asyncio.Future | None = None


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
        self._held: dict[tuple[Any, ...], _HeldCredentials] = {}

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
            held = self._held[key] = _HeldCredentials(created)
        if getattr(held.credentials, "microsoft_app_id", None):  # it will sign the request: token first
            await self._ready(held)
        return held.credentials

    async def _ready(self, held: _HeldCredentials) -> None:
        if self._clock() < held.fresh_until:
            return
        if held.fetch is None or held.fetch.done():
            if self._clock() < held.failed_until:
                raise OutgoingTokenUnavailable(held.error)
            held.fetch = _in_daemon_thread(lambda: _fetch_token(held.credentials))
            held.fetch.add_done_callback(lambda fetch: self._settled(held, fetch))
        try:
            await asyncio.wait_for(asyncio.shield(held.fetch), self.wait)
        except TimeoutError:
            raise OutgoingTokenUnavailable(
                f"Microsoft's login service did not answer within {self.wait:.0f} s") from None
        except Exception as exc:
            raise OutgoingTokenUnavailable(held.error or type(exc).__name__) from exc

    def _settled(self, held: _HeldCredentials, fetch: asyncio.Future) -> None:
        error = None if fetch.cancelled() else fetch.exception()
        if fetch.cancelled() or error is not None:
            held.failed_until = self._clock() + TOKEN_RETRY_AFTER
            held.error = f"cannot get a token from Microsoft's login service: {type(error).__name__}: {error}"[:300]
            log.warning("Teams: %s", held.error)
        else:
            held.fresh_until = self._clock() + TOKEN_FRESH_FOR


def _fetch_token(credentials: Any) -> None:
    """(In a worker thread.) Fill the credentials' MSAL cache; MSAL gets the timeout botbuilder never sets."""
    if isinstance(credentials, MicrosoftAppCredentials) and credentials.app is None:
        from msal import ConfidentialClientApplication

        credentials.app = ConfidentialClientApplication(
            client_id=credentials.microsoft_app_id, client_credential=credentials.microsoft_app_password,
            authority=credentials.oauth_endpoint, timeout=TOKEN_WAIT * 2,
        )
    credentials.get_access_token()


def _in_daemon_thread(work: Callable[[], Any]) -> asyncio.Future:
    """Run blocking ``work`` in a daemon thread (it can never hold up the loop, nor the process's exit)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if not future.done():
            future.set_exception(error) if error is not None else future.set_result(result)

    def run() -> None:
        result, error = None, None
        try:
            result = work()
        except Exception as exc:
            error = exc
        try:
            loop.call_soon_threadsafe(settle, result, error)
        except RuntimeError:  # the loop is gone (shutdown): nobody is waiting any more
            pass

    threading.Thread(target=run, name="teams-token", daemon=True).start()
    return future


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


