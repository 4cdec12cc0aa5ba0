"""Reminder posts to Slack: the scheduler's deliverer for ``slack`` (``chat.postMessage``), registered on import.

Each post carries its key in Slack message metadata (``event_type`` :data:`METADATA_EVENT`), so that when an
earlier try may have posted it without our knowing (a crash, a timeout, a 5xx), the next try first looks
for it in the channel's history, in that try's time window only (see
:meth:`SlackDeliverer._look_for_earlier` for the rate limits it respects and which way it errs).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.scheduler import MAX_CALL_WAIT_SECONDS, Deliverer, DeliveryResult, Outgoing, register_deliverer
from bot.store import Store, utcnow

log = logging.getLogger("chinadesk.scheduler.slack")

SLACK_DEFAULT_API_URL = "https://slack.com/api/"
# Slack errors that mean "this channel/workspace can't take our posts any more": retrying is pointless,
# so the deadline/subscription is paused and the App Home says why.
SLACK_PAUSE_ERRORS = frozenset({
    "channel_not_found", "not_in_channel", "is_archived", "account_inactive", "token_revoked", "token_expired",
    "invalid_auth", "not_authed", "no_permission", "team_access_not_granted", "missing_scope", "ekm_access_denied",
    "restricted_action", "org_login_required", "team_not_found", "app_uninstalled",
})
# Errors in the message itself: retrying the same message cannot help.
SLACK_FAIL_ERRORS = frozenset({"invalid_blocks", "invalid_blocks_format", "msg_too_long", "no_text",
                               "invalid_arguments", "invalid_metadata_format", "invalid_metadata_schema"})
# Errors after which Slack may have done part of the work (its docs say so of fatal_error).
SLACK_UNSURE_ERRORS = frozenset({"fatal_error", "internal_error", "request_timeout", "service_unavailable"})
METADATA_EVENT = "chinadesk_reminder"


@dataclass(frozen=True)
class EarlierPost:
    """What looking for an earlier copy of a post in channel history found."""

    ts: str | None = None  # found: its ts (None: not there, or it could not be looked for)
    retry_after: float | None = None  # rate limited: look again after this many seconds


HISTORY_PAGE_SIZE = 15  # conversations.history's most for non-Marketplace commercial apps since 2025-05-29
HISTORY_PAGES = 3
HISTORY_MARGIN = dt.timedelta(minutes=2)  # clock skew between us and Slack, requests that land late
# How long a post whose earlier try is in doubt waits for a history check Slack keeps rate-limiting,
# before it is posted unchecked (a possible repeat rather than a loss).
HISTORY_PATIENCE = dt.timedelta(minutes=30)


class SlackDeliverer:
    """``chat.postMessage`` through slack_sdk's async client.

    A short ``Retry-After`` (up to :data:`MAX_CALL_WAIT_SECONDS`) and connection errors are retried inside
    the call; a longer 429, a 5xx or a timeout goes back to the scheduler as "retry", which tries again on a
    later pass. The token is the workspace's stored installation (OAuth installs) or ``SLACK_BOT_TOKEN``.
    """

    def __init__(
        self, store: Store, *, default_token: str | None, api_url: str = SLACK_DEFAULT_API_URL,
        rate_limit_retries: int = 2, timeout: int = 15,
    ) -> None:
        self.store = store
        self.default_token = default_token
        self.api_url = api_url if api_url.endswith("/") else api_url + "/"
        self.rate_limit_retries = rate_limit_retries
        self.timeout = timeout
        self._clients: dict[str, Any] = {}
        self._history_blocked: dict[str, dt.datetime] = {}  # token -> no history calls before (pass time)

    async def _token(self, workspace: str | None) -> str | None:
        if workspace:
            data = await self.store.find_installation("slack", workspace) or {}
            for part in (data.get("bot"), data.get("installation"), data):
                if isinstance(part, dict) and part.get("bot_token"):
                    return str(part["bot_token"])
        return self.default_token

    def _client(self, token: str) -> Any:
        from slack_sdk.web.async_client import AsyncWebClient

        from bot.observability import slack_retry_handlers  # the adapter's handlers: retries are counted

        client = self._clients.get(token)
        if client is None:
            client = self._clients[token] = AsyncWebClient(
                token=token, base_url=self.api_url, timeout=self.timeout,
                retry_handlers=slack_retry_handlers(rate_limit_retries=self.rate_limit_retries, connection_retries=1,
                                                    max_rate_limit_wait=MAX_CALL_WAIT_SECONDS),
            )
        return client

    @staticmethod
    def message(item: Outgoing) -> dict[str, Any]:
        """chat.postMessage arguments: Block Kit when the Slack renderer is present, else plain text."""
        try:
            from bot.slack.blockkit import render_reply
        except ImportError:
            return {"text": item.reply.text}
        rendered = render_reply(item.reply, share=False)
        return {"text": rendered.text, "blocks": rendered.blocks}

    async def _look_for_earlier(self, client: Any, item: Outgoing, token: str) -> EarlierPost:
        """Our own earlier message for this post, in the window of the tries that may have sent it.

        Only ``conversations.history`` between those tries' start and end (plus :data:`HISTORY_MARGIN` for
        clock skew and late requests) is read, newest first, up to :data:`HISTORY_PAGES` pages of
        :data:`HISTORY_PAGE_SIZE` (Slack's page limit for non-Marketplace apps since 2025-05-29): however busy
        the channel is later, the window holds little. A 429 (about one call a minute for those apps) is
        remembered per token and answered "look again after Retry-After", without waiting inside the call.
        """
        window = item.post.unconfirmed
        assert window is not None
        now = item.now or utcnow()
        blocked = self._history_blocked.get(token)
        if blocked is not None and blocked > now:
            return EarlierPost(retry_after=(blocked - now).total_seconds())
        oldest, latest = window[0] - HISTORY_MARGIN, window[1] + HISTORY_MARGIN
        cursor = None
        try:
            for _page in range(HISTORY_PAGES):
                # POST (form) rather than the SDK's GET helper: Slack accepts both, and proxies/stand-ins
                # that only route POST /api/<method> keep working.
                resp = await client.api_call("conversations.history", data={
                    "channel": item.channel, "oldest": f"{oldest.timestamp():.6f}",
                    "latest": f"{latest.timestamp():.6f}", "inclusive": "true", "limit": HISTORY_PAGE_SIZE,
                    "include_all_metadata": "true", **({"cursor": cursor} if cursor else {}),
                })
                for message in resp.get("messages") or []:
                    meta = message.get("metadata") or {}
                    if meta.get("event_type") == METADATA_EVENT and \
                            (meta.get("event_payload") or {}).get("key") == item.post.key:
                        return EarlierPost(ts=str(message.get("ts") or ""))
                cursor = (resp.get("response_metadata") or {}).get("next_cursor")
                if not resp.get("has_more") or not cursor:
                    return EarlierPost()  # the whole window read: not there
        except Exception as exc:  # rate limited, no history scope, network...
            from bot.observability import web_api_failure

            failure = web_api_failure(exc)
            if failure.rate_limited:
                after = failure.retry_after if failure.retry_after is not None else 60.0
                self._history_blocked[token] = now + dt.timedelta(seconds=after)
                return EarlierPost(retry_after=after)
            log.info("could not look for an earlier post of %s: %s", item.post.key, failure.error)
            return EarlierPost()
        log.info("more messages than %d pages around the earlier try of %s: not checked", HISTORY_PAGES, item.post.key)
        return EarlierPost()

    async def deliver(self, item: Outgoing) -> DeliveryResult:
        import aiohttp
        from slack_sdk.errors import SlackApiError

        from bot.observability import web_api_failure

        token = await self._token(item.workspace)
        if not token:
            return DeliveryResult.paused("no Slack bot token for this workspace (app not installed?)")
        client = self._client(token)
        if item.post.unconfirmed is not None:  # an earlier try may have posted it: look first
            earlier = await self._look_for_earlier(client, item, token)
            if earlier.ts:
                return DeliveryResult.posted(earlier.ts)
            since = item.post.unconfirmed[0]
            if earlier.retry_after is not None and (item.now or utcnow()) - since < HISTORY_PATIENCE:
                return DeliveryResult.retry("waiting to check channel history (rate limited)", earlier.retry_after)
            # Not there, or it cannot be known (no scope, still rate limited after HISTORY_PATIENCE...):
            # post. The check errs towards a repeated reminder, never towards a lost one.
        try:
            resp = await client.chat_postMessage(
                channel=item.channel, unfurl_links=False, unfurl_media=False,
                metadata={"event_type": METADATA_EVENT, "event_payload": {"key": item.post.key}},
                **self.message(item),
            )
        except SlackApiError as exc:
            failure = web_api_failure(exc)
            if failure.rate_limited:  # Slack refused it: nothing was posted
                return DeliveryResult.retry("ratelimited", failure.retry_after)
            if failure.error in SLACK_PAUSE_ERRORS:
                return DeliveryResult.paused(failure.error)
            if failure.error in SLACK_FAIL_ERRORS:
                return DeliveryResult.failed(failure.error)
            unsure = failure.server_error or failure.error in SLACK_UNSURE_ERRORS
            return DeliveryResult.retry(failure.error, failure.retry_after, uncertain=unsure)
        except aiohttp.ClientConnectorError as exc:  # never reached Slack
            return DeliveryResult.retry(f"{web_api_failure(exc).error}: {exc}"[:300])
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:  # it may have reached Slack
            return DeliveryResult.retry(f"{web_api_failure(exc).error}: {exc}"[:300], uncertain=True)
        return DeliveryResult.posted(str(resp.get("ts") or ""))

    async def close(self) -> None:
        self._clients.clear()  # the async client opens a session per call unless given one: nothing to close


def _slack_factory(store: Store, env: Mapping[str, str]) -> Deliverer | None:
    token = env.get("SLACK_BOT_TOKEN", "").strip() or None
    oauth = bool(env.get("SLACK_CLIENT_ID", "").strip())
    if token is None and not oauth:
        return None
    api_url = env.get("SLACK_API_URL", "").strip() or SLACK_DEFAULT_API_URL
    return SlackDeliverer(store, default_token=token, api_url=api_url)


register_deliverer("slack", _slack_factory,
                   needs="SLACK_BOT_TOKEN (one workspace), or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET (OAuth installs)")
