"""`integrations_config.retailcrm`: validation into `RetailCrmSettings` and back to JSON."""

from __future__ import annotations

import ipaddress
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from connectors.settings_rules import parse_bool, parse_user_extensions
from connectors.texts import LANGUAGES, Language, language_of

SECRET_FIELDS: tuple[str, ...] = ("api_key", "client_id")
DEFAULT_CODE = "pbx-agent"
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_CODE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_PHONE = re.compile(r"^\+?[0-9]{3,20}$")
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
KNOWN = frozenset(
    {
        "enabled",
        "domain",
        "api_key",
        "client_id",
        "timezone",
        "popup_in",
        "popup_out",
        "popup_hangup",
        "upload_history",
        "user_extensions",
        "site",
        "external_phone",
        "code",
        "missed_call_tasks",
        "task_due_minutes",
        "task_default_user_id",
        "language",
        "create_customers",
        "create_orders",
        "order_method",
    }
)
MAX_DUE_MINUTES = 10080  # a week


class SettingsError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"retailcrm.{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class RetailCrmSettings:
    """One enterprise's RetailCRM connection. `domain` is the account URL without a path."""

    domain: str
    api_key: str
    client_id: str
    timezone: str
    enabled: bool = True
    popup_in: bool = True
    popup_out: bool = True
    popup_hangup: bool = True
    upload_history: bool = True
    user_extensions: Mapping[str, str] = field(default_factory=dict)  # crm user id -> extension
    site: str | None = None
    external_phone: str | None = None
    code: str = DEFAULT_CODE
    # a missed incoming call -> one call-back task per caller while one is open (tasks/create), completed by the
    # next answered call with the number; assigned to the customer's manager, else the DID's default manager,
    # else the call's owner, else `task_default_user_id` (a RetailCRM user id)
    missed_call_tasks: bool = False
    task_due_minutes: int = 15
    task_default_user_id: str | None = None
    language: Language = "ru"  # of what the agent writes into RetailCRM (connectors.texts)
    # an unknown caller becomes a customer (customers/create), and with `create_orders` an order too
    # (orders/create, `orderMethod` = `order_method`), once per number
    create_customers: bool = False
    create_orders: bool = False
    order_method: str = "phone"
    # keys the agent does not know (`last_sync`, `version`, another service's): kept, written back as they were
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return f"{self.domain}/api/v5"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def user_for_extension(self, extension: str) -> str | None:
        for user_id, ext in self.user_extensions.items():
            if ext == extension:
                return user_id
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            **self.extra,
            "enabled": self.enabled,
            "domain": self.domain,
            "api_key": self.api_key,
            "client_id": self.client_id,
            "timezone": self.timezone,
            "popup_in": self.popup_in,
            "popup_out": self.popup_out,
            "popup_hangup": self.popup_hangup,
            "upload_history": self.upload_history,
            "user_extensions": dict(self.user_extensions),
            "site": self.site,
            "external_phone": self.external_phone,
            "code": self.code,
            "missed_call_tasks": self.missed_call_tasks,
            "task_due_minutes": self.task_due_minutes,
            "task_default_user_id": self.task_default_user_id,
            "language": self.language,
            "create_customers": self.create_customers,
            "create_orders": self.create_orders,
            "order_method": self.order_method,
        }


def parse(data: Mapping[str, Any], *, new_client_id: Callable[[], str] | None = None) -> RetailCrmSettings:
    """Validate the JSON object; every error names its field. A missing `client_id` is generated
    (the caller stores `to_json()` so it stays stable). Keys it does not know are kept in `extra`."""
    if not isinstance(data, Mapping):
        raise SettingsError("*", "must be a JSON object")
    enabled = _bool(data, "enabled", True)
    client_id = data.get("client_id") or (new_client_id or _new_client_id)()
    if not isinstance(client_id, str) or not re.fullmatch(r"[A-Za-z0-9_-]{16,128}", client_id):
        raise SettingsError("client_id", "16-128 letters, digits, '-' or '_'")
    return RetailCrmSettings(
        enabled=enabled,
        domain=_domain(data.get("domain")),
        api_key=_api_key(data.get("api_key")),
        client_id=client_id,
        timezone=_timezone(data.get("timezone")),
        popup_in=_bool(data, "popup_in", True),
        popup_out=_bool(data, "popup_out", True),
        popup_hangup=_bool(data, "popup_hangup", True),
        upload_history=_bool(data, "upload_history", True),
        user_extensions=_user_extensions(data.get("user_extensions")),
        site=_optional_str(data, "site"),
        external_phone=_phone(data.get("external_phone")),
        code=_code(data.get("code")),
        missed_call_tasks=_bool(data, "missed_call_tasks", False),
        task_due_minutes=_due(data.get("task_due_minutes")),
        task_default_user_id=_user_id(data.get("task_default_user_id")),
        language=_language(data.get("language")),
        create_customers=_bool(data, "create_customers", False),
        create_orders=_bool(data, "create_orders", False),
        order_method=_order_method(data.get("order_method")),
        extra={str(k): v for k, v in data.items() if k not in KNOWN},
    )


