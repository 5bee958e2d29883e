"""Calls: the filterable list (keyset pages, newest first) and one call with its deliveries to every CRM."""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from admin import localtime
from admin.localtime import day_bounds
from admin.pages import (
    Refused,
    after_post,
    answer,
    bigint,
    decode_next,
    encode_next,
    enterprise_of,
    iso,
    read_body,
    require_admin,
)
from admin.phone_search import phone_query, reversed_prefix
from agent.config.sections import Config
from agent.tracking.phones import normalise
from agent.web import keys
from connectors import registry

PAGE = 50
DIRECTIONS = ("in", "out", "internal")
RESULTS = ("answered", "no_answer", "busy", "failed", "cancelled", "missed")
EXTENSION_RE = re.compile(r"[A-Za-z0-9*#_+-]{1,32}")
NUMBER_RE = re.compile(r"\+?[0-9]{2,20}")
RETRYABLE = ("failed", "dead", "expired")
SHOW_MAX = 20_000  # characters of a payload or logged exchange shown on a page

COLUMNS = (
    "call_id, pbx, direction, phone, did, extensions, answered_by, result, ring_seconds, talk_seconds,"
    " started_at, ended_at, listed_at, recording, details"
)


def pretty(value: object) -> str:
    """Template filter: JSON, indented, cut at SHOW_MAX characters."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, indent=2, default=str)
    return text if len(text) <= SHOW_MAX else text[:SHOW_MAX] + "\n…"


def dialled(did: str | None, pbx: str | None, config: Config) -> str | None:
    """The number dialled as one display: live calls store the PBX's `exten` as it came (`375173880000`,
    `80173880000`), catch-up from the CDR stores E.164; both shown E.164 in the PBX's region where possible."""
    if not did:
        return did
    region = next((p.region for p in config.pbx if p.name == pbx and p.region), None) or config.agent.default_region
    return normalise(did, region)


def call_row(r: Any, config: Config) -> dict[str, Any]:
    return {
        "call_id": r["call_id"],
        "pbx": r["pbx"],
        "direction": r["direction"],
        "phone": r["phone"],
        "did": dialled(r["did"], r["pbx"], config),
        "extensions": list(r["extensions"]),
        "answered_by": r["answered_by"],
        "result": r["result"],
        "ring_seconds": r["ring_seconds"],
        "talk_seconds": r["talk_seconds"],
        "started_at": iso(r["started_at"]),
        "ended_at": iso(r["ended_at"]),
        "listed_at": iso(r["listed_at"]),
        "recording": r["recording"],
    }


class Where:
    def __init__(self, number: str) -> None:
        self.sql = ["enterprise_number = $1"]
        self.args: list[Any] = [number]

    def add(self, sql: str, *values: Any) -> None:
        for value in values:
            self.args.append(value)
            sql = sql.replace("?", f"${len(self.args)}", 1)
        self.sql.append(sql)

    def __str__(self) -> str:
        return " AND ".join(self.sql)


def call_filters(query: Any) -> tuple[dict[str, str], dict[str, str]]:
    """The filters of the calls list as given (trimmed), and an error key per invalid field."""
    given = {k: query.get(k, "").strip() for k in ("date", "direction", "result", "extension", "number", "next")}
    errors: dict[str, str] = {}
    if given["date"]:
        try:
            date.fromisoformat(given["date"])
        except ValueError:
            errors["date"] = "error.date"
    if given["direction"] and given["direction"] not in DIRECTIONS:
        errors["direction"] = "error.choice"
    if given["result"] and given["result"] not in RESULTS:
        errors["result"] = "error.choice"
    if given["extension"] and not EXTENSION_RE.fullmatch(given["extension"]):
        errors["extension"] = "error.extension"
    cleaned = re.sub(r"[\s()\-.]", "", given["number"])
    if given["number"] and not NUMBER_RE.fullmatch(cleaned):
        errors["number"] = "error.number"
    given["number_clean"] = cleaned
    if given["next"] and decode_next(given["next"], NEXT_KINDS) is None:
        errors["next"] = "error.next"
    return given, errors


NEXT_KINDS = ("time", "text")  # (listed_at, call_id) of the last call shown


