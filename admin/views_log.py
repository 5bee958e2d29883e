"""The exchange log (integration_logs, keyset pages) and the deliveries that failed, with Retry."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from aiohttp import web

from admin.pages import Refused, after_post, answer, bigint, decode_next, encode_next, enterprise_of
from admin.views_calls import LOG_COLUMNS, RETRYABLE, Where, delivery_row, log_row, retry, with_last_http_status
from agent.web import keys
from connectors import registry

PAGE = 50
DELIVERY_PAGE = 20
STATUSES = ("success", "error")
EVENT_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def log_filters(query: Any) -> tuple[dict[str, str], dict[str, str]]:
    given = {k: query.get(k, "").strip() for k in ("crm", "event_type", "status", "from", "to", "next", "dnext")}
    errors: dict[str, str] = {}
    if given["crm"] and given["crm"] not in registry.names():
        errors["crm"] = "error.choice"
    if given["status"] and given["status"] not in STATUSES:
        errors["status"] = "error.choice"
    if given["event_type"] and not EVENT_RE.fullmatch(given["event_type"]):
        errors["event_type"] = "error.event_type"
    for key in ("from", "to"):
        if given[key]:
            try:
                date.fromisoformat(given[key])
            except ValueError:
                errors[key] = "error.date"
    if given["next"] and decode_next(given["next"], NEXT_KINDS) is None:
        errors["next"] = "error.next"
    if given["dnext"] and bigint(given["dnext"]) is None:
        errors["dnext"] = "error.next"
    return given, errors


NEXT_KINDS = ("time", "int")  # (created_at, id) of the last entry shown


def _log_where(number: str, f: dict[str, str]) -> Where:
    w = Where(number)
    if f["crm"]:
        w.add("integration_type = ?", f["crm"])
    if f["status"]:
        w.add("status = ?", f["status"])
    if f["event_type"]:
        w.add("event_type = ?", f["event_type"])
    if f["from"]:
        w.add("created_at >= ?::date::timestamptz", date.fromisoformat(f["from"]))
    if f["to"]:
        w.add("created_at < (?::date + 1)::timestamptz", date.fromisoformat(f["to"]))
    if f["next"]:
        at, last_id = decode_next(f["next"], NEXT_KINDS) or (None, None)
        w.add("(created_at, id) < (?::timestamptz, ?::bigint)", at, last_id)
    return w


async def failed_deliveries(
    request: web.Request, number: str, crm: str, before: int | None
) -> tuple[list[dict[str, Any]], int | None]:
    rows = await request.config_dict[keys.POOL].fetch(
        "SELECT * FROM deliveries WHERE enterprise_number = $1 AND status = ANY($2::text[])"
        " AND ($3::text = '' OR integration_type = $3) AND ($4::bigint IS NULL OR id < $4)"
        f" ORDER BY id DESC LIMIT {DELIVERY_PAGE + 1}",
        number,
        list(RETRYABLE),
        crm,
        before,
    )
    items = [delivery_row(r) for r in rows[:DELIVERY_PAGE]]
    await with_last_http_status(request.config_dict[keys.POOL], number, items)
    return items, items[-1]["id"] if len(rows) > DELIVERY_PAGE else None


async def log(request: web.Request) -> web.StreamResponse:
    enterprise = await enterprise_of(request)
    number = enterprise["number"]
    if request.method not in ("GET", "HEAD", "POST"):
        raise Refused(405, "error.method")
    errors: dict[str, str] = {}
    if request.method == "POST":
        delivery_id, problem = await retry(request, number)
        if problem is None:
            return after_post(request, {"retried": delivery_id, "status": "pending"})
        if request.content_type == "application/json":
            raise Refused(404 if delivery_id is not None else 400, problem, "delivery")
        errors[f"delivery-{delivery_id}" if delivery_id is not None else "delivery"] = problem
    filters, invalid = log_filters(request.query)
    errors.update(invalid)
    entries: list[Any] = []
    deliveries: list[dict[str, Any]] = []
    dnext = None
    if not invalid:
        w = _log_where(number, filters)
        entries = await request.config_dict[keys.POOL].fetch(
            f"SELECT {LOG_COLUMNS} FROM integration_logs WHERE {w} ORDER BY created_at DESC, id DESC LIMIT {PAGE + 1}",
            *w.args,
        )
        deliveries, dnext = await failed_deliveries(
            request, number, filters["crm"], bigint(filters["dnext"]) if filters["dnext"] else None
        )
    items = [log_row(r) for r in entries[:PAGE]]
    nxt = encode_next(items[-1]["at"], items[-1]["id"]) if len(entries) > PAGE else None
    shown = {k: v for k, v in filters.items() if k not in ("next", "dnext")}
    data = {
        "enterprise": enterprise,
        "filters": shown,
        "errors": errors,
        "entries": items,
        "next": nxt,
        "deliveries": deliveries,
        "deliveries_next": dnext,
        "crms": registry.names(),
        "statuses": STATUSES,
    }
    return await answer(request, "log.html", data, status=400 if errors else 200)
