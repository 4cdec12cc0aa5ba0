"""Teams, whichever SDK carries it: translation to and from the core, and what the bot does with a turn.

Both engines (the Microsoft 365 Agents SDK, the default, and the deprecated botbuilder one) hand this
module their incoming activity object. Only attributes the two SDKs' ``Activity`` models share are read
(``text``, ``value``, ``conversation.id`` / ``conversation_type`` / ``tenant_id``, ``from_property``,
``recipient``, ``channel_data``, ``reply_to_id``, ``service_url``), and replies go out as plain Bot
Framework JSON (:func:`card_payload`), which each engine turns into its own ``Activity``. So the advice
logic, the dedupe, feedback, welcome and conversation references exist once, whatever the SDK.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from bot.config import is_loopback_host
from bot.teams.cards import FeedbackContext, fallback_text, render_card, render_notice, render_reason_card
from handlers.feedback import BadReasonError, check_reason
from handlers.request import Action, Reply, Request
from handlers.router import Desk

log = logging.getLogger("chinadesk.teams")

PLATFORM = "teams"
ROUTE = "/api/messages"
CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
DEDUPE_TTL_SECONDS = 24 * 3600  # Teams retries a delivery for minutes at most; a day is plenty
FEEDBACK_CLAIM_SECONDS = 365 * 86400
KEYS_RETRY_AFTER = 10  # seconds: what a 503 (no signing keys / no token yet) asks the caller to wait

LOCAL_MODE_WARNING = (
    "TEAMS LOCAL MODE: no Teams app id is set (CONNECTIONS__SERVICE_CONNECTION__SETTINGS__CLIENTID or "
    "MICROSOFT_APP_ID), so %s accepts requests WITHOUT any token check (as for the Bot Framework Emulator) and "
    "replies only to loopback service URLs. Never expose it like this: set the app id, secret and tenant id "
    "for a real Teams deployment."
)

WELCOME_TITLE = "Hello! I'm China Desk"
WELCOME_INTRO = (
    "I give vetted, sourced China market-entry advice: filings and their deadlines counted on China's "
    "official working-day calendar, sector briefings, and the Chinese platforms. Type a command below "
    "(no slash needed), or ask a question{where}."
)
FEEDBACK_THANKS = {"up": "Thanks, glad it helped.", "down": "Thanks for telling us; we review every 👎."}
FEEDBACK_AGAIN = "You already rated this answer; thanks."
FEEDBACK_BAD_REASON = "Please pick one of the reasons listed."
FEEDBACK_REASON_THANKS = "Thanks: the content editors will see why."
FEEDBACK_REASON_ASK = "Thanks for the 👎. What was wrong?"

# The Teams endpoint of an app (either engine's: tests and operators reach its deliverer and keys through it).
TEAMS_KEY: web.AppKey[Any] = web.AppKey("chinadesk.teams", object)

Payload = dict[str, Any]
Send = Callable[[Payload], Awaitable[Any]]


# ------------------------------------------------------------------------------------ translation


def channel_key(conversation_id: str) -> str:
    """The channel a conversation id belongs to: a channel thread ``19:x@thread.tacv2;messageid=1`` -> ``19:x...``."""
    return conversation_id.split(";messageid=", 1)[0]


def _channel_data(activity: Any) -> dict[str, Any]:
    data = getattr(activity, "channel_data", None)
    if data is not None and not isinstance(data, dict) and hasattr(data, "model_dump"):
        data = data.model_dump(by_alias=True, exclude_none=True)
    return data if isinstance(data, dict) else {}


def tenant_of(activity: Any) -> str | None:
    data = _channel_data(activity)
    tenant = data.get("tenant") if isinstance(data.get("tenant"), dict) else {}
    conversation = getattr(activity, "conversation", None)
    extra = getattr(conversation, "additional_properties", None) or {}
    return (
        tenant.get("id")
        or (getattr(conversation, "tenant_id", None) if conversation else None)
        or (extra.get("tenantId") if isinstance(extra, dict) else None)
    )


def team_of(activity: Any) -> str | None:
    data = _channel_data(activity)
    team = data.get("team") if isinstance(data.get("team"), dict) else {}
    return team.get("id")


def user_of(activity: Any) -> str | None:
    sender = getattr(activity, "from_property", None)
    if sender is None:
        return None
    return getattr(sender, "aad_object_id", None) or sender.id


def conversation_id_of(activity: Any) -> str | None:
    conversation = getattr(activity, "conversation", None)
    return getattr(conversation, "id", None) or None


def is_personal(activity: Any) -> bool:
    """Personal (1:1) chat. The Emulator sends no conversation type: it is a 1:1 chat too."""
    conversation = getattr(activity, "conversation", None)
    kind = getattr(conversation, "conversation_type", None) if conversation else None
    return kind in (None, "personal")


_AT_TAG = re.compile(r"<at>(.*?)</at>", re.IGNORECASE | re.DOTALL)


def message_text(activity: Any, remove_mention: Callable[[Any], str | None]) -> str:
    """The text someone typed, without the bot's @mention.

    ``remove_mention`` is the SDK's ``TurnContext.remove_recipient_mention``: it uses the activity's mention
    entities (so a renamed bot is still removed). Any other ``<at>Name</at>`` left over (a colleague
    mentioned in the same message, or a client that sent no entity) goes too: an address is not part of
    a question or a command.
    """
    if not getattr(activity, "text", None):
        return ""
    try:
        text = remove_mention(activity) or ""
    except (KeyError, TypeError, AttributeError, ValueError, re.error):  # a malformed entity: fall back below
        text = activity.text
    recipient = getattr(getattr(activity, "recipient", None), "name", None)
    if recipient:  # no entity for the bot (some clients): drop a leading <at>BotName</at> all the same
        text = re.sub(rf"^\s*<at>\s*{re.escape(recipient)}\s*</at>", "", text, flags=re.IGNORECASE)
    return " ".join(_AT_TAG.sub(" ", text).split())


def to_request(activity: Any, text: str, *, timezone: str, language: str = "auto") -> Request:
    """The core's view of a Teams message (``timezone`` and ``language``: the conversation's settings)."""
    conversation = conversation_id_of(activity)
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


def card_payload(reply: Reply, *, question: str | None = None) -> Payload:
    """The message activity (Bot Framework JSON) for a reply: the Adaptive Card plus its plain-text
    rendering as ``summary``.

    ``summary`` rather than ``text``: Teams would show ``text`` *and* the card, doubling every answer;
    ``summary`` is what notifications and card-less clients display.
    """
    feedback = FeedbackContext(question=question, kind=reply.kind) if question is not None else None
    return {
        "type": "message",
        "attachments": [{"contentType": CARD_CONTENT_TYPE, "content": render_card(reply, feedback=feedback)}],
        "summary": fallback_text(reply),
    }


def notice_payload(text: str) -> Payload:
    return {"type": "message", "attachments": [{"contentType": CARD_CONTENT_TYPE, "content": render_notice(text)}],
            "summary": text}


def reason_payload(message_ref: str) -> Payload:
    """The card asking why a 👎 was given (optional), tied to the answer's activity id."""
    return {"type": "message", "summary": FEEDBACK_REASON_ASK,
            "attachments": [{"contentType": CARD_CONTENT_TYPE, "content": render_reason_card(message_ref)}]}


