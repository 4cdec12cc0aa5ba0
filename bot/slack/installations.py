"""bolt's installation and OAuth state stores on the project's database (:class:`bot.store.Store`)."""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import Callable
from typing import Any

from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore

from bot.slack.translate import PLATFORM, workspace_key

log = logging.getLogger("chinadesk.slack")
OAUTH_STATE_SECONDS = 600


# ---------------------------------------------------------------------------------- installations


class StoreInstallationStore(AsyncInstallationStore):
    """bolt's installation store interface on the project's database (``Store.save_installation``...).

    One row per workspace: the latest bot installation (we ask for no user scopes).
    """

    def __init__(self, store_ref: Callable[[], Any]) -> None:
        self._store_ref = store_ref  # the store is opened at start-up, after the bolt app is built
        self._logger = logging.getLogger("chinadesk.slack.installations")

    @property
    def logger(self) -> logging.Logger:
        return self._logger

    @property
    def store(self) -> Any:
        return self._store_ref()

    async def async_save(self, installation: Installation) -> None:
        key = workspace_key(installation.enterprise_id, installation.team_id, installation.is_enterprise_install)
        await self.store.save_installation(PLATFORM, key, {"installation": dict(installation.__dict__)})

    async def async_save_bot(self, bot: Bot) -> None:
        key = workspace_key(bot.enterprise_id, bot.team_id, bot.is_enterprise_install)
        data = await self.store.find_installation(PLATFORM, key) or {}
        data["bot"] = dict(bot.__dict__)
        await self.store.save_installation(PLATFORM, key, data)

    async def _find(self, enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None) -> dict:
        key = workspace_key(enterprise_id, team_id, is_enterprise_install)
        return await self.store.find_installation(PLATFORM, key) or {}

    async def async_find_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        data = await self._find(enterprise_id, team_id, is_enterprise_install)
        if "installation" not in data:
            return None
        installation = Installation(**data["installation"])
        if "bot" in data:  # a refreshed bot token (token rotation) saved after the installation
            bot = Bot(**data["bot"])
            installation.bot_token, installation.bot_refresh_token = bot.bot_token, bot.bot_refresh_token
            installation.bot_token_expires_at = bot.bot_token_expires_at
        return installation

    async def async_find_bot(
        self, *, enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None = False,
    ) -> Bot | None:
        data = await self._find(enterprise_id, team_id, is_enterprise_install)
        if "bot" in data:
            return Bot(**data["bot"])
        if "installation" in data:
            return Installation(**data["installation"]).to_bot()
        return None

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await self.store.delete_installation(PLATFORM, workspace_key(enterprise_id, team_id, False))

    async def async_delete_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None,
    ) -> None:
        await self.store.delete_installation(PLATFORM, workspace_key(enterprise_id, team_id, False))


class StoreOAuthStateStore(AsyncOAuthStateStore):
    """OAuth ``state`` values in the database, so that any replica can finish an install another began."""

    def __init__(self, store_ref: Callable[[], Any], expiration_seconds: int = OAUTH_STATE_SECONDS) -> None:
        self._store_ref = store_ref
        self.expiration_seconds = expiration_seconds
        self._logger = logging.getLogger("chinadesk.slack.oauth")

    @property
    def logger(self) -> logging.Logger:
        return self._logger

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        state = secrets.token_urlsafe(24)
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.expiration_seconds)
        await self._store_ref().issue_oauth_state(state, expires)
        return state

    async def async_consume(self, state: str) -> bool:
        return await self._store_ref().consume_oauth_state(state, dt.datetime.now(dt.UTC))


