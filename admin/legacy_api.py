"""The URLs of the RetailCRM service the agent replaces (port 8019, ../shared/seeds/001_*, 003_*), answered from the
agent's own data in the shapes that service gave, so the platform's other services keep working at the cut-over.

JSON, behind the API's bearer token (admin/api.py), at each place the old service answered them: `/api/...` (the
agent's API; also what the documented nginx prefix `/retailcrm/api/` reaches), `/retailcrm/api/...` (a caller that
reaches the agent without that nginx) and `/retailcrm-admin/api/...` (the old admin page's own calls):

- `GET internal-phones/{n}`: `{"success", "phones": [{"phone_number", "user_id", "owner"}], "total"}`;
- `GET user-extensions/{n}`: `{"success", "user_extensions": {crm user id: extension}, "total"}`;
- `POST save-extensions/{n}` `{"extensions": {user id: extension | "" | null}}`, `POST sync-extensions/{n}`;
- `GET/PUT/DELETE config/{n}` (`{"enterprise_number", "config"}`, secrets masked), `POST config/{n}/test`,
  `POST register/{n}` (`{domain, api_key, enabled}`: save, then «Save and register»);
- `events`, `smart-redirect`: planned there, never built; `410` naming what replaced them (AMI, FastAGI).

An error is `{"success": false, "error": ..., "detail": ...}` (`detail`: what the old FastAPI service's errors had).
Also `/retailcrm-admin/` itself, the old admin entry and accountUrl: a redirect into the agent's admin.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from admin import api, retailcrm_managers
from admin import retailcrm_api as rc
from admin.api import _enterprise
from agent.store import enterprises, extensions
from agent.web import keys
from agent.web.keys import Parts
from connectors.base import CrmError
from connectors.retailcrm.legacy import adapt
from connectors.retailcrm.settings import SettingsError, parse

CRM = rc.CRM
MOUNTS = ("/retailcrm/api", "/retailcrm-admin/api")  # besides /api itself
ENTRY = "/retailcrm-admin/"
GONE = {
    "events": "call events come from Asterisk's AMI: the agent listens to each PBX itself (agent.toml [[pbx]])",
    "smart-redirect": "the dialplan asks the agent over FastAGI (agent.toml [agi] listen; README «Smart redirect»)",
}
NUMBER = "{number:[A-Za-z0-9_-]{1,32}}"


def failed(status: int, message: str, field: str | None = None) -> web.Response:
    body: dict[str, Any] = {"success": False, "error": message, "detail": message}
    if field:
        body["field"] = field
    return web.json_response(body, status=status)


def answers(route: rc.Route) -> rc.Route:
    """A route that answers its Problems and RetailCRM's refusals in the old service's error shape."""

    async def wrapped(request: web.Request) -> web.Response:
        try:
            return await route(request)
        except rc.Problem as p:
            return failed(p.status, p.message, p.field)
        except CrmError as exc:
            return failed(502, f"RetailCRM: {exc.outcome.error or exc.outcome.status}")

    return wrapped


async def _known(parts: Parts, number: str) -> None:
    if await enterprises.get(parts[keys.POOL], number) is None:
        raise rc.Problem(404, f"no enterprise {number}")


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    return await api._json_object(request)


# -- extensions ------------------------------------------------------------------------------------


@answers
async def internal_phones(request: web.Request) -> web.Response:
    number = _enterprise(request)
    await _known(request.config_dict, number)
    phones = await extensions.with_owners(request.config_dict[keys.POOL], number)
    listed = [{"phone_number": p.extension, "user_id": p.user_id, "owner": p.owner} for p in phones]
    return web.json_response({"success": True, "phones": listed, "total": len(listed)})


@answers
async def user_extensions(request: web.Request) -> web.Response:
    """The mapping; an enterprise without RetailCRM settings has none (the old service answered `{}` too)."""
    number = _enterprise(request)
    await _known(request.config_dict, number)
    stored = await enterprises.get_integration(request.config_dict[keys.POOL], number, CRM)
    mapping = dict((await rc.load_settings(request.config_dict, number)).user_extensions) if stored else {}
    return web.json_response({"success": True, "user_extensions": mapping, "total": len(mapping)})


def _assignments(body: dict[str, Any]) -> dict[str, str | None]:
    """`{"extensions": {user id: extension}}`; "", null or the old page's "REMOVE" take the extension away."""
    given = body.get("extensions", body.get("user_extensions"))
    if not isinstance(given, dict):
        raise rc.Problem(400, "must be an object {crm_user_id: extension}", "extensions")
    out: dict[str, str | None] = {}
    for user, ext in given.items():
        if isinstance(ext, int) and not isinstance(ext, bool):
            ext = str(ext)
        if ext is not None and not isinstance(ext, str):
            raise rc.Problem(400, 'an extension is a string, a number, "" or null', f"extensions.{user}")
        out[str(user)] = None if ext in (None, "", "REMOVE") else ext.strip()
    return out


