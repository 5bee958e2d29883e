"""The instance page (instance admins only): enterprises and adding one, agent health, PBX links."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from admin.pages import Refused, after_post, answer, read_body, require_admin, session
from admin.views_overview import pbx_links
from agent.config.checks import check_enterprise
from agent.store import enterprises
from agent.web import keys

NAME_MAX = 200


def validate(body: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    number, name = body.get("number", "").strip(), body.get("name", "").strip()
    errors: dict[str, str] = {}
    if check_enterprise(number):
        errors["number"] = "error.enterprise_number"
    if not name or len(name) > NAME_MAX or any(ord(c) < 32 for c in name):
        errors["name"] = "error.name"
    return {"number": number, "name": name}, errors


async def instance(request: web.Request) -> web.StreamResponse:
    if not session(request).is_instance:
        raise Refused(403, "error.instance_only")
    if request.method not in ("GET", "HEAD", "POST"):
        raise Refused(405, "error.method")
    pool = request.config_dict[keys.POOL]
    errors: dict[str, str] = {}
    form: dict[str, str] = {}
    if request.method == "POST":
        require_admin(request)
        form, errors = validate(await read_body(request))
        if not errors:
            exists = await pool.fetchval("SELECT 1 FROM enterprises WHERE number = $1", form["number"])
            if exists:
                errors["number"] = "error.enterprise_exists"
            else:
                await enterprises.put(pool, form["number"], form["name"])
                return after_post(request, form)
        if request.content_type == "application/json":
            field = next(iter(errors))
            raise Refused(409 if errors[field] == "error.enterprise_exists" else 400, errors[field], field)
    rows = await pool.fetch(
        "SELECT number, name, integrations_config, created_at FROM enterprises ORDER BY number LIMIT 1000"
    )
    listed: list[dict[str, Any]] = [
        {
            "number": r["number"],
            "name": r["name"],
            "crms": sorted(k for k, v in (r["integrations_config"] or {}).items() if isinstance(v, dict)),
        }
        for r in rows
    ]
    health = await request.config_dict[keys.HEALTH].report()
    components = [
        {"name": name, "status": c["status"], "critical": c["critical"], "error": c.get("error")}
        for name, c in sorted(health["components"].items())
    ]
    data = {
        "enterprises": listed,
        "health": {"status": health["status"], "components": components},
        "pbx": pbx_links(request, None),
        "errors": errors,
        "form": form,
    }
    return await answer(request, "instance.html", data, status=400 if errors else 200)
