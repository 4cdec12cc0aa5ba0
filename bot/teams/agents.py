"""Microsoft Teams on the Microsoft 365 Agents SDK (the default engine): ``POST /api/messages``.

An ``AgentApplication`` routes the turn (messages, ``Action.Submit`` and ``Action.Execute`` card actions
through the SDK's Adaptive Card handlers, install and uninstall); the SDK's aiohttp ``CloudAdapter``
runs it; :mod:`bot.teams.common` does the translating and the bot's work, so this module only wires the
SDK. It never imports botbuilder.

Authentication
--------------
The SDK's ``jwt_authorization_decorator`` guards this one route (its app-wide middleware would also
reject the Slack routes, which carry Slack's signature instead). The token is checked against the
``SERVICE_CONNECTION`` configuration (client id = audience, issuers validated). Without a client id the
endpoint runs in local (Emulator) mode: no token check, replies only to loopback service URLs, loudly
logged (``chinadesk serve`` only allows it on a loopback address unless ``TEAMS=local``).

Nothing waits on Microsoft on the event loop
--------------------------------------------
* Signing keys: the SDK would fetch them with ``PyJWKClient`` (urllib, 30 s timeout) in a worker thread
  of the loop's default executor for the request that needs them. Its key look-ups are answered instead
  from :class:`bot.signing_keys.SigningKeys` (aiohttp, timeout, cached, refreshed in the background);
  while none could be fetched a request gets 503 with ``Retry-After`` within two seconds, an unknown key
  401.
* The bot's own token (MSAL, blocking, no timeout): fetched in a daemon thread at most every
  :data:`TOKEN_FRESH_FOR`, a reply waiting at most :data:`TOKEN_WAIT` (then 503: Teams delivers again).
* Replies to the Bot Connector go through aiohttp with a timeout.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
import threading
import time
import warnings
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import jwt
from aiohttp import web
from microsoft_agents.activity import (
    Activity,
    ActivityTypes,
    AdaptiveCardInvokeResponse,
    ConversationReference,
)
from microsoft_agents.hosting.aiohttp import CloudAdapter, jwt_authorization_decorator
from microsoft_agents.hosting.core import (
    AgentApplication,
    AgentAuthConfiguration,
    ApplicationOptions,
    AuthenticationConstants,
    ChannelServiceClientFactoryBase,
    ClaimsIdentity,
    MemoryStorage,
    TurnContext,
    TurnState,
)
from microsoft_agents.hosting.core.authorization.jwt import JwtTokenValidator
from microsoft_agents.hosting.core.connector.client import UserTokenClient
from microsoft_agents.hosting.core.connector.teams import TeamsConnectorClient

from bot.config import Settings, TeamsSettings
from bot.teams.common import (
    KEYS_RETRY_AFTER,
    LOCAL_MODE_WARNING,
    PLATFORM,
    ROUTE,
    Deliverer,
    DeliveryError,
    Payload,
    TeamsDesk,
    card_action_data,
    card_payload,
    classify_failure,
    clean_text,
    execute_action_data,
    includes_bot,
    invoke_message_body,
    is_loopback_url,
    no_reference,
    parse_retry_after,
)
from bot.teams.keys import KeysUnavailable, SigningKeys
from handlers.request import Reply
from handlers.router import Desk

log = logging.getLogger("chinadesk.teams")

BOT_FRAMEWORK_ISSUER = "https://api.botframework.com"
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

TOKEN_WAIT = 5.0  # seconds a reply waits for Microsoft's login service before giving up (503, retried)
TOKEN_FRESH_FOR = 30 * 60.0  # an app token lives 60-90 minutes: fetch it again (off the loop) well before
TOKEN_RETRY_AFTER = 30.0  # after a failed fetch, replies fail at once for this long instead of waiting again


class OutgoingTokenUnavailable(Exception):
    """The bot's own token (to call the Bot Connector) could not be had in time."""


class TokenProvider:
    """Where the bot's own tokens come from: ``await get_access_token(resource, scopes)`` (the SDK's
    ``AccessTokenProviderBase`` shape; MSAL's ``MsalAuth`` in production, a local stand-in in tests)."""

    async def get_access_token(self, resource_url: str, scopes: list[str], force_refresh: bool = False) -> str:
        raise NotImplementedError  # pragma: no cover


@dataclass
class _Held:
    token: str = ""
    fresh_until: float = 0.0
    failed_until: float = 0.0
    error: str = ""
    fetch: asyncio.Future | None = None


