"""`integrations_config.amocrm`: validation into `AmoCrmSettings` and back to JSON.

OAuth tokens do not live here: they are in their own table (connectors.amocrm.tokens), written by the
token owner, so a refresh never races a settings edit and never waits on the settings cache.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from connectors.settings_rules import parse_bool, parse_user_extensions
from connectors.texts import LANGUAGES, Language, zone_of

# proxy: its URL may carry a password
SECRET_FIELDS: tuple[str, ...] = (
    "client_secret",
    "access_token",
    "refresh_token",
    "long_lived_token",
    "webhook_secret",
    "proxy",
)
UnknownCaller = Literal["unsorted", "contact_and_lead", "none"]
UNKNOWN_CALLER: tuple[UnknownCaller, ...] = ("unsorted", "contact_and_lead", "none")
DEFAULT_SOURCE = "pbx-agent"
PRODUCT_DOMAINS = ("amocrm.ru", "amocrm.com", "kommo.com")
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_USER_ID = re.compile(r"^[0-9]{1,18}$")
_CLIENT_ID = re.compile(r"^[A-Za-z0-9-]{8,64}$")
_SUBDOMAIN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_KNOWN = frozenset(
    {
        "enabled",
        "host",
        "client_id",
        "client_secret",
        "webhook_secret",
        "user_extensions",
        "unknown_caller",
        "pipeline_id",
        "status_id",
        "lead_tags",
        "missed_call_tasks",
        "task_due_minutes",
        "task_default_user_id",
        "route_by_deal",
        "source",
        "proxy",
        "language",
        "timezone",
    }
)
_TOKENS_ELSEWHERE = ("access_token", "refresh_token", "long_lived_token")


class SettingsError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"amocrm.{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class AmoCrmSettings:
    """One enterprise's amoCRM/Kommo connection. `host` is the account URL (`https://sub.amocrm.ru`)."""

    host: str
    webhook_secret: str
    client_id: str | None = None
    client_secret: str | None = None
    enabled: bool = True
    user_extensions: Mapping[str, str] = field(default_factory=dict)  # amo user id -> extension
    unknown_caller: UnknownCaller = "unsorted"
    pipeline_id: int | None = None
    status_id: int | None = None
    lead_tags: tuple[str, ...] = ()
    missed_call_tasks: bool = True
    task_due_minutes: int = 15
    task_default_user_id: int | None = None
    route_by_deal: bool = True  # smart redirect: the newest open lead's responsible user before the contact's
    source: str = DEFAULT_SOURCE
    proxy: str | None = None
    # keys the agent does not know (the old integration's `sync_*`, `redirect_uri`, ...): written back as they were
    language: Language = "en"  # of what the agent writes (connectors.texts); parse() picks by the account's domain
    timezone: str | None = None  # times in those texts; None: UTC
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_kommo(self) -> bool:
        return (urlsplit(self.host).hostname or "").endswith(".kommo.com")

    @property
    def account_netloc(self) -> str:
        return urlsplit(self.host).netloc

    def user_for_extension(self, extension: str | None) -> int | None:
        if not extension:
            return None
        for user_id, ext in self.user_extensions.items():
            if ext == extension:
                return int(user_id)
        return None

    def extension_for_user(self, user_id: int | str | None) -> str | None:
        if user_id is None:
            return None
        return self.user_extensions.get(str(user_id))

    def to_json(self) -> dict[str, Any]:
        return {
            **self.extra,
            "enabled": self.enabled,
            "host": self.host,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "webhook_secret": self.webhook_secret,
            "user_extensions": dict(self.user_extensions),
            "unknown_caller": self.unknown_caller,
            "pipeline_id": self.pipeline_id,
            "status_id": self.status_id,
            "lead_tags": list(self.lead_tags),
            "missed_call_tasks": self.missed_call_tasks,
            "task_due_minutes": self.task_due_minutes,
            "task_default_user_id": self.task_default_user_id,
            "route_by_deal": self.route_by_deal,
            "source": self.source,
            "proxy": self.proxy,
            "language": self.language,
            **({"timezone": self.timezone} if self.timezone else {}),
        }


def parse(
    data: Mapping[str, Any], *, new_secret: Callable[[], str] | None = None, enterprise_timezone: str | None = None
) -> AmoCrmSettings:
    """Validate the JSON object; every error names its field. A missing `webhook_secret` is generated
    (the caller stores `to_json()` so it stays stable). Keys it does not know are kept in `extra`."""
    if not isinstance(data, Mapping):
        raise SettingsError("*", "must be a JSON object")
    for key in data:
        if key in _TOKENS_ELSEWHERE:
            raise SettingsError(
                str(key),
                "tokens are not settings: connect through OAuth or POST the token "
                "to /api/enterprises/{n}/integrations/amocrm/token",
            )
    secret = data.get("webhook_secret") or (new_secret or _new_secret)()
    if not isinstance(secret, str) or not re.fullmatch(r"[A-Za-z0-9_-]{32,128}", secret):
        raise SettingsError("webhook_secret", "32-128 letters, digits, '-' or '_'")
    pipeline_id = _optional_id(data, "pipeline_id")
    status_id = _optional_id(data, "status_id")
    if status_id is not None and pipeline_id is None:
        raise SettingsError("status_id", "a status belongs to a pipeline: set pipeline_id too")
    due = data.get("task_due_minutes", 15)
    if not isinstance(due, int) or isinstance(due, bool) or not 1 <= due <= 7 * 24 * 60:
        raise SettingsError("task_due_minutes", "whole minutes, 1 to 10080 (a week)")
    host = _host(data.get("host"))
    return AmoCrmSettings(
        enabled=_bool(data, "enabled", True),
        host=host,
        client_id=_client_id(data.get("client_id")),
        client_secret=_client_secret(data.get("client_secret")),
        webhook_secret=secret,
        user_extensions=_user_extensions(data.get("user_extensions")),
        unknown_caller=_unknown_caller(data.get("unknown_caller")),
        pipeline_id=pipeline_id,
        status_id=status_id,
        lead_tags=_tags(data.get("lead_tags")),
        missed_call_tasks=_bool(data, "missed_call_tasks", True),
        task_due_minutes=due,
        task_default_user_id=_optional_id(data, "task_default_user_id"),
        route_by_deal=_bool(data, "route_by_deal", True),
        source=_source(data.get("source")),
        proxy=_proxy(data.get("proxy")),
        language=_language(data.get("language"), host),
        timezone=_timezone(data.get("timezone")) or enterprise_timezone,
        extra={str(k): v for k, v in data.items() if k not in _KNOWN},
    )


