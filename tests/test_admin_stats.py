"""The pictures and the per-manager table (admin/stats.py): counted from stored calls by the enterprise's local
day, each manager credited by whose call it is; the same numbers as JSON and drawn as SVG; in a real browser."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from admin import localtime, stats
from admin.i18n import translator
from agent.app import Agent
from agent.store import routing_rules
from agent.store.database import Pool
from tests.admin_client import base, client, link
from tests.browser import Browser, expect, seed

MINSK = ZoneInfo("Europe/Minsk")  # UTC+3 all year


def test_axis_and_columns() -> None:
    assert [stats.nice_max(v) for v in (0, 1, 3, 7, 10, 11, 180)] == [1, 1, 5, 10, 10, 20, 200]
    hours = [{"hour": h, "in_answered": 0, "in_missed": 0, "outgoing": 0, "internal": 0} for h in range(24)]
    hours[9].update(in_answered=6, in_missed=2, outgoing=2)
    columns, top = stats.hour_columns(hours, 100, 30)
    assert top == 10
    nine = columns[9]
    assert (nine.x, nine.total) == (270, 10)
    assert [(s.series, s.y, s.height) for s in nine.segments] == [
        ("in_answered", 40.0, 60.0),
        ("in_missed", 20.0, 20.0),
        ("outgoing", 0.0, 20.0),
    ]
    assert columns[10].segments == ()


def test_a_local_day_with_a_clock_change() -> None:
    start, end = localtime.day_bounds(date(2026, 3, 29), ZoneInfo("Europe/Berlin"))
    assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=23)  # instants, not wall clocks


def at_local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=MINSK).astimezone(UTC)


async def store(pool: Pool, rows: list[tuple[Any, ...]]) -> None:
    await pool.executemany(
        "INSERT INTO calls (call_id, enterprise_number, direction, phone, extensions, answered_by, result,"
        " talk_seconds, ended_at, details) VALUES ($1, '100', $2, '+375291112233', $3, $4, $5, $6, $7, $8)",
        rows,
    )


async def a_day_of_calls(pool: Pool) -> date:
    """Today in Minsk (its early hours: a day counts all its calls, whenever the test runs): who answered, who
    missed, whose a group call is."""
    await seed(pool)
    await routing_rules.put(pool, "100", {"timezone": "Europe/Minsk"})
    today = datetime.now(MINSK).date()
    yesterday = today - timedelta(days=1)
    await store(
        pool,
        [
            ("a1", "in", ["150"], "150", "answered", 60.0, at_local(today, 0, 10), {}),
            ("a2", "in", ["150", "151"], "151", "answered", 30.0, at_local(today, 0, 40), {}),
            ("m1", "in", ["150"], None, "no_answer", 0.0, at_local(today, 1, 5), {}),
            # a ring group nobody answered: nobody's (the tracker stored no owner)
            ("m2", "in", ["150", "151", "152"], None, "no_answer", 0.0, at_local(today, 1, 6), {"owner": None}),
            # the manager smart redirect named owns it though two phones rang
            ("m3", "in", ["151", "152"], None, "cancelled", 0.0, at_local(today, 2, 0), {"owner": "152"}),
            ("o1", "out", ["151"], "151", "answered", 20.0, at_local(today, 2, 30), {}),
            ("i1", "internal", ["150", "151"], None, "no_answer", 0.0, at_local(today, 2, 31), {}),
            ("y1", "in", ["150"], None, "no_answer", 0.0, at_local(yesterday, 23, 59), {}),
            ("old", "in", ["150"], None, "no_answer", 0.0, at_local(today - timedelta(days=7), 12), {}),
        ],
    )
    return today


async def test_overview_counts_by_local_hour_and_owner(running_agent: Agent) -> None:
    pool = running_agent.parts.pool
    today = await a_day_of_calls(pool)
    async with client(running_agent, "100") as http, http.get(f"{base(running_agent)}/admin/100/overview.json") as resp:
        assert resp.status == 200
        data = await resp.json()
    assert data["zone"] == "Europe/Minsk" and data["date"] == today.isoformat()
    hours = {h["hour"]: h for h in data["hourly"]}
    assert (hours[0]["in_answered"], hours[1]["in_missed"], hours[2]["in_missed"]) == (2, 2, 1)
    assert (hours[2]["outgoing"], hours[2]["internal"]) == (1, 1)
    assert sum(sum(h[s] for s in stats.SERIES) for h in data["hourly"]) == 7  # not yesterday's 23:59
    missed = {m["extension"]: (m["today"], m["week"]) for m in data["missed_by_manager"]}
    assert missed == {"150": (1, 2), None: (1, 1), "152": (1, 1)}  # the old one is 7 days back: out
    assert data["missed_by_manager"][0]["name"] == "Anna Petrova"


async def test_per_manager_table(running_agent: Agent) -> None:
    pool = running_agent.parts.pool
    await a_day_of_calls(pool)
    async with client(running_agent, "100") as http:
        async with http.get(f"{base(running_agent)}/admin/100/stats.json?days=1") as resp:
            today = {m["extension"]: m for m in (await resp.json())["managers"]}
        async with http.get(f"{base(running_agent)}/admin/100/stats.json?days=7") as resp:
            week = {m["extension"]: m for m in (await resp.json())["managers"]}
        async with http.get(f"{base(running_agent)}/admin/100/stats.json?days=5") as resp:
            assert resp.status == 400
    row = today["150"]
    assert (row["calls"], row["answered"], row["missed"], row["talk_seconds"]) == (5, 1, 1, 60)
    assert (today["151"]["answered"], today["151"]["talk_seconds"], today["151"]["missed"]) == (2, 50, 0)
    assert (today["152"]["calls"], today["152"]["missed"]) == (2, 1)
    assert week["150"]["missed"] == 2 and week["150"]["name"] == "Anna Petrova"


@pytest.mark.parametrize("lang", ["en", "ru"])
async def test_the_charts_in_a_browser(running_agent: Agent, chromium: Browser, page: Any, lang: str) -> None:
    await a_day_of_calls(running_agent.parts.pool)
    url = link(running_agent, "100")
    t = translator(lang)

    def steps() -> None:
        page.goto(url)
        page.click(f".langs a[hreflang={lang}]")
        expect(page.locator("nav.sections a.active")).to_have_text(t("nav.overview"))
        column = page.locator("#chart-hours g.column[data-hour='1']")
        assert column.get_attribute("data-total") == "2"
        assert column.locator("rect.seg.in_missed").count() == 1
        assert f"{t('chart.in_missed')} 2" in column.locator("title").text_content()
        assert page.locator("#chart-hours g.column rect.seg").count() == 5  # hours 0, 1, 2: 1 + 1 + 3 segments
        box = column.locator("rect.seg.in_missed").bounding_box()
        assert box is not None and box["width"] > 0 and box["height"] > 0  # drawn, not just in the markup
        bars = page.locator("#chart-missed g.manager")
        assert bars.count() == 3
        assert bars.first.get_attribute("data-extension") == "150"
        assert bars.first.locator("text.label").text_content() == "150 · Anna Petrova"
        box = bars.first.locator("rect.week").bounding_box()
        assert box is not None and box["width"] > 0
        assert bars.nth(2).locator("text.label").text_content() == t("chart.unassigned")
        assert t("chart.zone", zone="Europe/Minsk") in page.locator("#chart-hours figcaption").inner_text()
        page.get_by_role("link", name=t("chart.more")).click()
        expect(page.locator("h1")).to_have_text(t("nav.stats"))
        assert page.locator("#per-manager tr[data-extension='150'] td").nth(4).inner_text() == "0:01:00"

    await chromium.run(steps)
