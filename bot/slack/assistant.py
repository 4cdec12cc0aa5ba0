"""Slack's agent experience in the app's DM ("Messages" tab): suggested prompts and a working status.

Since 2026-06-30 new Slack apps get the agent messaging experience: the DM shows suggested prompts when a
conversation starts (``assistant.threads.setSuggestedPrompts``) and a status line while the app works
(``assistant.threads.setStatus``; posting the answer in the thread clears it). Both need the app's
agent feature and ``assistant:write`` (slack/manifest.yml declares them).

Workspaces or plans without the feature, or installs from before the scope was added, answer these calls
with an error (``not_allowed``, ``missing_scope``...): the answer is then posted exactly as before, and
the workspace is not asked again for :data:`UNAVAILABLE_FOR` seconds (no wasted call before each answer).
The calls are bounded by :data:`CALL_BUDGET` seconds, so a slow Slack never holds an answer back.

The prompts are set without ``thread_ts``: for an agent-view app Slack ignores calls that name a thread
(the legacy assistant view needed one); the status is per thread, the one the answer is posted in.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import aiohttp
from cachetools import TTLCache
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from handlers.prompts import Prompt

log = logging.getLogger("chinadesk.slack.assistant")

STATUS = "Checking the packs…"
# Rotated by Slack while the status shows (the answer takes well under a second; these are for a busy day).
LOADING_MESSAGES = ("Checking the packs…", "Reading the sources…", "Counting working days…")
PROMPTS_TITLE = "Try asking"
CALL_BUDGET = 2.0  # seconds: the status is a courtesy; the answer never waits longer for it
UNAVAILABLE_FOR = 3600.0  # seconds a workspace without the feature is not asked again
# Errors that mean "this workspace, plan or install cannot use the agent experience": fall back quietly.
UNAVAILABLE = frozenset({
    "not_allowed", "not_allowed_token_type", "missing_scope", "no_permission", "access_denied",
    "feature_not_enabled", "unknown_method", "method_deprecated", "team_access_not_granted",
    "not_an_assistant_thread", "invalid_thread_ts", "channel_not_found", "thread_not_found",
})


def _error(exc: SlackApiError) -> str:
    data = getattr(exc.response, "data", None)
    return str(data.get("error")) if isinstance(data, dict) else f"http_{getattr(exc.response, 'status_code', '?')}"


class AgentDM:
    """Suggested prompts and the working status, for the workspaces that have them."""

    def __init__(self, prompts: Sequence[Prompt], *, maxsize: int = 10_000) -> None:
        self.prompts = list(prompts)
        self._unavailable: TTLCache[str, str] = TTLCache(maxsize, UNAVAILABLE_FOR)

    def available(self, team: str | None) -> bool:
        return (team or "") not in self._unavailable

    async def suggest(self, client: AsyncWebClient, team: str | None, channel: str | None) -> bool:
        """Show the starter prompts in the DM ``channel``; True when Slack took them."""
        if not channel or not self.prompts:
            return False
        prompts = [{"title": p.title, "message": p.message} for p in self.prompts]
        return await self._call(team, "setSuggestedPrompts", client.assistant_threads_setSuggestedPrompts(
            channel_id=channel, prompts=prompts, title=PROMPTS_TITLE))

    async def working(self, client: AsyncWebClient, team: str | None, channel: str, thread_ts: str) -> bool:
        """Show "Checking the packs…" in the thread the answer will be posted in; True when Slack took it."""
        return await self._call(team, "setStatus", client.assistant_threads_setStatus(
            channel_id=channel, thread_ts=thread_ts, status=STATUS, loading_messages=list(LOADING_MESSAGES)))

    async def done(self, client: AsyncWebClient, team: str | None, channel: str, thread_ts: str) -> None:
        """Clear the status when no answer is posted (posting one clears it by itself)."""
        await self._call(team, "setStatus", client.assistant_threads_setStatus(
            channel_id=channel, thread_ts=thread_ts, status=""))

    async def _call(self, team: str | None, what: str, call: Any) -> bool:
        if not self.available(team):
            call.close()  # the coroutine was never awaited: close it, no warning
            return False
        try:
            await asyncio.wait_for(call, CALL_BUDGET)
            return True
        except SlackApiError as exc:
            error = _error(exc)
            if error in UNAVAILABLE:
                self._unavailable[team or ""] = error
                log.info("Slack agent experience not available here; answering without it",
                         extra={"workspace": team, "call": what, "error": error})
            else:
                log.warning("Slack agent call failed", extra={"workspace": team, "call": what, "error": error})
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("Slack agent call failed", extra={"workspace": team, "call": what,
                                                          "error": type(exc).__name__})
        return False
