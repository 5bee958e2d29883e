"""Pages show times in the enterprise's zone and name it: its routing rules' zone, else the agent's region's."""

from __future__ import annotations

from datetime import UTC, datetime

from admin.localtime import region_zone
from agent.app import Agent
from agent.store import routing_rules
from tests.admin_client import base, client
from tests.browser import seed


def test_region_zones() -> None:
    assert region_zone("BY") == "Europe/Minsk" and region_zone("ru") == "Europe/Moscow"
    assert region_zone("DE") == "Europe/Berlin"  # from phonenumbers' geodata
    assert region_zone("") == "UTC" and region_zone(None) == "UTC"


async def test_a_call_at_17_42_utc_shows_at_20_42_in_minsk(running_agent: Agent) -> None:
    pool = running_agent.parts.pool
    await seed(pool)
    ended = datetime(2026, 11, 23, 17, 42, 5, tzinfo=UTC)
    await pool.execute(
        "INSERT INTO calls (call_id, enterprise_number, direction, phone, extensions, answered_by, result,"
        " started_at, ended_at) VALUES ('t1', '100', 'in', '+375291112233', '{150}', '150', 'answered', $1, $2)",
        ended.replace(minute=40),
        ended,
    )
    assert running_agent.config.agent.default_region == "BY"
    url = f"{base(running_agent)}/admin/100/calls?date=2026-11-23"
    async with client(running_agent, "100") as http:
        async with http.get(f"{base(running_agent)}/admin/100/calls/t1") as resp:
            html = await resp.text()
        assert "2026-11-23 20:42:05" in html and "17:42:05" not in html  # the agent's region: Belarus
        assert "Times in Europe/Minsk" in html
        await routing_rules.put(pool, "100", {"timezone": "Asia/Almaty"})  # the enterprise says otherwise
        async with http.get(f"{base(running_agent)}/admin/100/calls/t1", headers={"Accept-Language": "ru"}) as resp:
            html = await resp.text()
        assert "2026-11-23 22:42:05" in html and "Время: Asia/Almaty" in html
        async with http.get(f"{url}".replace("calls?", "calls.json?")) as resp:
            assert (await resp.json())["calls"][0]["ended_at"].startswith("2026-11-23T17:42:05")  # JSON stays UTC
        # Almaty's 23 November ends at 19:00 UTC: a call at 19:30 UTC is on the 24th there
        await pool.execute("UPDATE calls SET ended_at = ended_at + interval '108 minutes' WHERE call_id = 't1'")
        async with http.get(f"{url}".replace("calls?", "calls.json?")) as resp:
            assert (await resp.json())["calls"] == []
        async with http.get(f"{base(running_agent)}/admin/100/calls.json?date=2026-11-24") as resp:
            assert [c["call_id"] for c in (await resp.json())["calls"]] == ["t1"]
