"""Configuration from the environment, read once at start-up, with pydantic-settings.

One settings model per concern (:class:`ServerSettings`, :class:`StoreSettings`, :class:`LoggingSettings`,
:class:`SchedulerSettings`, :class:`SlackSettings`, :class:`TeamsSettings`); each field names its
environment variable (``validation_alias``), its default and what it means, and the README's tables of
variables are printed from them (``python -m bot.config``; a test compares). A bad value, or a platform
that is only partly configured, is a :class:`ConfigError` naming the variable (the CLI exits 2). Secrets
are held as ``SecretStr`` so that they never show up in a repr, a log line, an error or a reply.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from handlers.feedback import DEFAULT_RETENTION_DAYS, FeedbackPolicy


class ConfigError(Exception):
    """A setting is missing or contradicts another; the message names the variable."""


def var(name: str, default: Any = None, meaning: str = "", *, shown: str | None = None, expects: str | None = None,
        secret: bool = False, **kw: Any) -> Any:
    """A field read from the environment variable ``name``. ``shown``: the README's default column when the
    value alone would not say it; ``expects``: the end of "NAME must be ..." when the value is rejected."""
    extra = {"env": name, "shown": shown, "expects": expects, "secret": secret}
    if callable(default):
        return Field(default_factory=default, validation_alias=name, description=meaning, json_schema_extra=extra,
                     **kw)
    return Field(default, validation_alias=name, description=meaning, json_schema_extra=extra, **kw)


class _MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping (``os.environ``, or a test's dict).

    Values are stripped and an empty one counts as unset, as they always have here ("SLACK_BOT_TOKEN= ").
    """

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        self._mapping = {k: v.strip() for k, v in env.items() if isinstance(v, str) and v.strip()}
        super().__init__(settings_cls, case_sensitive=True, env_ignore_empty=True)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return self._mapping


S = TypeVar("S", bound="EnvSettings")


class EnvSettings(BaseSettings):
    """Base of the concern models: read only from the mapping given to :meth:`read`, never from a .env file
    or the process environment behind a test's back."""

    model_config = SettingsConfigDict(case_sensitive=True, frozen=True, extra="ignore", populate_by_name=True)

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)  # :meth:`read` passes what _MappingEnvSource found as the init values

    @classmethod
    def read(cls: type[S], env: Mapping[str, str] | None = None) -> S:
        """The settings in ``env`` (default ``os.environ``), or a :class:`ConfigError` naming the variable."""
        values = _MappingEnvSource(cls, os.environ if env is None else env)()
        try:
            return cls(**values)
        except ValidationError as exc:
            raise _config_error(cls, exc) from None

    @classmethod
    def variables(cls) -> Iterator[tuple[str, FieldInfo]]:
        """(variable name, field) in declaration order."""
        for info in cls.model_fields.values():
            yield str(info.validation_alias), info


def _extra(info: FieldInfo) -> dict[str, Any]:
    extra = info.json_schema_extra
    return extra if isinstance(extra, dict) else {}


def _config_error(model: type[EnvSettings], exc: ValidationError) -> ConfigError:
    """The first rejected value as one sentence that names its variable (and, unless secret, the value)."""
    error = exc.errors()[0]
    name = str(error["loc"][0]) if error["loc"] else model.__name__
    info = next((i for n, i in model.variables() if n == name), None)
    extra = _extra(info) if info is not None else {}
    if error["type"] == "value_error":  # our own validators say what is expected
        what = str(error["ctx"]["error"]) if "ctx" in error else error["msg"]
    else:
        what = f"must be {extra['expects']}" if extra.get("expects") else error["msg"].lower()
    shown = "" if extra.get("secret") or error["type"] == "value_error" else f", not {error['input']!r}"
    return ConfigError(f"{name} {what}{shown}")


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


# --------------------------------------------------------------------------------------------- server

