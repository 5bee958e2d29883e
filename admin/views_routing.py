"""The enterprise's routing rules (working hours, holidays, history, blocklist, per-DID rules) as the JSON
document the API takes, edited in place: the same validation (the error names the field), the same
store (NOTIFY, so every agent uses the new rules at once)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from admin.pages import Refused, after_post, answer, enterprise_of, read_body, require_admin, wants_json
from agent.redirect.rules import RulesError
from agent.store import routing_rules as routing_store
from agent.web import keys

EXAMPLE = {
    "timezone": "Europe/Minsk",
    "hours": {day: [["09:00", "18:00"]] for day in ("mon", "tue", "wed", "thu", "fri")},
    "holidays": ["2027-01-01"],
    "history_days": 30,
    "blocklist": ["+37529000*"],
    "did_rules": {"375173880000": {"default_extension": "150", "crm_delivery": True}},
}


async def routing(request: web.Request) -> web.StreamResponse:
    enterprise = await enterprise_of(request)
    number = enterprise["number"]
    pool = request.config_dict[keys.POOL]
    if request.method not in ("GET", "HEAD", "POST"):
        raise Refused(405, "error.method")
    errors: dict[str, str] = {}
    text = ""
    if request.method == "POST":
        require_admin(request)
        document: Any = None
        if wants_json(request) and request.content_type == "application/json":
            document = await request.json()
            text = json.dumps(document, ensure_ascii=False, indent=2)
        else:
            text = (await read_body(request)).get("rules", "")
            try:
                document = json.loads(text or "{}")
            except json.JSONDecodeError as exc:
                errors["rules"] = f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        if not errors and not isinstance(document, dict):
            errors["rules"] = "the rules are one JSON object"
        if not errors:
            try:
                await routing_store.put(pool, number, document)
            except RulesError as exc:
                errors["rules"] = f"{exc.field}: {exc.message}"
            else:
                return after_post(request, {"rules": document})
        if request.content_type == "application/json":
            raise Refused(400, errors["rules"], "rules")
    stored = await routing_store.get_raw(pool, number)
    data = {
        "enterprise": enterprise,
        "rules": stored,
        "errors": errors,
        "text": text or json.dumps(stored or {}, ensure_ascii=False, indent=2),
        "example": json.dumps(EXAMPLE, ensure_ascii=False, indent=2),
    }
    return await answer(request, "routing.html", data, status=400 if errors else 200)