def _new_client_id() -> str:
    return secrets.token_hex(24)


def _bool(data: Mapping[str, Any], name: str, default: bool) -> bool:
    return parse_bool(data, name, default, SettingsError)


def _optional_str(data: Mapping[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 255 or value != value.strip():
        raise SettingsError(name, "must be a string without surrounding spaces")
    return value


def _domain(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SettingsError("domain", "required: the account URL, e.g. https://shop.retailcrm.ru")
    raw = value.strip()
    if "://" not in raw:
        raw = "https://" + raw
    parts = urlsplit(raw)
    host = (parts.hostname or "").lower()
    if not _host_ok(host) or parts.username or parts.password or parts.query or parts.fragment:
        raise SettingsError("domain", "must be a plain account URL such as https://shop.retailcrm.ru")
    if parts.path not in ("", "/"):
        raise SettingsError("domain", "must not have a path (give the account URL only)")
    if parts.scheme != "https" and not (parts.scheme == "http" and host in _LOOPBACK):
        raise SettingsError("domain", "must use https")
    try:
        port = parts.port
    except ValueError as exc:
        raise SettingsError("domain", "bad port") from exc
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    return f"{parts.scheme}://{netloc}"


def _host_ok(host: str) -> bool:
    """A host name (letters, digits and hyphens between dots; IDNA allowed) or an IP address."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return False
    labels = ascii_host.removesuffix(".").split(".")
    return len(ascii_host) <= 253 and all(_LABEL.fullmatch(label) for label in labels)


def _api_key(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise SettingsError("api_key", "required")
    # 4, not 8: the old system stored short test keys (seed 003: test123); RetailCRM says whether one works
    if not re.fullmatch(r"[A-Za-z0-9_-]{4,128}", value):
        raise SettingsError("api_key", "must be 4-128 letters or digits (copy it from Settings → API keys)")
    return value


def _timezone(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise SettingsError("timezone", "required: the account's IANA time zone, e.g. Europe/Moscow")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise SettingsError("timezone", f"unknown time zone {value!r}") from exc
    return value


def _user_extensions(value: Any) -> dict[str, str]:
    return parse_user_extensions(value, SettingsError, "crm")


def _phone(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _PHONE.fullmatch(value):
        raise SettingsError("external_phone", "digits with an optional leading +")
    return value


def _code(value: Any) -> str:
    if value is None or value == "":
        return DEFAULT_CODE
    if not isinstance(value, str) or not _CODE.fullmatch(value):
        raise SettingsError("code", "lowercase letters, digits, '-' or '_', up to 63 characters")
    return value


def _due(value: Any) -> int:
    if value is None or value == "":
        return 15
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DUE_MINUTES:
        raise SettingsError("task_due_minutes", f"whole minutes, 1 to {MAX_DUE_MINUTES} (a week)")
    return value


def _user_id(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not re.fullmatch(r"[1-9][0-9]{0,17}", value.strip()):
        raise SettingsError("task_default_user_id", "a RetailCRM user id (a positive number)")
    return value.strip()


def _language(value: Any) -> Language:
    if value in (None, ""):
        return "ru"
    if value not in LANGUAGES:
        raise SettingsError("language", "ru or en: the language of what the agent writes into RetailCRM")
    return language_of(value, "ru")


def _order_method(value: Any) -> str:
    if value is None or value == "":
        return "phone"
    if not isinstance(value, str) or not _CODE.fullmatch(value.strip()):
        raise SettingsError("order_method", "the order method's code: lowercase letters, digits, '-' or '_'")
    return value.strip()