def _language(value: Any, host: str) -> Language:
    """ru/en; unset: Russian for an amocrm.ru account, English for amocrm.com and Kommo."""
    if value in (None, ""):
        return "ru" if (urlsplit(host).hostname or "").endswith(".amocrm.ru") else "en"
    if value not in LANGUAGES:
        raise SettingsError("language", "ru or en: the language of what the agent writes into amoCRM")
    return value  # type: ignore[no-any-return]


def _timezone(value: Any) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str) or zone_of(value).key != value:
        raise SettingsError("timezone", "an IANA time zone such as Europe/Moscow (times in texts and tasks)")
    return value


def _new_secret() -> str:
    return secrets.token_urlsafe(32)


def _bool(data: Mapping[str, Any], name: str, default: bool) -> bool:
    return parse_bool(data, name, default, SettingsError)


def _optional_id(data: Mapping[str, Any], name: str) -> int | None:
    value = data.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, str) and _USER_ID.fullmatch(value):
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise SettingsError(name, "must be a positive whole number (an amoCRM id)")
    return value


def _host(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SettingsError("host", "required: the account URL, e.g. https://mycompany.amocrm.ru")
    raw = value.strip()
    if "://" not in raw:
        raw = "https://" + raw
    parts = urlsplit(raw)
    host = (parts.hostname or "").lower()
    if not host or parts.username or parts.password or parts.query or parts.fragment:
        raise SettingsError("host", "must be a plain account URL such as https://mycompany.amocrm.ru")
    if parts.path not in ("", "/"):
        raise SettingsError("host", "must not have a path (give the account URL only)")
    try:
        port = parts.port
    except ValueError as exc:
        raise SettingsError("host", "bad port") from exc
    if host in _LOOPBACK:  # a local test server
        if parts.scheme not in ("http", "https"):
            raise SettingsError("host", "must use https")
    else:
        if parts.scheme != "https":
            raise SettingsError("host", "must use https")
        if not is_product_host(host):
            raise SettingsError("host", "must be an account host: <subdomain>.amocrm.ru, .amocrm.com or .kommo.com")
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    return f"{parts.scheme}://{netloc}"


def is_product_host(host: str) -> bool:
    """`sub.amocrm.ru` / `sub.amocrm.com` / `sub.kommo.com`, never `www` (the account host is required)."""
    for domain in PRODUCT_DOMAINS:
        if host.endswith("." + domain):
            sub = host[: -len(domain) - 1]
            return bool(_SUBDOMAIN.fullmatch(sub)) and sub != "www"
    return False


def _client_id(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _CLIENT_ID.fullmatch(value):
        raise SettingsError("client_id", "the integration id (a UUID) from the integration's Keys tab")
    return value


def _client_secret(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_-]{16,256}", value):
        raise SettingsError("client_secret", "the secret key from the integration's Keys tab")
    return value


def _user_extensions(value: Any) -> dict[str, str]:
    return parse_user_extensions(value, SettingsError, "amo")


def _unknown_caller(value: Any) -> UnknownCaller:
    if value is None or value == "":
        return "unsorted"
    for choice in UNKNOWN_CALLER:
        if value == choice:
            return choice
    raise SettingsError("unknown_caller", f"one of {', '.join(UNKNOWN_CALLER)}")


def _tags(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > 20:
        raise SettingsError("lead_tags", "a list of at most 20 tag names")
    out: list[str] = []
    for i, tag in enumerate(value):
        if not isinstance(tag, str) or not tag.strip() or len(tag) > 100:
            raise SettingsError(f"lead_tags.{i}", "a tag is 1-100 characters")
        out.append(tag.strip())
    return tuple(dict.fromkeys(out))


def _source(value: Any) -> str:
    if value is None or value == "":
        return DEFAULT_SOURCE
    if not isinstance(value, str) or len(value) > 100 or value != value.strip():
        raise SettingsError("source", "1-100 characters without surrounding spaces")
    return value


def _proxy(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise SettingsError("proxy", "a proxy URL such as http://user:pass@proxy:3128 or socks5://proxy:1080")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https", "socks5", "socks5h") or not parts.hostname:
        raise SettingsError("proxy", "a proxy URL such as http://user:pass@proxy:3128 or socks5://proxy:1080")
    return value
