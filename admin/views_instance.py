"""The instance page (instance admins only): enterprises (add, rename, remove), agent health, PBX links.

The list is the switcher's: the enterprises in the database and those only named in agent.toml (`stored`
false). Removing asks which: `data=keep` hides the enterprise and deletes nothing (other services reading the
platform's tables see no change; adding the number again restores it), `data=remove` deletes the agent's rows
for it and its enterprises row; either needs `confirm` = the enterprise's number."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from admin.pages import Refused, after_post, answer, read_body, require_admin, session
from admin.views_overview import pbx_links
from agent.config.checks import check_enterprise
from agent.store import enterprises
from agent.web import keys

NAME_MAX = 200
ACTIONS = ("add", "rename", "remove")
DATA = ("keep", "remove")
STATUS = {
    "error.enterprise_exists": 409,
    "instance.error.unknown": 404,
    "instance.error.platform_row": 409,
    "instance.error.referenced": 409,
    "instance.error.configured": 409,
}


def validate(body: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    action = body.get("action", "") or "add"
    number, name = body.get("number", "").strip(), body.get("name", "").strip()
    form = {"action": action, "number": number, "name": name}
    errors: dict[str, str] = {}
    if action not in ACTIONS:
        errors["action"] = "error.choice"
    if check_enterprise(number):
        errors["number"] = "error.enterprise_number"
    if action != "remove" and (not name or len(name) > NAME_MAX or any(ord(c) < 32 for c in name)):
        errors["name"] = "error.name"
    if action == "remove":
        form["data"], form["confirm"] = body.get("data", ""), body.get("confirm", "").strip()
        if form["data"] not in DATA:
            errors["data"] = "instance.error.data"
        if form["confirm"] != number:
            errors["confirm"] = "instance.error.confirm"
    return form, errors


async def _apply(request: web.Request, form: dict[str, str]) -> dict[str, str]:
    """Errors {field: key} of one change, none when it was made."""
    pool = request.config_dict[keys.POOL]
    number, action = form["number"], form["action"]
    row = await pool.fetchrow(f"SELECT {enterprises.NOT_REMOVED} AS listed FROM enterprises WHERE number = $1", number)
    if action == "add":
        if row is not None and row["listed"]:
            return {"number": "error.enterprise_exists"}
        try:
            if row is not None:
                await enterprises.restore(pool, number, form["name"])
            else:
                await enterprises.put(pool, number, form["name"])
        except asyncpg.NotNullViolationError:  # the platform's table wants more than a number and a name
            return {"number": "instance.error.platform_row"}
        return {}
    configured = number in request.config_dict[keys.CONFIG].enterprises
    if action == "rename" and row is None and configured:  # named in agent.toml only: the name makes its row
        await enterprises.put(pool, number, form["name"])
        return {}
    if row is None or not row["listed"]:
        return {"number": "instance.error.unknown"}
    if action == "rename":
        await enterprises.rename(pool, number, form["name"])
        return {}
    if configured:
        return {"number": "instance.error.configured"}
    try:
        await enterprises.remove(pool, number, with_data=form["data"] == "remove")
    except enterprises.StillReferenced:
        return {"data": "instance.error.referenced"}
    return {}


async def _listed(request: web.Request) -> list[dict[str, Any]]:
    rows = await request.config_dict[keys.POOL].fetch(
        "SELECT number, name, integrations_config FROM enterprises"
        f" WHERE {enterprises.NOT_REMOVED} ORDER BY number LIMIT 1000"
    )
    listed: dict[str, dict[str, Any]] = {
        r["number"]: {
            "number": r["number"],
            "name": r["name"],
            "crms": sorted(k for k, v in (r["integrations_config"] or {}).items() if isinstance(v, dict)),
            "stored": True,
        }
        for r in rows
    }
    for number in request.config_dict[keys.CONFIG].enterprises:  # as the switcher lists them
        listed.setdefault(number, {"number": number, "name": "", "crms": [], "stored": False})
    return [listed[n] for n in sorted(listed)]


async def instance(request: web.Request) -> web.StreamResponse:
    if not session(request).is_instance:
        raise Refused(403, "error.instance_only")
    if request.method not in ("GET", "HEAD", "POST"):
        raise Refused(405, "error.method")
    errors: dict[str, str] = {}
    form: dict[str, str] = {}
    if request.method == "POST":
        require_admin(request)
        form, errors = validate(await read_body(request))
        if not errors:
            errors = await _apply(request, form)
            if not errors:
                return after_post(request, form)
        if request.content_type == "application/json":
            field = next(iter(errors))
            raise Refused(STATUS.get(errors[field], 400), errors[field], field)
    health = await request.config_dict[keys.HEALTH].report()
    components = [
        {"name": name, "status": c["status"], "critical": c["critical"], "error": c.get("error")}
        for name, c in sorted(health["components"].items())
    ]
    data = {
        "enterprises": await _listed(request),
        "health": {"status": health["status"], "components": components},
        "pbx": pbx_links(request, None),
        "errors": errors,
        "form": form,
    }
    return await answer(
        request, "instance.html", data, status=STATUS.get(next(iter(errors.values()), ""), 400) if errors else 200
    )
