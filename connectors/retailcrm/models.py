"""RetailCRM answers and setup objects as small typed values, parsed leniently (ids as int or string)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from connectors.base import SendOutcome
from connectors.http import Exchange
from connectors.retailcrm import envelope
from connectors.retailcrm.settings import RetailCrmSettings

# What the connector calls, in the path form `/api/credentials` lists (unversioned, `{code}` literal).
REQUIRED_METHODS = (
    "/api/telephony/call/event",
    "/api/telephony/calls/upload",
    "/api/telephony/manager",
    "/api/integration-modules/{code}/edit",
)
OPTIONAL_METHODS = ("/api/integration-modules/{code}", "/api/users")


@dataclass(frozen=True, slots=True)
class Responsible:
    user_id: str
    name: str
    code: str | None  # the manager's extension as RetailCRM knows it
    email: str | None = None
    customer_id: str | None = None


@dataclass(frozen=True, slots=True)
class CrmUser:
    id: str
    name: str
    email: str | None
    active: bool
    is_manager: bool
    status: str | None


@dataclass(frozen=True, slots=True)
class UsersPage:
    users: list[CrmUser]
    page: int
    total_pages: int

    @property
    def has_next(self) -> bool:
        return self.page < self.total_pages


@dataclass(frozen=True, slots=True)
class ModuleUrls:
    """Our side of the module: where RetailCRM reaches us. `logo` must be an SVG URL."""

    base_url: str
    logo: str
    make_call: str
    change_user_status: str | None = None
    account: str | None = None
    activity: str | None = None  # path relative to base_url, e.g. "/retailcrm/activity"


@dataclass(frozen=True, slots=True)
class ModuleResult:
    created: bool
    not_exist_user_ids: tuple[str, ...] = ()
    not_exist_site_codes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ConnectionReport:
    ok: bool
    reason: str | None  # why not (or a caveat when ok)
    http_status: int | None = None
    methods: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()  # required methods the key may not call
    missing_optional: tuple[str, ...] = ()
    site_access: str | None = None
    sites: tuple[str, ...] = ()


def _s(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _name(d: dict[str, Any]) -> str:
    parts = (d.get("firstName"), d.get("patronymic"), d.get("lastName"))
    return " ".join(str(p) for p in parts if p).strip()


def parse_responsible(body: dict[str, Any]) -> Responsible | None:
    manager = body.get("manager")
    if not isinstance(manager, dict) or manager.get("id") in (None, ""):
        return None
    customer = body.get("customer")
    customer_id = _s(customer.get("id")) if isinstance(customer, dict) else None
    return Responsible(
        user_id=str(manager["id"]),
        name=_name(manager),
        code=_s(manager.get("code")),
        email=_s(manager.get("email")),
        customer_id=customer_id,
    )


def parse_customer_name(body: dict[str, Any]) -> str:
    """The caller's name in a `telephony/manager` answer asked with `details=1` (crm-api.md §A6): the customer's
    `firstName lastName` (no patronymic: a caller ID has little room), else a company name. The vendor's model of
    this customer has no company field; a `company` (a string, or an object with `name`) or a corporate
    customer's `nickName` is taken when an answer carries one, and its absence is the usual case."""
    customer = body.get("customer")
    if not isinstance(customer, dict):
        return ""
    parts = (customer.get("firstName"), customer.get("lastName"))
    name = " ".join(p.strip() for p in parts if isinstance(p, str) and p.strip())
    if name:
        return name
    for key in ("company", "nickName"):
        value = customer.get(key)
        if isinstance(value, dict):
            value = value.get("name")
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def parse_users_page(body: dict[str, Any], page: int) -> UsersPage:
    users = [
        CrmUser(
            id=str(u["id"]),
            name=_name(u),
            email=_s(u.get("email")),
            active=bool(u.get("active", True)),
            is_manager=bool(u.get("isManager", False)),
            status=_s(u.get("status")),
        )
        for u in body.get("users") or ()
        if isinstance(u, dict) and u.get("id") is not None
    ]
    pagination = body.get("pagination")
    pagination = pagination if isinstance(pagination, dict) else {}
    current = int(pagination.get("currentPage") or page)
    total = int(pagination.get("totalPageCount") or current)
    return UsersPage(users, current, total)


