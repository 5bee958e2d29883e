"""The calls filter finds a number however it is written (issue 19, item 8): whole numbers in any common format
through `phonenumbers` in the agent's default region (BY), a part of a number by its end, through an index."""

from __future__ import annotations

import pytest

from admin.phone_search import PhoneQuery, phone_query
from agent.app import Agent
from tests.admin_client import add_calls, base, client
from tests.test_admin_site import setup_enterprises

WANTED = "+375291234567"
FORMATS = ["+375291234567", "+375 29 123-45-67", "375291234567", "80291234567", "8 (029) 123-45-67", "291234567"]
PARTS = ["1234567", "234567", "45-67"]


@pytest.mark.parametrize("typed", FORMATS)
def test_a_whole_number_in_any_format_is_read_as_e164(typed: str) -> None:
    assert WANTED in phone_query(typed, "BY").exact


@pytest.mark.parametrize(("typed", "suffix"), [("1234567", "1234567"), ("45-67", "4567"), ("+3", "3")])
def test_a_part_of_a_number_is_searched_by_its_end(typed: str, suffix: str) -> None:
    assert phone_query(typed, "BY").suffix == suffix


def test_a_valid_whole_number_is_searched_only_as_itself() -> None:
    assert phone_query("80291234567", "BY") == PhoneQuery(("+375291234567", "80291234567", "+80291234567"), "")


async def test_the_calls_filter_finds_the_number_in_every_format(running_agent: Agent) -> None:
    pool = running_agent.parts.pool
    await setup_enterprises(running_agent)
    await add_calls(pool, "100", 30)
    await pool.execute(
        "INSERT INTO calls (call_id, enterprise_number, direction, phone, extensions, result, started_at, ended_at)"
        " VALUES ('wanted', '100', 'in', $1, '{150}', 'answered', now() - interval '2 minutes', now())",
        WANTED,
    )
    url = f"{base(running_agent)}/admin/100/calls.json"
    async with client(running_agent, "100") as http:
        for typed in FORMATS + PARTS:
            async with http.get(url, params={"number": typed}) as resp:
                body = await resp.json()
                assert resp.status == 200, body
            assert [c["call_id"] for c in body["calls"]] == ["wanted"], typed
        async with http.get(url, params={"number": "0000003"}) as resp:
            assert [c["phone"] for c in (await resp.json())["calls"]] == ["+375290000003"]
        async with http.get(url, params={"number": "80290000007"}) as resp:  # a range not known as allocated
            assert [c["phone"] for c in (await resp.json())["calls"]] == ["+375290000007"]
        async with http.get(url, params={"number": "80297654321"}) as resp:
            assert (await resp.json())["calls"] == []


async def test_a_search_by_the_end_of_a_number_uses_an_index(running_agent: Agent) -> None:
    async with running_agent.parts.pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO calls (call_id, enterprise_number, direction, phone, extensions, result, started_at, ended_at)"
            " SELECT 'x' || g, '100', 'in', '+37529' || lpad(g::text, 7, '0'), '{150}', 'answered', now(), now()"
            " FROM generate_series(1, 20000) g"
        )
        await conn.execute("ANALYZE calls")
        plan = "\n".join(
            r[0]
            for r in await conn.fetch(
                "EXPLAIN SELECT call_id FROM calls WHERE enterprise_number = '100' AND reverse(phone) LIKE '7654321%'"
            )
        )
    assert "calls_enterprise_phone_reversed" in plan, plan


async def test_live_and_backfilled_calls_show_the_dialled_number_alike(running_agent: Agent) -> None:
    """A live call stores the PBX's exten as it came, a catch-up from the CDR stores E.164: one display."""
    pool = running_agent.parts.pool
    await setup_enterprises(running_agent)
    for call_id, did in (("live", "375173880000"), ("live8", "80173880000"), ("cdr", "+375173880000")):
        await pool.execute(
            "INSERT INTO calls (call_id, enterprise_number, direction, phone, did, extensions, result, started_at,"
            " ended_at) VALUES ($1, '100', 'in', '+375291234567', $2, '{150}', 'answered', now(), now())",
            call_id,
            did,
        )
    b = f"{base(running_agent)}/admin/100"
    async with client(running_agent, "100") as http:
        async with http.get(f"{b}/calls.json") as resp:
            assert {c["call_id"]: c["did"] for c in (await resp.json())["calls"]} == dict.fromkeys(
                ("live", "live8", "cdr"), "+375173880000"
            )
        async with http.get(f"{b}/calls") as resp:
            assert (await resp.text()).count("→ +375173880000") == 3
        async with http.get(f"{b}/calls/live") as resp:
            assert "+375173880000" in await resp.text()
