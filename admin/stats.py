"""What a sales head wants to see, not read: a day's calls by hour, missed calls per manager, and each
manager's calls over a period. Queries over `calls` (the listed_at indexes keep them to the period's rows),
and the geometry of the server-drawn SVG charts (templates/_charts.html), so the page needs no script.

Days are the enterprise's local days (its time zone is named on the page); a call's manager is whose call it
is (agent.store.calls.OWNER_SQL): who answered, else the owner the tracker gave it, so a group call nobody
answered is nobody's ("unassigned") rather than the last member's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from admin.localtime import day_bounds
from agent.store.calls import OWNER_SQL
from agent.store.database import Pool

SERIES = ("in_answered", "in_missed", "outgoing", "internal")

HOURLY = """
SELECT extract(hour FROM listed_at AT TIME ZONE $4)::int AS hour,
       count(*) FILTER (WHERE direction = 'in' AND result = 'answered') AS in_answered,
       count(*) FILTER (WHERE direction = 'in' AND result <> 'answered') AS in_missed,
       count(*) FILTER (WHERE direction = 'out') AS outgoing,
       count(*) FILTER (WHERE direction = 'internal') AS internal
FROM calls WHERE enterprise_number = $1 AND listed_at >= $2 AND listed_at < $3
GROUP BY 1
"""

MISSED_BY_OWNER = f"""
SELECT {OWNER_SQL} AS extension,
       count(*) FILTER (WHERE listed_at >= $3) AS today,
       count(*) AS week
FROM calls
WHERE enterprise_number = $1 AND direction = 'in' AND result <> 'answered' AND listed_at >= $2 AND listed_at < $4
GROUP BY 1
"""

PER_MANAGER = f"""
WITH period AS (
    SELECT direction, result, answered_by, talk_seconds, extensions, {OWNER_SQL} AS owner
    FROM calls WHERE enterprise_number = $1 AND listed_at >= $2 AND listed_at < $3
), involved AS (
    SELECT p.*, e.extension
    FROM period p, LATERAL (
        SELECT DISTINCT x FROM unnest(p.extensions || p.answered_by || p.owner) AS x WHERE x IS NOT NULL
    ) AS e(extension)
)
SELECT extension,
       count(*) AS calls,
       count(*) FILTER (WHERE answered_by = extension) AS answered,
       count(*) FILTER (WHERE direction = 'in' AND result <> 'answered' AND owner = extension) AS missed,
       coalesce(sum(talk_seconds) FILTER (WHERE answered_by = extension), 0) AS talk_seconds
FROM involved GROUP BY extension ORDER BY count(*) DESC, extension
"""


async def hourly(pool: Pool, enterprise: str, day: date, zone: ZoneInfo) -> list[dict[str, int]]:
    start, end = day_bounds(day, zone)
    found = {r["hour"]: r for r in await pool.fetch(HOURLY, enterprise, start, end, zone.key)}
    return [{"hour": h, **{s: int(found[h][s]) if h in found else 0 for s in SERIES}} for h in range(24)]


async def missed_by_manager(
    pool: Pool, enterprise: str, today: date, zone: ZoneInfo, names: dict[str, str]
) -> list[dict[str, Any]]:
    """Missed incoming calls per manager, today and over the 7 days ending today; most missed first."""
    start, end = day_bounds(today, zone)
    week_start = day_bounds(today - timedelta(days=6), zone)[0]
    rows = await pool.fetch(MISSED_BY_OWNER, enterprise, week_start, start, end)
    out = [
        {
            "extension": r["extension"],
            "name": names.get(r["extension"] or "", ""),
            "today": r["today"],
            "week": r["week"],
        }
        for r in rows
    ]
    return sorted(out, key=lambda m: (-m["week"], -m["today"], m["extension"] is None, m["extension"] or ""))


async def per_manager(
    pool: Pool, enterprise: str, today: date, days: int, zone: ZoneInfo, names: dict[str, str]
) -> list[dict[str, Any]]:
    start = day_bounds(today - timedelta(days=days - 1), zone)[0]
    end = day_bounds(today, zone)[1]
    return [
        {
            "extension": r["extension"],
            "name": names.get(r["extension"], ""),
            "calls": r["calls"],
            "answered": r["answered"],
            "missed": r["missed"],
            "talk_seconds": round(float(r["talk_seconds"])),
        }
        for r in await pool.fetch(PER_MANAGER, enterprise, start, end)
    ]


# -- chart geometry ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Segment:
    series: str
    y: float
    height: float
    count: int


@dataclass(frozen=True, slots=True)
class Column:
    hour: int
    x: float
    segments: tuple[Segment, ...]
    total: int


def nice_max(value: int) -> int:
    """The axis' top: 1, 2 or 5 times a power of ten, at least `value` (and at least 1)."""
    top = 1
    while True:
        for step in (1, 2, 5):
            if step * top >= value:
                return step * top
        top *= 10


def hour_columns(hours: list[dict[str, int]], plot_height: float, column_width: float) -> tuple[list[Column], int]:
    """Stacked columns (answered, missed, outgoing, internal from the bottom up) and the axis' top."""
    top = nice_max(max((sum(h[s] for s in SERIES) for h in hours), default=0))
    columns = []
    for h in hours:
        y, segments = plot_height, []
        for series in SERIES:
            height = h[series] / top * plot_height
            if h[series]:
                y -= height
                segments.append(Segment(series, round(y, 1), round(height, 1), h[series]))
        columns.append(Column(h["hour"], h["hour"] * column_width, tuple(segments), sum(h[s] for s in SERIES)))
    return columns, top


def bar_widths(managers: list[dict[str, Any]], width: float) -> list[dict[str, Any]]:
    """Each manager's two bars (7 days, today) as widths on one scale."""
    top = max((m["week"] for m in managers), default=0) or 1
    return [
        {**m, "week_w": round(m["week"] / top * width, 1), "today_w": round(m["today"] / top * width, 1)}
        for m in managers
    ]


def duration(seconds: object) -> str:
    """Template filter: seconds as h:mm:ss."""
    total = int(seconds) if isinstance(seconds, int | float) else 0
    return f"{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d}"
