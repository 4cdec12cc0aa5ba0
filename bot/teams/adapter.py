"""Microsoft Teams on botbuilder's CloudAdapter: the DEPRECATED engine (``TEAMS_ENGINE=botbuilder``).

botbuilder-python's support ended on 31 December 2025 (repository archived, no security fixes); the
default engine is the Microsoft 365 Agents SDK (:mod:`bot.teams.agents`). This one stays for one release
behind the ``[botbuilder]`` extra and passes the same contract tests. It only routes botbuilder's
activities into :class:`bot.teams.common.TeamsDesk`, which does the work for both engines; botbuilder is
imported by this module, :mod:`bot.teams.activities`, :mod:`bot.teams.connector` and
:mod:`bot.teams.delivery` only.

Authentication
--------------
``CloudAdapter`` + ``ConfigurationBotFrameworkAuthentication`` are configured from ``MICROSOFT_APP_ID``,
``MICROSOFT_APP_PASSWORD``, ``MICROSOFT_APP_TYPE`` and ``MICROSOFT_APP_TENANT_ID``. Every request is
authenticated *before* any turn runs: a missing or invalid ``Authorization`` header is answered 401 and
nothing is sent. Without an app id the endpoint runs in local (Emulator) mode: botbuilder accepts
requests without a token and sends replies without one. That is loudly logged at start-up, ``chinadesk
serve`` only allows it on a loopback address unless ``TEAMS=local`` asks for it (``bot.config``), and in
that mode replies only ever go to a loopback ``serviceUrl`` (the Emulator, or the tests' connector), so an
unauthenticated request cannot make the bot POST to an arbitrary address. ``TEAMS=off`` mounts nothing.

Signing keys
------------
botbuilder would fetch Microsoft's token signing keys with a blocking ``requests.get`` (no timeout) in
the middle of a request, freezing the process while Microsoft's endpoint does not answer. Its key
look-ups are routed instead to the endpoint's :class:`bot.teams.keys.SigningKeys` (fetched with aiohttp
under a timeout, cached, refreshed in the background): see :class:`ProviderKeys`. While no keys could be
fetched, a request with a token gets 503 (and ``Retry-After``) within two seconds; the rest of the
server never notices.

Conversation references
-----------------------
Saved on install and on every message, keyed by the *channel* (a Teams channel thread's id is
``<channel>;messageid=<root>``; the suffix is dropped), so that the reminder scheduler can post to the
conversation later through :class:`TeamsDeliverer`. Removing the bot deletes them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from http import HTTPStatus
from typing import Any

from aiohttp import web
from botbuilder.core import ActivityHandler, InvokeResponse, TurnContext
from botbuilder.integration.aiohttp import (
    CloudAdapter,
)
from botbuilder.schema import (
    Activity,
    ActivityTypes,
    ChannelAccount,
)
from botframework.connector.auth import (
    AuthenticationConstants,
)

from bot.config import Settings, TeamsSettings
from bot.teams.activities import message_text, reference_of
from bot.teams.common import (
    LOCAL_MODE_WARNING,
    TEAMS_KEY,
    Payload,
    TeamsDesk,
    activity_body,
    card_action_data,
    execute_action_data,
    includes_bot,
    invoke_message_body,
    is_loopback_url,
)
from bot.teams.connector import ROUTE, BotFrameworkConfig, _request_keys, make_adapter
from bot.teams.delivery import TeamsDeliverer
from bot.teams.keys import KeysUnavailable, OutgoingTokenUnavailable, SigningKeys
from handlers.router import Desk

log = logging.getLogger("chinadesk.teams")

MAX_BODY_BYTES = 1024 * 1024  # aiohttp's default; a 100 KB message fits, and gets a polite refusal


# ------------------------------------------------------------------------------------------ the bot


class TeamsBot(ActivityHandler):
    """botbuilder's activity routing into :class:`bot.teams.common.TeamsDesk`, which does the work for both
    engines (answers, card actions, feedback, welcome, conversation references)."""

    def __init__(self, desk: Desk, store: Any = None, *, timezone: str = "Asia/Shanghai") -> None:
        self.teams_desk = TeamsDesk(desk, store, timezone=timezone)
        self.store = store

    @staticmethod
    def _sender(turn_context: TurnContext) -> Callable[[Payload], Any]:
        async def send(payload: Payload) -> Any:
            return await turn_context.send_activity(Activity().deserialize(payload))
        return send

    async def _remember(self, activity: Activity) -> None:
        await self.teams_desk.remember(activity, reference_of(activity).serialize())

    async def on_turn(self, turn_context: TurnContext) -> None:
        activity = turn_context.activity
        if activity.type != ActivityTypes.invoke_response and not await self.teams_desk.first_delivery(activity):
            if activity.type == ActivityTypes.invoke:  # the first delivery was handled: say OK, not 501
                await turn_context.send_activity(
                    Activity(type=ActivityTypes.invoke_response, value=InvokeResponse(status=int(HTTPStatus.OK)))
                )
            return
        await super().on_turn(turn_context)

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        activity = turn_context.activity
        await self._remember(activity)
        data = card_action_data(activity)
        if data is not None:  # an Action.Submit click
            await self.teams_desk.card_action(activity, data, self._sender(turn_context))
            return
        await self.teams_desk.answer(activity, message_text(activity), self._sender(turn_context))

    async def on_invoke_activity(self, turn_context: TurnContext) -> InvokeResponse | None:
        """``Action.Execute`` (Universal Actions) sends an ``adaptiveCard/action`` invoke: same handling.

        Answered here rather than in ``on_adaptive_card_invoke`` because botbuilder's
        ``AdaptiveCardInvokeResponse`` only serialises an object ``value``, while the message response
        Teams expects (``application/vnd.microsoft.activity.message``) carries a string.
        """
        activity = turn_context.activity
        if activity.name != "adaptiveCard/action":
            return await super().on_invoke_activity(turn_context)
        await self._remember(activity)
        message = await self.teams_desk.card_action(activity, execute_action_data(activity.value),
                                                    self._sender(turn_context))
        return InvokeResponse(status=int(HTTPStatus.OK), body=invoke_message_body(message))

    async def on_members_added_activity(self, members_added: list[ChannelAccount], turn_context: TurnContext) -> None:
        if not includes_bot(members_added, turn_context.activity):
            return  # a person joined a team the bot is already in: nothing to say
        await self._remember(turn_context.activity)
        await self.teams_desk.welcome(turn_context.activity, self._sender(turn_context))

    async def on_members_removed_activity(
        self, members_removed: list[ChannelAccount], turn_context: TurnContext
    ) -> None:
        if includes_bot(members_removed, turn_context.activity):
            await self.teams_desk.forget(turn_context.activity)

    async def on_installation_update_add(self, turn_context: TurnContext) -> None:
        # The welcome goes out with the conversationUpdate Teams sends alongside; here we only remember.
        await self._remember(turn_context.activity)

    async def on_installation_update_remove(self, turn_context: TurnContext) -> None:
        await self.teams_desk.forget(turn_context.activity)


# ------------------------------------------------------------------------------------- HTTP endpoint


class TeamsEndpoint:
    """``POST /api/messages``: authenticate, then run the turn through the CloudAdapter."""

    KEYS_RETRY_AFTER = 10  # seconds: what a 503 for unavailable signing keys asks the caller to wait

    def __init__(self, adapter: CloudAdapter, bot: TeamsBot, settings: TeamsSettings,
                 metadata_url: str = AuthenticationConstants.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL) -> None:
        self.adapter = adapter
        self.bot = bot
        self.settings = settings
        self.deliverer = TeamsDeliverer(adapter, bot.store, settings)
        self.metadata_url = metadata_url  # the Bot Connector's keys: fetched from start-up on
        self.keys = SigningKeys()

    async def keep_keys(self, _app: web.Application) -> AsyncIterator[None]:
        """``cleanup_ctx``: fetch the Bot Connector's signing keys from start-up on; stop at shutdown."""
        if not self.settings.local_mode:
            self.keys.watch(self.metadata_url)
        yield
        await self.keys.close()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await activity_body(request)
        if isinstance(body, web.Response):
            return body
        try:
            activity: Activity = Activity().deserialize(body)
        except Exception:  # msrest raises several types for a malformed payload
            return web.json_response({"error": "not a Bot Framework Activity"}, status=400)
        if not activity.type:
            return web.json_response({"error": "activity has no type"}, status=400)
        if activity.conversation is None or not activity.conversation.id or not activity.service_url:
            # The Bot Framework always sends both; without them no reply could be addressed.
            return web.json_response({"error": "activity has no conversation or serviceUrl"}, status=400)

        # Authenticate before anything runs or is sent. botbuilder raises PermissionError for a missing
        # or rejected token, but a garbled one surfaces as a PyJWT error and an unreachable key
        # endpoint as a network error: every one of them means "not authenticated" here.
        keys = _request_keys.set(self.keys)
        try:
            auth = await self.adapter.bot_framework_authentication.authenticate_request(
                activity, request.headers.get("Authorization", "")
            )
        except KeysUnavailable as exc:
            log.warning("Teams request not checked: no signing keys yet", extra={"reason": str(exc)[:200]})
            return web.json_response({"error": "token signing keys unavailable, retry later"}, status=503,
                                     headers={"Retry-After": str(self.KEYS_RETRY_AFTER)})
        except Exception as exc:
            log.warning("Teams request rejected: %s", type(exc).__name__, extra={"reason": str(exc)[:200]})
            return web.json_response({"error": "unauthorized"}, status=401)
        finally:
            _request_keys.reset(keys)
        if self.settings.local_mode and not is_loopback_url(activity.service_url):
            log.warning("local mode: refusing a non-loopback serviceUrl", extra={"service_url": activity.service_url})
            return web.json_response({"error": "local mode only replies to loopback service URLs"}, status=403)

        try:
            invoke_response = await self.adapter.process_activity(auth, activity, self.bot.on_turn)
        except OutgoingTokenUnavailable as exc:  # nothing was sent: Teams delivers the activity again
            log.warning("Teams request not answered: no token to reply with", extra={"reason": str(exc)[:200]})
            return web.json_response({"error": "cannot reply right now, retry later"}, status=503,
                                     headers={"Retry-After": str(self.KEYS_RETRY_AFTER)})
        if invoke_response:
            return web.Response(
                status=invoke_response.status,
                body=json.dumps(invoke_response.body, default=str) if invoke_response.body is not None else None,
                content_type="application/json",
            )
        return web.Response(status=HTTPStatus.CREATED)


