"""The replay lane: repeated read-only slash commands answered from kept JSON (see :class:`CommandReplay`)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from cachetools import TTLCache
from slack_sdk.signature import SignatureVerifier

log = logging.getLogger("chinadesk.slack")


# ------------------------------------------------------------------------------ repeated commands


ReplayKey = tuple[str, str, str, str, dt.date, str]
_KEY_FIELDS = re.compile(rb"(?:^|&)(team_id|enterprise_id|is_enterprise_install|command|text|channel_id)=([^&]*)")


@dataclass(frozen=True)
class ReplayedAnswer:
    body: bytes  # the JSON bolt sent the first time
    kind: str  # the Reply's kind, for the metrics


class CommandReplay:
    """Slash-command answers that may be sent again as they are, without running bolt and the core.

    Slack slash commands are very repetitive (the menus, the same filing cards, the same deadline
    asked by several people), and bolt's per-request work (body parsing into a context, a Web API
    client per request, keyword-argument injection for middleware and listeners) costs more than the
    core's answer. So when a command is one the core declares read-only (``Desk.is_read_only``: its
    reply depends only on the command, its text, the channel's time zone and the local day), the
    answer bolt sent is kept here under (workspace, command, text, time zone, day, language setting). The same signed
    request again is answered from here after the same checks bolt makes first: Slack's v0
    signature and the five-minute timestamp window (slack_sdk's ``SignatureVerifier``, which bolt
    uses too).

    * Only requests bolt has already answered for that workspace are replayed: the first one in each
      workspace goes through bolt's authorisation (the installation lookup in OAuth mode).
    * Entries live for :data:`TTL_SECONDS` (and never past the local day, which is in the key), and
      an uninstall forgets the workspace's entries at once in this process.
    * Everything else (events, buttons, sub-commands that read or write the store, unsigned or
      malformed requests) goes to bolt unchanged.
    """

    TTL_SECONDS = 300.0
    MAX_TEXT_CHARS = 200  # longer command texts are never kept (odd input cannot fill memory)

    def __init__(
        self, signing_secret: str, *, maxsize: int = 1024, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._verifier = SignatureVerifier(signing_secret)
        self._answers: TTLCache[ReplayKey, ReplayedAnswer] = TTLCache(maxsize, self.TTL_SECONDS, timer=clock)
        self.hits = 0

    @staticmethod
    def key(
        team: str | None, command: str | None, text: str, timezone: str, day: dt.date, language: str = "auto",
    ) -> ReplayKey | None:
        if not team or not command or len(text) > CommandReplay.MAX_TEXT_CHARS:
            return None
        return (team, command, text, timezone, day, language)

    def remember(self, key: ReplayKey | None, message: dict[str, Any], kind: str) -> None:
        if key is not None:
            self._answers[key] = ReplayedAnswer(json.dumps(message).encode(), kind)

    def form(self, headers: Any, raw: bytes) -> dict[str, str] | None:
        """The fields of a slash-command form body that make the key (None: not a slash command, or nothing
        is kept). Only those fields are decoded, the first of each as Slack and bolt read them: this runs
        before every slash command that bolt then answers, so it has to cost next to nothing."""
        if not self._answers or b"command=" not in raw:
            return None
        if not headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            return None
        fields: dict[str, str] = {}
        try:
            for name, value in _KEY_FIELDS.findall(raw):
                fields.setdefault(name.decode(), unquote_plus(value.decode("utf-8"), errors="strict"))
        except UnicodeDecodeError:
            return None
        return fields

    def signed(self, headers: Any, raw: bytes) -> bool:
        """Slack's v0 signature over the raw body, timestamp within five minutes (as bolt checks it). False,
        never an exception, for a timestamp that is not a plain number (slack_sdk would raise on it)."""
        timestamp = headers.get("X-Slack-Request-Timestamp") or ""
        if not (timestamp.isascii() and timestamp.isdigit()):
            return False
        return self._verifier.is_valid(raw, timestamp, headers.get("X-Slack-Signature"))

    def find(self, key: ReplayKey | None) -> ReplayedAnswer | None:
        return self._answers.get(key) if key is not None else None

    def forget(self, team: str) -> None:
        for key in [k for k in list(self._answers.keys()) if k[0] == team]:
            self._answers.pop(key, None)