async def activity_body(request: web.Request) -> dict[str, Any] | web.Response:
    """The POSTed activity as a JSON object, or the response that refuses it (the same on both engines)."""
    if "application/json" not in request.headers.get("Content-Type", ""):
        return web.json_response({"error": "expected application/json"}, status=415)
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError, RecursionError):  # (nested deeper than the parser goes)
        log.warning("Teams request refused: unreadable JSON", extra={"bytes": request.content_length})
        return web.json_response({"error": "invalid JSON"}, status=400)
    if not isinstance(body, dict):
        return web.json_response({"error": "expected an Activity object"}, status=400)
    return body


def is_loopback_url(url: str | None) -> bool:
    return is_loopback_host(urlsplit(url or "").hostname or "")


def proactive_reference(reference: Payload) -> Payload:
    """A stored reference (Bot Framework JSON) for *proactive* posts: the channel itself, not the thread or
    message it came from. The same JSON botbuilder's ``ConversationReference.serialize()`` wrote, so rows
    stored before the move to the Agents SDK still load."""
    # (requestId: one HTTP request's id, which the Agents SDK puts in references; not the conversation's.)
    reference = {k: v for k, v in reference.items() if v is not None and k not in ("activityId", "requestId")}
    conversation = dict(reference.get("conversation") or {})
    if conversation.get("id"):
        conversation["id"] = channel_key(conversation["id"])
    reference["conversation"] = conversation
    return reference


def card_action_data(activity: Any) -> dict[str, Any] | None:
    """The data of an ``Action.Submit`` click (a message whose ``value`` names our ``action``), or None."""
    value = getattr(activity, "value", None)
    return value if isinstance(value, dict) and value.get("action") else None


