"""Signing in (one-time link, CRM one-click link), signing out, and the way into the pages."""

from __future__ import annotations

import logging
import re
import secrets

from aiohttp import web

from admin import passwords
from admin.auth import LEGACY_SECRET_FILE, SESSION_HOURS, close_session, legacy_account_token_ok, open_session, use_link
from admin.pages import LINKS, SESSION, Refused, T, answer, read_body, session
from agent.web import keys
from agent.web.tokens import TokenError
from connectors.retailcrm import store as retailcrm_store

COOKIE = "pbx_admin"
FORM_COOKIE = "pbx_login"  # the sign-in form's random nonce; the form carries its HMAC (see password_login)
log = logging.getLogger(__name__)
NUMBER_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")


async def _start_session(request: web.Request, enterprise: str | None, role: str, source: str) -> web.StreamResponse:
    pool = request.config_dict[keys.POOL]
    previous = request.get(SESSION)
    if previous is not None:
        await close_session(pool, previous)
    cookie = await open_session(pool, enterprise, role, source)
    response = web.HTTPSeeOther("./")  # /admin/login -> /admin/, whatever prefix a proxy adds
    response.set_cookie(
        COOKIE,
        cookie,
        httponly=True,
        samesite="Lax",
        path="/",
        max_age=int(SESSION_HOURS * 3600),
        secure=request.config_dict[keys.CONFIG].agent.public_url.startswith("https:"),
    )
    raise response


async def login(request: web.Request) -> web.StreamResponse:
    """GET /admin/login?token=…: a link from `pbx-agent admin-link`, good once. Without a token: the password form."""
    if "token" not in request.query:
        return await _password_form(request)
    try:
        claims = request.app[LINKS].verify(request.query.get("token", ""))
    except TokenError:
        raise Refused(401, "error.link_invalid") from None
    if not await use_link(request.config_dict[keys.POOL], claims):
        current = request.get(SESSION)
        if current is not None and (current.enterprise, current.role) == (claims.enterprise, claims.role):
            # the browser this link already signed in (a reload, a second click): it only opens the site; a
            # messenger's preview or another browser has no such session and is refused as before
            raise web.HTTPSeeOther("./")
        raise Refused(401, "error.link_used")
    return await _start_session(request, claims.enterprise, claims.role, claims.source)


async def retailcrm(request: web.Request) -> web.StreamResponse:
    """GET or POST /admin/retailcrm?enterprise_number=N&token=JWT: RetailCRM's one-click link (the module's
    accountUrl). The token is the one registration issued (`source: "retailcrm"`, enterprise N) and still the
    enterprise's current one (re-registration and «Удалить интеграцию» revoke it); it opens an
    enterprise-admin session for N only.
    TODO(retailcrm pages): to open the pages inside RetailCRM's frame, add its origin to app[FRAME_ANCESTORS]
    and give that session a SameSite=None cookie.
    """
    params = dict(request.query)
    if request.method == "POST":
        params.update(await read_body(request))
    elif request.method != "GET":
        raise Refused(405, "error.method")
    number = params.get("enterprise_number", "")
    try:
        principal = request.config_dict[keys.SIGNER].verify(params.get("token", ""))
    except TokenError:
        if await _old_service_link(request, number, params.get("token", "")):
            return await _start_session(request, number, "admin", "retailcrm-legacy")
        raise Refused(401, "error.link_invalid") from None
    if principal.source != "retailcrm" or principal.enterprise != number or not NUMBER_RE.fullmatch(number):
        raise Refused(401, "error.link_invalid")
    if not await retailcrm_store.token_current(
        request.config_dict[keys.POOL], principal.source, principal.enterprise, principal.token_id
    ):
        raise Refused(401, "error.link_revoked")
    return await _start_session(request, number, "admin", "retailcrm")


async def _old_service_link(request: web.Request, number: str, token: str) -> bool:
    """The accountUrl the old service registered (its token, signed with its secret), while the agent has not
    registered the module for the enterprise yet: registering rotates the link, and the old one stops."""
    if not NUMBER_RE.fullmatch(number) or not token:
        return False
    path = request.config_dict[keys.CONFIG].agent.state_dir / LEGACY_SECRET_FILE
    try:
        secret = path.read_bytes().strip()
    except OSError:
        return False
    if not legacy_account_token_ok(secret, token, number):
        return False
    return not await retailcrm_store.registered_by_agent(request.config_dict[keys.POOL], number)


async def logout(request: web.Request) -> web.StreamResponse:
    await close_session(request.config_dict[keys.POOL], session(request))
    request.pop(SESSION, None)
    response = await answer(request, "message.html", {"message_key": "auth.signed_out"})
    response.del_cookie(COOKIE, path="/")
    return response


async def home(request: web.Request) -> web.StreamResponse:
    who = session(request)
    raise web.HTTPSeeOther("instance" if who.is_instance else f"{who.enterprise}/overview")


async def switch(request: web.Request) -> web.StreamResponse:
    """GET /admin/go?enterprise=N: the enterprise switcher's form."""
    session(request)
    number = request.query.get("enterprise", "")
    if not NUMBER_RE.fullmatch(number):
        raise Refused(400, "error.no_enterprise", "enterprise", number=number)
    raise web.HTTPSeeOther(f"{number}/overview")


async def _password_form(
    request: web.Request, number: str = "", error: str | None = None, status: int = 200, **values: object
) -> web.StreamResponse:
    nonce = request.cookies.get(FORM_COOKIE, "")
    fresh = not (0 < len(nonce) <= 100)
    if fresh:
        nonce = secrets.token_urlsafe(24)
    data = {
        "form_token": request.app[LINKS].login_form_token(nonce),
        "number": number,
        "error": request[T](error, **values) if error else "",
    }
    response = await answer(request, "login.html", data, status=status)
    if fresh:
        response.set_cookie(FORM_COOKIE, nonce, httponly=True, samesite="Strict", path="/", max_age=86400)
    return response


async def password_login(request: web.Request) -> web.StreamResponse:
    """POST /admin/login: an enterprise number and its password (`pbx-agent admin-password`).

    Login CSRF (a foreign page signing the browser in as someone else) is stopped by a double-submit token: the
    form's hidden field must be the HMAC of this browser's own FORM_COOKIE nonce, which another site can neither
    read nor set (SameSite=Strict, HttpOnly); unlike an Origin check it does not depend on what a browser sends.
    """
    body = await read_body(request)
    if not request.app[LINKS].login_form_ok(request.cookies.get(FORM_COOKIE, ""), body.get("form_token", "")):
        raise Refused(403, "error.csrf")
    number = body.get("enterprise", "").strip()
    password = body.get("password", "")
    if not NUMBER_RE.fullmatch(number) or not password or len(password) > passwords.PASSWORD_MAX:
        return await _password_form(request, number if NUMBER_RE.fullmatch(number) else "", "error.password", 401)
    pool = request.config_dict[keys.POOL]
    outcome = await passwords.check(pool, number, request.remote or "", password)
    if outcome.role is not None:
        log.info("admin: enterprise %s signed in with its password as %s", number, outcome.role)
        return await _start_session(request, number, outcome.role, "password")
    if outcome.locked:
        log.warning("admin: password sign-in to enterprise %s locked for %s after failures", number, request.remote)
        return await _password_form(request, number, "error.password_locked", 429, minutes=passwords.LOCKOUT_MINUTES)
    return await _password_form(request, number, "error.password", 401)
