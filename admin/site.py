"""The admin site under /admin/: routes, and the middleware that gives every page its session, CSRF check,
language and security headers (a strict Content-Security-Policy: no inline script or style)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from admin import (
    i18n,
    views_amocrm,
    views_auth,
    views_calls,
    views_extensions,
    views_instance,
    views_log,
    views_managers,
    views_overview,
    views_retailcrm,
    views_routing,
)
from admin.auth import LinkSigner, load_session
from admin.pages import FRAME_ANCESTORS, JINJA, LANG, LINKS, SESSION, Refused, T, read_body, session, wants_json
from agent.web import keys
from agent.web.server import Handler

COOKIE = views_auth.COOKIE
NO_CSRF = {"/admin/retailcrm"}  # token-authenticated entry from the CRM, before any session exists
ANY_ROLE_POST = {"/admin/logout"}
JSON_EXT = "{ext:(?:\\.json)?}"
NUMBER = "{number:[A-Za-z0-9_-]{1,32}}"


def csp(extra_ancestors: list[str]) -> str:
    ancestors = " ".join(["'self'", *extra_ancestors])
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self';"
        f" form-action 'self'; base-uri 'none'; frame-ancestors {ancestors}"
    )


def _secure(request: web.Request, response: web.StreamResponse | web.HTTPException, remember_lang: bool) -> None:
    extra = request.app[FRAME_ANCESTORS]
    headers = response.headers
    headers["Content-Security-Policy"] = csp(extra)
    if not extra:
        headers["X-Frame-Options"] = "SAMEORIGIN"
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    if not request.path.startswith("/admin/static/"):
        headers["Cache-Control"] = "no-store"
    if remember_lang and isinstance(response, web.StreamResponse):
        response.set_cookie(i18n.COOKIE, request[LANG], max_age=365 * 86400, httponly=True, samesite="Lax", path="/")


async def _check_post(request: web.Request) -> None:
    who = session(request)
    body = await read_body(request)
    submitted = request.headers.get("X-CSRF-Token") or body.get("csrf_token", "")
    if not request.app[LINKS].csrf_ok(who, submitted):
        raise Refused(403, "error.csrf")
    if request.path not in ANY_ROLE_POST and not who.can_edit:
        raise Refused(403, "error.read_only")


async def refusal(request: web.Request, exc: Refused) -> web.Response:
    message = request[T](exc.key, **exc.values)
    if wants_json(request) or request.path.startswith("/admin/static/"):
        body: dict[str, object] = {"error": message}
        if exc.field:
            body["field"] = exc.field
        return web.json_response(body, status=exc.status)
    from admin.pages import answer

    return await answer(
        request,
        "error.html",
        {"status": exc.status, "message": message, "signin": exc.status == 401},
        status=exc.status,
    )


@web.middleware
async def admin_site(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path != "/admin" and not request.path.startswith("/admin/"):
        return await handler(request)
    lang, remember = i18n.choose(request)
    request[LANG] = lang
    request[T] = i18n.translator(lang)
    try:
        if not request.path.startswith("/admin/static/"):
            cookie = request.cookies.get(COOKIE, "")
            who = await load_session(request.app[keys.POOL], cookie) if cookie else None
            if who is not None:
                request[SESSION] = who
            if request.method not in ("GET", "HEAD") and request.path not in NO_CSRF:
                await _check_post(request)
        response = await handler(request)
    except Refused as exc:
        response = await refusal(request, exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            _secure(request, exc, remember)
            raise
        key = {404: "error.not_found", 405: "error.method"}.get(exc.status, "error.http")
        response = await refusal(request, Refused(exc.status, key, code=exc.status))
    _secure(request, response, remember)
    return response


async def redirect_slash(request: web.Request) -> web.StreamResponse:
    raise web.HTTPMovedPermanently("admin/")


def static_dir() -> Path:
    return Path(str(resources.files("admin") / "static"))


def add_routes(app: web.Application, secret: bytes) -> None:
    """Mount the admin site on the agent's app (one line in agent.parts.web.http_part)."""
    app[LINKS] = LinkSigner(secret)
    app[FRAME_ANCESTORS] = []  # hook: the CRM's origin, when its one-click link opens the pages in a frame
    aiohttp_jinja2.setup(
        app,
        app_key=JINJA,
        loader=jinja2.PackageLoader("admin", "templates"),
        autoescape=jinja2.select_autoescape(default=True),
        undefined=jinja2.StrictUndefined,
        filters={"when": views_overview.when, "pretty": views_calls.pretty},
        default_helpers=False,
    )
    app.middlewares.append(admin_site)
    r = app.router
    r.add_static("/admin/static/", static_dir(), name="admin-static")
    r.add_get("/admin", redirect_slash)
    r.add_get("/admin/", views_auth.home)
    r.add_get("/admin/login", views_auth.login)
    r.add_post("/admin/logout", views_auth.logout)
    r.add_route("*", "/admin/retailcrm", views_auth.retailcrm)
    r.add_get("/admin/go", views_auth.switch)
    r.add_route("*", f"/admin/instance{JSON_EXT}", views_instance.instance)
    r.add_get(f"/admin/{NUMBER}/overview{JSON_EXT}", views_overview.overview)
    r.add_get(f"/admin/{NUMBER}/calls{JSON_EXT}", views_calls.calls)
    r.add_route("*", f"/admin/{NUMBER}/calls/{{call_id:[^/]+?}}{JSON_EXT}", views_calls.call)
    r.add_route("*", f"/admin/{NUMBER}/log{JSON_EXT}", views_log.log)
    r.add_route("*", f"/admin/{NUMBER}/extensions{JSON_EXT}", views_extensions.extensions)
    r.add_route("*", f"/admin/{NUMBER}/routing{JSON_EXT}", views_routing.routing)
    r.add_route("*", f"/admin/{NUMBER}/retailcrm{JSON_EXT}", views_retailcrm.retailcrm)
    r.add_route("*", f"/admin/{NUMBER}/managers{JSON_EXT}", views_managers.managers)
    r.add_route("*", f"/admin/{NUMBER}/amocrm{JSON_EXT}", views_amocrm.amocrm)
    r.add_get(f"/admin/{NUMBER}/amocrm/connect", views_amocrm.connect)


__all__ = ["add_routes", "csp"]
