"""The admin site as an aiohttp sub-application, which agent.app mounts at /admin/: its routes, and its
middleware that gives every page (static files, redirects and error pages included) its session, CSRF check,
language and security headers (a strict Content-Security-Policy: no inline script or style). The Jinja
environment and the sign-in link signer are the sub-application's own; the agent's parts (pool, config, ...)
are read through `request.config_dict`."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web
from markupsafe import Markup

from admin import (
    i18n,
    localtime,
    said,
    stats,
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
    views_stats,
    views_tokens,
)
from admin.auth import LinkSigner, load_session
from admin.crm_reads import CRM_READS, CrmReads
from admin.pages import FRAME_ANCESTORS, JINJA, LANG, LINKS, SESSION, Refused, T, read_body, session, wants_json
from agent.web import keys
from agent.web.server import Handler

PREFIX = "/admin"  # where agent.app mounts the sub-application; its routes below are relative to it
COOKIE = views_auth.COOKIE
STATIC = PREFIX + "/static/"
# entries before any session exists: the CRM's token-authenticated link; the password form (its own form token)
NO_CSRF = {PREFIX + "/retailcrm", PREFIX + "/login"}
ANY_ROLE_POST = {PREFIX + "/logout"}
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
    if not request.path.startswith(STATIC):
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
    if wants_json(request) or request.path.startswith(STATIC):
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
    lang, remember = i18n.choose(request)
    request[LANG] = lang
    request[T] = i18n.translator(lang)
    try:
        if not request.path.startswith(STATIC):
            cookie = request.cookies.get(COOKIE, "")
            who = await load_session(request.config_dict[keys.POOL], cookie) if cookie else None
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


def said_html(t: Callable[..., str], text: object, status: int | None = None, kind: str = "crm") -> Markup:
    return Markup(said.as_html(t, text, status, kind))  # escaped by as_html


def static_dir() -> Path:
    return Path(str(resources.files("admin") / "static"))


def create_app(secret: bytes) -> web.Application:
    """The sub-application (agent.parts.web.http_part mounts it at PREFIX)."""
    app = web.Application(middlewares=[admin_site])
    app[LINKS] = LinkSigner(secret)
    app[CRM_READS] = CrmReads()
    app[FRAME_ANCESTORS] = []  # hook: the CRM's origin, when its one-click link opens the pages in a frame
    filters: dict[str, Callable[..., str]] = {
        "when": localtime.when,
        "pretty": views_calls.pretty,
        "duration": stats.duration,
    }
    aiohttp_jinja2.setup(
        app,
        app_key=JINJA,
        loader=jinja2.PackageLoader("admin", "templates"),
        autoescape=jinja2.select_autoescape(default=True),
        undefined=jinja2.StrictUndefined,
        filters=filters,
        default_helpers=False,
    )
    env = aiohttp_jinja2.get_env(app, app_key=JINJA)
    env.globals.update(hour_columns=stats.hour_columns, bar_widths=stats.bar_widths, said_html=said_html)
    r = app.router
    r.add_static("/static/", static_dir(), name="admin-static")
    r.add_get("", redirect_slash)  # /admin itself
    r.add_get("/", views_auth.home)
    r.add_get("/login", views_auth.login)
    r.add_post("/login", views_auth.password_login)
    r.add_post("/logout", views_auth.logout)
    r.add_route("*", "/retailcrm", views_auth.retailcrm)
    r.add_get("/go", views_auth.switch)
    r.add_route("*", f"/instance{JSON_EXT}", views_instance.instance)
    r.add_route("*", f"/tokens{JSON_EXT}", views_tokens.tokens)
    r.add_get(f"/{NUMBER}/overview{JSON_EXT}", views_overview.overview)
    r.add_get(f"/{NUMBER}/stats{JSON_EXT}", views_stats.statistics)
    r.add_get(f"/{NUMBER}/calls{JSON_EXT}", views_calls.calls)
    r.add_route("*", f"/{NUMBER}/calls/{{call_id:[^/]+?}}{JSON_EXT}", views_calls.call)
    r.add_route("*", f"/{NUMBER}/log{JSON_EXT}", views_log.log)
    r.add_route("*", f"/{NUMBER}/extensions{JSON_EXT}", views_extensions.extensions)
    r.add_route("*", f"/{NUMBER}/routing{JSON_EXT}", views_routing.routing)
    r.add_route("*", f"/{NUMBER}/retailcrm{JSON_EXT}", views_retailcrm.retailcrm)
    r.add_route("*", f"/{NUMBER}/managers{JSON_EXT}", views_managers.managers)
    r.add_route("*", f"/{NUMBER}/amocrm{JSON_EXT}", views_amocrm.amocrm)
    r.add_get(f"/{NUMBER}/amocrm/connect", views_amocrm.connect)
    return app


__all__ = ["PREFIX", "create_app", "csp"]
