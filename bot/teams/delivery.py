"""Proactive Teams posts on the (deprecated) botbuilder engine; bot.teams.engine registers the scheduler's factory."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from botbuilder.core import TurnContext
from botbuilder.integration.aiohttp import (
    CloudAdapter,
)
from botbuilder.schema import (
    Activity,
    ConversationReference,
)

from bot.config import TeamsSettings
from bot.teams.activities import PLATFORM, card_activity
from bot.teams.common import Deliverer, DeliveryError
from bot.teams.connector import make_adapter  # noqa: F401 - (engine.py builds the worker's adapter)
from handlers.request import Reply

log = logging.getLogger("chinadesk.teams")


# ------------------------------------------------------------------------------ proactive delivery


class TeamsDeliverer(Deliverer):
    """Posts to a Teams conversation later, through the reference stored when the bot last heard from it
    (botbuilder engine); :class:`bot.teams.common.Deliverer` turns its errors into the scheduler's results."""

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