def _calls_where(number: str, f: dict[str, str], zone: ZoneInfo, region: str | None = None) -> Where:
    w = Where(number)
    if f["date"]:  # the enterprise's day, as the pages show times
        w.add("listed_at >= ? AND listed_at < ?", *day_bounds(date.fromisoformat(f["date"]), zone))
    if f["direction"]:
        w.add("direction = ?", f["direction"])
    if f["result"] == "missed":
        w.add("result <> 'answered' AND direction = 'in'")
    elif f["result"]:
        w.add("result = ?", f["result"])
    if f["extension"]:
        w.add("(extensions @> ARRAY[?]::text[] OR answered_by = ?)", f["extension"], f["extension"])
    if f["number_clean"]:
        wanted = phone_query(f["number_clean"], region)
        if not wanted.suffix:
            w.add("phone = ANY(?::text[])", list(wanted.exact))
        elif not wanted.exact:
            w.add("reverse(phone) LIKE ?", reversed_prefix(wanted.suffix))
        else:
            w.add(
                "(phone = ANY(?::text[]) OR reverse(phone) LIKE ?)", list(wanted.exact), reversed_prefix(wanted.suffix)
            )
    if f["next"]:
        at, call_id = decode_next(f["next"], NEXT_KINDS) or (None, None)
        w.add("(listed_at, call_id) < (?::timestamptz, ?)", at, call_id)
    return w


async def calls(request: web.Request) -> web.StreamResponse:
    enterprise = await enterprise_of(request)
    filters, errors = call_filters(request.query)
    rows: list[Any] = []
    if not errors:
        config = request.config_dict[keys.CONFIG]
        zone = await localtime.zone_for(
            request.config_dict[keys.POOL], enterprise["number"], config.agent.default_region
        )
        w = _calls_where(enterprise["number"], filters, zone, config.agent.default_region)
        rows = await request.config_dict[keys.POOL].fetch(
            f"SELECT {COLUMNS} FROM calls WHERE {w} ORDER BY listed_at DESC, call_id DESC LIMIT {PAGE + 1}", *w.args
        )
    items = [call_row(r, request.config_dict[keys.CONFIG]) for r in rows[:PAGE]]
    nxt = encode_next(items[-1]["listed_at"], items[-1]["call_id"]) if len(rows) > PAGE else None
    shown = {k: v for k, v in filters.items() if k not in ("next", "number_clean")}
    data = {
        "enterprise": enterprise,
        "filters": shown,
        "errors": errors,
        "calls": items,
        "next": nxt,
        "directions": DIRECTIONS,
        "results": RESULTS,
    }
    return await answer(request, "calls.html", data, status=400 if errors else 200)


def delivery_row(r: Any) -> dict[str, Any]:
    return {
        "id": r["id"],
        "crm": r["integration_type"],
        "kind": r["kind"],
        "idempotency_key": r["idempotency_key"],
        "status": r["status"],
        "attempts": r["attempts"],
        "last_error": r["last_error"],
        "payload": r["payload"],
        "created_at": iso(r["created_at"]),
        "updated_at": iso(r["updated_at"]),
        "next_attempt_at": iso(r["next_attempt_at"]),
        "delivered_at": iso(r["delivered_at"]),
        "retryable": r["status"] in RETRYABLE,
    }


def log_row(r: Any) -> dict[str, Any]:
    return {
        "id": r["id"],
        "at": iso(r["created_at"]),
        "crm": r["integration_type"],
        "event_type": r["event_type"],
        "status": r["status"],
        "http_status": r["http_status"],
        "duration_ms": r["duration_ms"],
        "error": r["error_message"],
        "delivery_id": r["delivery_id"],
        "delivery_ids": carried(r),
        "request": r["request_data"],
        "response": r["response_data"],
    }


def carried(r: Any) -> list[int]:
    """Every delivery the exchange carried: `delivery_ids`, or just `delivery_id` in rows older than it."""
    if r["delivery_ids"] is not None:
        return list(r["delivery_ids"])
    return [r["delivery_id"]] if r["delivery_id"] is not None else []


LOG_COLUMNS = (
    "id, created_at, integration_type, event_type, status, http_status, duration_ms, error_message,"
    " delivery_id, delivery_ids, request_data, response_data"
)

# A batched exchange (RetailCRM uploads up to 50 calls at once) names all its deliveries in delivery_ids;
# rows written before that column existed have only delivery_id. Each arm uses its own partial index.
DELIVERY_LOGS = (
    f"SELECT {LOG_COLUMNS} FROM integration_logs"
    " WHERE (delivery_ids && $1::bigint[] OR delivery_id = ANY($1::bigint[]))"
    " AND enterprise_number = $2 ORDER BY id LIMIT 500"
)


