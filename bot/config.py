"""Configuration from the environment, read once at start-up.

Each platform is switched on by its own variables; a platform that is only partly configured stops
start-up with a message naming the missing variable. Secrets are held as ``SecretStr`` so that they
never show up in a repr, a log line or a reply.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr


class ConfigError(Exception):
    """A setting is missing or contradicts another; the message names the variable."""


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {raw!r}") from None


@dataclass(frozen=True)
class Settings:
    database_url: str
    log_level: str = "INFO"
    log_format: str = "auto"  # auto | json | text
    stale_days: int = 365
    default_timezone: str = "Asia/Shanghai"
    slack: SlackSettings | None = None  # None: Slack is off (no SLACK_* variables set)
    # None: Teams is off (TEAMS=off, or see bound_to); no app id: local (Emulator) mode
    teams: TeamsSettings | None = field(default_factory=lambda: TeamsSettings())
    token_keys: SecretStr | None = None  # TOKEN_ENCRYPTION_KEY: Fernet key(s), first encrypts (bot.token_cipher)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, socket_mode: bool | None = None) -> Settings:
        """Read and check every setting; ``socket_mode`` is ``chinadesk serve --socket-mode``."""
        env = os.environ if env is None else env
        return cls(
            database_url=env.get("DATABASE_URL", "").strip() or f"sqlite:///{Path.cwd() / 'chinadesk.sqlite3'}",
            log_level=env.get("LOG_LEVEL", "INFO").upper(),
            log_format=env.get("LOG_FORMAT", "auto").lower(),
            stale_days=_int(env, "CONTENT_STALE_DAYS", 365),
            default_timezone=env.get("DEFAULT_TIMEZONE", "Asia/Shanghai"),
            slack=SlackSettings.from_env(env, socket_mode=socket_mode),
            teams=TeamsSettings.from_env(env),
            token_keys=token_keys(env),
        )

    def bound_to(self, host: str) -> Settings:
        """These settings for a server listening on ``host``. Teams' local (Emulator) mode checks no token,
        so without an app id it stays on only on a loopback address, unless ``TEAMS=local`` asks for it."""
        teams = self.teams
        if teams is None or not teams.local_mode or teams.local_requested or is_loopback_host(host):
            return self
        return dataclasses.replace(self, teams=None)

    @property
    def token_keys_value(self) -> str | None:
        """``TOKEN_ENCRYPTION_KEY`` as the store takes it (``open_store(..., token_keys=...)``)."""
        return self.token_keys.get_secret_value() if self.token_keys else None


def token_keys(env: Mapping[str, str]) -> SecretStr | None:
    """``TOKEN_ENCRYPTION_KEY``, checked: one or more Fernet keys, comma-separated (never echoed)."""
    from bot.token_cipher import TokenCipher

    value = secret(env, "TOKEN_ENCRYPTION_KEY")
    if value is None:
        return None
    try:
        TokenCipher.from_setting(value.get_secret_value())
    except ValueError as exc:
        raise ConfigError(
            f"TOKEN_ENCRYPTION_KEY must be one or more Fernet keys, comma-separated ({exc}); make one with "
            "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
        ) from None
    return value


def secret(env: Mapping[str, str], name: str) -> SecretStr | None:
    value = env.get(name, "").strip()
    return SecretStr(value) if value else None


# ---------------------------------------------------------------------------------------------- Slack

SLACK_VARIABLES = (
    "SLACK_SIGNING_SECRET", "SLACK_BOT_TOKEN", "SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET", "SLACK_APP_TOKEN",
)
SLACK_DEFAULT_API_URL = "https://slack.com/api/"
# The bot scopes an OAuth install asks for; bot/slack/manifest.yml lists the same (a test checks).
SLACK_BOT_SCOPES = (
    "app_mentions:read", "channels:history", "channels:read", "chat:write", "commands", "groups:history",
    "groups:read", "im:history",
)
_TRUE = ("1", "true", "yes", "on")
_OFF = ("0", "false", "no", "off")


@dataclass(frozen=True)
class SlackSettings:
    """Slack credentials: one workspace (bot token) or OAuth installs (client id/secret), HTTP or Socket Mode."""

    signing_secret: SecretStr | None = None
    bot_token: SecretStr | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    app_token: SecretStr | None = None
    socket_mode: bool = False
    api_url: str = SLACK_DEFAULT_API_URL
    scopes: tuple[str, ...] = SLACK_BOT_SCOPES
    redirect_uri: str | None = None  # full https://host/slack/oauth_redirect, when Slack must be told

    @property
    def oauth(self) -> bool:
        return self.client_id is not None

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, socket_mode: bool | None = None) -> SlackSettings | None:
        """The Slack settings, ``None`` when no Slack variable is set, or :class:`ConfigError` naming what is wrong."""
        if socket_mode is None:
            socket_mode = env.get("SLACK_SOCKET_MODE", "").strip().lower() in _TRUE
        present = [name for name in SLACK_VARIABLES if env.get(name, "").strip()]
        if not present and not socket_mode:
            return None
        signing_secret = secret(env, "SLACK_SIGNING_SECRET")
        bot_token = secret(env, "SLACK_BOT_TOKEN")
        client_id = env.get("SLACK_CLIENT_ID", "").strip() or None
        client_secret = secret(env, "SLACK_CLIENT_SECRET")
        app_token = secret(env, "SLACK_APP_TOKEN")

        if client_id and not client_secret:
            raise ConfigError("SLACK_CLIENT_ID is set but SLACK_CLIENT_SECRET is missing (OAuth installs need both)")
        if client_secret and not client_id:
            raise ConfigError("SLACK_CLIENT_SECRET is set but SLACK_CLIENT_ID is missing (OAuth installs need both)")
        if bot_token and client_id:
            raise ConfigError(
                "both SLACK_BOT_TOKEN and SLACK_CLIENT_ID/SLACK_CLIENT_SECRET are set: use SLACK_BOT_TOKEN for one "
                "workspace or SLACK_CLIENT_ID/SLACK_CLIENT_SECRET for OAuth installs, not both"
            )
        if socket_mode and not app_token:
            raise ConfigError(
                "Socket Mode needs SLACK_APP_TOKEN (an app-level token, xapp-..., with connections:write)"
            )
        if not bot_token and not client_id:
            raise ConfigError(
                f"Slack is partly configured ({', '.join(present) or 'Socket Mode'}): set SLACK_BOT_TOKEN for one "
                "workspace, or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET for OAuth installs"
            )
        if not socket_mode and not signing_secret:
            raise ConfigError(
                "SLACK_SIGNING_SECRET is missing: Slack requests cannot be verified without it "
                "(or run `chinadesk serve --socket-mode` with SLACK_APP_TOKEN)"
            )
        if bot_token and not bot_token.get_secret_value().startswith("xoxb-"):
            raise ConfigError("SLACK_BOT_TOKEN must be a bot token (it starts with xoxb-)")
        if socket_mode and app_token and not app_token.get_secret_value().startswith("xapp-"):
            raise ConfigError("SLACK_APP_TOKEN must be an app-level token (it starts with xapp-)")

        api_url = env.get("SLACK_API_URL", "").strip() or SLACK_DEFAULT_API_URL
        if not api_url.startswith(("http://", "https://")):
            raise ConfigError(f"SLACK_API_URL must be an http(s) URL, not {api_url!r}")
        scopes = tuple(s.strip() for s in env.get("SLACK_SCOPES", "").split(",") if s.strip()) or SLACK_BOT_SCOPES
        return cls(
            signing_secret=signing_secret, bot_token=bot_token, client_id=client_id, client_secret=client_secret,
            app_token=app_token, socket_mode=socket_mode,
            api_url=api_url if api_url.endswith("/") else api_url + "/",  # slack_sdk joins "base_url + method"
            scopes=scopes, redirect_uri=env.get("SLACK_REDIRECT_URI", "").strip() or None,
        )


# ---------------------------------------------------------------------------------------------- Teams

SDK_SETTINGS = "CONNECTIONS__SERVICE_CONNECTION__SETTINGS__"  # the Microsoft 365 Agents SDK's names
# The Agents SDK's setting -> the older botbuilder-era name it replaces (both accepted; see teams_env).
TEAMS_ENV_NAMES = {"CLIENTID": "MICROSOFT_APP_ID", "CLIENTSECRET": "MICROSOFT_APP_PASSWORD",
                   "TENANTID": "MICROSOFT_APP_TENANT_ID"}
TEAMS_VARIABLES = ("MICROSOFT_APP_ID", "MICROSOFT_APP_PASSWORD", "MICROSOFT_APP_TYPE", "MICROSOFT_APP_TENANT_ID",
                   "TEAMS", "TEAMS_ENGINE", *(SDK_SETTINGS + n for n in (*TEAMS_ENV_NAMES, "AUTHTYPE")))
TEAMS_ENGINES = ("agents", "botbuilder")
# The SDK's AUTHTYPE values this bot supports -> the app type botbuilder knew them by.
TEAMS_AUTH_TYPES = {"clientsecret": "ClientSecret", "usermanagedidentity": "UserManagedIdentity"}
# botbuilder's ConfigurationServiceClientCredentialFactory compares these case-insensitively.
TEAMS_APP_TYPES = {"multitenant": "MultiTenant", "singletenant": "SingleTenant", "userassignedmsi": "UserAssignedMSI"}
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def is_loopback_host(host: str) -> bool:
    """``127.0.0.1``, ``::1``, ``localhost``: only this machine can connect (not ``0.0.0.0``, which is every
    address)."""
    host = host.strip().strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_guid(value: str) -> bool:
    """Azure app (client) ids and tenant ids are GUIDs: ``xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx``."""
    return bool(_GUID.match(value.strip()))


def teams_env(env: Mapping[str, str]) -> dict[str, str]:
    """The Teams credentials under today's botbuilder-era names, read from the Agents SDK's
    ``CONNECTIONS__SERVICE_CONNECTION__SETTINGS__CLIENTID/CLIENTSECRET/TENANTID/AUTHTYPE`` or the older
    ``MICROSOFT_APP_ID/PASSWORD/TENANT_ID`` (either naming works; both naming one setting differently is an
    error). ``AUTHTYPE=UserManagedIdentity`` stands for ``MICROSOFT_APP_TYPE=UserAssignedMSI``."""
    out = {k: v for k, v in env.items() if k in TEAMS_VARIABLES}
    for sdk_name, old_name in TEAMS_ENV_NAMES.items():
        new = env.get(SDK_SETTINGS + sdk_name, "").strip()
        old = env.get(old_name, "").strip()
        if new and old and new != old:
            raise ConfigError(f"{SDK_SETTINGS}{sdk_name} and {old_name} are both set, differently: keep one")
        if new:
            out[old_name] = new
    raw_auth = env.get(SDK_SETTINGS + "AUTHTYPE", "").strip()
    if raw_auth:
        auth = TEAMS_AUTH_TYPES.get(raw_auth.lower())
        if auth is None:
            raise ConfigError(f"{SDK_SETTINGS}AUTHTYPE must be one of {', '.join(TEAMS_AUTH_TYPES.values())}, "
                              f"not {raw_auth!r}")
        if auth == "UserManagedIdentity":
            out.setdefault("MICROSOFT_APP_TYPE", "UserAssignedMSI")
    return out


@dataclass(frozen=True)
class TeamsSettings:
    """The Azure Bot registration. Without an app id the Teams endpoint runs in local (Emulator) mode."""

    app_id: str | None = None
    app_password: SecretStr | None = None
    app_type: str = "SingleTenant"  # Azure creates no new multi-tenant bots since 31 July 2025
    tenant_id: str | None = None
    local_requested: bool = False  # TEAMS=local: Emulator mode even on a public address
    engine: str = "agents"  # TEAMS_ENGINE: the Microsoft 365 Agents SDK, or the deprecated botbuilder

    @property
    def auth_type(self) -> str:
        """The Agents SDK's ``AUTHTYPE`` for this registration."""
        return "UserManagedIdentity" if self.app_type == "UserAssignedMSI" else "ClientSecret"

    @property
    def local_mode(self) -> bool:
        """No app id: requests are accepted without tokens and replies are sent without one."""
        return self.app_id is None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TeamsSettings | None:
        """The Teams settings (None: ``TEAMS=off``), or :class:`ConfigError` naming the variable at fault."""
        switch = env.get("TEAMS", "").strip().lower() or "on"
        if switch in _OFF:
            return None
        if switch not in (*_TRUE, "local"):
            raise ConfigError(f"TEAMS must be on, off or local, not {switch!r}")
        local_requested = switch == "local"
        engine = env.get("TEAMS_ENGINE", "").strip().lower() or "agents"
        if engine not in TEAMS_ENGINES:
            raise ConfigError(f"TEAMS_ENGINE must be agents or botbuilder, not {engine!r}")
        env = teams_env(env)
        app_id = env.get("MICROSOFT_APP_ID", "").strip() or None
        password = secret(env, "MICROSOFT_APP_PASSWORD")
        tenant_id = env.get("MICROSOFT_APP_TENANT_ID", "").strip() or None
        raw_type = env.get("MICROSOFT_APP_TYPE", "").strip()
        app_type = TEAMS_APP_TYPES.get(raw_type.lower() or "singletenant")
        if app_type is None:
            raise ConfigError(
                f"MICROSOFT_APP_TYPE must be one of {', '.join(TEAMS_APP_TYPES.values())}, not {raw_type!r}"
            )
        if app_id is None:
            extra = [n for n in ("MICROSOFT_APP_PASSWORD", "MICROSOFT_APP_TENANT_ID") if env.get(n, "").strip()]
            if extra or raw_type:
                named = ", ".join(extra) or "MICROSOFT_APP_TYPE"
                raise ConfigError(
                    f"Teams is partly configured ({named} set): {SDK_SETTINGS}CLIENTID (or MICROSOFT_APP_ID) is "
                    "missing (the Azure Bot's Microsoft App ID)"
                )
            return cls(local_requested=local_requested, engine=engine)
        if local_requested:
            raise ConfigError("TEAMS=local runs the Emulator endpoint without token checks, but MICROSOFT_APP_ID is "
                              "set: unset one of them")
        if not is_guid(app_id):
            raise ConfigError(f"MICROSOFT_APP_ID must be a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx), not {app_id!r}")
        if app_type != "UserAssignedMSI" and password is None:
            raise ConfigError(f"{SDK_SETTINGS}CLIENTSECRET (or MICROSOFT_APP_PASSWORD) is missing: a {app_type} "
                              "bot needs its client secret")
        if app_type != "MultiTenant" and tenant_id is None:
            raise ConfigError(
                f"{SDK_SETTINGS}TENANTID (or MICROSOFT_APP_TENANT_ID) is missing: a {app_type} bot needs its "
                "tenant id (a bot registered as multi-tenant before 31 July 2025: MICROSOFT_APP_TYPE=MultiTenant)")
        if tenant_id is not None and not is_guid(tenant_id):
            raise ConfigError(f"MICROSOFT_APP_TENANT_ID must be a GUID, not {tenant_id!r}")
        return cls(app_id=app_id, app_password=password, app_type=app_type, tenant_id=tenant_id, engine=engine)
