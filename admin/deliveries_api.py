"""/api/deliveries: what the outbox could not deliver, and a way to try again."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from admin.api import PRINCIPAL, error
from admin.pages import bigint
from agent.web import keys

STATUSES = ("pending", "in_progress", "done", "failed", "dead", "expired")
PAGE_MAX = 500


def _row(r: Any) -> dict[str, Any]:
    return {
        "id": r["id"],
        "enterprise": r["enterprise_number"],
        "crm": r["integration_type"],
        "kind": r["kind"],
        "idempotency_key": r["idempotency_key"],
        "status": r["status"],
        "attempts": r["attempts"],
        "last_error": r["last_error"],
        "created_at": r["created_at"].isoformat(),
        "next_attempt_at": r["next_attempt_at"].isoformat(),
        "payload": r["payload"],
    }


async def list_deliveries(request: web.Request) -> web.Response:
    principal = request[PRINCIPAL]
    status = request.query.get("status", "failed")
    if status not in STATUSES:
        return error(400, f"status must be one of {', '.join(STATUSES)}", "status")
    enterprise = request.query.get("enterprise") or principal.enterprise
    if enterprise is None and not principal.is_admin:
        return error(400, "enterprise is required", "enterprise")
    if enterprise is not None and not principal.may_access(enterprise):
        return error(403, "this token is for another enterprise")
    after, limit = bigint(request.query.get("after", "0")), bigint(request.query.get("limit", "100"))
    if after is None or limit is None:
        return error(400, "after and limit must be whole numbers (ids)", "limit" if after is not None else "after")
    limit = min(PAGE_MAX, max(1, limit))
    rows = await request.config_dict[keys.POOL].fetch(
        "SELECT * FROM deliveries WHERE status = $1 AND ($2::text IS NULL OR enterprise_number = $2) AND id > $3"
        " ORDER BY id LIMIT $4",
        status,
        enterprise,
        after,
        limit,
    )
    items = [_row(r) for r in rows]
    body: dict[str, Any] = {"deliveries": items}
    if len(items) == limit:
        body["next"] = items[-1]["id"]
    return web.json_response(body)


async def retry_delivery(request: web.Request) -> web.Response:
    principal = request[PRINCIPAL]
    delivery_id = bigint(request.match_info["id"])
    if delivery_id is None:
        return error(400, "delivery id must be a whole number (an id)", "id")
    retried = await request.config_dict[keys.OUTBOX].retry(delivery_id, principal.enterprise)
    if not retried:
        return error(404, f"no failed, dead or expired delivery {delivery_id} for this token")
    return web.json_response({"id": delivery_id, "status": "pending"})


def add_routes(api: web.Application) -> None:
    api.router.add_get("/deliveries", list_deliveries)
    api.router.add_post("/deliveries/{id}/retry", retry_delivery)