def parse_module_info(body: dict[str, Any], *, created: bool) -> ModuleResult:
    info = body.get("info")
    info = info if isinstance(info, dict) else {}  # PHP sends an empty object as []
    return ModuleResult(
        created=created,
        not_exist_user_ids=tuple(str(x) for x in info.get("notExistUsersIds") or ()),
        not_exist_site_codes=tuple(str(x) for x in info.get("notExistSiteCodes") or ()),
    )


def module_object(settings: RetailCrmSettings, urls: ModuleUrls, *, name: str, active: bool) -> dict[str, Any]:
    telephony: dict[str, Any] = {
        "makeCallUrl": urls.make_call,
        "allowEdit": False,  # our settings own the extension map; the CRM UI must not fork it
        "inputEventSupported": settings.popup_in,
        "outputEventSupported": settings.popup_out,
        "hangupEventSupported": settings.popup_hangup,
        "additionalCodes": [{"userId": int(u), "code": c} for u, c in settings.user_extensions.items()],
        "externalPhones": [],
    }
    if urls.change_user_status:
        telephony["changeUserStatusUrl"] = urls.change_user_status
    if settings.site and settings.external_phone:
        telephony["externalPhones"] = [{"siteCode": settings.site, "externalPhone": settings.external_phone}]
    module: dict[str, Any] = {
        "code": settings.code,
        "active": active,
        "name": name,
        "logo": urls.logo,
        "clientId": settings.client_id,
        "baseUrl": urls.base_url,
        "integrations": {"telephony": telephony},
    }
    if urls.account:
        module["accountUrl"] = urls.account
    if urls.activity:
        module["actions"] = {"activity": urls.activity}
    return module


def _normalise_method(path: str, code: str) -> str:
    p = "/" + str(path).strip().strip("/").lower()
    if p.startswith("/api/v5/"):
        p = "/api/" + p[len("/api/v5/") :]
    elif not p.startswith("/api/"):
        p = "/api" + p
    return p.replace(f"/integration-modules/{code}", "/integration-modules/{code}")


def connection_report(exchange: Exchange, result: SendOutcome, code: str) -> ConnectionReport:
    if not result.ok:
        return ConnectionReport(False, _failure_reason(exchange, result), result.http_status)
    body = exchange.body if isinstance(exchange.body, dict) else {}
    scopes = tuple(str(s) for s in body.get("scopes") or ())
    site_access, sites = _s(body.get("siteAccess")), tuple(str(s) for s in body.get("sitesAvailable") or ())
    listed = body.get("credentials")
    if not isinstance(listed, list):
        return ConnectionReport(
            True,
            "the account did not list the key's methods; not verified",
            result.http_status,
            scopes=scopes,
            site_access=site_access,
            sites=sites,
        )
    have = {_normalise_method(m, code) for m in listed}
    missing = tuple(m for m in REQUIRED_METHODS if m not in have)
    missing_optional = tuple(m for m in OPTIONAL_METHODS if m not in have)
    reason = None
    if missing:
        reason = (
            "the API key may not call "
            + ", ".join(missing)
            + " (allow the telephony and integration-module methods for this key)"
        )
    return ConnectionReport(
        not missing,
        reason,
        result.http_status,
        tuple(str(m) for m in listed),
        scopes,
        missing,
        missing_optional,
        site_access,
        sites,
    )


def _failure_reason(exchange: Exchange, result: SendOutcome) -> str:
    if exchange.transport_error:
        return f"cannot reach the account: {exchange.transport_error}"
    if envelope.looks_like_html(exchange):
        return "no such RetailCRM account at this address (the server answered with an HTML page)"
    msg = exchange.body.get("errorMsg") if isinstance(exchange.body, dict) else None
    known = {
        envelope.WRONG_KEY: "wrong API key",
        envelope.MISSING_KEY: "no API key was sent",
        envelope.NO_ACCOUNT: "no such RetailCRM account",
        envelope.ACCESS_DENIED: "the API key may not call /api/credentials",
    }
    return known.get(str(msg), result.error or "unknown error")
