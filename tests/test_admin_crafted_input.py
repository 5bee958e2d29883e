"""Crafted paging tokens and out-of-range numbers are refused with 400 before any query: never a 500 (which
would also have leaked a traceback into the log at every probe)."""

from __future__ import annotations

import base64
import json
from typing import Any

import aiohttp
import pytest

from agent.app import Agent
from tests.admin_client import base, client
from tests.browser import seed
from tests.test_amocrm_agent import api_headers


def token(values: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


HUGE = "9" * 25
NOW = "2026-11-23T17:42:05+00:00"


@pytest.mark.parametrize(
    ("page", "query"),
    [
        ("calls", {"next": token(["not a time", "c1"])}),
        ("calls", {"next": token([NOW, 5])}),
        ("calls", {"next": token(["2026-11-23T17:42:05", "c1"])}),  # no offset: not one of ours
        ("calls", {"next": "%%%"}),
        ("log", {"next": token([NOW, 10**30])}),
        ("log", {"next": token([NOW, -1])}),
        ("log", {"next": token([NOW, True])}),
        ("log", {"dnext": HUGE}),
        ("log", {"dnext": "١٢"}),  # Arabic-Indic digits: isdigit() says yes, the database no
        ("stats", {"days": HUGE}),
    ],
)
async def test_crafted_page_parameters_are_400(running_agent: Agent, page: str, query: dict[str, str]) -> None:
    await seed(running_agent.parts.pool)
    async with client(running_agent, "100") as http:
        for suffix in ("", ".json"):
            async with http.get(f"{base(running_agent)}/admin/100/{page}{suffix}", params=query) as resp:
                assert resp.status == 400, (page, query, suffix, await resp.text())


async def test_good_tokens_still_page(running_agent: Agent) -> None:
    await seed(running_agent.parts.pool)
    async with client(running_agent, "100") as http:
        for page, values in (("calls", [NOW, "c1"]), ("log", [NOW, 12])):
            async with http.get(f"{base(running_agent)}/admin/100/{page}.json", params={"next": token(values)}) as resp:
                assert resp.status == 200


async def test_the_api_refuses_ids_the_database_cannot_hold(running_agent: Agent) -> None:
    headers = api_headers(running_agent.config)
    async with aiohttp.ClientSession(headers=headers) as http:
        b = base(running_agent)
        for url in (
            f"{b}/api/deliveries?status=failed&after={HUGE}",
            f"{b}/api/deliveries?status=failed&limit={HUGE}",
            f"{b}/api/deliveries?status=failed&after=-1",
        ):
            async with http.get(url) as resp:
                assert resp.status == 400, url
        async with http.post(f"{b}/api/deliveries/{HUGE}/retry") as resp:
            assert resp.status == 400
        async with http.get(f"{b}/api/deliveries?status=failed&after=0") as resp:
            assert resp.status == 200
