"""Overview of one enterprise: its PBX links, today's calls, and how each CRM is doing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from admin import localtime, stats
from admin.pages import answer, enterprise_of, iso
from agent.store import extensions
from agent.store.database import Pool
from agent.web import keys
from agent.web.publishing import unreachable_because
from connectors import registry

TODAY = """
SELECT count(*) FILTER (WHERE direction = 'in') AS incoming,
       count(*) FILTER (WHERE direction = 'out') AS outgoing,
       count(*) FILTER (WHERE direction = 'internal') AS internal,
       count(*) FILTER (WHERE direction = 'in' AND result <> 'answered') AS missed
FROM calls WHERE enterprise_number = $1 AND listed_at >= date_trunc('day', now())
"""

DELIVERY_COUNTS = """
SELECT integration_type AS crm,
       count(*) FILTER (WHERE status IN ('pending', 'in_progress')) AS due,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       count(*) FILTER (WHERE status = 'dead') AS dead,
       count(*) FILTER (WHERE status = 'expired') AS expired
FROM deliveries WHERE enterprise_number = $1 AND status IN ('pending', 'in_progress', 'failed', 'dead', 'expired')
GROUP BY integration_type
"""

LAST_SUCCESS = """
SELECT created_at, event_type, http_status, error_message FROM integration_logs
WHERE enterprise_number = $1 AND integration_type = $2 AND status = 'success'
ORDER BY created_at DESC, id DESC LIMIT 1
"""

LAST_ERROR = """
SELECT created_at, event_type, http_status, error_message FROM integration_logs
WHERE enterprise_number = $1 AND integration_type = $2 AND status = 'error'
ORDER BY created_at DESC, id DESC LIMIT 1
"""


def pbx_links(request: web.Request, number: str | None) -> list[dict[str, Any]]:
    """PBX links from the health registry (`pbx:<name>`), for one enterprise or all."""
    links = []
    for pbx in request.config_dict[keys.CONFIG].pbx:
        if number is not None and pbx.enterprise != number:
            continue
        health = request.config_dict[keys.HEALTH].get(f"pbx:{pbx.name}")
        details = health.details if health else {}
        links.append(
            {
                "name": pbx.name,
                "enterprise": pbx.enterprise,
                "host": f"{pbx.host}:{pbx.port}",
                "status": health.status if health else "down",
                "changed_at": iso(datetime.fromtimestamp(health.since, UTC)) if health else None,
                "error": details.get("error"),
                "reconnects": details.get("reconnects"),
                "last_event_at": _time(details.get("last_event_at")),
                "backfill": _backfill(details.get("backfill")),
            }
        )
    return links


def _backfill(report: object) -> dict[str, Any] | None:
    """The last catch-up from the PBX's CDR (agent.repair.catchup), when the PBX has one."""
    if not isinstance(report, dict):
        return None
    return {
        "at": _time(report.get("at")),
        "calls": report.get("calls"),
        "error": report.get("error"),
        "note": report.get("note"),
    }


def _time(value: object) -> str | None:
    if isinstance(value, int | float):
        return iso(datetime.fromtimestamp(value, UTC))
    return str(value) if value else None


def _log_entry(row: Any) -> dict[str, Any] | None:
    if row is None:
        return None
    return {
        "at": iso(row["created_at"]),
        "event_type": row["event_type"],
        "http_status": row["http_status"],
        "error": row["error_message"],
    }


async def crm_states(pool: Pool, number: str) -> list[dict[str, Any]]:
    configured = await pool.fetchval("SELECT integrations_config FROM enterprises WHERE number = $1", number) or {}
    counts = {r["crm"]: r for r in await pool.fetch(DELIVERY_COUNTS, number)}
    states = []
    for crm in registry.names():
        c = counts.get(crm)
        states.append(
            {
                "crm": crm,
                "configured": isinstance(configured.get(crm), dict),
                "deliveries": {k: int(c[k]) if c else 0 for k in ("due", "failed", "dead", "expired")},
                "last_success": _log_entry(await pool.fetchrow(LAST_SUCCESS, number, crm)),
                "last_error": _log_entry(await pool.fetchrow(LAST_ERROR, number, crm)),
            }
        )
    return states


async def overview(request: web.Request) -> web.StreamResponse:
    enterprise = await enterprise_of(request)
    pool = request.config_dict[keys.POOL]
    number = enterprise["number"]
    today = await pool.fetchrow(TODAY, number)
    assert today is not None
    zone = await local_zone(request, number)
    day = datetime.now(zone).date()
    names = await manager_names(pool, number)
    data = {
        "enterprise": enterprise,
        "pbx": pbx_links(request, number),
        "today": {k: int(today[k]) for k in ("incoming", "outgoing", "internal", "missed")},
        "crms": await crm_states(pool, number),
        "public_url": request.config_dict[keys.CONFIG].agent.public_url,
        "public_url_problem": unreachable_because(request.config_dict[keys.CONFIG].agent.public_url),
        "zone": zone.key,
        "date": day.isoformat(),
        "hourly": await stats.hourly(pool, number, day, zone),
        "missed_by_manager": await stats.missed_by_manager(pool, number, day, zone, names),
    }
    return await answer(request, "overview.html", data)


async def local_zone(request: web.Request, number: str) -> ZoneInfo:
    """The enterprise's time zone (admin.localtime), which the pages show times in and name."""
    config = request.config_dict[keys.CONFIG]
    return await localtime.zone_for(request.config_dict[keys.POOL], number, config.agent.default_region)


async def manager_names(pool: Pool, number: str) -> dict[str, str]:
    return {e.extension: e.display_name for e in await extensions.list_for(pool, number) if e.display_name}