def execute_action_data(value: Any) -> dict[str, Any]:
    """The data of an ``Action.Execute`` (``adaptiveCard/action`` invoke): ``verb`` stands for ``action``."""
    value = value if isinstance(value, dict) else {}
    action = value.get("action") if isinstance(value.get("action"), dict) else {}
    data = action.get("data") if isinstance(action.get("data"), dict) else {}
    if not data.get("action") and action.get("verb"):
        data = {**data, "action": action["verb"]}
    return data


def invoke_message_body(message: str) -> Payload:
    """What Teams expects back from an ``adaptiveCard/action`` invoke: a message it shows the clicker."""
    return {"statusCode": int(HTTPStatus.OK), "type": "application/vnd.microsoft.activity.message", "value": message}


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


def includes_bot(members: list[Any] | None, activity: Any) -> bool:
    recipient = getattr(activity, "recipient", None)
    bot_id = getattr(recipient, "id", None)
    return bool(bot_id) and any(m is not None and getattr(m, "id", None) == bot_id for m in members or [])


# ------------------------------------------------------------------------------------ the bot's turns


class TeamsDesk:
    """What the bot does with a Teams turn, whichever SDK delivered it: the core answers, the store keeps
    dedupe claims, feedback and conversation references. Engines call these with their activity and a
    ``send(payload)`` that posts Bot Framework JSON into the turn's conversation."""

    def __init__(self, desk: Desk, store: Any = None, *, timezone: str = "Asia/Shanghai") -> None:
        self.desk = desk
        self.store = store
        self.timezone = timezone

    async def first_delivery(self, activity: Any) -> bool:
        """Teams re-delivers an activity it thinks timed out; answer each one once."""
        activity_id = getattr(activity, "id", None)
        if self.store is None or not activity_id:
            return True
        if await self.store.claim_once(f"teams:activity:{activity_id}", DEDUPE_TTL_SECONDS):
            return True
        log.info("duplicate Teams activity ignored", extra={"activity_id": activity_id})
        return False

    async def settings(self, activity: Any) -> tuple[str, str]:
        """The conversation's time zone and language (`/china-filing timezone`, `language`), or the defaults."""
        conversation = conversation_id_of(activity)
        if self.store is not None and conversation:
            try:
                found = await self.store.get_channel_settings(PLATFORM, channel_key(conversation))
                return found.timezone or self.timezone, getattr(found, "language", None) or "auto"
            except Exception:  # a settings lookup must never cost an answer
                log.exception("conversation settings lookup failed")
        return self.timezone, "auto"

    async def answer(self, activity: Any, text: str, send: Send) -> None:
        timezone, language = await self.settings(activity)
        reply = await self.desk.handle(to_request(activity, text, timezone=timezone, language=language))
        await send(card_payload(reply, question=text))

    async def card_action(self, activity: Any, data: dict[str, Any], send: Send) -> str:
        """A button on one of our cards: feedback is stored; a command runs as if typed. Returns the line an
        ``Action.Execute`` invoke answers with."""
        kind = data.get("action")
        if kind == "feedback":
            vote = data.get("vote")
            if vote not in ("up", "down"):
                return "Unknown feedback"
            if not await self._first_vote(activity):
                await send(notice_payload(FEEDBACK_AGAIN))
                return FEEDBACK_AGAIN
            await self._record_feedback(activity, data, vote)
            thanks = FEEDBACK_THANKS[vote]
            reply_to = getattr(activity, "reply_to_id", None)
            if vote == "down" and self.store is not None and reply_to:
                # Ask why (optional): the card's submit comes back as "feedback_reason" below.
                await send(reason_payload(reply_to))
            else:
                await send(notice_payload(thanks))
            return thanks
        if kind == "feedback_reason":
            return await self._record_reason(activity, data, send)
        if kind == "command":
            # "text" for command buttons; "command" is the menu's Input.ChoiceSet id.
            text = data.get("text") or data.get("command") or ""
            await self.answer(activity, str(text), send)
            return "Done"
        log.info("unknown card action", extra={"action": str(kind)[:40]})
        await self.answer(activity, "", send)  # the help card: better than silence
        return "Unknown action"

    async def welcome(self, activity: Any, send: Send) -> None:
        await send(card_payload(welcome_reply(self.desk, personal=is_personal(activity))))

    async def _first_vote(self, activity: Any) -> bool:
        """One vote per person per answer, as in Slack: the first click on 👍/👎 under a message counts."""
        conversation = conversation_id_of(activity)
        reply_to = getattr(activity, "reply_to_id", None)
        if self.store is None or not reply_to or not conversation:
            return True  # no message to tie the vote to: nothing to compare with
        key = f"teams:feedback:{channel_key(conversation)}:{reply_to}:{user_of(activity)}"
        return await self.store.claim_once(key, FEEDBACK_CLAIM_SECONDS)

    async def _record_reason(self, activity: Any, data: dict[str, Any], send: Send) -> str:
        """The reason card's submit: stored on this person's 👎 of that answer (the platform-neutral call)."""
        reason = data.get("reason") if isinstance(data.get("reason"), str) and data.get("reason") else None
        comment = data.get("comment") if isinstance(data.get("comment"), str) else None
        message = data.get("message")
        try:
            check_reason(reason, comment)
        except BadReasonError:  # not one of the card's choices: a forged or stale submit
            await send(notice_payload(FEEDBACK_BAD_REASON))
            return FEEDBACK_BAD_REASON
        if self.store is not None and isinstance(message, str) and message:
            await self.store.record_feedback_reason(PLATFORM, message, user_of(activity), reason, comment)
        await send(notice_payload(FEEDBACK_REASON_THANKS))
        return FEEDBACK_REASON_THANKS

    async def _record_feedback(self, activity: Any, data: dict[str, Any], vote: str) -> None:
        if self.store is None:
            return
        from bot.store import Feedback  # the store module is only needed when there is a store

        question = data.get("question")
        conversation = conversation_id_of(activity)
        await self.store.record_feedback(
            Feedback(
                platform=PLATFORM,
                workspace=tenant_of(activity),
                channel=channel_key(conversation) if conversation else None,
                user=user_of(activity),
                message_ref=getattr(activity, "reply_to_id", None),
                topic=data.get("topic") if isinstance(data.get("topic"), str) else None,
                vote=vote,
                question=str(question)[:2000] if question is not None else None,
                fact=str(data["fact"])[:200] if isinstance(data.get("fact"), str) else None,
            )
        )

    async def remember(self, activity: Any, reference: Payload) -> None:
        """Store (or refresh) the conversation reference proactive posts go through."""
        if self.store is None or not conversation_id_of(activity) or not getattr(activity, "service_url", None):
            return
        reference = proactive_reference(reference)
        await self.store.save_conversation(PLATFORM, reference["conversation"]["id"], tenant_of(activity), reference)

    async def forget(self, activity: Any) -> None:
        conversation = conversation_id_of(activity)
        if self.store is None or not conversation:
            return
        ids = {channel_key(conversation)}
        team = team_of(activity)
        if team:  # a team uninstall: the team id is also its General channel's conversation id
            ids.add(team)
        for conversation_id in ids:
            await self.store.delete_conversation(PLATFORM, conversation_id)
        log.info("Teams conversation references deleted", extra={"count": len(ids)})


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


