"""Token signing keys (OpenID metadata -> JWKS), fetched so that no request ever waits on the network.

A Bot Framework token (and a Microsoft 365 Agents SDK one after it) is checked against the signing keys
its issuer publishes: OpenID metadata names a ``jwks_uri``, which lists RSA keys by key id (``kid``).
botbuilder fetches them with a blocking ``requests.get`` without a timeout, *inside* the request that
needs them, on the event loop: one request while Microsoft's endpoint does not answer froze the whole
process (health checks, Slack, SIGTERM). :class:`SigningKeys` is the key provider the Teams adapter asks
instead:

* keys are fetched with aiohttp (the event loop is never blocked), under :data:`FETCH_TIMEOUT` seconds
  for metadata and key set together, through ``HTTPS_PROXY``/``NO_PROXY`` like the libraries' fetches;
* one background task per metadata URL keeps them: refreshed every :data:`REFRESH_EVERY`, retried after
  a failure with capped exponential back-off (:data:`RETRY_MIN` doubling to :data:`RETRY_MAX`);
* a request waits at most :data:`FIRST_WAIT` seconds, and only for the first fetch (or for the re-fetch
  an unknown key id triggers, at most once per :data:`REFETCH_UNKNOWN_AFTER`); when there are still no
  keys it gets :class:`KeysUnavailable` (the adapter answers 503), an unknown key id gets ``None`` (401).

It knows nothing of botbuilder: ``bot/teams/connector.py`` routes botbuilder's key look-ups here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from jwt.algorithms import RSAAlgorithm

log = logging.getLogger("chinadesk.signing_keys")

FETCH_TIMEOUT = 10.0  # seconds for the metadata and the key set together
REFRESH_EVERY = 12 * 3600.0  # Microsoft publishes new keys well before it signs with them
RETRY_MIN, RETRY_MAX = 5.0, 300.0  # back-off after a failed fetch: 5 s, 10 s, 20 s... at most 5 minutes
FIRST_WAIT = 2.0  # the longest a request waits for keys (Bot Framework allows 15 s for the whole answer)
REFETCH_UNKNOWN_AFTER = 300.0  # an unknown key id re-fetches the set at most this often
MAX_DOCUMENT_BYTES = 1024 * 1024


class KeysUnavailable(Exception):
    """No signing keys could be fetched yet for this issuer: the request cannot be checked now (503)."""


@dataclass(frozen=True)
class SigningKey:
    kid: str
    public_key: Any  # cryptography's RSAPublicKey
    endorsements: tuple[str, ...] = ()  # Bot Framework: the channels this key may sign for


@dataclass
class _KeySet:
    """One issuer's keys, and the background task that keeps them."""

    url: str
    keys: dict[str, SigningKey] | None = None
    fetched_at: float = 0.0
    attempted_at: float = 0.0
    failures: int = 0
    task: asyncio.Task | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    attempt_done: asyncio.Event = field(default_factory=asyncio.Event)  # set when an attempt ends; then renewed