# ---------------------------------------------------------------------------------------- wiring



def setup_teams(
    app: web.Application,
    *,
    settings: Settings,
    desk: Desk,
    store: Any = None,
    config: BotFrameworkConfig | None = None,
) -> TeamsEndpoint:
    """Add ``POST /api/messages`` to ``app`` and return the endpoint (adapter, bot, deliverer inside).

    ``config`` overrides the botbuilder configuration built from ``settings.teams`` (tests use it to
    point token validation at a local key server).
    """
    teams = settings.teams
    if teams.local_mode:
        log.warning(LOCAL_MODE_WARNING, ROUTE)
    else:
        log.info("Teams endpoint %s: tokens validated for app id %s (%s)", ROUTE, teams.app_id, teams.app_type)
    config = config or BotFrameworkConfig.from_settings(teams)
    adapter = make_adapter(teams, config)
    bot = TeamsBot(desk, store, timezone=settings.default_timezone)
    endpoint = TeamsEndpoint(adapter, bot, teams, metadata_url=config.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL
                             or AuthenticationConstants.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL)
    app.router.add_post(ROUTE, endpoint.handle)
    app.cleanup_ctx.append(endpoint.keep_keys)
    app[TEAMS_KEY] = endpoint
    endpoint.engine = "botbuilder"  # type: ignore[attr-defined]
    return endpoint