@answers
async def save_extensions(request: web.Request) -> web.Response:
    """Assign the given users' extensions (an extension given to another user moves), keep the others', copy the
    result to the module's additionalCodes. The old page sent every user's assignment; a caller sending some
    changes only those (the tolerant reading: nobody loses an extension by being left out). An extension missing
    from the enterprise's list is stored and reported in `unknown_extensions`, as the old service stored any code:
    its page sent every manager's assignment, so refusing one stale extension would refuse the whole save (the
    bearer API's PUT .../retailcrm/extensions refuses it, retailcrm_managers.refusals)."""
    number = _enterprise(request)
    saved = await retailcrm_managers.save_mapping(
        request.config_dict, number, _assignments(await _body(request)), replace=False
    )
    codes = [{"userId": user, "code": ext} for user, ext in saved["user_extensions"].items()]
    answer = {"success": saved["sync"]["ok"], "saved_extensions": len(codes), "assignments": codes, **saved}
    if not saved["sync"]["ok"]:
        answer["error"] = answer["detail"] = f"saved, but not copied to RetailCRM: {saved['sync']['error']}"
    return web.json_response(answer, status=200 if saved["sync"]["ok"] else 502)


@answers
async def sync_extensions(request: web.Request) -> web.Response:
    """Copy the local mapping to the module's additionalCodes (ours wins)."""
    number = _enterprise(request)
    saved = await retailcrm_managers.save_mapping(request.config_dict, number, {}, replace=False)
    mapping = saved["user_extensions"]
    if not saved["sync"]["ok"]:
        return failed(502, f"RetailCRM: {saved['sync']['error']}")
    return web.json_response({"success": True, "synced_extensions": len(mapping), "local_extensions": mapping})


# -- config ----------------------------------------------------------------------------------------


async def shown_config(parts: Parts, number: str) -> dict[str, Any]:
    pool, box = parts[keys.POOL], parts[keys.SECRETS]
    stored = await enterprises.get_integration(pool, number, CRM)
    if not stored:
        return {}
    return enterprises.masked(box, CRM, adapt(stored, timezone=await enterprises.timezone_of(pool, number)))


async def save_config(parts: Parts, number: str, given: dict[str, Any]) -> dict[str, Any]:
    """The given keys over the stored record (old or agent layout; a masked secret keeps the stored one)."""
    await _known(parts, number)
    pool, box = parts[keys.POOL], parts[keys.SECRETS]
    given = dict(given)
    if "api_url" in given and "domain" not in given:
        given["domain"] = given.pop("api_url")
    zone = await enterprises.timezone_of(pool, number)
    current = adapt(await enterprises.get_integration(pool, number, CRM) or {}, timezone=zone)
    wanted = {**enterprises.masked(box, CRM, current), **given}
    try:
        settings = parse(adapt(enterprises.unmask(box, CRM, wanted, current), timezone=zone))
    except SettingsError as exc:
        raise rc.Problem(400, exc.message, exc.field) from None
    await enterprises.put_integration(pool, box, number, CRM, settings.to_json())
    return await shown_config(parts, number)


@answers
async def get_config(request: web.Request) -> web.Response:
    number = _enterprise(request)
    await _known(request.config_dict, number)
    return web.json_response({"enterprise_number": number, "config": await shown_config(request.config_dict, number)})


@answers
async def put_config(request: web.Request) -> web.Response:
    """`{"config": {...}}` (the old body); a bare settings object is taken too."""
    number = _enterprise(request)
    body = await _body(request)
    given = body.get("config", body)
    if not isinstance(given, dict):
        raise rc.Problem(400, "must be an object", "config")
    config = await save_config(request.config_dict, number, given)
    return web.json_response({"success": True, "enterprise_number": number, "config": config})


