"""API tokens (instance admins only): the tokens `pbx-agent token` issued, each revocable alone."""

from __future__ import annotations

from aiohttp import web

from admin.pages import Refused, after_post, answer, read_body, require_admin, session
from agent.store import api_tokens
from agent.web import keys


async def tokens(request: web.Request) -> web.StreamResponse:
    if not session(request).is_instance:
        raise Refused(403, "error.instance_only")
    if request.method not in ("GET", "HEAD", "POST"):
        raise Refused(405, "error.method")
    pool = request.config_dict[keys.POOL]
    if request.method == "POST":
        require_admin(request)
        jti = (await read_body(request)).get("revoke", "").strip()
        if not jti or not await api_tokens.revoke(pool, jti):
            raise Refused(404, "tokens.unknown", "revoke")
        return after_post(request, {"revoked": jti})
    return await answer(request, "tokens.html", {"tokens": await api_tokens.listing(pool)})
