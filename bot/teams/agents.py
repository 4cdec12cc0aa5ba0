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

Nothing waits on Microsoft on the event loop: see :mod:`bot.teams.agents_auth`.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
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
    ClaimsIdentity,
    MemoryStorage,
    TurnContext,
    TurnState,
)

from bot.config import Settings, TeamsSettings
from bot.teams.agents_auth import (
    ConnectorClients,
    KeysUnavailable,
    OutgoingTokens,
    _KeyRequest,
    _request_keys,
)
from bot.teams.common import (
    KEYS_RETRY_AFTER,
    LOCAL_MODE_WARNING,
    PLATFORM,
    ROUTE,
    Deliverer,
    DeliveryError,
    Payload,
    TeamsDesk,
    activity_body,
    card_action_data,
    card_payload,
    classify_failure,
    execute_action_data,
    includes_bot,
    invoke_message_body,
    is_loopback_url,
    message_text,
    no_reference,
    parse_retry_after,
)
from bot.teams.keys import OutgoingTokenUnavailable, SigningKeys
from handlers.request import Reply
from handlers.router import Desk

log = logging.getLogger("chinadesk.teams")
# The SDK's decorator keeps the caller's claims under a plain string key; aiohttp would warn on every request.
# The Activity model logs every payload it cannot read with a traceback; the endpoint refuses those itself
# (400, one short line), so a malformed request never costs a traceback in the logs (issue 11).
logging.getLogger("microsoft_agents.activity.activity").setLevel(logging.CRITICAL)
warnings.filterwarnings("ignore", category=web.NotAppKeyWarning, module=r"microsoft_agents\.")

BOT_FRAMEWORK_ISSUER = "https://api.botframework.com"


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
        await teams_desk.answer(activity, message_text(activity, TurnContext.remove_recipient_mention),
                                sender(context))

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

        # The bot's own identity for the outgoing turn (the adapter's create_claims_identity, which the
        # SDK's continue_conversation uses too); anonymous in local mode.
        identity = ClaimsIdentity() if self.settings.local_mode else self.adapter.create_claims_identity(
            self.settings.app_id or "")
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
        body = await activity_body(request)
        if isinstance(body, web.Response):
            return body
        try:
            activity = Activity.model_validate(body)
        except Exception:  # pydantic raises for a malformed payload; also RecursionError on deep nesting
            return web.json_response({"error": "not a Bot Framework Activity"}, status=400)
        if not activity.type:
            return web.json_response({"error": "activity has no type"}, status=400)
        if activity.conversation is None or not activity.conversation.id or not activity.service_url:
            # The Bot Framework always sends both; without them no reply could be addressed.
            return web.json_response({"error": "activity has no conversation or serviceUrl"}, status=400)
        if activity.from_property is None or not activity.from_property.id:
            # Always sent too; the SDK's turn state cannot load without it (the turn would fail inside).
            return web.json_response({"error": "activity has no sender (from.id)"}, status=400)

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