class SigningKeys:
    """Signing keys per OpenID metadata URL, kept fresh in the background (see the module docstring).

    Lives on one event loop: create it, ``watch`` URLs from inside the running loop, ``await close()``.
    """

    def __init__(
        self, *, timeout: float = FETCH_TIMEOUT, refresh_every: float = REFRESH_EVERY, retry_min: float = RETRY_MIN,
        retry_max: float = RETRY_MAX, first_wait: float = FIRST_WAIT, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout = timeout
        self.refresh_every = refresh_every
        self.retry_min, self.retry_max = retry_min, retry_max
        self.first_wait = first_wait
        self._clock = clock
        self._sets: dict[str, _KeySet] = {}
        self._closed = False

    def watch(self, url: str) -> None:
        """Start keeping ``url``'s keys (a no-op when already kept). Needs a running event loop."""
        if self._closed:
            raise KeysUnavailable("the signing key provider is closed")
        entry = self._sets.get(url)
        if entry is None:
            entry = self._sets[url] = _KeySet(url)
        if entry.task is None or entry.task.done():
            entry.task = asyncio.get_running_loop().create_task(self._keep(entry), name=f"signing-keys:{url}")

    async def key(self, url: str, kid: str | None) -> SigningKey | None:
        """The key ``kid`` of issuer ``url``; None when the issuer has no such key.

        Raises :class:`KeysUnavailable` when no keys could be fetched yet (after at most ``first_wait`` s).
        """
        self.watch(url)
        entry = self._sets[url]
        if entry.keys is None and entry.failures == 0:  # the first fetch is still under way
            await self._wait(entry)
        if entry.keys is None:
            raise KeysUnavailable(f"no signing keys from {url} yet ({entry.failures} failed attempt(s))")
        found = entry.keys.get(kid or "")
        if found is None and self._clock() - entry.attempted_at >= REFETCH_UNKNOWN_AFTER:
            # Perhaps the issuer rolled its keys over: fetch again, once, and look again.
            if entry.attempt_done.is_set():
                entry.attempt_done = asyncio.Event()
            entry.wake.set()
            await self._wait(entry)
            found = (entry.keys or {}).get(kid or "")
        return found

    def ready(self, url: str) -> bool:
        entry = self._sets.get(url)
        return entry is not None and entry.keys is not None

    async def close(self) -> None:
        """Stop every background fetch (shutdown)."""
        self._closed = True
        tasks = [e.task for e in self._sets.values() if e.task is not None and not e.task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _wait(self, entry: _KeySet) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(entry.attempt_done.wait()), self.first_wait)
        except TimeoutError:
            pass

    async def _keep(self, entry: _KeySet) -> None:
        """Fetch, then sleep until the next refresh (or a back-off after a failure); forever."""
        while True:
            entry.attempted_at = self._clock()
            try:
                entry.keys = await self.fetch(entry.url)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                entry.failures += 1
                delay = min(self.retry_max, self.retry_min * 2 ** (entry.failures - 1))
                log.warning("cannot fetch token signing keys; retrying in %.0f s", delay, extra={
                    "url": entry.url, "error": f"{type(exc).__name__}: {exc}"[:200], "attempt": entry.failures})
            else:
                entry.fetched_at, entry.failures = self._clock(), 0
                delay = self.refresh_every
                log.info("token signing keys fetched", extra={"url": entry.url, "keys": len(entry.keys)})
            entry.attempt_done.set()
            entry.wake.clear()
            try:
                await asyncio.wait_for(entry.wake.wait(), delay)
            except TimeoutError:
                pass
            if entry.attempt_done.is_set():  # (a request may already have put a fresh one in place)
                entry.attempt_done = asyncio.Event()

    async def fetch(self, url: str) -> dict[str, SigningKey]:
        """The issuer's current RSA signing keys, by key id (raises on any failure or after ``timeout``).

        ``url`` is OpenID metadata (whose ``jwks_uri`` is then fetched) or the key set (JWKS) itself.
        """
        async with asyncio.timeout(self.timeout), aiohttp.ClientSession(trust_env=True) as http:
            document = await _get_json(http, url)
            if not (isinstance(document, dict) and isinstance(document.get("keys"), list)):
                # OpenID metadata (botbuilder starts there); the Agents SDK names the key set itself.
                jwks_uri = document.get("jwks_uri") if isinstance(document, dict) else None
                if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
                    raise ValueError("the OpenID metadata names no jwks_uri")
                document = await _get_json(http, jwks_uri)
        keys: dict[str, SigningKey] = {}
        for jwk in document.get("keys", []) if isinstance(document, dict) else []:
            if not isinstance(jwk, dict) or jwk.get("kty") != "RSA" or not isinstance(jwk.get("kid"), str):
                continue
            endorsements = jwk.get("endorsements") if isinstance(jwk.get("endorsements"), list) else []
            keys[jwk["kid"]] = SigningKey(jwk["kid"], RSAAlgorithm.from_jwk(json.dumps(jwk)),
                                          tuple(str(e) for e in endorsements))
        if not keys:
            raise ValueError("the key set holds no RSA signing key")
        return keys


async def _get_json(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url, headers={"Accept": "application/json"}) as response:
        response.raise_for_status()
        body = await response.content.read(MAX_DOCUMENT_BYTES + 1)
    if len(body) > MAX_DOCUMENT_BYTES:
        raise ValueError(f"{url} answered more than {MAX_DOCUMENT_BYTES} bytes")
    return json.loads(body)


# ------------------------------------------------------------------- the bot's own token, both engines

TOKEN_WAIT = 5.0  # seconds a reply waits for Microsoft's login service before giving up (503, retried)
TOKEN_FRESH_FOR = 30 * 60.0  # an app token lives 60-90 minutes: fetch it again (off the loop) well before
TOKEN_RETRY_AFTER = 30.0  # after a failed fetch, replies fail at once for this long instead of waiting again


class OutgoingTokenUnavailable(Exception):
    """The bot's own token (to call the Bot Connector) could not be had in time."""


@dataclass
class HeldToken:
    """The bot's token (or credentials holding it), fetched by blocking ``work`` in a daemon thread (MSAL
    blocks, without a timeout, and does tenant discovery on first use) and kept for :data:`TOKEN_FRESH_FOR`.
    A caller waits at most ``wait`` seconds, else :class:`OutgoingTokenUnavailable`; after a failure callers
    fail at once for :data:`TOKEN_RETRY_AFTER`. Each engine keeps one per audience."""

    value: Any = None
    fresh_until: float = 0.0
    failed_until: float = 0.0
    error: str = ""
    fetch: asyncio.Future | None = None

    async def get(self, work: Callable[[], Any], *, wait: float, clock: Callable[[], float],
                  valid: Callable[[Any], bool] = lambda value: True) -> Any:
        if clock() < self.fresh_until:
            return self.value
        if self.fetch is None or self.fetch.done():
            if clock() < self.failed_until:
                raise OutgoingTokenUnavailable(self.error)
            self.fetch = _in_daemon_thread(work)
            self.fetch.add_done_callback(lambda fetch: self._settled(fetch, clock, valid))
        try:
            return await asyncio.wait_for(asyncio.shield(self.fetch), wait)
        except TimeoutError:
            raise OutgoingTokenUnavailable(f"Microsoft's login service did not answer within {wait:.0f} s") from None
        except Exception as exc:
            raise OutgoingTokenUnavailable(self.error or type(exc).__name__) from exc

    def _settled(self, fetch: asyncio.Future, clock: Callable[[], float], valid: Callable[[Any], bool]) -> None:
        error = None if fetch.cancelled() else fetch.exception()
        if fetch.cancelled() or error is not None or not valid(fetch.result()):
            self.failed_until = clock() + TOKEN_RETRY_AFTER
            self.error = f"cannot get a token from Microsoft's login service: {type(error).__name__}: {error}"[:300]
            log.warning("Teams: %s", self.error)
        else:
            self.value, self.fresh_until = fetch.result(), clock() + TOKEN_FRESH_FOR


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