def no_reference(channel: str) -> DeliveryError:
    return DeliveryError(f"no stored Teams conversation {channel!r}: the bot was removed or never installed there",
                         permanent=True, gone=True)


async def classify_failure(exc: BaseException, status: int | None, retry_after: float | None, *, store: Any,
                           channel: str) -> DeliveryError:
    """A failed proactive post as a :class:`DeliveryError` (forgetting the conversation when Teams says the bot
    is no longer in it)."""
    if status in (HTTPStatus.FORBIDDEN, HTTPStatus.NOT_FOUND):
        await store.delete_conversation(PLATFORM, channel)
        return DeliveryError(f"Teams refused the post ({status}): the bot is no longer in this conversation",
                             permanent=True, gone=True, status=status)
    # Busy (408, 429) or down (5xx, no answer at all): try again later. Other 4xx: the message itself.
    permanent = status is not None and 400 <= status < 500 and status not in (
        HTTPStatus.REQUEST_TIMEOUT, HTTPStatus.TOO_MANY_REQUESTS)
    return DeliveryError(f"Teams post failed ({status or type(exc).__name__}): {exc}"[:300],
                         permanent=permanent, status=status, retry_after=retry_after)


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    try:
        return float((headers or {}).get("Retry-After") or (headers or {}).get("retry-after"))  # type: ignore[arg-type]
    except (TypeError, ValueError, AttributeError):
        return None


@dataclass
class Deliverer:
    """The scheduler's :class:`bot.scheduler.Deliverer` for ``teams``, over an engine's ``deliver_reply``:
    ``deliver`` never raises for a platform error, it says whether to retry (408, 429 after its
    ``Retry-After``, 5xx, network: until the post expires), pause (the bot was removed: 403/404, or no
    reference stored; our credentials refused: 401) or give up (Teams rejected the message itself)."""

    platform = PLATFORM

    async def deliver_reply(self, channel: str, reply: Reply) -> str:  # pragma: no cover - engines implement
        raise NotImplementedError

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
