"""RetailCRM setup under /api/enterprises/{number}/integrations/retailcrm/ (bearer token, admin/api.py).

- `POST .../test` — what the stored (or the posted) API key may call, or why it fails;
- `POST .../register` / `DELETE .../register` — create/update or switch off the telephony module;
- `GET .../managers`, `PUT .../extensions`: admin/retailcrm_managers.py;
- `GET .../statuses` — the managers' statuses and the module's activity, as RetailCRM reported them.

Every exchange with RetailCRM is written to integration_logs (masked by the client) under the
operation's name. Settings changes go through `enterprises.put_integration` (NOTIFY).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import wraps
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from admin import retailcrm_adopt
from admin.api import _enterprise, _json_object, error
from admin.i18n import catalog
from agent.life.masking import mask
from agent.store import enterprises
from agent.web import keys
from agent.web.keys import Parts
from agent.web.publishing import registration_refused
from connectors.base import CrmError, SendOutcome
from connectors.retailcrm import store as retailcrm_store
from connectors.retailcrm.client import RetailCrmClient
from connectors.retailcrm.legacy import adapt
from connectors.retailcrm.models import ModuleUrls
from connectors.retailcrm.routes import ACTIVITY, MAKE_CALL, USER_STATUS
from connectors.retailcrm.settings import RetailCrmSettings, SettingsError, parse

CRM = retailcrm_store.CRM
PREFIX = "/enterprises/{number}/integrations/retailcrm"  # on the /api/ sub-application
LOGO = "/static/retailcrm-logo.svg"
LOGO_FILE = Path(__file__).parent / "static" / "retailcrm-logo.svg"
ACCOUNT_PAGE = "/admin/retailcrm"
ACCOUNT_TOKEN_DAYS = 365


class Problem(Exception):
    """A refusal: `message` (English) for the API and the logs; `key` and `values` (a catalogue message) for a
    page, with `said` the words behind it that a page quotes as they are (a CRM's answer, admin/said.py)."""

    def __init__(
        self,
        status: int,
        message: str,
        field: str | None = None,
        *,
        key: str | None = None,
        said: str | None = None,
        **values: str,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.key, self.said, self.values = key, said, values

    def page(self) -> dict[str, object]:
        """What a page needs to say it in its language (admin/templates/retailcrm.html)."""
        return {"error_code": self.key, "error_values": self.values, "error_said": self.said}


Route = Callable[[web.Request], Awaitable[web.Response]]


def answers_problems(route: Route) -> Route:
    @wraps(route)
    async def wrapped(request: web.Request) -> web.Response:
        try:
            return await route(request)
        except Problem as p:
            return error(p.status, p.message, p.field)
        except CrmError as exc:
            return error(502, f"RetailCRM: {exc.outcome.error or exc.outcome.status}")

    return wrapped


async def load_settings(parts: Parts, number: str) -> RetailCrmSettings:
    """The enterprise's stored settings (legacy layout adapted), or a Problem saying why there are none."""
    pool = parts[keys.POOL]
    if await enterprises.get(pool, number) is None:
        raise Problem(404, f"no enterprise {number}", key="error.no_enterprise", number=number)
    try:
        settings = await retailcrm_store.settings_of(pool, parts[keys.SECRETS], number)
    except (SettingsError, ValueError) as exc:
        raise Problem(409, f"the stored retailcrm settings are unusable: {exc}", key="rc.problem.unusable") from None
    if settings is None:
        raise Problem(404, f"retailcrm is not configured for enterprise {number}", key="rc.problem.not_configured")
    return settings


class LoggedClient(RetailCrmClient):
    """A client on the shared HTTP pool that keeps its exchanges for integration_logs."""

    def __init__(self, settings: RetailCrmSettings, parts: Parts) -> None:
        self.seen: list[SendOutcome] = []
        super().__init__(
            settings, parts[keys.INTEGRATIONS].http, on_exchange=lambda _name, outcome: self.seen.append(outcome)
        )


@asynccontextmanager
async def _client(parts: Parts, number: str, settings: RetailCrmSettings, event: str) -> AsyncIterator[LoggedClient]:
    """Every exchange of the client lands in integration_logs as `event`, whatever happens."""
    client = LoggedClient(settings, parts)
    try:
        yield client
    finally:
        for o in client.seen:
            await retailcrm_store.log_exchange(
                parts[keys.POOL], number, event, o.request, o.response, o.ok, o.error, o.http_status, o.duration_ms
            )


def module_urls(public_url: str, number: str, token: str) -> ModuleUrls:
    account = f"{public_url}{ACCOUNT_PAGE}?" + urlencode({"enterprise_number": number, "token": token})
    return ModuleUrls(
        base_url=public_url,
        logo=public_url + LOGO,
        make_call=public_url + MAKE_CALL,
        change_user_status=public_url + USER_STATUS,
        account=account,
        activity=ACTIVITY,
    )


# -- operations (the API routes below and the admin pages call these) --------------------------------


def field_error_key(field: str) -> str:
    """The catalogue message for a settings field the connector refused (its English words go to the API)."""
    key = f"rc.error.{field}"
    return key if key in catalog("en") else "error.invalid"


async def connection_report(parts: Parts, number: str, settings: RetailCrmSettings) -> dict[str, Any]:
    """What the key may call, or why it fails; logged as `test_connection`."""
    async with _client(parts, number, settings, "test_connection") as client:
        report = await client.test_connection()
        if not report.ok and client.seen:  # answered, but the key is not fit for use: log the verdict
            client.seen[-1].status, client.seen[-1].error = "permanent", report.reason
    return {
        "ok": report.ok,
        "reason": report.reason,
        "http_status": report.http_status,
        "methods": list(report.methods),
        "scopes": list(report.scopes),
        "missing": list(report.missing),
        "missing_optional": list(report.missing_optional),
        "site_access": report.site_access,
        "sites": list(report.sites),
    }


async def settings_to_test(parts: Parts, number: str, body: dict[str, Any]) -> RetailCrmSettings:
    """Posted settings to try before saving; masked secrets mean "the stored one"."""
    pool = parts[keys.POOL]
    if await enterprises.get(pool, number) is None:
        raise Problem(404, f"no enterprise {number}", key="error.no_enterprise", number=number)
    stored = await enterprises.get_integration(pool, number, CRM)
    try:
        return parse(adapt(enterprises.unmask(parts[keys.SECRETS], CRM, body, stored)))
    except SettingsError as exc:
        raise Problem(400, exc.message, exc.field, key=field_error_key(exc.field)) from None


async def register_module(parts: Parts, number: str) -> dict[str, Any]:
    """Create or update the telephony module (RetailCRM's answer, or CrmError); a new account token."""
    unreachable = registration_refused(parts[keys.CONFIG].agent, "RetailCRM")
    if unreachable is not None:  # a module at a URL RetailCRM cannot reach would look installed and never work
        raise Problem(409, unreachable, key="rc.problem.unpublished", url=parts[keys.CONFIG].agent.public_url)
    settings = await load_settings(parts, number)
    if not settings.enabled:
        raise Problem(
            409,
            "retailcrm is disabled for this enterprise; enable it before registering the module",
            key="rc.problem.disabled",
        )
    async with _client(parts, number, settings, "adopt_module") as client:  # the module the account has, if any
        settings, adopted = await retailcrm_adopt.adopt(client, parts[keys.POOL], parts[keys.SECRETS], number, settings)
        for looked in client.seen:  # "no such module" is an answer to the lookup, not a failure
            if looked.http_status == 404:
                looked.status, looked.error = "success", None
    signer = parts[keys.SIGNER]
    token = signer.issue(number, ACCOUNT_TOKEN_DAYS, source=CRM)
    token_id = signer.verify(token).token_id
    public_url = parts[keys.CONFIG].agent.public_url
    urls = module_urls(public_url, number, token)
    async with _client(parts, number, settings, "register_module") as client:
        result = await client.register_module(urls)
    # the new token is in force from now on; the previous one (if any) is revoked by the same write
    await retailcrm_store.set_account_token(parts[keys.POOL], number, token_id)
    return {
        "registered": True,
        "created": result.created,
        "code": settings.code,
        "adopted": adopted,
        "not_exist_user_ids": list(result.not_exist_user_ids),
        "not_exist_site_codes": list(result.not_exist_site_codes),
        "account_token_id": token_id,
        "account_token_expires_in_days": ACCOUNT_TOKEN_DAYS,
        "urls": {
            "baseUrl": urls.base_url,
            "logo": urls.logo,
            "makeCallUrl": urls.make_call,
            "changeUserStatusUrl": urls.change_user_status,
            "accountUrl": module_urls(public_url, number, mask(token)).account,
            "actions": {"activity": urls.activity},
        },
    }


async def deregister_module(parts: Parts, number: str) -> dict[str, Any]:
    pool = parts[keys.POOL]
    if await enterprises.get(pool, number) is None:
        raise Problem(404, f"no enterprise {number}", key="error.no_enterprise", number=number)
    await retailcrm_store.set_account_token(pool, number, None)  # whatever RetailCRM says next
    settings = await load_settings(parts, number)
    async with _client(parts, number, settings, "deactivate_module") as client:
        try:
            result = await client.deactivate_module()
        except CrmError as exc:
            raise Problem(
                502,
                f"the account link was revoked, but RetailCRM refused to switch the module off: "
                f"{exc.outcome.error or exc.outcome.status}",
                key="rc.problem.deactivate",
                said=exc.outcome.error or exc.outcome.status,
            ) from None
    return {"deactivated": result is not None, "token_revoked": True}


# -- routes ----------------------------------------------------------------------------------------


@answers_problems
async def test_connection(request: web.Request) -> web.Response:
    """The stored settings, or a posted settings object (masked secrets mean "the stored one")."""
    number = _enterprise(request)
    if request.can_read_body:
        settings = await settings_to_test(request.config_dict, number, await _json_object(request))
    else:
        settings = await load_settings(request.config_dict, number)
    return web.json_response(await connection_report(request.config_dict, number, settings))


@answers_problems
async def register(request: web.Request) -> web.Response:
    return web.json_response(await register_module(request.config_dict, _enterprise(request)))


@answers_problems
async def deregister(request: web.Request) -> web.Response:
    return web.json_response(await deregister_module(request.config_dict, _enterprise(request)))


@answers_problems
async def statuses(request: web.Request) -> web.Response:
    number = _enterprise(request)
    pool = request.config_dict[keys.POOL]
    if await enterprises.get(pool, number) is None:
        raise Problem(404, f"no enterprise {number}")
    rows = await retailcrm_store.user_statuses(pool, number)
    module = await retailcrm_store.module_state(pool, number) or {}
    return web.json_response(
        {
            "statuses": [
                {"user_id": s.user_id, "code": s.code, "status": s.status, "changed_at": s.changed_at.isoformat()}
                for s in rows
            ],
            "module": {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in module.items()},
        }
    )


async def logo(request: web.Request) -> web.FileResponse:
    return web.FileResponse(LOGO_FILE, headers={"Content-Type": "image/svg+xml", "Cache-Control": "max-age=86400"})


def add_routes(api: web.Application) -> None:
    api.router.add_post(PREFIX + "/test", test_connection)
    api.router.add_post(PREFIX + "/register", register)
    api.router.add_delete(PREFIX + "/register", deregister)
    api.router.add_get(PREFIX + "/statuses", statuses)


def add_logo(app: web.Application) -> None:
    """The module's logo, which RetailCRM fetches: on the root application, outside /api/."""
    app.router.add_get(LOGO, logo)


logged_client = _client  # for admin/retailcrm_managers.py