class OutgoingTokens:
    """The bot's tokens per audience, fetched in a daemon thread (MSAL blocks, without a timeout, and does
    tenant discovery on first use) and kept for :data:`TOKEN_FRESH_FOR`. A reply waits at most ``wait``
    seconds, else :class:`OutgoingTokenUnavailable`; after a failure replies fail at once for a while."""

    def __init__(self, provider: Any, *, wait: float = TOKEN_WAIT, clock: Callable[[], float] = time.monotonic) -> None:
        self.provider = provider
        self.wait = wait
        self._clock = clock
        self._held: dict[tuple[str, tuple[str, ...]], _Held] = {}

    async def token(self, audience: str, scopes: list[str] | None) -> str:
        key = (audience, tuple(scopes or ()))
        held = self._held.setdefault(key, _Held())
        if held.token and self._clock() < held.fresh_until:
            return held.token
        if held.fetch is None or held.fetch.done():
            if self._clock() < held.failed_until:
                raise OutgoingTokenUnavailable(held.error)
            provider = self.provider
            held.fetch = _in_daemon_thread(
                lambda: asyncio.run(provider.get_access_token(audience, list(scopes or ()))))
            held.fetch.add_done_callback(lambda fetch: self._settled(held, fetch))
        try:
            return await asyncio.wait_for(asyncio.shield(held.fetch), self.wait)
        except TimeoutError:
            raise OutgoingTokenUnavailable(
                f"Microsoft's login service did not answer within {self.wait:.0f} s") from None
        except Exception as exc:
            raise OutgoingTokenUnavailable(held.error or type(exc).__name__) from exc

    def _settled(self, held: _Held, fetch: asyncio.Future) -> None:
        error = None if fetch.cancelled() else fetch.exception()
        if fetch.cancelled() or error is not None or not fetch.result():
            held.failed_until = self._clock() + TOKEN_RETRY_AFTER
            held.error = f"cannot get a token from Microsoft's login service: {type(error).__name__}: {error}"[:300]
            log.warning("Teams: %s", held.error)
        else:
            held.token, held.fresh_until = fetch.result(), self._clock() + TOKEN_FRESH_FOR


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


# ------------------------------------------------------------------------------ configuration

def auth_configuration(teams: TeamsSettings) -> AgentAuthConfiguration:
    """The SDK's ``SERVICE_CONNECTION`` settings, from :class:`TeamsSettings` (which reads both the SDK's
    ``CONNECTIONS__SERVICE_CONNECTION__SETTINGS__*`` names and the older ``MICROSOFT_APP_*`` ones)."""
    if teams.local_mode:
        return AgentAuthConfiguration(anonymous_allowed=True, connection_name="SERVICE_CONNECTION")
    # A multi-tenant registration (before 31 July 2025) gets its tokens from the botframework.com tenant.
    tenant = teams.tenant_id if teams.app_type != "MultiTenant" else (teams.tenant_id or "botframework.com")
    return AgentAuthConfiguration(
        client_id=teams.app_id,
        tenant_id=tenant,
        client_secret=teams.app_password.get_secret_value() if teams.app_password else None,
        AUTHTYPE=teams.auth_type,
        connection_name="SERVICE_CONNECTION",
        validate_issuer=True,
    )


def msal_provider(config: AgentAuthConfiguration) -> Any:
    from microsoft_agents.authentication.msal import MsalAuth

    return MsalAuth(config)


# ------------------------------------------------------------------------------------ the agent


def to_activity(payload: Payload) -> Activity:
    return Activity.model_validate(payload)


def reference_json(activity: Activity) -> Payload:
    return activity.get_conversation_reference().model_dump(by_alias=True, exclude_none=True, mode="json")


