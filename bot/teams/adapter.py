"""Microsoft Teams: the advisor behind ``POST /api/messages``, on botbuilder's CloudAdapter.

This module only translates. An incoming Bot Framework Activity becomes a :class:`handlers.Request`
(platform ``teams``, the bot's ``<at>`` mention removed, user, channel = conversation, workspace =
tenant, mode ``direct`` in personal chat and ``mention`` elsewhere); the core's :class:`Reply` goes back
as an Adaptive Card (:mod:`bot.render.adaptive`). No advice logic lives here, and botbuilder is not
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
look-ups are routed instead to the endpoint's :class:`bot.signing_keys.SigningKeys` (fetched with aiohttp
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

import asyncio
import contextvars
import copy
import json
import logging
import re
import threading
import time
import zipfile
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from botbuilder.core import ActivityHandler, CardFactory, InvokeResponse, MessageFactory, TurnContext
from botbuilder.integration.aiohttp import (
    CloudAdapter,
    ConfigurationBotFrameworkAuthentication,
    ConfigurationServiceClientCredentialFactory,
)
from botbuilder.schema import (
    Activity,
    ActivityTypes,
    ChannelAccount,
    ConversationReference,
)
from botframework.connector.auth import (
    AuthenticationConstants,
    MicrosoftAppCredentials,
    ServiceClientCredentialsFactory,
)
from botframework.connector.auth.jwt_token_extractor import JwtTokenExtractor

from bot.config import ConfigError, Settings, TeamsSettings, is_loopback_host
from bot.render.adaptive import FeedbackContext, fallback_text, render_card, render_notice
from bot.signing_keys import KeysUnavailable, SigningKey, SigningKeys
from handlers.request import Action, Reply, Request
from handlers.router import Desk

log = logging.getLogger("chinadesk.teams")

PLATFORM = "teams"
ROUTE = "/api/messages"
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
            APP_TYPE=teams.app_type,
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


# ------------------------------------------------------------------------------------ translation


def channel_key(conversation_id: str) -> str:
    """The channel a conversation id belongs to: a channel thread ``19:x@thread.tacv2;messageid=1`` -> ``19:x...``."""
    return conversation_id.split(";messageid=", 1)[0]


def tenant_of(activity: Activity) -> str | None:
    data = activity.channel_data if isinstance(activity.channel_data, dict) else {}
    tenant = data.get("tenant") if isinstance(data.get("tenant"), dict) else {}
    conversation = activity.conversation
    return (
        tenant.get("id")
        or (conversation.tenant_id if conversation else None)
        or ((conversation.additional_properties or {}).get("tenantId") if conversation else None)
    )


def team_of(activity: Activity) -> str | None:
    data = activity.channel_data if isinstance(activity.channel_data, dict) else {}
    team = data.get("team") if isinstance(data.get("team"), dict) else {}
    return team.get("id")


def user_of(activity: Activity) -> str | None:
    sender = activity.from_property
    if sender is None:
        return None
    return sender.aad_object_id or sender.id


def is_personal(activity: Activity) -> bool:
    """Personal (1:1) chat. The Emulator sends no conversation type: it is a 1:1 chat too."""
    kind = activity.conversation.conversation_type if activity.conversation else None
    return kind in (None, "personal")


_AT_TAG = re.compile(r"<at>(.*?)</at>", re.IGNORECASE | re.DOTALL)


def message_text(activity: Activity) -> str:
    """The text someone typed, without the bot's @mention.

    ``TurnContext.remove_recipient_mention`` uses the activity's mention entities (so a renamed bot is
    still removed); any other ``<at>Name</at>`` left over (a colleague mentioned in the same message, or a
    client that sent no entity) goes too: an address is not part of a question or a command.
    """
    if not activity.text:
        return ""
    try:
        text = TurnContext.remove_recipient_mention(activity) or ""
    except (KeyError, TypeError, AttributeError, re.error):  # a malformed mention entity: fall back below
        text = activity.text
    recipient = activity.recipient.name if activity.recipient and activity.recipient.name else None
    if recipient:  # no entity for the bot (some clients): drop a leading <at>BotName</at> all the same
        text = re.sub(rf"^\s*<at>\s*{re.escape(recipient)}\s*</at>", "", text, flags=re.IGNORECASE)
    return " ".join(_AT_TAG.sub(" ", text).split())


def to_request(activity: Activity, text: str, *, timezone: str, language: str = "auto") -> Request:
    """The core's view of a Teams message (``timezone`` and ``language``: the conversation's settings)."""
    conversation = activity.conversation.id if activity.conversation else None
    return Request(
        text=text,
        platform=PLATFORM,
        mode="direct" if is_personal(activity) else "mention",
        user=user_of(activity),
        channel=channel_key(conversation) if conversation else None,
        workspace=tenant_of(activity),
        timezone=timezone,
        language=language if language in ("auto", "en", "zh") else "auto",
        # The conversation, for follow-ups: a channel's reply chain (its id ends ;messageid=<root>), or the chat.
        thread=conversation,
    )


def reference_of(activity: Activity) -> ConversationReference:
    """A reference for *proactive* posts: the channel itself, not the thread or message it came from."""
    reference = TurnContext.get_conversation_reference(activity)
    reference.activity_id = None
    if reference.conversation is not None:
        reference.conversation = copy.copy(reference.conversation)
        reference.conversation.id = channel_key(reference.conversation.id)
    return reference


def card_activity(reply: Reply, *, question: str | None = None) -> Activity:
    """The message activity for a reply: the Adaptive Card plus its plain-text rendering as ``summary``.

    ``summary`` rather than ``text``: Teams would show ``text`` *and* the card, doubling every answer;
    ``summary`` is what notifications and card-less clients display.
    """
    feedback = FeedbackContext(question=question, kind=reply.kind) if question is not None else None
    activity = MessageFactory.attachment(CardFactory.adaptive_card(render_card(reply, feedback=feedback)))
    activity.summary = fallback_text(reply)
    return activity


def notice_activity(text: str) -> Activity:
    activity = MessageFactory.attachment(CardFactory.adaptive_card(render_notice(text)))
    activity.summary = text
    return activity


def is_loopback_url(url: str | None) -> bool:
    return is_loopback_host(urlsplit(url or "").hostname or "")


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


async def _on_turn_error(turn_context: TurnContext, error: Exception) -> None:
    # The core turns every handler failure into a friendly reply, so an error here is in sending
    # (connector unreachable, conversation gone): log it; trying to send an apology would fail too.
    log.error(
        "Teams turn failed", exc_info=error,
        extra={"activity_type": turn_context.activity.type, "activity_id": turn_context.activity.id},
    )


# ------------------------------------------------------------------------------ proactive delivery


class DeliveryError(Exception):
    """A proactive post failed.

    ``gone``: the bot is not (or no longer) in that conversation. ``refused``: our credentials were
    refused (401): no post can go out until an operator fixes them. ``permanent``: retrying the same post
    cannot help (``gone``, ``refused``, or Teams rejected the message itself).
    """

    def __init__(self, message: str, *, permanent: bool, gone: bool = False, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.refused = status == HTTPStatus.UNAUTHORIZED
        self.permanent = permanent or gone or self.refused
        self.gone = gone
        self.status = status
        self.retry_after = retry_after


class TeamsDeliverer:
    """Posts to a Teams conversation later, through the reference stored when the bot last heard from it.

    This is the scheduler's :class:`bot.scheduler.Deliverer` for ``teams``: ``deliver`` never raises for a
    platform error, it says whether to retry (408, 429 after its ``Retry-After``, 5xx, network: until the
    post expires), pause (the bot was removed: 403/404, or no reference stored; our credentials refused:
    401) or give up (Teams rejected the message itself: other 4xx).
    """

    platform = PLATFORM

    def __init__(self, adapter: CloudAdapter, store: Any, settings: TeamsSettings) -> None:
        self.adapter = adapter
        self.store = store
        self.settings = settings

    async def send(self, channel: str, activity: Activity) -> str:
        """Send ``activity`` to the stored conversation ``channel``; returns the new message's id."""
        data = await self.store.get_conversation(PLATFORM, channel) if self.store is not None else None
        if data is None:
            raise DeliveryError(
                f"no stored Teams conversation {channel!r}: the bot was removed or never installed there",
                permanent=True, gone=True,
            )
        reference = ConversationReference.deserialize(data)
        sent: list[str] = []
        failed: list[Exception] = []

        async def callback(turn_context: TurnContext) -> None:
            # The continuation activity carries a made-up id; without clearing it botbuilder would send
            # a "reply" to a message that does not exist instead of a new post in the conversation.
            turn_context.activity.id = None
            try:
                response = await turn_context.send_activity(activity)
            except Exception as exc:  # caught here: the adapter's on_turn_error would only log it
                failed.append(exc)
                return
            sent.append(response.id if response and response.id else "")

        try:
            await self.adapter.continue_conversation(reference, callback, bot_app_id=self.settings.app_id or "")
            if failed:
                raise failed[0]
        except Exception as exc:
            status = _http_status(exc)
            if status in (HTTPStatus.FORBIDDEN, HTTPStatus.NOT_FOUND):
                # Teams' answer when the bot is no longer in that conversation: forget it.
                await self.store.delete_conversation(PLATFORM, channel)
                raise DeliveryError(f"Teams refused the post ({status}): the bot is no longer in this conversation",
                                    permanent=True, gone=True, status=status) from exc
            # Busy (408, 429) or down (5xx, no answer at all): try again later. Other 4xx: the message itself.
            permanent = status is not None and 400 <= status < 500 and status not in (
                HTTPStatus.REQUEST_TIMEOUT, HTTPStatus.TOO_MANY_REQUESTS)
            raise DeliveryError(f"Teams post failed ({status or type(exc).__name__}): {exc}"[:300],
                                permanent=permanent, status=status, retry_after=_retry_after(exc)) from exc
        return sent[0] if sent else ""

    async def deliver_reply(self, channel: str, reply: Reply) -> str:
        return await self.send(channel, card_activity(reply))

    async def deliver(self, item: Any) -> Any:
        """The scheduler's entry point: one :class:`bot.scheduler.Outgoing` -> a ``DeliveryResult``."""
        from bot.scheduler import DeliveryResult

        try:
            ref = await self.deliver_reply(item.channel, item.reply)
        except DeliveryError as exc:
            if exc.gone or exc.refused:  # paused, and listed as such, until resumed
                return DeliveryResult.paused(str(exc))
            if exc.permanent:
                return DeliveryResult.failed(str(exc))
            return DeliveryResult.retry(str(exc), exc.retry_after)
        return DeliveryResult.posted(ref)

    async def close(self) -> None:
        return None  # botbuilder's connector clients hold no session between calls


