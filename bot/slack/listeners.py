"""Every Slack entry point bolt dispatches to (commands, events, actions) and the middleware in front of them."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import aiohttp
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.middleware.async_middleware import AsyncMiddleware
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.observability import (
    web_api_failure,
)
from bot.slack.blockkit import (
    ACTION_COMMAND,
    ACTION_FEEDBACK_DOWN,
    ACTION_FEEDBACK_UP,
    ACTION_SHARE,
    FeedbackRef,
    HomeCommand,
    render_home,
    render_notice,
    render_reply,
)
from bot.slack.feedback import BLOCK_REASON, CALLBACK_FEEDBACK_REASON, read_submission
from bot.slack.translate import (
    ADDRESSED,
    ESCAPED_SURROGATE,
    PLATFORM,
    channel_of,
    conversation_key,
    malformed_reason,
    slack_to_plain,
    strip_lone_surrogates,
    team_of,
    workspace_key,
)
from handlers.feedback import BadReasonError, check_reason, feedback_fact
from handlers.request import Reply
from handlers.router import COMMANDS, router

if TYPE_CHECKING:
    from bot.slack.adapter import SlackAdapter




log = logging.getLogger("chinadesk.slack")


ACK_BUDGET_SECONDS = 2.0  # Slack allows 3 s; keep a second for the network
EVENT_CLAIM_TTL = 86400  # Slack retries within minutes; a day leaves room for slow redeliveries
ERROR_CONTEXT_KEY = "chinadesk_error"  # where record_bolt_error leaves what bolt caught
SHAPE_ERRORS = (KeyError, TypeError, AttributeError, IndexError, ValueError)  # a payload not shaped like Slack's

# The one list of what this adapter handles. Registration below (register_listeners) iterates these, and
# tests/test_slack_manifest.py checks slack/manifest.yml against them in both directions.
HANDLED_COMMANDS: tuple[str, ...] = COMMANDS
HANDLED_EVENTS: tuple[str, ...] = (
    "app_mention", "message", "app_home_opened", "app_uninstalled", "tokens_revoked", "assistant_thread_started",
)
# Manifest bot event subscriptions that arrive as the "message" event type.
MESSAGE_SUBSCRIPTIONS: tuple[str, ...] = ("message.im", "message.channels", "message.groups")
HANDLED_ACTIONS: tuple[str, ...] = (ACTION_SHARE, ACTION_COMMAND, ACTION_FEEDBACK_UP, ACTION_FEEDBACK_DOWN)

# Message subtypes that are still a person writing something (everything else: edits, joins, bots...).
_HUMAN_SUBTYPES = (None, "thread_broadcast", "file_share")
_NOT_IN_CHANNEL = ("not_in_channel", "channel_not_found", "is_archived")



# -------------------------------------------------------------------------------------- middleware


async def record_bolt_error(error: Exception, request: Any) -> None:
    """bolt's error handler: keep what failed for :meth:`SlackAdapter.handle_events` to judge (4xx or 5xx)."""
    if isinstance(error, SHAPE_ERRORS):
        log.warning("Slack payload bolt could not process", extra={"error": type(error).__name__})
    else:
        log.error("Slack request failed", exc_info=error)
    if request is not None:
        request.context[ERROR_CONTEXT_KEY] = error


class EventGate(AsyncMiddleware):
    """bolt middleware in front of every listener: no answers to bots, and one answer per event id.

    * Messages and mentions written by any bot are acknowledged and dropped (bolt already drops our
      own): two bots can never talk to each other forever.
    * Each ``event_id`` is claimed in the store (``slack:event:<id>``) before a listener runs, so
      Slack's retries (``X-Slack-Retry-Num``) and second deliveries are acknowledged and dropped; the
      claim is in the database, so it holds across replicas and restarts.
    * Lone surrogates (``\\ud800`` without its pair) are stripped from the payload before anyone reads it.

    A class rather than a ``@app.middleware`` function: bolt builds injected keyword arguments for
    function middleware on every request, and slash commands, which this gate always lets through,
    should not pay for that.
    """

    def __init__(self, adapter: SlackAdapter) -> None:
        self.adapter = adapter

    async def async_process(
        self, *, req: AsyncBoltRequest, resp: BoltResponse, next: Callable[[], Awaitable[BoltResponse]],
    ) -> BoltResponse:
        body = req.body
        if req.mode != "http":  # Socket Mode: the shape checks handle_events makes for HTTP requests
            malformed = malformed_reason(body)
            if malformed:
                log.warning("malformed Slack payload dropped", extra={"reason": malformed})
                return BoltResponse(status=200, body="")  # acknowledged: a redelivery would be just as wrong
        if req.mode != "http" or ESCAPED_SURROGATE.search(req.raw_body):  # (Socket Mode keeps no raw body)
            strip_lone_surrogates(body)
        if body.get("type") != "event_callback":
            return await next()
        event = body.get("event") or {}
        if event.get("type") in ("message", "app_mention") and (
            event.get("bot_id") or event.get("subtype") == "bot_message" or event.get("bot_profile")
        ):
            return BoltResponse(status=200, body="")
        event_id = body.get("event_id")
        if event_id and not await self.adapter._store().claim_once(f"slack:event:{event_id}", EVENT_CLAIM_TTL):
            log.info("duplicate Slack event ignored", extra={"event_id": event_id})
            return BoltResponse(status=200, body="")
        return await next()