def build_agent(teams_desk: TeamsDesk, *, app_id: str = "") -> AgentApplication[TurnState]:
    """The ``AgentApplication``: routes registered the SDK's way, each a few lines into :class:`TeamsDesk`."""
    app: AgentApplication[TurnState] = AgentApplication[TurnState](
        ApplicationOptions(storage=MemoryStorage(), bot_app_id=app_id, start_typing_timer=False,
                           remove_recipient_mention=False),  # (removed below, keeping the text for feedback)
        connection_manager=_NoConnections(),
    )

    def sender(context: TurnContext) -> Callable[[Payload], Any]:
        async def send(payload: Payload) -> Any:
            return await context.send_activity(to_activity(payload))
        return send

    @app.before_turn
    async def once(context: TurnContext, _state: TurnState) -> bool:
        if context.activity.type == ActivityTypes.invoke_response:
            return True
        if await teams_desk.first_delivery(context.activity):
            return True
        if context.activity.type == ActivityTypes.invoke:  # the first delivery was handled: say OK, not 501
            await context.send_activity(Activity(type=ActivityTypes.invoke_response,
                                                 value={"status": 200, "body": None}))
        return False

    @app.adaptive_card.action_submit("feedback", submit_filter="action")
    @app.adaptive_card.action_submit("command", submit_filter="action")
    async def on_submit(context: TurnContext, _state: TurnState, data: Any) -> None:
        await teams_desk.remember(context.activity, reference_json(context.activity))
        await teams_desk.card_action(context.activity, data, sender(context))

    @app.adaptive_card.action_execute(_ANY)
    async def on_execute(context: TurnContext, _state: TurnState, _data: Any) -> AdaptiveCardInvokeResponse:
        # Universal Actions: the same handling; Teams shows the clicker the message in the response.
        await teams_desk.remember(context.activity, reference_json(context.activity))
        message = await teams_desk.card_action(context.activity, execute_action_data(context.activity.value),
                                               sender(context))
        body = invoke_message_body(message)
        return AdaptiveCardInvokeResponse(status_code=body["statusCode"], type=body["type"], value=body["value"])

    @app.activity(ActivityTypes.message)
    async def on_message(context: TurnContext, _state: TurnState) -> None:
        activity = context.activity
        await teams_desk.remember(activity, reference_json(activity))
        data = card_action_data(activity)
        if data is not None:  # a click on a card action this app has no handler for: the help card
            await teams_desk.card_action(activity, data, sender(context))
            return
        text = TurnContext.remove_recipient_mention(activity) if activity.text else ""
        recipient = activity.recipient.name if activity.recipient else None
        await teams_desk.answer(activity, clean_text(text or "", recipient), sender(context))

    @app.conversation_update("membersAdded")
    async def on_members_added(context: TurnContext, _state: TurnState) -> None:
        if not includes_bot(context.activity.members_added, context.activity):
            return  # a person joined a team the bot is already in: nothing to say
        await teams_desk.remember(context.activity, reference_json(context.activity))
        context.activity.id = None  # a new post (in a team: its General channel), not a reply to the event
        await teams_desk.welcome(context.activity, sender(context))

    @app.conversation_update("membersRemoved")
    async def on_members_removed(context: TurnContext, _state: TurnState) -> None:
        if includes_bot(context.activity.members_removed, context.activity):
            await teams_desk.forget(context.activity)

    @app.installation_update()
    async def on_installation(context: TurnContext, _state: TurnState) -> None:
        # The welcome goes out with the conversationUpdate Teams sends alongside; here we only remember.
        if (context.activity.action or "").startswith("remove"):
            await teams_desk.forget(context.activity)
        else:
            await teams_desk.remember(context.activity, reference_json(context.activity))

    @app.error
    async def on_error(context: TurnContext, error: Exception) -> None:
        # The core turns every handler failure into a friendly reply, so an error here is in sending
        # (connector unreachable, conversation gone): log it; trying to send an apology would fail too.
        log.error("Teams turn failed", exc_info=error,
                  extra={"activity_type": context.activity.type, "activity_id": context.activity.id})

    return app


_ANY = re.compile("")  # every Action.Execute verb: our cards say what they do in their data


class _NoConnections:
    """The ``connection_manager`` AgentApplication insists on, for user sign-in flows this bot never runs:
    the bot's own tokens come from :class:`ConnectorClients`."""

    def get_default_connection(self) -> Any:
        return None

    def get_connection(self, _name: str) -> Any:
        return None

    def get_token_provider(self, *_args: Any) -> Any:
        return None

    def get_default_connection_configuration(self) -> Any:
        return None


async def _log_adapter_error(context: TurnContext, error: Exception) -> None:
    # Replaces the SDK's default, which would post "Exception caught: ..." (internals) into the chat.
    log.error("Teams turn failed in the adapter", exc_info=error,
              extra={"activity_type": context.activity.type if context.activity else None})


def make_adapter(tokens: OutgoingTokens | None, app_id: str = "") -> CloudAdapter:
    adapter = CloudAdapter(channel_service_client_factory=ConnectorClients(tokens, app_id=app_id))
    adapter.on_turn_error = _log_adapter_error
    return adapter


# ------------------------------------------------------------------------------ proactive delivery


