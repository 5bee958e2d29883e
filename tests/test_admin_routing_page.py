"""The Routing page: the rules document edited in place, validated like the API, stored with NOTIFY."""

from __future__ import annotations

import json

from agent.app import Agent
from agent.store import enterprises
from agent.store import routing_rules as routing_store
from tests.admin_client import base, client, csrf


async def test_routing_page_saves_valid_rules_and_refuses_bad_ones(running_agent: Agent) -> None:
    pool = running_agent.parts.pool
    assert pool is not None
    await enterprises.put(pool, "100", "Shop")
    url = f"{base(running_agent)}/admin/100/routing"
    rules = {"timezone": "Europe/Minsk", "hours": {"mon": [["09:00", "18:00"]]}, "blocklist": ["+37529000*"]}
    async with client(running_agent, "100") as http:
        token = await csrf(http, url)
        async with http.post(url, data={"csrf_token": token, "rules": json.dumps(rules)}) as resp:
            assert resp.status == 200 and str(resp.url).endswith("/admin/100/routing")
            assert "+37529000*" in await resp.text()
        assert await routing_store.get_raw(pool, "100") == rules
        bad = {"hours": {"mon": [["18:00", "09:00"]]}}
        async with http.post(url, data={"csrf_token": token, "rules": json.dumps(bad)}) as resp:
            page = await resp.text()
            assert resp.status == 400 and "hours.mon[0]" in page
        async with http.post(url, data={"csrf_token": token, "rules": "{not json"}) as resp:
            assert resp.status == 400 and "not valid JSON" in await resp.text()
        assert await routing_store.get_raw(pool, "100") == rules  # refused documents changed nothing
        async with http.get(url + ".json") as resp:
            assert (await resp.json())["rules"] == rules
    async with client(running_agent, "100", role="viewer") as http:
        page_text = await (await http.get(url)).text()
        assert "<textarea" not in page_text and "+37529000*" in page_text
        token = await csrf(http, url)
        async with http.post(url, data={"csrf_token": token, "rules": "{}"}) as resp:
            assert resp.status == 403
    assert await routing_store.get_raw(pool, "100") == rules