# --------------------------------------------------------------------------------------- listeners


def _home_commands() -> list[HomeCommand]:
    out = []
    for name in COMMANDS:
        if name not in router.commands:
            continue
        usages = [(f"{name} help", "every command")]
        usages += [(s.usage, s.summary) for s in router.subcommands.get(name, {}).values()]
        out.append(HomeCommand(command=name, summary=router.summaries[name], usages=usages))
    return out


def _feedback_for(reply: Reply, question: str) -> FeedbackRef | None:
    """Answers and cards get 👍/👎; menus, help and error messages do not."""
    if reply.kind in ("menu", "help", "error"):
        return None
    return FeedbackRef(topic=reply.topic, question=question, fact=feedback_fact(reply))


def register_listeners(app: AsyncApp, adapter: SlackAdapter) -> None:
    """Every Slack entry point, in one place (commands, events, actions) plus the cross-cutting middleware."""
    app.use(EventGate(adapter))
    app.error(record_bolt_error)

    # ---- slash commands

    async def on_command(ack: Any, body: dict, respond: Any) -> None:
        async def answer() -> Reply:
            request = await adapter.request(
                text=slack_to_plain(body.get("text", "")), command=body.get("command"), mode="command",
                user=body.get("user_id"), channel=body.get("channel_id"), team=team_of(body), body=body,
            )
            return await adapter.ask(request)

        work = asyncio.ensure_future(answer())  # the settings lookup too is inside the 3-second budget
        await asyncio.sleep(0)  # one loop turn: a cached or pure answer is ready after it, no timer needed
        try:
            reply = (
                work.result() if work.done() else await asyncio.wait_for(asyncio.shield(work), ACK_BUDGET_SECONDS)
            )
        except TimeoutError:
            # Slow answer: acknowledge now (Slack's 3 s), deliver through response_url when ready.
            await ack()

            async def later() -> None:
                await respond(**adapter.command_message(await work), replace_original=False)

            adapter.spawn(later(), name="slow-command")
            return
        await ack(**adapter.command_message(reply))

    for command in HANDLED_COMMANDS:
        app.command(command)(on_command)

    # ---- channel Q&A: mentions, DMs, watched channels

    async def answer_message(event: dict, context: Any, client: AsyncWebClient, mode: str) -> None:
        channel, ts = event.get("channel"), event.get("ts")
        if not channel or not ts:
            return
        question = slack_to_plain(event.get("text", ""), context.bot_user_id)
        if mode == "watch" and not question:
            return
        team = context.team_id or team_of(event)
        thread_ts = event.get("thread_ts") or ts
        # The app's DM: "Checking the packs…" in the thread before the answer is worked out (where the
        # workspace has the agent experience; elsewhere this is a no-op and the answer comes as before).
        working = mode == "direct" and await adapter.agent.working(client, team, channel, thread_ts)
        posted = False
        try:
            request = await adapter.request(
                text=question or "/china-filing help", mode=mode, user=event.get("user"), channel=channel,
                team=team, thread=conversation_key(event), thread_opener=event.get("thread_ts") in (None, ts),
            )
            reply = await adapter.ask(request)
            if mode == "watch" and reply.kind not in ("answer", "deadline"):
                return  # ambient messages get an answer only when the Q&A handler is confident
            # One answer per message, even when it arrived as two events (mention + watched channel).
            if not await adapter._store().claim_once(f"slack:answer:{channel}:{ts}", EVENT_CLAIM_TTL):
                return
            message = render_reply(reply, share=False, feedback=_feedback_for(reply, question))
            try:
                await adapter.post(client, channel, message, thread_ts=thread_ts)
                posted = True
            except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:  # still failing after the retries
                log.warning("could not answer in channel", extra={"error": web_api_failure(exc).error})
        finally:
            if working and not posted:  # a posted answer clears the status; otherwise clear it here
                await adapter.agent.done(client, team, channel, thread_ts)

    async def follows_up_the_bot(event: dict, context: Any) -> bool:
        """A reply in a thread that began with a question to the bot (and that the bot answered) may be a
        follow-up without mentioning it; the Q&A handler then applies the watched-channel bar. A reply
        that tags someone else is people talking to each other, and is left alone."""
        thread_ts = event.get("thread_ts")
        if not thread_ts or thread_ts == event.get("ts") or ADDRESSED.search(event.get("text") or ""):
            return False
        store = adapter._store()
        if not hasattr(store, "load_qa_context"):
            return False
        found = await store.load_qa_context(PLATFORM, conversation_key(event), dt.datetime.now(dt.UTC))
        return bool(found and found.get("opened_by_question"))

    async def on_mention(event: dict, context: Any, client: AsyncWebClient) -> None:
        adapter.spawn(answer_message(event, context, client, "mention"), name="mention")

    async def on_message(event: dict, context: Any, client: AsyncWebClient) -> None:
        if event.get("subtype") not in _HUMAN_SUBTYPES or event.get("bot_id"):
            return
        channel_type = event.get("channel_type")
        if channel_type == "im":
            adapter.spawn(answer_message(event, context, client, "direct"), name="direct")
            return
        if channel_type not in ("channel", "group"):
            return  # group DMs: only when mentioned (app_mention)
        if context.bot_user_id and f"<@{context.bot_user_id}" in (event.get("text") or ""):
            return  # app_mention answers this one

        async def watch() -> None:
            if await follows_up_the_bot(event, context):
                await answer_message(event, context, client, "watch")
                return
            channel_settings = await adapter._store().get_channel_settings(PLATFORM, event.get("channel"))
            if channel_settings.watch:
                await answer_message(event, context, client, "watch")

        adapter.spawn(watch(), name="watch")

    app.event("app_mention")(on_mention)
    app.event("message")(on_message)

    # ---- App Home

    async def on_home_opened(event: dict, context: Any, client: AsyncWebClient) -> None:
        if event.get("tab") == "messages":  # the app's DM opened: offer the starter prompts
            adapter.spawn(adapter.agent.suggest(client, context.team_id, event.get("channel")), name="prompts")
            return
        if event.get("tab", "home") != "home":
            return

        async def publish() -> None:
            team = context.team_id
            desk = adapter.desk

            def title(topic: str) -> str:
                found = desk.library.topics.get(topic) if desk is not None else None
                return found.title if found is not None else topic

            items = await adapter.home_items(client, team, event["user"])
            review = await adapter.review_summary(client, team, event["user"])
            view = render_home(
                commands=_home_commands(),
                tracked=items.tracked,
                subscriptions=items.subscriptions,
                paused=items.paused,
                notice=items.notice,
                topic_title=title,
                today=dt.datetime.now(ZoneInfo(adapter.default_timezone)).date(),
                working_days=desk.calendar.working_days_between if desk is not None else None,
                review=review,
            )
            await client.views_publish(user_id=event["user"], view=view)

        adapter.spawn(publish(), name="home")

    app.event("app_home_opened")(on_home_opened)

    # ---- the agent experience: a conversation started in the app's DM gets the starter prompts

    async def on_assistant_thread_started(event: dict, context: Any, client: AsyncWebClient) -> None:
        thread = event.get("assistant_thread") if isinstance(event.get("assistant_thread"), dict) else {}
        channel = thread.get("channel_id") or context.channel_id
        adapter.spawn(adapter.agent.suggest(client, context.team_id, channel), name="prompts")

    app.event("assistant_thread_started")(on_assistant_thread_started)

    # ---- uninstall: forget the workspace

    async def forget(team: str) -> None:
        await adapter._store().delete_workspace(PLATFORM, team)
        log.info("Slack workspace data deleted", extra={"workspace": team})

    async def on_uninstalled(body: dict) -> None:
        team = workspace_key(body.get("enterprise_id"), body.get("team_id"), body.get("is_enterprise_install"))
        await forget(team)

    async def on_tokens_revoked(body: dict, event: dict) -> None:
        if not (event.get("tokens") or {}).get("bot"):
            return  # only user tokens revoked: we hold none
        team = workspace_key(body.get("enterprise_id"), body.get("team_id"), body.get("is_enterprise_install"))
        await forget(team)

    app.event("app_uninstalled")(on_uninstalled)
    app.event("tokens_revoked")(on_tokens_revoked)

    # ---- buttons

    async def on_share(ack: Any, body: dict, action: dict, client: AsyncWebClient, respond: Any) -> None:
        await ack()
        user = (body.get("user") or {}).get("id")
        channel = channel_of(body)

        async def share() -> None:
            request = await adapter.request(
                text=action.get("value", ""), mode="command", user=user, channel=channel, team=team_of(body),
            )
            reply = await adapter.ask(request)
            message = render_reply(reply, share=False, shared_by=user)
            try:
                await adapter.post(client, channel, message)
            except SlackApiError as exc:
                if web_api_failure(exc).error not in _NOT_IN_CHANNEL:
                    raise
                await respond(
                    **render_notice(
                        "I can't post in this conversation because I'm not a member. Invite me with "
                        "`/invite @China Desk` (or mention me once), then press *Share to channel* again."
                    ).as_kwargs(),
                    response_type="ephemeral", replace_original=False,
                )

        adapter.spawn(share(), name="share")

    async def on_command_button(ack: Any, body: dict, action: dict, respond: Any) -> None:
        await ack()
        channel = (body.get("channel") or {}).get("id")

        async def run() -> None:
            request = await adapter.request(
                text=action.get("value", ""), mode="command", user=(body.get("user") or {}).get("id"),
                channel=channel, team=team_of(body), body=body,
            )
            reply = await adapter.ask(request)
            await respond(**render_reply(reply, share=reply.ephemeral).as_kwargs(), response_type="ephemeral",
                          replace_original=False)

        adapter.spawn(run(), name="command-button")

    async def on_feedback(ack: Any, body: dict, action: dict, respond: Any, client: AsyncWebClient) -> None:
        await ack()
        from bot.store import Feedback

        vote = "up" if action.get("action_id") == ACTION_FEEDBACK_UP else "down"
        ref = FeedbackRef.parse(action.get("value", ""))
        user = (body.get("user") or {}).get("id")
        container = body.get("container") or {}
        channel = (body.get("channel") or {}).get("id") or container.get("channel_id")
        message_ts = container.get("message_ts") or (body.get("message") or {}).get("ts")

        async def record() -> None:
            store = adapter._store()
            if not await store.claim_once(f"slack:feedback:{channel}:{message_ts}:{user}", 365 * 86400):
                text = "You already rated this answer; thanks."
            else:
                await store.record_feedback(Feedback(
                    platform=PLATFORM, workspace=team_of(body), channel=channel, user=user,
                    message_ref=f"{channel}:{message_ts}" if message_ts else None, topic=ref.topic, vote=vote,
                    question=ref.question or None, fact=ref.fact,
                ))
                text = "Thanks for the feedback: it helps us improve the answers."
                # 👎: ask why, in a modal (optional; the trigger_id is only valid for 3 s after the click).
                if vote == "down" and message_ts and await adapter.ask_reason(client, body, channel, message_ts):
                    return
            await respond(text=text, response_type="ephemeral", replace_original=False)

        adapter.spawn(record(), name="feedback")

    app.action(ACTION_SHARE)(on_share)
    app.action(re.compile(rf"^{ACTION_COMMAND}(:\d+)?$"))(on_command_button)
    app.action(ACTION_FEEDBACK_UP)(on_feedback)
    app.action(ACTION_FEEDBACK_DOWN)(on_feedback)

    async def on_reason(ack: Any, body: dict) -> None:
        submitted = read_submission(body)
        try:
            check_reason(submitted.reason, submitted.text)
        except BadReasonError:  # not one of our options: a forged or stale form
            await ack(response_action="errors", errors={BLOCK_REASON: "Please pick one of the reasons listed."})
            return
        await ack()  # closes the modal
        user = (body.get("user") or {}).get("id")
        if not submitted.channel or not submitted.message_ts or not user:
            return

        async def store_reason() -> None:
            await adapter._store().record_feedback_reason(
                PLATFORM, f"{submitted.channel}:{submitted.message_ts}", user, submitted.reason, submitted.text)

        adapter.spawn(store_reason(), name="feedback-reason")

    app.view(CALLBACK_FEEDBACK_REASON)(on_reason)