@answers
async def delete_config(request: web.Request) -> web.Response:
    """«Удалить интеграцию»: the module switched off (if RetailCRM lets us), then the settings removed."""
    number = _enterprise(request)
    parts = request.config_dict
    await _known(parts, number)
    crm_error = None
    try:
        await rc.deregister_module(parts, number)
    except rc.Problem as exc:
        crm_error = exc.message
    if not await enterprises.delete_integration(parts[keys.POOL], number, CRM):
        raise rc.Problem(404, "Конфигурация не найдена")
    return web.json_response({"success": True, "deleted": True, "module_error": crm_error})


@answers
async def test_config(request: web.Request) -> web.Response:
    """The stored settings, or the posted ones (`{"config": {...}}` or bare) before they are saved."""
    number = _enterprise(request)
    parts = request.config_dict
    body = await _body(request)
    given = body.get("config", body)
    if isinstance(given, dict) and given:
        settings = await rc.settings_to_test(parts, number, {**await shown_config(parts, number), **given})
    else:
        settings = await rc.load_settings(parts, number)
    report = await rc.connection_report(parts, number, settings)
    return web.json_response({"success": report["ok"], **report})


@answers
async def register(request: web.Request) -> web.Response:
    """The old «Сохранить и зарегистрировать»: `{domain, api_key, enabled}` saved (when given), module registered."""
    number = _enterprise(request)
    parts = request.config_dict
    body = await _body(request)
    given: dict[str, Any] = {
        k: body[k] for k in ("domain", "api_url", "api_key", "enabled") if body.get(k) not in (None, "")
    }
    if given:
        await save_config(parts, number, given)
    result = await rc.register_module(parts, number)
    return web.json_response({"success": True, "result": result, **result})


def _gone(path: str) -> rc.Route:
    async def gone(request: web.Request) -> web.Response:
        message = f"/api/{path} was never built here: {GONE[path]}"
        return web.json_response({"success": False, "error": message, "detail": message}, status=410)

    return gone


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get(f"/internal-phones/{NUMBER}", internal_phones)
    r.add_get(f"/user-extensions/{NUMBER}", user_extensions)
    r.add_post(f"/save-extensions/{NUMBER}", save_extensions)
    r.add_post(f"/sync-extensions/{NUMBER}", sync_extensions)
    r.add_get(f"/config/{NUMBER}", get_config)
    r.add_put(f"/config/{NUMBER}", put_config)
    r.add_post(f"/config/{NUMBER}", put_config)
    r.add_delete(f"/config/{NUMBER}", delete_config)
    r.add_post(f"/config/{NUMBER}/test", test_config)
    r.add_post(f"/config/test/{NUMBER}", test_config)
    r.add_post(f"/register/{NUMBER}", register)
    for path in GONE:  # answered without a token (api.OPEN_ROUTES): it says nothing but where to go
        r.add_route("*", f"/{path}", _gone(path), name=f"{api.OPEN_ROUTE}{path}")
        r.add_route("*", f"/{path}/{{tail:.*}}", _gone(path), name=f"{api.OPEN_ROUTE}{path}-tail")


def create_app() -> web.Application:
    """The same routes on their own sub-application (for MOUNTS), behind the same bearer check as /api."""
    app = web.Application(middlewares=[api.bearer_auth])
    add_routes(app)
    return app


async def entry(request: web.Request) -> web.StreamResponse:
    """`/retailcrm-admin/?enterprise_number=N[&token=T]`: with a token (the module's accountUrl, the agent's or the
    old service's), on to the agent's one-click sign-in, the method kept; without, to the enterprise's page."""
    number = request.query.get("enterprise_number", "")
    base = "../admin/" if request.path.endswith("/") else "admin/"
    if request.query.get("token"):
        query = urlencode({"enterprise_number": number, "token": request.query["token"]})
        raise web.HTTPTemporaryRedirect(f"{base}retailcrm?{query}")
    valid = bool(number) and all(c.isalnum() or c in "-_" for c in number) and len(number) <= 32
    raise web.HTTPSeeOther(f"{base}{number}/retailcrm" if valid else base)


def add_entry(app: web.Application) -> None:
    app.router.add_route("*", ENTRY, entry)
    app.router.add_route("*", ENTRY.rstrip("/"), entry)
    for prefix in MOUNTS:
        app.add_subapp(prefix, create_app())
