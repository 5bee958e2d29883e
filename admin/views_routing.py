"""The Routing page: the enterprise's routing rules as a form (admin/routing_form.py), in the order a person
thinks — when (time zone, working week, holidays), who (caller history, managers' own hours, each company
number's default owner and CRM delivery), exceptions (blocked numbers). Stored like the API's PUT (NOTIFY, so
every agent uses the new rules at once), answered with post/redirect/get and a "saved" notice.

A form post that would remove a whole part of the rules (every holiday, the blocklist, …) is shown again with
what it would remove and saved only once `confirm_wipe` is ticked. A JSON POST (`Content-Type:
application/json`) takes the rules document itself, as `PUT /api/enterprises/{n}/routing` does.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import available_timezones

from aiohttp import web

from admin import routing_form
from admin.pages import Refused, after_post, answer, enterprise_of, read_body, require_admin, self_url, wants_json
from agent.redirect.rules import DAYS, DEFAULT_TIMEZONE, RulesError
from agent.store import routing_rules as routing_store
from agent.store.database import Pool
from agent.web import keys

ALL_ZONES = frozenset(available_timezones())
ZONES = [*sorted(z for z in ALL_ZONES if "/" in z and not z.startswith(("Etc/", "SystemV/"))), "UTC"]


async def routing(request: web.Request) -> web.StreamResponse:
    enterprise = await enterprise_of(request)
    number = enterprise["number"]
    pool = request.config_dict[keys.POOL]
    if request.method not in ("GET", "HEAD", "POST"):
        raise Refused(405, "error.method")
    if request.method == "POST" and request.content_type == "application/json":
        return await _put_document(request, pool, number)
    stored = await routing_store.get_raw(pool, number)
    extensions = await _extensions(pool, number)
    form = routing_form.to_form(stored)
    checked = routing_form.Checked({})
    wiped: list[str] = []
    if request.method == "POST":
        require_admin(request)
        body = await read_body(request)
        form = routing_form.from_body(body)
        checked = routing_form.validate(form, [x["extension"] for x in extensions])
        wiped = [] if checked.errors else routing_form.wiped(stored, checked.document)
        if wiped and body.get("confirm_wipe") != "yes":  # asked once the rest is right
            checked.fail("confirm_wipe", "routing.err.confirm")
        if not checked.errors:
            try:
                await routing_store.put(pool, number, checked.document)
            except RulesError as exc:  # the form's checks missed something: named, never saved
                checked.fail("rules", "routing.err.invalid", field=exc.field)
            else:
                if wants_json(request):  # a form post to routing.json
                    return after_post(request, {"rules": checked.document})
                raise web.HTTPSeeOther(self_url(request).split("?", 1)[0] + "?saved=1")
    data = {
        "enterprise": enterprise,
        "rules": stored,
        "form": form,
        "errors": checked.errors,
        "error_values": checked.values,
        "wiped": wiped if checked.errors else [],
        "saved": request.method == "GET" and request.query.get("saved") == "1",
        "default_timezone": await _default_timezone(pool, number),
        "days": list(DAYS),
        "extensions": extensions,
    }
    if not wants_json(request):
        data["zones"] = ZONES
    return await answer(request, "routing.html", data, status=400 if checked.errors else 200)


async def _put_document(request: web.Request, pool: Pool, number: str) -> web.StreamResponse:
    """The rules document as JSON, validated and stored as the API's PUT does."""
    require_admin(request)
    try:
        document: Any = await request.json()
    except ValueError:
        raise Refused(400, "error.bad_json", "rules") from None
    if not isinstance(document, dict):
        raise Refused(400, "error.bad_json", "rules")
    try:
        await routing_store.put(pool, number, document)
    except RulesError as exc:
        raise Refused(400, f"{exc.field}: {exc.message}", "rules") from None
    return after_post(request, {"rules": document})


async def _extensions(pool: Pool, number: str) -> list[dict[str, str]]:
    rows = await pool.fetch(
        "SELECT phone_number, display_name FROM user_internal_phones WHERE enterprise_number = $1"
        " ORDER BY length(phone_number), phone_number LIMIT 2000",
        number,
    )
    return [{"extension": r["phone_number"], "name": r["display_name"] or ""} for r in rows]


async def _default_timezone(pool: Pool, number: str) -> str:
    """The zone the rules use without a `timezone` of their own: the RetailCRM account's, else UTC."""
    zone = await pool.fetchval(
        "SELECT integrations_config #>> '{retailcrm,timezone}' FROM enterprises WHERE number = $1", number
    )
    return zone if isinstance(zone, str) and zone in ALL_ZONES else DEFAULT_TIMEZONE