async def call_deliveries(request: web.Request, number: str, call_id: str) -> list[dict[str, Any]]:
    """Every delivery of this call to every CRM: idempotency_key '<crm>:<call_id>:…' (a prefix range scan)."""
    pool = request.config_dict[keys.POOL]
    found: list[dict[str, Any]] = []
    for crm in registry.names():
        prefix = f"{crm}:{call_id}:"
        rows = await pool.fetch(
            "SELECT * FROM deliveries WHERE idempotency_key ~>=~ $1 AND idempotency_key ~<~ $2"
            " AND enterprise_number = $3 ORDER BY id LIMIT 200",
            prefix,
            prefix[:-1] + ";",
            number,
        )
        found.extend(delivery_row(r) for r in rows)
    ids = [d["id"] for d in found]
    logs: dict[int, list[dict[str, Any]]] = {}
    if ids:
        for r in await pool.fetch(DELIVERY_LOGS, ids, number):
            entry = log_row(r)  # one exchange, shown under each delivery of this call that it carried
            for delivery_id in set(entry["delivery_ids"]).intersection(ids):
                logs.setdefault(delivery_id, []).append(entry)
    for d in found:
        d["logs"] = logs.get(d["id"], [])
    await with_last_http_status(pool, number, found, [entry for entries in logs.values() for entry in entries])
    return found


# The exchanges that ended in an error with an HTTP answer, newest first, for `with_last_http_status`: the two
# arms of DELIVERY_LOGS, each on its partial index.
ERROR_STATUSES = (
    "SELECT delivery_id, delivery_ids, error_message, http_status FROM integration_logs"
    " WHERE (delivery_ids && $1::bigint[] OR delivery_id = ANY($1::bigint[]))"
    " AND enterprise_number = $2 AND http_status IS NOT NULL AND error_message IS NOT NULL ORDER BY id DESC LIMIT 2000"
)


async def with_last_http_status(
    pool: Any, number: str, deliveries: list[dict[str, Any]], logs: list[dict[str, Any]] | None = None
) -> None:
    """Set each delivery's `last_http_status`: the HTTP status of the exchange that stored its last_error (the
    outbox keeps only the text on the delivery), so a CRM's own words show under "refused (HTTP 400)" rather
    than a bare "Error". A text written with no exchange (expired, not delivered in time) borrows no earlier
    status. `logs` are the deliveries' exchanges when the caller has them (log_row's shape), else they are read."""
    failing = {d["id"]: d["last_error"] for d in deliveries if d["last_error"]}
    found: dict[int, int] = {}
    if failing:
        if logs is None:
            rows = await pool.fetch(ERROR_STATUSES, list(failing), number)
            logs = [
                {"delivery_ids": carried(r), "error": r["error_message"], "http_status": r["http_status"]} for r in rows
            ]
        else:
            logs = sorted(logs, key=lambda entry: entry["id"], reverse=True)
        for entry in logs:
            for delivery_id in entry["delivery_ids"]:
                if delivery_id not in found and entry["http_status"] and failing.get(delivery_id) == entry["error"]:
                    found[delivery_id] = entry["http_status"]
    for d in deliveries:
        d["last_http_status"] = found.get(d["id"])


async def retry(request: web.Request, number: str) -> tuple[int | None, str | None]:
    """The Retry button: (delivery id, error key or None)."""
    require_admin(request)
    body = await read_body(request)
    delivery_id = bigint(body.get("delivery", ""))
    if delivery_id is None:
        return None, "error.delivery"
    if not await request.config_dict[keys.OUTBOX].retry(delivery_id, number):
        return delivery_id, "error.not_retryable"
    return delivery_id, None


async def call(request: web.Request) -> web.StreamResponse:
    enterprise = await enterprise_of(request)
    number, call_id = enterprise["number"], request.match_info["call_id"]
    if request.method not in ("GET", "HEAD", "POST"):
        raise Refused(405, "error.method")
    errors: dict[str, str] = {}
    if request.method == "POST":
        delivery_id, problem = await retry(request, number)
        if problem is None:
            return after_post(request, {"retried": delivery_id, "status": "pending"})
        errors[f"delivery-{delivery_id}" if delivery_id is not None else "delivery"] = problem
        if request.content_type == "application/json":
            raise Refused(404 if delivery_id is not None else 400, problem, "delivery")
    row = await request.config_dict[keys.POOL].fetchrow(
        f"SELECT {COLUMNS} FROM calls WHERE enterprise_number = $1 AND call_id = $2", number, call_id
    )
    if row is None:
        raise Refused(404, "error.no_call")
    details = row["details"] if isinstance(row["details"], dict) else {}
    data = {
        "enterprise": enterprise,
        "call": call_row(row, request.config_dict[keys.CONFIG])
        | {"legs": details.get("legs", []), "transfers": details.get("transfers", 0), "details": details},
        "deliveries": await call_deliveries(request, number, call_id),
        "errors": errors,
    }
    return await answer(request, "call.html", data, status=400 if errors else 200)
