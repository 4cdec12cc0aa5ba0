"""botbuilder's side of the translation (the deprecated engine): the mention removal, the conversation
reference and card activities as botbuilder objects. Everything SDK-neutral is in :mod:`bot.teams.common`."""

from __future__ import annotations

import copy

from botbuilder.core import TurnContext
from botbuilder.schema import Activity, ConversationReference

from bot.teams.common import PLATFORM, card_payload, channel_key
from bot.teams.common import message_text as _message_text
from handlers.request import Reply

__all__ = ["PLATFORM", "card_activity", "message_text", "reference_of"]


def message_text(activity: Activity) -> str:
    """The text someone typed, without the bot's @mention (botbuilder's entity-based removal first)."""
    return _message_text(activity, TurnContext.remove_recipient_mention)


def reference_of(activity: Activity) -> ConversationReference:
    """A reference for *proactive* posts: the channel itself, not the thread or message it came from."""
    reference = TurnContext.get_conversation_reference(activity)
    reference.activity_id = None
    if reference.conversation is not None:  # (a copy: the activity shares it, and its replies go to the thread)
        reference.conversation = copy.copy(reference.conversation)
        reference.conversation.id = channel_key(reference.conversation.id)
    return reference


def card_activity(reply: Reply, *, question: str | None = None) -> Activity:
    """The message activity for a reply (:func:`bot.teams.common.card_payload`) as botbuilder's Activity."""
    return Activity().deserialize(card_payload(reply, question=question))
