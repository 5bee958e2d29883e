"""Statistics: each manager's calls over a period (calls, answered, missed, talk time), as a table."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from admin import stats
from admin.pages import answer, enterprise_of
from admin.views_overview import local_zone, manager_names
from agent.web import keys

PERIODS = (1, 7, 30)


async def statistics(request: web.Request) -> web.StreamResponse:
    enterprise = await enterprise_of(request)
    pool = request.config_dict[keys.POOL]
    number = enterprise["number"]
    try:
        days = int(request.query.get("days", "7"))
    except ValueError:
        days = 0
    if days not in PERIODS:
        raise web.HTTPBadRequest(text=f"days: one of {', '.join(map(str, PERIODS))}")
    zone = await local_zone(request, number)
    today = datetime.now(zone).date()
    names = await manager_names(pool, number)
    data = {
        "enterprise": enterprise,
        "zone": zone.key,
        "date": today.isoformat(),
        "days": days,
        "periods": list(PERIODS),
        "managers": await stats.per_manager(pool, number, today, days, zone, names),
    }
    return await answer(request, "stats.html", data)
