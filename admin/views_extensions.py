"""The enterprise's internal phones (user_internal_phones): names editable, added and removed by hand, or found on
the enterprise's connected PBXs (`action=discover`, the same as `POST /api/enterprises/{n}/extensions/discover`)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from admin.extensions_api import NoPbx, discover_for
from admin.pages import Refused, after_post, answer, dumps, enterprise_of, iso, read_body, require_admin, wants_json
from agent.store import extensions as store
from agent.web import keys

PHONE_RE = re.compile(r"[0-9*#]{1,20}")
NAME_MAX = 200
LIMIT = 2000
ACTIONS = ("add", "rename", "remove")
DISCOVER = "discover"


def validate(body: dict[str, str], action: str) -> tuple[dict[str, str], dict[str, str]]:
    """(cleaned fields, error key per field) for one extensions form."""
    errors: dict[str, str] = {}
    phone = body.get("phone_number", "").strip()
    name = body.get("display_name", "").strip()
    if action not in ACTIONS:
        errors["action"] = "error.choice"
    if not PHONE_RE.fullmatch(phone):
        errors["phone_number"] = "error.extension"
    if len(name) > NAME_MAX or any(ord(c) < 32 for c in name):
        errors["display_name"] = "error.name"
    return {"phone_number": phone, "display_name": name}, errors


async def _apply(request: web.Request, number: str, action: str, f: dict[str, str]) -> str | None:
    pool = request.config_dict[keys.POOL]
    if action == "add":
        try:
            added = await store.add(pool, number, f["phone_number"], f["display_name"])
        except store.InvalidExtensions:  # the platform's table wants what only the platform fills (a password)
            return "error.extension_platform"
        return None if added else "error.extension_exists"
    if action == "rename":
        status = await pool.execute(
            "UPDATE user_internal_phones SET display_name = $3 WHERE enterprise_number = $1 AND phone_number = $2",
            number,
            f["phone_number"],
            f["display_name"],
        )
    else:
        status = await pool.execute(
            "DELETE FROM user_internal_phones WHERE enterprise_number = $1 AND phone_number = $2",
            number,
            f["phone_number"],
        )
    return None if status.endswith(" 1") else "error.no_extension"


async def _discover(request: web.Request, number: str) -> web.StreamResponse | str:
    """Ask the connected PBXs, then back to the page with what was added (`?found=`); else the error key."""
    try:
        added, _ = await discover_for(request.config_dict, number)
    except NoPbx:
        problem, status = "ext.error.no_pbx", 503
    except store.InvalidExtensions:
        problem, status = "error.extension_platform", 409
    else:
        if wants_json(request):
            return web.json_response({"added": added}, dumps=dumps)
        raise web.HTTPSeeOther("extensions?" + urlencode({"found": ",".join(added)}))
    if wants_json(request):
        raise Refused(status, problem, DISCOVER)
    return problem


async def extensions(request: web.Request) -> web.StreamResponse:
    enterprise = await enterprise_of(request)
    number = enterprise["number"]
    if request.method not in ("GET", "HEAD", "POST"):
        raise Refused(405, "error.method")
    errors: dict[str, str] = {}
    form: dict[str, str] = {}
    if request.method == "POST":
        require_admin(request)
        body = await read_body(request)
        action = body.get("action", "")
        if action == DISCOVER:
            outcome = await _discover(request, number)
            if not isinstance(outcome, str):
                return outcome
            errors[DISCOVER] = outcome
        else:
            form, errors = validate(body, action)
        if not errors and action != DISCOVER:
            problem = await _apply(request, number, action, form)
            if problem is None:
                return after_post(request, {"action": action, **form})
            errors["phone_number"] = problem
        if request.content_type == "application/json":
            field = next(iter(errors))
            status = {"error.no_extension": 404, "error.extension_exists": 409, "error.extension_platform": 409}.get(
                errors[field], 400
            )
            raise Refused(status, errors[field], field)
        form["action"] = action
    rows = await request.config_dict[keys.POOL].fetch(
        "SELECT phone_number, display_name, created_at FROM user_internal_phones WHERE enterprise_number = $1"
        f" ORDER BY length(phone_number), phone_number LIMIT {LIMIT}",
        number,
    )
    items: list[dict[str, Any]] = [
        {"phone_number": r["phone_number"], "display_name": r["display_name"], "created_at": iso(r["created_at"])}
        for r in rows
    ]
    found = request.query.get("found", "")
    discovered = {"added": found.split(",") if found else [], "none": request.query.get("found") == ""}
    data = {
        "enterprise": enterprise,
        "extensions": items,
        "errors": errors,
        "form": form,
        "discovered": discovered if "found" in request.query else None,
    }
    status = 503 if errors.get(DISCOVER) == "ext.error.no_pbx" else 400 if errors else 200
    return await answer(request, "extensions.html", data, status=status)