class ServerSettings(EnvSettings):
    """The HTTP server and the defaults of its answers."""

    port: int = var("PORT", 8080, "port for `chinadesk serve` (`--port` overrides; the Procfile passes `$PORT`)",
                    expects="a port number (1-65535)", ge=1, le=65535)
    metrics_token: SecretStr | None = var(
        "METRICS_TOKEN", None, "if set, `GET /metrics` needs `Authorization: Bearer <token>`", shown="unset (open)",
        secret=True)
    default_timezone: str = var(
        "DEFAULT_TIMEZONE", "Asia/Shanghai", "time zone of channels that have not set one (`/china-filing timezone`)")
    stale_days: int = var("CONTENT_STALE_DAYS", 365,
                          "`chinadesk content check` warns about facts older than this many days",
                          expects="a whole number", ge=0)
    web_chat: Literal["auto", "on", "off"] = var(
        "WEB_CHAT", "auto",
        "the chat page at `/` ([Try it in a browser](#try-it-in-a-browser)): `auto` on only when `serve` listens on a "
        "loopback address, `off` never, `on` on any address (trusted networks only)", expects="on, off or auto")
    qa_semantic: Literal["auto", "on", "off"] = var("QA_SEMANTIC", "off", (
        "channel Q&A's [meaning-level re-ranker](#the-optional-meaning-level-re-ranker), tried and not adopted: `on` "
        "needs `pip install -e \".[semantic]\"`, `auto` on when that is installed"), expects="on, off or auto")

    @field_validator("web_chat", "qa_semantic", mode="before")
    @classmethod
    def _switch(cls, value: Any) -> Any:
        value = _lower(value)
        return {"1": "on", "true": "on", "yes": "on", "0": "off", "false": "off", "no": "off"}.get(value, value)

    @field_validator("default_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"must be an IANA time zone such as Asia/Shanghai or Europe/London, not {value!r}") from None
        return value


# ---------------------------------------------------------------------------------------------- store

def _default_database_url() -> str:
    return f"sqlite:///{Path.cwd() / 'chinadesk.sqlite3'}"


def _default_cache_dir() -> str:
    from platformdirs import user_cache_dir

    return user_cache_dir("chinadesk", appauthor=False)


class StoreSettings(EnvSettings):
    """Where state is kept: the database, its encryption key, and the on-disk caches."""

    database_url: str = var(
        "DATABASE_URL", _default_database_url,
        "`sqlite:///path` or `postgresql://user:pass@host:5432/db[?schema=name]`; PostgreSQL for more than one "
        "process", shown="`sqlite:///<working dir>/chinadesk.sqlite3`")
    token_keys: SecretStr | None = var(
        "TOKEN_ENCRYPTION_KEY", None,
        "Fernet key(s), comma-separated: OAuth installations (their bot tokens) are encrypted at rest with the "
        "first; see [Secrets at rest](#secrets-at-rest)", shown="unset (tokens stored as they are)", secret=True)
    cache_dir: str = var(
        "CHINADESK_CACHE_DIR", _default_cache_dir,
        "where `chinadesk ask` keeps the Q&A index and jieba's dictionary between runs (rebuilt when the content "
        "changes; safe to delete)", shown="the user cache dir (`~/.cache/chinadesk` on Linux)")

    @field_validator("token_keys")
    @classmethod
    def _fernet(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        from bot.token_cipher import TokenCipher

        try:
            TokenCipher.from_setting(value.get_secret_value())
        except ValueError as exc:
            raise ValueError(
                f"must be one or more Fernet keys, comma-separated ({exc}); make one with python -c 'from "
                "cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'") from None
        return value


# -------------------------------------------------------------------------------------------- logging

class LoggingSettings(EnvSettings):
    """Log lines: how many, in which format; secrets are always scrubbed."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = var(
        "LOG_LEVEL", "INFO", "`DEBUG`, `INFO`, `WARNING`, `ERROR`", expects="DEBUG, INFO, WARNING, ERROR or CRITICAL")
    log_format: Literal["auto", "json", "text"] = var(
        "LOG_FORMAT", "auto", "`json` (one object a line), `text` (readable), `auto`: JSON unless stderr is a terminal",
        expects="auto, json or text")

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lowercase(cls, value: Any) -> Any:
        return _lower(value)


# ------------------------------------------------------------------------------------------ scheduler

class SchedulerSettings(EnvSettings):
    """The reminder scheduler: inside `serve`, or a separate `worker`."""

    enabled: bool = var(
        "SCHEDULER", True, "`off`: `chinadesk serve` runs no reminder scheduler (a `worker` does); same as "
        "`--no-scheduler`", shown="`on`", expects="on or off")
    metrics_port: int = var("METRICS_PORT", 0,
                            "`chinadesk worker` only: serve its Prometheus metrics on this port (`--metrics-port`)",
                            shown="unset (none)", expects="a port number (0-65535)", ge=0, le=65535)


# ---------------------------------------------------------------------------------------------- Slack

SLACK_VARIABLES = (
    "SLACK_SIGNING_SECRET", "SLACK_BOT_TOKEN", "SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET", "SLACK_APP_TOKEN",
)
SLACK_DEFAULT_API_URL = "https://slack.com/api/"
# The bot scopes an OAuth install asks for; bot/slack/manifest.yml lists the same (a test checks).
SLACK_BOT_SCOPES = (
    "app_mentions:read", "assistant:write", "channels:history", "channels:read", "chat:write", "commands",
    "groups:history", "groups:read", "im:history", "users:read",
)
_TRUE = ("1", "true", "yes", "on")
_OFF = ("0", "false", "no", "off")


class SlackSettings(EnvSettings):
    """Slack credentials: one workspace (bot token) or OAuth installs (client id/secret), HTTP or Socket Mode."""

    signing_secret: SecretStr | None = var(
        "SLACK_SIGNING_SECRET", None, "Slack over HTTP: verifies every request (required unless Socket Mode)",
        secret=True)
    bot_token: SecretStr | None = var(
        "SLACK_BOT_TOKEN", None, "one workspace: its `xoxb-` token (or use the OAuth pair, not both)", secret=True)
    client_id: str | None = var(
        "SLACK_CLIENT_ID", None, "OAuth installs into many workspaces (installations kept in the database), with "
        "`SLACK_CLIENT_SECRET`")
    client_secret: SecretStr | None = var(
        "SLACK_CLIENT_SECRET", None, "OAuth installs: the app's client secret, with `SLACK_CLIENT_ID`", secret=True)
    redirect_uri: str | None = var(
        "SLACK_REDIRECT_URI", None, "OAuth: `https://HOST/slack/oauth_redirect`, when Slack needs it spelt out")
    scopes: Annotated[tuple[str, ...], NoDecode] = var(
        "SLACK_SCOPES", SLACK_BOT_SCOPES,
        "bot scopes requested by OAuth installs (`channels:read`/`groups:read`: whose channels the App Home may "
        "list)", shown=f"`{','.join(SLACK_BOT_SCOPES)}`")
    app_token: SecretStr | None = var(
        "SLACK_APP_TOKEN", None, "Socket Mode: an `xapp-` app-level token with `connections:write`", secret=True)
    socket_mode: bool = var(
        "SLACK_SOCKET_MODE", False, "`true`: connect to Slack over Socket Mode (same as `serve --socket-mode`)",
        expects="true or false")
    api_url: str = var(
        "SLACK_API_URL", SLACK_DEFAULT_API_URL, "Slack Web API base URL (a local stand-in for tests and demos)")

    @field_validator("scopes", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(s.strip() for s in value.split(",") if s.strip()) or SLACK_BOT_SCOPES
        return value

    @property
    def oauth(self) -> bool:
        return self.client_id is not None

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, socket_mode: bool | None = None) -> SlackSettings | None:
        """The Slack settings, ``None`` when no Slack variable is set, or :class:`ConfigError` naming what is wrong."""
        read = cls.read(env)
        if socket_mode is None:
            socket_mode = read.socket_mode
        present = [name for name in SLACK_VARIABLES if env.get(name, "").strip()]
        if not present and not socket_mode:
            return None  # SLACK_API_URL or SLACK_SCOPES alone switch nothing on
        read.check(present, socket_mode)
        api_url = read.api_url
        return read.model_copy(update={
            "socket_mode": socket_mode,
            "api_url": api_url if api_url.endswith("/") else api_url + "/",  # slack_sdk joins "base_url + method"
        })

    def check(self, present: list[str], socket_mode: bool) -> None:
        """What one variable cannot say alone: which credentials go together (a :class:`ConfigError` if not)."""
        signing_secret, bot_token, client_id = self.signing_secret, self.bot_token, self.client_id
        client_secret, app_token = self.client_secret, self.app_token
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
        if not self.api_url.startswith(("http://", "https://")):
            raise ConfigError(f"SLACK_API_URL must be an http(s) URL, not {self.api_url!r}")


# ---------------------------------------------------------------------------------------------- Teams

SDK_SETTINGS = "CONNECTIONS__SERVICE_CONNECTION__SETTINGS__"  # the Microsoft 365 Agents SDK's names
# The Agents SDK's setting -> the older botbuilder-era name it replaces (both accepted; see teams_env).
TEAMS_ENV_NAMES = {"CLIENTID": "MICROSOFT_APP_ID", "CLIENTSECRET": "MICROSOFT_APP_PASSWORD",
                   "TENANTID": "MICROSOFT_APP_TENANT_ID"}
TEAMS_VARIABLES = ("MICROSOFT_APP_ID", "MICROSOFT_APP_PASSWORD", "MICROSOFT_APP_TYPE", "MICROSOFT_APP_TENANT_ID",
                   "TEAMS", "TEAMS_ENGINE", *(SDK_SETTINGS + n for n in (*TEAMS_ENV_NAMES, "AUTHTYPE")))
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


class TeamsSettings(EnvSettings):
    """The Azure Bot registration. Without an app id the Teams endpoint runs in local (Emulator) mode."""

    app_id: str | None = var(
        "MICROSOFT_APP_ID", None, "the Azure Bot's app id (a GUID); unset: no token checks, loopback replies only. "
        "The Agents SDK's name `CONNECTIONS__SERVICE_CONNECTION__SETTINGS__CLIENTID` is read too",
        shown="unset (local Emulator mode)")
    app_password: SecretStr | None = var(
        "MICROSOFT_APP_PASSWORD", None, "its client secret (required with an app id, except `UserAssignedMSI`); "
        "or `CONNECTIONS__SERVICE_CONNECTION__SETTINGS__CLIENTSECRET`", secret=True)
    app_type: str = var(
        "MICROSOFT_APP_TYPE", "SingleTenant", "`SingleTenant` (Azure creates no new multi-tenant bots since 31 July "
        "2025), `MultiTenant` (older registrations) or `UserAssignedMSI` (or "
        "`CONNECTIONS__SERVICE_CONNECTION__SETTINGS__AUTHTYPE=UserManagedIdentity`)")
    tenant_id: str | None = var(
        "MICROSOFT_APP_TENANT_ID", None, "tenant id, required for `SingleTenant` and `UserAssignedMSI`; or "
        "`CONNECTIONS__SERVICE_CONNECTION__SETTINGS__TENANTID`")
    engine: Literal["agents", "botbuilder"] = var(
        "TEAMS_ENGINE", "agents", "`agents`: the Microsoft 365 Agents SDK; `botbuilder`: the deprecated botbuilder "
        "engine (`pip install -e \".[botbuilder]\"`), kept for one release", expects="agents or botbuilder")
    switch: Literal["on", "off", "local"] = var(
        "TEAMS", "on", "`off`: no `/api/messages` and no Teams reminders; `local`: Emulator mode (no token checks) "
        "even on a non-loopback address", expects="on, off or local")

    @field_validator("switch", mode="before")
    @classmethod
    def _switch(cls, value: Any) -> Any:
        value = _lower(value)
        return "on" if value in _TRUE else "off" if value in _OFF else value

    @field_validator("engine", mode="before")
    @classmethod
    def _engine(cls, value: Any) -> Any:
        return _lower(value)

    @field_validator("app_type", mode="before")
    @classmethod
    def _app_type(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        app_type = TEAMS_APP_TYPES.get(value.strip().lower())
        if app_type is None:
            raise ValueError(f"must be one of {', '.join(TEAMS_APP_TYPES.values())}, not {value!r}")
        return app_type

    @property
    def auth_type(self) -> str:
        """The Agents SDK's ``AUTHTYPE`` for this registration."""
        return "UserManagedIdentity" if self.app_type == "UserAssignedMSI" else "ClientSecret"

    @property
    def local_mode(self) -> bool:
        """No app id: requests are accepted without tokens and replies are sent without one."""
        return self.app_id is None

    @property
    def local_requested(self) -> bool:
        """``TEAMS=local``: Emulator mode even on a public address."""
        return self.switch == "local"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TeamsSettings | None:
        """The Teams settings (None: ``TEAMS=off``), or :class:`ConfigError` naming the variable at fault."""
        env = {**env, **teams_env(env)}  # the Agents SDK's names, mapped onto the older ones
        read = cls.read(env)
        if read.switch == "off":
            return None
        read.check(env)
        if read.app_id is None:
            return cls(switch=read.switch, engine=read.engine)  # local mode: nothing else is used
        return read

    def check(self, env: Mapping[str, str]) -> None:
        """Which Azure settings go together (a :class:`ConfigError` naming the missing one if not)."""
        app_id, app_type, tenant_id = self.app_id, self.app_type, self.tenant_id
        if app_id is None:
            extra = [n for n in ("MICROSOFT_APP_PASSWORD", "MICROSOFT_APP_TENANT_ID") if env.get(n, "").strip()]
            if extra or env.get("MICROSOFT_APP_TYPE", "").strip():
                named = ", ".join(extra) or "MICROSOFT_APP_TYPE"
                raise ConfigError(
                    f"Teams is partly configured ({named} set): {SDK_SETTINGS}CLIENTID (or MICROSOFT_APP_ID) is "
                    "missing (the Azure Bot's Microsoft App ID)"
                )
            return
        if self.local_requested:
            raise ConfigError("TEAMS=local runs the Emulator endpoint without token checks, but MICROSOFT_APP_ID is "
                              "set: unset one of them")
        if not is_guid(app_id):
            raise ConfigError(f"MICROSOFT_APP_ID must be a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx), not {app_id!r}")
        if app_type != "UserAssignedMSI" and self.app_password is None:
            raise ConfigError(f"{SDK_SETTINGS}CLIENTSECRET (or MICROSOFT_APP_PASSWORD) is missing: a {app_type} "
                              "bot needs its client secret")
        if app_type != "MultiTenant" and tenant_id is None:
            raise ConfigError(
                f"{SDK_SETTINGS}TENANTID (or MICROSOFT_APP_TENANT_ID) is missing: a {app_type} bot needs its "
                "tenant id (a bot registered as multi-tenant before 31 July 2025: MICROSOFT_APP_TYPE=MultiTenant)")
        if tenant_id is not None and not is_guid(tenant_id):
            raise ConfigError(f"MICROSOFT_APP_TENANT_ID must be a GUID, not {tenant_id!r}")


# ------------------------------------------------------------------------------------------- feedback

class FeedbackSettings(EnvSettings):
    """What is kept of the questions the bot could not answer (the editors' review queue), and for how long."""

    keep_question_text: bool = var(
        "FEEDBACK_KEEP_QUESTION_TEXT", True,
        "`off`: questions the bot could not answer are counted by topic, their words not kept (see "
        "[Feedback](#feedback-the-editors-review-queue))", shown="`on`", expects="on or off")
    unanswered_retention_days: int = var(
        "UNANSWERED_RETENTION_DAYS", DEFAULT_RETENTION_DAYS,
        "days an unanswered question is kept before the purge deletes it (1-3650)",
        expects="a whole number of days between 1 and 3650", ge=1, le=3650)

    @property
    def policy(self) -> FeedbackPolicy:
        return FeedbackPolicy(keep_question_text=self.keep_question_text,
                              unanswered_retention_days=self.unanswered_retention_days)


# ------------------------------------------------------------------------------------------- together

@dataclass(frozen=True)
class Settings:
    """Every concern's settings, read and checked together at start-up."""

    server: ServerSettings = dataclasses.field(default_factory=ServerSettings)
    store: StoreSettings = dataclasses.field(default_factory=StoreSettings)
    logging: LoggingSettings = dataclasses.field(default_factory=LoggingSettings)
    scheduler: SchedulerSettings = dataclasses.field(default_factory=SchedulerSettings)
    feedback_settings: FeedbackSettings = dataclasses.field(default_factory=FeedbackSettings)
    slack: SlackSettings | None = None  # None: Slack is off (no SLACK_* variables set)
    # None: Teams is off (TEAMS=off, or see bound_to); no app id: local (Emulator) mode
    teams: TeamsSettings | None = dataclasses.field(default_factory=TeamsSettings)
    # WEB_CHAT: the local chat page at / (bot.web). None (auto): decided by bound_to, on for a loopback address.
    web_chat: bool | None = None
    web_chat_public: bool = False  # WEB_CHAT=on on a non-loopback address: served under any host name

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, socket_mode: bool | None = None,
                 platforms: bool = True) -> Settings:
        """Read and check every setting; ``socket_mode`` is ``chinadesk serve --socket-mode``. ``platforms=False``
        reads no Slack or Teams credentials (commands that need only the store and the content, such as
        ``reminders`` and ``worker``'s own start-up, must not fail on a half-set platform)."""
        env = os.environ if env is None else env
        if not platforms:
            env = {k: v for k, v in env.items() if not k.startswith(("SLACK_", "MICROSOFT_APP", SDK_SETTINGS))}
        server = ServerSettings.read(env)
        return cls(
            server=server, web_chat=None if server.web_chat == "auto" else server.web_chat == "on",
            store=StoreSettings.read(env), logging=LoggingSettings.read(env),
            scheduler=SchedulerSettings.read(env), feedback_settings=FeedbackSettings.read(env),
            slack=SlackSettings.from_env(env, socket_mode=socket_mode), teams=TeamsSettings.from_env(env),
        )

    def bound_to(self, host: str) -> Settings:
        """These settings for a server listening on ``host``. Teams' local (Emulator) mode checks no token,
        so without an app id it stays on only on a loopback address, unless ``TEAMS=local`` asks for it.
        The chat page (unauthenticated too) likewise, unless ``WEB_CHAT`` says on or off."""
        local = is_loopback_host(host)
        web_chat = local if self.web_chat is None else self.web_chat
        settings = dataclasses.replace(self, web_chat=web_chat, web_chat_public=web_chat and not local)
        teams = settings.teams
        if teams is None or not teams.local_mode or teams.local_requested or local:
            return settings
        return dataclasses.replace(settings, teams=None)

    # The names the rest of the code has always used.
    @property
    def database_url(self) -> str:
        return self.store.database_url

    @property
    def token_keys(self) -> SecretStr | None:
        return self.store.token_keys

    @property
    def token_keys_value(self) -> str | None:
        """``TOKEN_ENCRYPTION_KEY`` as the store takes it (``open_store(..., token_keys=...)``)."""
        return self.store.token_keys.get_secret_value() if self.store.token_keys else None

    @property
    def log_level(self) -> str:
        return self.logging.log_level

    @property
    def log_format(self) -> str:
        return self.logging.log_format

    @property
    def stale_days(self) -> int:
        return self.server.stale_days

    @property
    def default_timezone(self) -> str:
        return self.server.default_timezone

    @property
    def feedback(self) -> FeedbackPolicy:
        return self.feedback_settings.policy
