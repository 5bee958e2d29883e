"""/metrics of a running agent: per PBX link, last event age and lock; per CRM outbox rows and latency;
smart-redirect answers with latency and the routing cache's hits and misses."""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent.config.sections import Config
from agent.store.database import Pool
from tests import recordings
from tests.agi_client import agi_call, recorded_request, request_with
from tests.crm_setup import API_KEY, ENTERPRISE, configure_retailcrm, drained, running
from tests.fakes.ami import FakeAmi
from tests.fakes.retailcrm import FakeRetailCrm
from tests.test_ami_link import pbx_for
from tests.test_outbox_retailcrm import config_with
from tests.waiting import until


@pytest.fixture
async def fake_crm() -> AsyncIterator[FakeRetailCrm]:
    async with FakeRetailCrm(api_key=API_KEY) as fake:
        fake.set_manager("+375291234567", {"id": 7, "firstName": "Ivan", "lastName": "Petrov", "status": "free"})
        yield fake


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_of_a_running_agent(
    fake_crm: FakeRetailCrm, pool: Pool, db_dsn: str, make_config: Callable[..., Config]
) -> None:
    directory = recordings.recordings_dir()
    ami = FakeAmi(directory / "a_incoming_answered.ami", directory / "a_incoming_answered.timing", speed=math.inf)
    await ami.start()
    try:
        config = config_with(make_config, db_dsn, ami)
        assert pbx_for(ami).name == "office"
        await configure_retailcrm(pool, config.agent.state_dir, fake_crm)
        async with running(config) as agent:
            await ami.wait_finished(within=10)
            await drained(pool, at_least=1)
            ask = request_with(recorded_request("a_incoming_answered"), arg_1=ENTERPRISE)
            for _ in range(2):  # asked the CRM once, then from the cache
                await agi_call(agent.parts.agi.port, ask)
            await until(lambda: "office" in agent.parts.pbxs.locks.held)
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"http://127.0.0.1:{agent.parts.http_port}/metrics") as resp,
            ):
                assert resp.status == 200
                text = await resp.text()
    finally:
        await ami.stop()
    got = samples(text)
    office = (("pbx", "office"),)
    assert got[("pbx_agent_pbx_connected", office)] == 1.0
    assert got[("pbx_agent_pbx_lock_held", office)] == 1.0
    assert 0 <= got[("pbx_agent_pbx_last_event_age_seconds", office)] < 60
    assert got[("pbx_agent_deliveries_by_crm", (("crm", "retailcrm"), ("status", "done")))] >= 1
    assert got[("pbx_agent_deliveries_by_crm", (("crm", "retailcrm"), ("status", "due")))] == 0
    assert got[("pbx_agent_deliveries_by_status", (("status", "done"),))] >= 1
    assert got[("pbx_agent_delivery_seconds_count", (("crm", "retailcrm"),))] >= 1
    assert got[("pbx_agent_agi_requests_total", (("status", "FOUND"),))] == 2
    assert got[("pbx_agent_agi_answer_seconds_count", ())] == 2
    assert got[("pbx_agent_routing_cache_total", (("result", "hit"),))] == 1
    assert got[("pbx_agent_routing_cache_total", (("result", "miss"),))] == 1
    assert re.search(r'^pbx_agent_calls_ended_total\{direction="in",result="answered"\} 1\.0$', text, re.M)


async def test_event_names_asterisk_does_not_document_share_one_label(
    pool: Pool, db_dsn: str, make_config: Callable[..., Config]
) -> None:
    directory = recordings.recordings_dir()
    stream = (directory / "a_incoming_answered.ami").read_bytes()
    booted = stream.index(b"Event: FullyBooted")
    after_booted = stream.index(b"\r\n\r\n", booted) + 4
    invented = b"".join(b"Event: Invented%d\r\nPrivilege: call,all\r\n\r\n" % i for i in range(2000))
    ami = FakeAmi(stream[:after_booted] + invented + stream[after_booted:], speed=math.inf)
    await ami.start()
    try:
        async with running(config_with(make_config, db_dsn, ami)) as agent:
            await ami.wait_finished(within=10)

            async def counted() -> bool:
                return bool(await pool.fetchval("SELECT count(*) FROM calls"))

            await until(counted, within=10)
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"http://127.0.0.1:{agent.parts.http_port}/metrics") as resp,
            ):
                text = await resp.text()
    finally:
        await ami.stop()
    events = {
        dict(labels)["event"]: value
        for (name, labels), value in samples(text).items()
        if name == "pbx_agent_ami_events_total"
    }
    assert events["other"] == 2000
    assert not any(name.startswith("Invented") for name in events)
    assert events["DialBegin"] >= 1 and events["Hangup"] >= 1  # the documented ones keep their own series
