"""A batched exchange is shown on the call page of every call it carried, not only the first one's.

RetailCRM's history goes out up to 50 calls per `/telephony/calls/upload`; the exchange is logged once.
The calls are planned by a first agent whose outbox takes no work (`max_in_flight=0`), so that a second
agent finds them all due at once and sends them in one request.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import pytest

from agent.app import Agent
from agent.config.sections import Config
from agent.store import enterprises
from agent.store.database import Pool
from tests import recordings
from tests.admin_client import add_calls, base, client
from tests.crm_setup import API_KEY, ENTERPRISE, FAST, configure_retailcrm, drained, running
from tests.fakes.ami import FakeAmi
from tests.fakes.retailcrm import FakeRetailCrm
from tests.test_ami_link import pbx_for
from tests.waiting import until

CALLS = 3


@pytest.fixture
async def fake_crm() -> AsyncIterator[FakeRetailCrm]:
    async with FakeRetailCrm(api_key=API_KEY) as fake:
        yield fake


@pytest.fixture
async def three_calls() -> AsyncIterator[FakeAmi]:
    """One PBX stream with CALLS answered incoming calls (the same recording under new ids)."""
    data = recordings.ami("p_a_incoming_answered")
    head, _, _ = data.partition(b"\r\n")
    body = data[len(head) + 2 :]
    ami = FakeAmi(
        head + b"\r\n" + b"".join(recordings.rewrite_ids(body, offset=i * 10) for i in range(CALLS)), speed=math.inf
    )
    await ami.start()
    yield ami
    await ami.stop()


async def planned_uploads(pool: Pool, n: int, within: float = 20.0) -> None:
    async def planned() -> bool:
        return bool(await pool.fetchval("SELECT count(*) FROM deliveries WHERE kind = 'calls_upload'") >= n)

    await until(planned, within=within, every=0.05)


async def test_each_call_of_a_batched_upload_shows_the_exchange(
    fake_crm: FakeRetailCrm, three_calls: FakeAmi, pool: Pool, db_dsn: str, make_config: Callable[..., Config]
) -> None:
    config = replace(make_config(db_dsn), pbx=(pbx_for(three_calls),))
    await configure_retailcrm(pool, config.agent.state_dir, fake_crm, popup_in=False, popup_hangup=False)
    async with running(config, replace(FAST, max_in_flight=0)):  # tracks and plans, delivers nothing
        await three_calls.wait_finished(within=10)
        await planned_uploads(pool, CALLS)
    assert not fake_crm.requests

    async with running(replace(config, pbx=()), FAST) as agent:  # only delivers: all due in one claim
        await drained(pool, at_least=CALLS)
        (upload,) = fake_crm.uploads
        call_ids = [r["call_id"] for r in await pool.fetch("SELECT call_id FROM calls ORDER BY call_id")]
        assert len(call_ids) == CALLS and sorted(c["externalId"] for c in upload) == call_ids
        (logged,) = await pool.fetch("SELECT id FROM integration_logs WHERE event_type = 'calls_upload'")

        pages: dict[str, dict[str, Any]] = {}
        async with client(agent, ENTERPRISE) as http:
            for call_id in call_ids:
                async with http.get(f"{base(agent)}/admin/{ENTERPRISE}/calls/{call_id}.json") as resp:
                    assert resp.status == 200, await resp.text()
                    (pages[call_id],) = (await resp.json())["deliveries"]
    # every call's upload shows the one exchange that carried it (before: only the first call's did)
    assert {c: [e["id"] for e in d["logs"]] for c, d in pages.items()} == {c: [logged["id"]] for c in call_ids}
    for call_id, delivery in pages.items():
        assert delivery["kind"] == "calls_upload" and delivery["status"] == "done"
        (exchange,) = delivery["logs"]
        assert exchange["status"] == "success" and call_id in json.dumps(exchange["request"])
        assert sorted(exchange["delivery_ids"]) == sorted(d["id"] for d in pages.values())


async def test_an_exchange_logged_before_delivery_ids_is_still_shown(running_agent: Agent) -> None:
    """Rows written before migration 0009 name their delivery only in delivery_id."""
    pool = running_agent.parts.pool
    assert pool is not None
    await enterprises.put(pool, ENTERPRISE, "Shop")
    await add_calls(pool, ENTERPRISE, 1)
    delivery = await pool.fetchval(
        "INSERT INTO deliveries (idempotency_key, enterprise_number, integration_type, kind, payload, status)"
        " VALUES ('retailcrm:c0:upload', $1, 'retailcrm', 'calls_upload', '{}', 'done') RETURNING id",
        ENTERPRISE,
    )
    old = await pool.fetchval(
        "INSERT INTO integration_logs (enterprise_number, integration_type, event_type, status, delivery_id)"
        " VALUES ($1, 'retailcrm', 'calls_upload', 'success', $2) RETURNING id",
        ENTERPRISE,
        delivery,
    )
    async with (
        client(running_agent, ENTERPRISE) as http,
        http.get(f"{base(running_agent)}/admin/{ENTERPRISE}/calls/c0.json") as resp,
    ):
        (shown,) = (await resp.json())["deliveries"]
    assert [(e["id"], e["delivery_ids"]) for e in shown["logs"]] == [(old, [delivery])]
