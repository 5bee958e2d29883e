"""Access (instance admins only): the API tokens `pbx-agent token` issued, each revocable alone, and sign-in
links for an enterprise's admin or viewer, issued here and revocable until used."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from admin.auth import LINK_MINUTES_DEFAULT, LINK_MINUTES_MAX, ROLES
from admin.pages import LINKS, Refused, after_post, answer, read_body, require_admin, session
from agent.store import api_tokens
from agent.store.database import Pool
from agent.web import keys

LINKS_LISTED = """
SELECT i.jti, i.enterprise_number, i.role, i.issued_at, i.expires_at, i.revoked_at,
       u.jti IS NOT NULL AND i.revoked_at IS NULL AS used
FROM admin_links_issued i LEFT JOIN admin_links_used u ON u.jti = i.jti
WHERE i.expires_at > now() ORDER BY i.issued_at DESC LIMIT 200
"""


async def tokens(request: web.Request) -> web.StreamResponse:
    if not session(request).is_instance:
        raise Refused(403, "error.instance_only")
    if request.method not in ("GET", "HEAD", "POST"):
        raise Refused(405, "error.method")
    pool = request.config_dict[keys.POOL]
    issued: str | None = None
    if request.method == "POST":
        require_admin(request)
        body = await read_body(request)
        if "revoke" in body:
            if not await api_tokens.revoke(pool, body["revoke"].strip()):
                raise Refused(404, "tokens.unknown", "revoke")
            return after_post(request, {"revoked": body["revoke"].strip()})
        if "revoke_link" in body:
            if not await revoke_link(pool, body["revoke_link"].strip()):
                raise Refused(404, "links.unknown", "revoke_link")
            return after_post(request, {"revoked_link": body["revoke_link"].strip()})
        issued = await issue_link(request, pool, body)
    data: dict[str, Any] = {
        "tokens": await api_tokens.listing(pool),
        "links": [_link_row(r) for r in await pool.fetch(LINKS_LISTED)],
        "enterprises": [r["number"] for r in await pool.fetch("SELECT number FROM enterprises ORDER BY number")],
        "roles": list(ROLES),
        "minutes_default": LINK_MINUTES_DEFAULT,
        "issued_link": issued,
        "errors": {},
    }
    return await answer(request, "tokens.html", data)


async def issue_link(request: web.Request, pool: Pool, body: dict[str, str]) -> str:
    """A one-time sign-in link for one enterprise (or the instance), shown once on the page that answers."""
    number = body.get("enterprise", "").strip() or None
    role = body.get("role", "admin")
    try:
        minutes = float(body.get("minutes", "") or LINK_MINUTES_DEFAULT)
    except ValueError:
        minutes = -1
    if role not in ROLES:
        raise Refused(400, "error.choice", "role")
    if not 0 < minutes <= LINK_MINUTES_MAX:
        raise Refused(400, "links.minutes_bad", "minutes")
    if number is not None and not await pool.fetchval("SELECT 1 FROM enterprises WHERE number = $1", number):
        raise Refused(400, "error.enterprise_number", "enterprise")
    token = request.app[LINKS].issue(number, role, minutes)
    claims = request.app[LINKS].verify(token)
    now = datetime.now(UTC)
    await pool.execute(
        "INSERT INTO admin_links_issued (jti, enterprise_number, role, issued_at, expires_at)"
        " VALUES ($1, $2, $3, $4, $5)",
        claims.jti,
        number,
        role,
        now,
        now + timedelta(minutes=minutes),
    )
    return f"{request.config_dict[keys.CONFIG].agent.public_url}/admin/login?token={token}"


async def revoke_link(pool: Pool, jti: str) -> bool:
    """A link not used yet becomes unusable: recorded as used (what makes `use_link` refuse it)."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "UPDATE admin_links_issued SET revoked_at = now() WHERE jti = $1 AND revoked_at IS NULL"
            " AND NOT EXISTS (SELECT 1 FROM admin_links_used WHERE jti = $1) RETURNING expires_at",
            jti,
        )
        if row is None:
            return False
        await conn.execute(
            "INSERT INTO admin_links_used (jti, expires_at) VALUES ($1, $2) ON CONFLICT DO NOTHING", jti, row[0]
        )
    return True


def _link_row(r: Any) -> dict[str, Any]:
    state = "revoked" if r["revoked_at"] else "used" if r["used"] else "open"
    return {
        "id": r["jti"],
        "enterprise": r["enterprise_number"],
        "role": r["role"],
        "issued_at": r["issued_at"].isoformat(),
        "expires_at": r["expires_at"].isoformat(),
        "state": state,
    }