def _http_status(exc: BaseException) -> int | None:
    """The HTTP status inside a botframework-connector error, if any (msrest ``ErrorResponseException``)."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None) or getattr(response, "status", None)
    return int(status) if isinstance(status, int) else None


def _retry_after(exc: BaseException) -> float | None:
    headers = getattr(getattr(exc, "response", None), "headers", None) or {}
    try:
        return float(headers.get("Retry-After") or headers.get("retry-after"))
    except (TypeError, ValueError, AttributeError):
        return None


def deliverer_from_env(store: Any, env: Mapping[str, str]) -> TeamsDeliverer | None:
    """The scheduler's factory: a deliverer with its own adapter (``chinadesk worker`` has no web app)."""
    try:
        teams = TeamsSettings.from_env(env)
    except ConfigError as exc:  # the server refuses to start with the same message; a worker just skips Teams
        log.warning("Teams reminders disabled: %s", exc)
        return None
    if teams is None:  # TEAMS=off
        return None
    return TeamsDeliverer(make_adapter(teams), store, teams)


try:  # register with the reminder scheduler (bot/scheduler.py imports this module to collect it)
    from bot.scheduler import register_deliverer
except ImportError:  # pragma: no cover - a checkout without the scheduler still serves Teams
    pass
else:
    register_deliverer(PLATFORM, deliverer_from_env)


