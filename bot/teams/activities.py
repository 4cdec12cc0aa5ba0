"""Teams activities <-> the core: text, ids, conversation references, card activities."""

from __future__ import annotations

import copy
import logging
import re
from urllib.parse import urlsplit

from botbuilder.core import CardFactory, MessageFactory, TurnContext
from botbuilder.schema import (
    Activity,
    ConversationReference,
)

from bot.config import is_loopback_host
from bot.teams.cards import FeedbackContext, fallback_text, render_card, render_notice, render_reason_card
from handlers.request import Reply, Request

log = logging.getLogger("chinadesk.teams")
PLATFORM = "teams"


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


def reason_activity(message_ref: str) -> Activity:
    """The card asking why a 👎 was given (optional), tied to the answer's activity id."""
    activity = MessageFactory.attachment(CardFactory.adaptive_card(render_reason_card(message_ref)))
    activity.summary = "Thanks for the 👎. What was wrong?"
    return activity


def is_loopback_url(url: str | None) -> bool:
    return is_loopback_host(urlsplit(url or "").hostname or "")


