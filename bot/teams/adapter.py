"""Microsoft Teams: the advisor behind ``POST /api/messages``, on botbuilder's CloudAdapter.

This module only translates. An incoming Bot Framework Activity becomes a :class:`handlers.Request`
(platform ``teams``, the bot's ``<at>`` mention removed, user, channel = conversation, workspace =
tenant, mode ``direct`` in personal chat and ``mention`` elsewhere); the core's :class:`Reply` goes back
as an Adaptive Card (:mod:`bot.teams.cards`). No advice logic lives here, and botbuilder is not
imported anywhere else, so a later move to the Microsoft 365 Agents SDK touches this one file.

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
from collections.abc import AsyncIterator
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
from bot.teams.activities import (
    PLATFORM,
    card_activity,
    channel_key,
    is_loopback_url,
    is_personal,
    message_text,
    notice_activity,
    reference_of,
    team_of,
    tenant_of,
    to_request,
    user_of,
)
from bot.teams.common import TEAMS_KEY
from bot.teams.connector import ROUTE, BotFrameworkConfig, OutgoingTokenUnavailable, _request_keys, make_adapter
from bot.teams.delivery import TeamsDeliverer
from bot.teams.keys import KeysUnavailable, SigningKeys
from handlers.request import Action, Reply
from handlers.router import Desk

log = logging.getLogger("chinadesk.teams")

DEDUPE_TTL_SECONDS = 24 * 3600  # Teams retries a delivery for minutes at most; a day is plenty
MAX_BODY_BYTES = 1024 * 1024  # aiohttp's default; a 100 KB message fits, and gets a polite refusal

LOCAL_MODE_WARNING = (
    "TEAMS LOCAL MODE: MICROSOFT_APP_ID is not set, so %s accepts requests WITHOUT any token check "
    "(as for the Bot Framework Emulator) and replies only to loopback service URLs. Never expose it like "
    "this: set MICROSOFT_APP_ID and MICROSOFT_APP_PASSWORD for a real Teams deployment."
)

WELCOME_TITLE = "Hello! I'm China Desk"
WELCOME_INTRO = (
    "I give vetted, sourced China market-entry advice: filings and their deadlines counted on China's "
    "official working-day calendar, sector briefings, and the Chinese platforms. Type a command below "
    "(no slash needed), or ask a question{where}."
)
FEEDBACK_THANKS = {"up": "Thanks, glad it helped.", "down": "Thanks for telling us; we review every 👎."}
FEEDBACK_AGAIN = "You already rated this answer; thanks."
FEEDBACK_CLAIM_SECONDS = 365 * 86400


# ------------------------------------------------------------------------------------------ the bot


class TeamsBot(ActivityHandler):
    """Routes Teams activities to the core and stores what proactive posting and feedback need."""

    def __init__(self, desk: Desk, store: Any = None, *, timezone: str = "Asia/Shanghai") -> None:
        self.desk = desk
        self.store = store
        self.timezone = timezone

    async def on_turn(self, turn_context: TurnContext) -> None:
        activity = turn_context.activity
        # Teams re-delivers an activity it thinks timed out; answer each one once.
        if self.store is not None and activity.id and activity.type != ActivityTypes.invoke_response:
            if not await self.store.claim_once(f"teams:activity:{activity.id}", DEDUPE_TTL_SECONDS):
                log.info("duplicate Teams activity ignored", extra={"activity_id": activity.id})
                if activity.type == ActivityTypes.invoke:  # the first delivery was handled: say OK, not 501
                    await turn_context.send_activity(
                        Activity(type=ActivityTypes.invoke_response, value=InvokeResponse(status=int(HTTPStatus.OK)))
                    )
                return
        await super().on_turn(turn_context)

    # -- messages

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        activity = turn_context.activity
        await self._remember(activity)
        if isinstance(activity.value, dict) and activity.value.get("action"):  # an Action.Submit click
            await self._on_card_action(turn_context, activity.value)
            return
        await self._answer(turn_context, message_text(activity))

    async def on_invoke_activity(self, turn_context: TurnContext) -> InvokeResponse | None:
        """``Action.Execute`` (Universal Actions) sends an ``adaptiveCard/action`` invoke: same handling.

        Answered here rather than in ``on_adaptive_card_invoke`` because botbuilder's
        ``AdaptiveCardInvokeResponse`` only serialises an object ``value``, while the message response
        Teams expects (``application/vnd.microsoft.activity.message``) carries a string.
        """
        activity = turn_context.activity
        if activity.name != "adaptiveCard/action":
            return await super().on_invoke_activity(turn_context)
        value = activity.value if isinstance(activity.value, dict) else {}
        action = value.get("action") if isinstance(value.get("action"), dict) else {}
        data = action.get("data") if isinstance(action.get("data"), dict) else {}
        if not data.get("action") and action.get("verb"):
            data = {**data, "action": action["verb"]}
        await self._remember(activity)
        message = await self._on_card_action(turn_context, data)
        return InvokeResponse(
            status=int(HTTPStatus.OK),
            body={"statusCode": int(HTTPStatus.OK), "type": "application/vnd.microsoft.activity.message",
                  "value": message},
        )

    async def _settings(self, activity: Activity) -> tuple[str, str]:
        """The conversation's time zone and language (`/china-filing timezone`, `language`), or the defaults."""
        conversation = activity.conversation.id if activity.conversation else None
        if self.store is not None and conversation:
            try:
                found = await self.store.get_channel_settings(PLATFORM, channel_key(conversation))
                return found.timezone or self.timezone, getattr(found, "language", None) or "auto"
            except Exception:  # a settings lookup must never cost an answer
                log.exception("conversation settings lookup failed")
        return self.timezone, "auto"

    async def _answer(self, turn_context: TurnContext, text: str) -> None:
        timezone, language = await self._settings(turn_context.activity)
        request = to_request(turn_context.activity, text, timezone=timezone, language=language)
        reply = await self.desk.handle(request)
        await turn_context.send_activity(card_activity(reply, question=text))

    async def _on_card_action(self, turn_context: TurnContext, data: dict[str, Any]) -> str:
        """A button on one of our cards: feedback is stored; a command runs as if typed."""
        kind = data.get("action")
        if kind == "feedback":
            vote = data.get("vote")
            if vote not in ("up", "down"):
                return "Unknown feedback"
            if not await self._first_vote(turn_context.activity):
                await turn_context.send_activity(notice_activity(FEEDBACK_AGAIN))
                return FEEDBACK_AGAIN
            await self._record_feedback(turn_context.activity, data, vote)
            thanks = FEEDBACK_THANKS[vote]
            await turn_context.send_activity(notice_activity(thanks))
            return thanks
        if kind == "command":
            # "text" for command buttons; "command" is the menu's Input.ChoiceSet id.
            text = data.get("text") or data.get("command") or ""
            await self._answer(turn_context, str(text))
            return "Done"
        log.info("unknown card action", extra={"action": str(kind)[:40]})
        await self._answer(turn_context, "")  # the help card: better than silence
        return "Unknown action"

    async def _first_vote(self, activity: Activity) -> bool:
        """One vote per person per answer, as in Slack: the first click on 👍/👎 under a message counts."""
        if self.store is None or not activity.reply_to_id or activity.conversation is None:
            return True  # no message to tie the vote to: nothing to compare with
        key = f"teams:feedback:{channel_key(activity.conversation.id)}:{activity.reply_to_id}:{user_of(activity)}"
        return await self.store.claim_once(key, FEEDBACK_CLAIM_SECONDS)

    async def _record_feedback(self, activity: Activity, data: dict[str, Any], vote: str) -> None:
        if self.store is None:
            return
        from bot.store import Feedback  # the store module is only needed when there is a store

        question = data.get("question")
        await self.store.record_feedback(
            Feedback(
                platform=PLATFORM,
                workspace=tenant_of(activity),
                channel=channel_key(activity.conversation.id) if activity.conversation else None,
                user=user_of(activity),
                message_ref=activity.reply_to_id,
                topic=data.get("topic") if isinstance(data.get("topic"), str) else None,
                vote=vote,
                question=str(question)[:2000] if question is not None else None,
            )
        )

    # -- install / uninstall

    async def on_members_added_activity(self, members_added: list[ChannelAccount], turn_context: TurnContext) -> None:
        activity = turn_context.activity
        if not _includes_bot(members_added, activity):
            return  # a person joined a team the bot is already in: nothing to say
        await self._remember(activity)
        await turn_context.send_activity(card_activity(welcome_reply(self.desk, personal=is_personal(activity))))

    async def on_members_removed_activity(
        self, members_removed: list[ChannelAccount], turn_context: TurnContext
    ) -> None:
        if _includes_bot(members_removed, turn_context.activity):
            await self._forget(turn_context.activity)

    async def on_installation_update_add(self, turn_context: TurnContext) -> None:
        # The welcome goes out with the conversationUpdate Teams sends alongside; here we only remember.
        await self._remember(turn_context.activity)

    async def on_installation_update_remove(self, turn_context: TurnContext) -> None:
        await self._forget(turn_context.activity)

    async def _remember(self, activity: Activity) -> None:
        if self.store is None or activity.conversation is None or not activity.service_url:
            return
        reference = reference_of(activity)
        await self.store.save_conversation(
            PLATFORM, reference.conversation.id, tenant_of(activity), reference.serialize()
        )

    async def _forget(self, activity: Activity) -> None:
        if self.store is None or activity.conversation is None:
            return
        ids = {channel_key(activity.conversation.id)}
        team = team_of(activity)
        if team:  # a team uninstall: the team id is also its General channel's conversation id
            ids.add(team)
        for conversation_id in ids:
            await self.store.delete_conversation(PLATFORM, conversation_id)
        log.info("Teams conversation references deleted", extra={"count": len(ids)})


def _includes_bot(members: list[ChannelAccount] | None, activity: Activity) -> bool:
    bot_id = activity.recipient.id if activity.recipient else None
    return bool(bot_id) and any(m is not None and m.id == bot_id for m in members or [])


def welcome_reply(desk: Desk, *, personal: bool) -> Reply:
    """The install message: what the bot does, the core's help text, and buttons for the three menus."""
    from handlers.router import help_reply

    help_ = help_reply(desk)  # the welcome is in English: nobody has asked anything yet
    where = "" if personal else " by @mentioning me"
    return help_.model_copy(update={
        "title": WELCOME_TITLE,
        "summary": "",
        "text": WELCOME_INTRO.format(where=where) + "\n\n" + help_.text,
        "actions": [
            Action(kind="command", label="Filings", value="/china-filing"),
            Action(kind="command", label="Sectors", value="/china-sector"),
            Action(kind="command", label="Platforms", value="/china-platform"),
        ],
    })


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


