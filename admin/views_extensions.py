"""The enterprise's internal phones (user_internal_phones): names editable, added and removed by hand."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from admin.pages import Refused, after_post, answer, enterprise_of, iso, read_body, require_admin
from agent.web import keys

PHONE_RE = re.compile(r"[0-9*#]{1,20}")
NAME_MAX = 200
LIMIT = 2000
ACTIONS = ("add", "rename", "remove")


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
        added = await pool.fetchval(
            "INSERT INTO user_internal_phones (enterprise_number, phone_number, display_name) VALUES ($1, $2, $3)"
            " ON CONFLICT DO NOTHING RETURNING phone_number",
            number,
            f["phone_number"],
            f["display_name"],
        )
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
        form, errors = validate(body, action)
        if not errors:
            problem = await _apply(request, number, action, form)
            if problem is None:
                return after_post(request, {"action": action, **form})
            errors["phone_number"] = problem
        if request.content_type == "application/json":
            field = next(iter(errors))
            status = {"error.no_extension": 404, "error.extension_exists": 409}.get(errors[field], 400)
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
    data = {"enterprise": enterprise, "extensions": items, "errors": errors, "form": form}
    return await answer(request, "extensions.html", data, status=400 if errors else 200)