class AgentsDeliverer(Deliverer):
    """Posts to a Teams conversation later (``continue_conversation``), through the reference stored when the
    bot last heard from it. Rows stored by the botbuilder engine load as they are (the same JSON)."""

    def __init__(self, adapter: CloudAdapter, store: Any, settings: TeamsSettings) -> None:
        self.adapter = adapter
        self.store = store
        self.settings = settings

    async def send(self, channel: str, payload: Payload) -> str:
        data = await self.store.get_conversation(PLATFORM, channel) if self.store is not None else None
        if data is None:
            raise no_reference(channel)
        try:
            reference = ConversationReference.model_validate(data)
        except Exception as exc:  # a row nobody can post through: pausing and showing it is all one can do
            raise DeliveryError(f"the stored Teams conversation {channel!r} is unreadable: {exc}"[:300],
                                permanent=True, gone=True) from exc
        reference.activity_id = None  # a new post in the conversation, not a reply to a message
        sent: list[str] = []
        failed: list[Exception] = []

        async def callback(context: TurnContext) -> None:
            # The continuation activity carries a made-up id; without clearing it the SDK would send a
            # "reply" to a message that does not exist instead of a new post in the conversation.
            context.activity.id = None
            try:
                response = await context.send_activity(to_activity(payload))
            except Exception as exc:  # caught here: the adapter's on_turn_error would only log it
                failed.append(exc)
                return
            sent.append(response.id if response and response.id else "")

        identity = ClaimsIdentity({}, False) if self.settings.local_mode else ClaimsIdentity(
            {"aud": self.settings.app_id, "appid": self.settings.app_id}, True)
        try:
            await self.adapter.continue_conversation_with_claims(
                identity, reference.get_continuation_activity(), callback,
                audience=AuthenticationConstants.AGENTS_SDK_SCOPE)
            if failed:
                raise failed[0]
        except DeliveryError:
            raise
        except Exception as exc:
            status = exc.status if isinstance(exc, aiohttp.ClientResponseError) else None
            retry_after = parse_retry_after(exc.headers) if isinstance(exc, aiohttp.ClientResponseError) else None
            raise await classify_failure(exc, status, retry_after, store=self.store, channel=channel) from exc
        return sent[0] if sent else ""

    async def deliver_reply(self, channel: str, reply: Reply) -> str:
        return await self.send(channel, card_payload(reply))

    async def close(self) -> None:
        return None  # each post opens (and closes) its own connector session


# ------------------------------------------------------------------------------------- HTTP endpoint


@dataclass
class AgentsEndpoint:
    """``POST /api/messages``: refuse what is not an Activity, check the token (the SDK's decorator), then
    let the ``CloudAdapter`` run the turn."""

    adapter: CloudAdapter
    agent: AgentApplication
    settings: TeamsSettings
    teams_desk: TeamsDesk
    auth: AgentAuthConfiguration
    tokens: OutgoingTokens | None
    key_source: Callable[[str], str] = lambda uri: uri  # (tests: a local key server)
    keys: SigningKeys = field(default_factory=SigningKeys)
    engine = "agents"
    KEYS_RETRY_AFTER = KEYS_RETRY_AFTER

    def __post_init__(self) -> None:
        self.deliverer = AgentsDeliverer(self.adapter, self.teams_desk.store, self.settings)
        self._checked = jwt_authorization_decorator(self._process)

    @property
    def watched_keys(self) -> list[str]:
        """The key set Bot Connector tokens are signed with: fetched from start-up on."""
        return [self.key_source(AuthenticationConstants.PUBLIC_ABS_JWKS_URL)]

    async def keep_keys(self, _app: web.Application) -> AsyncIterator[None]:
        """``cleanup_ctx``: fetch the Bot Connector's signing keys from start-up on; stop at shutdown."""
        if not self.settings.local_mode:
            for url in self.watched_keys:
                self.keys.watch(url)
        yield
        await self.keys.close()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if "application/json" not in request.headers.get("Content-Type", ""):
            return web.json_response({"error": "expected application/json"}, status=415)
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError, RecursionError):  # (nested deeper than the parser goes)
            log.warning("Teams request refused: unreadable JSON", extra={"bytes": request.content_length})
            return web.json_response({"error": "invalid JSON"}, status=400)
        if not isinstance(body, dict):
            return web.json_response({"error": "expected an Activity object"}, status=400)
        try:
            activity = Activity.model_validate(body)
        except Exception:  # pydantic raises for a malformed payload; also RecursionError on deep nesting
            return web.json_response({"error": "not a Bot Framework Activity"}, status=400)
        if not activity.type:
            return web.json_response({"error": "activity has no type"}, status=400)
        if activity.conversation is None or not activity.conversation.id or not activity.service_url:
            # The Bot Framework always sends both; without them no reply could be addressed.
            return web.json_response({"error": "activity has no conversation or serviceUrl"}, status=400)

        if self.settings.local_mode:
            if not is_loopback_url(activity.service_url):
                log.warning("local mode: refusing a non-loopback serviceUrl",
                            extra={"service_url": activity.service_url})
                return web.json_response({"error": "local mode only replies to loopback service URLs"}, status=403)
            return await self._process(request)

        keys = _request_keys.set(_KeyRequest(self.keys, self.key_source, str(activity.channel_id or "") or None))
        try:
            response = await self._checked(request)
        except KeysUnavailable as exc:
            log.warning("Teams request not checked: no signing keys yet", extra={"reason": str(exc)[:200]})
            return web.json_response({"error": "token signing keys unavailable, retry later"}, status=503,
                                     headers={"Retry-After": str(self.KEYS_RETRY_AFTER)})
        except Exception as exc:  # a garbled token surfaces as a decoding error: not authenticated
            log.warning("Teams request rejected: %s", type(exc).__name__, extra={"reason": str(exc)[:200]})
            return web.json_response({"error": "unauthorized"}, status=401)
        finally:
            _request_keys.reset(keys)
        if response.status == 401:
            log.warning("Teams request rejected: token not accepted")
        return response

    async def _process(self, request: web.Request) -> web.StreamResponse:
        claims = request.get("claims_identity")
        claimed_url = claims.get_claim_value("serviceurl") if claims is not None else None
        if claimed_url is not None:
            # botbuilder's rule, kept (the SDK only checks hosts, and only with its host allow-list on): the
            # token must be for the serviceUrl the reply would go to.
            service_url = (await request.json()).get("serviceUrl") or ""
            if str(claimed_url).rstrip("/").lower() != str(service_url).rstrip("/").lower():
                log.warning("Teams request rejected: the token is for another serviceUrl")
                return web.json_response({"error": "unauthorized"}, status=401)
        try:
            return await self.adapter.process(request, self.agent)
        except OutgoingTokenUnavailable as exc:  # nothing was sent: Teams delivers the activity again
            log.warning("Teams request not answered: no token to reply with", extra={"reason": str(exc)[:200]})
            return web.json_response({"error": "cannot reply right now, retry later"}, status=503,
                                     headers={"Retry-After": str(self.KEYS_RETRY_AFTER)})