# ---------------------------------------------------------------------------------------- wiring

TEAMS_KEY: web.AppKey[TeamsEndpoint] = web.AppKey("chinadesk.teams", TeamsEndpoint)


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
    return endpoint


# ------------------------------------------------------------------------------- Teams app package

APP_PACKAGE_FILES = ("manifest.json", "color.png", "outline.png")
APP_ID_PLACEHOLDER = "{{MICROSOFT_APP_ID}}"
DEFAULT_PACKAGE = "chinadesk-teams.zip"


def teams_dir() -> Path:
    """``teams/`` in the source tree (the manifest template and the two icons)."""
    return Path(__file__).resolve().parent.parent / "teams"


def build_app_package(app_id: str, out: Path, *, source: Path | None = None) -> Path:
    """Write the zip an admin uploads to Teams: manifest.json (ids filled in) and both icons at the root.

    Raises ``ValueError`` with a one-line reason for a malformed app id or a missing template file.
    """
    from bot.config import is_guid

    app_id = app_id.strip()
    if not is_guid(app_id):
        raise ValueError(
            f"--app-id must be the bot's Microsoft App ID, a GUID like 00000000-0000-0000-0000-000000000000, "
            f"not {app_id!r}"
        )
    source = source or teams_dir()
    missing = [name for name in APP_PACKAGE_FILES if not (source / name).is_file()]
    if missing:
        raise ValueError(f"{', '.join(missing)} not found in {source} (run from a China Desk checkout)")
    template = (source / "manifest.json").read_text(encoding="utf-8")
    manifest = template.replace(APP_ID_PLACEHOLDER, app_id.lower())
    if "{{" in manifest:
        raise ValueError(f"{source / 'manifest.json'} has a placeholder other than {APP_ID_PLACEHOLDER}")
    json.loads(manifest)  # a broken template must not become a package Teams rejects with a vague error
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as package:
        package.writestr("manifest.json", manifest)
        for name in APP_PACKAGE_FILES[1:]:
            package.write(source / name, arcname=name)
    return out