def make_tokens(teams: TeamsSettings, auth: AgentAuthConfiguration, provider: Any = None) -> OutgoingTokens | None:
    if teams.local_mode:
        return None
    return OutgoingTokens(provider if provider is not None else msal_provider(auth))


def setup_agents(app: web.Application, *, settings: Settings, desk: Desk, store: Any = None,
                 token_provider: Any = None, key_source: Callable[[str], str] | None = None) -> AgentsEndpoint:
    """Add ``POST /api/messages`` (Agents SDK) to ``app`` and return the endpoint.

    ``token_provider``: where the bot's own tokens come from (default: MSAL with the app's secret);
    ``key_source``: where token signing keys are fetched from (default: Microsoft's). Tests set both.
    """
    teams = settings.teams
    if teams.local_mode:
        log.warning(LOCAL_MODE_WARNING, ROUTE)
    else:
        log.info("Teams endpoint %s (Agents SDK): tokens validated for app id %s (%s)", ROUTE, teams.app_id,
                 teams.app_type)
    auth = auth_configuration(teams)
    tokens = make_tokens(teams, auth, token_provider)
    teams_desk = TeamsDesk(desk, store, timezone=settings.default_timezone)
    app_id = teams.app_id or ""
    endpoint = AgentsEndpoint(make_adapter(tokens, app_id), build_agent(teams_desk, app_id=app_id), teams, teams_desk,
                              auth, tokens, **({"key_source": key_source} if key_source else {}))
    with warnings.catch_warnings():  # (a plain string key: the name the SDK's decorator reads)
        warnings.simplefilter("ignore")
        app["agent_configuration"] = auth
    app.router.add_post(ROUTE, endpoint.handle)
    app.cleanup_ctx.append(endpoint.keep_keys)
    return endpoint


def deliverer_from_settings(store: Any, teams: TeamsSettings) -> AgentsDeliverer:
    """The scheduler's deliverer with its own adapter (``chinadesk worker`` has no web app)."""
    auth = auth_configuration(teams)
    return AgentsDeliverer(make_adapter(make_tokens(teams, auth), teams.app_id or ""), store, teams)


def env_engine(env: Mapping[str, str]) -> str:  # pragma: no cover - convenience for scripts
    return (env.get("TEAMS_ENGINE") or "agents").strip().lower()
