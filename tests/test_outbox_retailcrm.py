"""Calls reach RetailCRM through the durable outbox: recorded AMI bytes in, requests at the fake out."""

from __future__ import annotations

import json
import logging
import math
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import pytest

from agent.app import Agent
from agent.config.sections import Config, OutboxSection
from agent.store.database import Pool
from tests import recordings
from tests.crm_setup import API_KEY, ENTERPRISE, configure_retailcrm, drained, running
from tests.fakes.ami import FakeAmi
from tests.fakes.retailcrm import FakeRetailCrm
from tests.test_ami_link import pbx_for
from tests.waiting import until


@pytest.fixture
async def fake_crm() -> AsyncIterator[FakeRetailCrm]:
    async with FakeRetailCrm(api_key=API_KEY) as fake:
        yield fake


_started: list[FakeAmi] = []


def request_stop(ami: FakeAmi) -> None:
    _started.append(ami)


@pytest.fixture(autouse=True)
async def _stop_fake_amis() -> AsyncIterator[None]:
    yield
    while _started:
        await _started.pop().stop()


def config_with(make_config: Callable[..., Config], db_dsn: str, ami: FakeAmi | None) -> Config:
    base = make_config(db_dsn)
    return replace(base, pbx=(pbx_for(ami),) if ami is not None else ())


EXPECTED = {  # recording -> (popups of type "in"/"out", upload result, answered extension or None)
    "a_incoming_answered": ({"in": 1, "hangup": 1}, "answered", "150"),
    "b_incoming_missed": ({"in": 1, "hangup": 1}, "no answer", "150"),
    "c_incoming_busy": ({"in": 1, "hangup": 1}, "busy", "150"),
    "d_outgoing_answered": ({"hangup": 1}, "answered", "150"),
    "i_queue_second_member": ({"in": 2, "hangup": 1}, "answered", "152"),
    "p_l_ring_group": ({"in": 3, "hangup": 1}, "answered", "151"),
    "p_n_ivr_then_missed": ({"in": 1, "hangup": 1}, "no answer", "150"),
    "p_m_pickup": ({"in": 1, "hangup": 1}, "answered", "151"),  # 151 picked up 150's ringing call
    "p_t_forward_no_answer": ({"in": 1, "hangup": 1}, "answered", "150"),  # 150's phone forwarded to his mobile
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
async def test_each_recorded_call_reaches_retailcrm_once(
    name: str, fake_crm: FakeRetailCrm, pool: Pool, db_dsn: str, make_config: Callable[..., Config]
) -> None:
    directory = recordings.recordings_dir()
    popups, result, code = EXPECTED[name]
    ami = FakeAmi(directory / f"{name}.ami", directory / f"{name}.timing", speed=math.inf)
    await ami.start()
    request_stop(ami)
    config = config_with(make_config, db_dsn, ami)
    await configure_retailcrm(pool, config.agent.state_dir, fake_crm)
    async with running(config) as agent:
        await ami.wait_finished(within=10)
        counts = await drained(pool, at_least=2)
        assert agent.pipelines["office"].tracker.live_calls() == 0
    assert set(counts) <= {"done", "expired"}
    ((call,),) = fake_crm.uploads  # one request, one call
    assert call["result"] == result
    assert call["code"] == code
    assert call["externalId"] == (await pool.fetchval("SELECT call_id FROM calls"))
    types: dict[str, int] = {}
    for event in fake_crm.events:
        types[event["type"]] = types.get(event["type"], 0) + 1
    assert {k: v for k, v in types.items() if k in popups} == popups
    assert fake_crm.duplicates_seen == 0
    # every exchange is logged, and never with the key
    logs = await pool.fetch("SELECT * FROM integration_logs ORDER BY id")
    assert len(logs) == len(fake_crm.requests)
    assert all(row["status"] == "success" and row["duration_ms"] is not None for row in logs)
    assert API_KEY not in json.dumps([dict(r) for r in logs], default=str)


async def test_outage_then_everything_delivered_once(
    fake_crm: FakeRetailCrm, pool: Pool, db_dsn: str, make_config: Callable[..., Config]
) -> None:
    directory = recordings.recordings_dir()
    ami = FakeAmi(directory / "p_a_incoming_answered.ami", speed=math.inf)
    await ami.start()
    request_stop(ami)
    config = config_with(make_config, db_dsn, ami)
    await configure_retailcrm(pool, config.agent.state_dir, fake_crm)
    port = int(fake_crm.url.rsplit(":", 1)[1])
    await fake_crm.stop()  # the CRM is down: connections refused
    async with running(config):
        await ami.wait_finished(within=10)

        async def tried_thrice() -> bool:
            attempts = await pool.fetchval("SELECT max(attempts) FROM deliveries WHERE kind = 'calls_upload'")
            return bool((attempts or 0) >= 3)

        await until(tried_thrice, within=10, every=0.05)
        row = await pool.fetchrow("SELECT status, last_error FROM deliveries WHERE kind = 'calls_upload'")
        assert row is not None
        assert row["status"] in ("pending", "in_progress")
        assert "connection" in row["last_error"] or "paused" in row["last_error"]
        await fake_crm.start(port)  # back
        await drained(pool, at_least=2)
    assert len(fake_crm.calls) == 1 and sum(len(u) for u in fake_crm.uploads) == 1


async def test_503_and_429_with_retry_after_are_honoured(
    fake_crm: FakeRetailCrm, pool: Pool, db_dsn: str, make_config: Callable[..., Config]
) -> None:
    directory = recordings.recordings_dir()
    ami = FakeAmi(directory / "p_b_incoming_missed.ami", speed=math.inf)
    await ami.start()
    request_stop(ami)
    config = config_with(make_config, db_dsn, ami)
    await configure_retailcrm(pool, config.agent.state_dir, fake_crm, popup_in=False, popup_hangup=False)
    fake_crm.fail_next(1, status=503)
    fake_crm.fail_next(1, status=429, retry_after=1)
    async with running(config):
        await ami.wait_finished(within=10)
        await drained(pool, at_least=1)
    uploads = fake_crm.requests_to("/telephony/calls/upload")
    assert len(uploads) == 3
    assert uploads[2].at - uploads[1].at >= 0.95  # waited out Retry-After: 1
    assert len(fake_crm.calls) == 1


async def test_a_rejected_delivery_fails_visibly_and_can_be_retried(
    fake_crm: FakeRetailCrm, pool: Pool, db_dsn: str, make_config: Callable[..., Config]
) -> None:
    directory = recordings.recordings_dir()
    ami = FakeAmi(directory / "p_b_incoming_missed.ami", speed=math.inf)
    await ami.start()
    request_stop(ami)
    config = config_with(make_config, db_dsn, ami)
    await configure_retailcrm(pool, config.agent.state_dir, fake_crm, popup_in=False, popup_hangup=False)
    fake_crm.fail_next(
        1,
        status=400,
        body={"success": False, "errorMsg": "Calls are not loaded", "errors": {"calls[0].result": "Bad value"}},
    )
    async with running(config) as agent:
        await ami.wait_finished(within=10)
        await drained(pool, at_least=1)
        row = await pool.fetchrow("SELECT id, status, last_error, attempts FROM deliveries")
        assert row is not None
        assert row["status"] == "failed" and "Bad value" in row["last_error"] and row["attempts"] == 1
        assert not fake_crm.calls
        assert await agent.parts.outbox.retry(row["id"])
        await drained(pool, at_least=1)
    assert len(fake_crm.calls) == 1


async def test_two_agents_on_one_database_send_each_delivery_once(
    fake_crm: FakeRetailCrm, pool: Pool, db_dsn: str, make_config: Callable[..., Config]
) -> None:
    from tests.recordings import rewrite_ids

    calls = 60
    data = recordings.ami("p_a_incoming_answered")
    head, _, _ = data.partition(b"\r\n")
    body = data[len(head) + 2 :]
    stream = head + b"\r\n" + b"".join(rewrite_ids(body, offset=i * 10) for i in range(calls))
    ami = FakeAmi(stream, speed=math.inf)
    await ami.start()
    request_stop(ami)
    config = config_with(make_config, db_dsn, ami)
    await configure_retailcrm(pool, config.agent.state_dir, fake_crm, popup_in=False, popup_hangup=False)
    fake_crm.slow(0.02)
    other_state = config.agent.state_dir.with_name("state-2")  # a second agent has a state dir of its own
    other_state.mkdir()
    shutil.copy(config.agent.state_dir / "secret.key", other_state / "secret.key")  # same secret: same keys
    second = replace(config, pbx=(), agent=replace(config.agent, state_dir=other_state))  # it only delivers
    async with running(config), running(second):
        await ami.wait_finished(within=20)
        await drained(pool, at_least=calls, within=30)
    assert len(fake_crm.calls) == calls
    assert sum(len(u) for u in fake_crm.uploads) == calls
    assert fake_crm.duplicates_seen == 0


async def test_invalid_settings_are_refused_naming_the_field(running_agent: Agent) -> None:
    import aiohttp

    from agent.store.secretbox import load_or_create_secret
    from agent.web.tokens import TokenSigner

    token = TokenSigner(load_or_create_secret(running_agent.config.agent.state_dir)).issue(None, 1)
    base = f"http://127.0.0.1:{running_agent.parts.http_port}/api/enterprises/{ENTERPRISE}"
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        await http.put(base, json={"name": "Shop"})
        for body, field in [
            ({"domain": "ftp://x", "api_key": API_KEY, "timezone": "UTC"}, "domain"),
            (
                {
                    "domain": "https://x.retailcrm.ru",
                    "api_key": API_KEY,
                    "timezone": "UTC",
                    "user_extensions": {"1": "150", "2": "150"},
                },
                "user_extensions.2",
            ),
            ({"domain": "https://x.retailcrm.ru", "api_key": API_KEY, "timezone": "Mars/Base"}, "timezone"),
        ]:
            async with http.put(f"{base}/integrations/retailcrm", json=body) as resp:
                answer = await resp.json()
                assert resp.status == 400, answer
                assert answer["field"] == field, answer
        async with http.get(f"{base}/integrations/retailcrm") as resp:
            assert await resp.json() == {}
        # what the old system's records lack or add is no error: the default time zone, the key kept as it was
        body = {"domain": "https://x.retailcrm.ru", "api_key": API_KEY, "colour": 1}
        async with http.put(f"{base}/integrations/retailcrm", json=body) as resp:
            saved = await resp.json()
            assert resp.status == 200 and saved["timezone"] == "Europe/Moscow" and saved["colour"] == 1, saved


async def test_the_api_key_never_reaches_a_log_line(
    fake_crm: FakeRetailCrm,
    pool: Pool,
    db_dsn: str,
    make_config: Callable[..., Config],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    directory = recordings.recordings_dir()
    ami = FakeAmi(directory / "p_c_incoming_busy.ami", speed=math.inf)
    await ami.start()
    request_stop(ami)
    config = config_with(make_config, db_dsn, ami)
    await configure_retailcrm(pool, config.agent.state_dir, fake_crm)
    fake_crm.fail_next(1, status=500)
    async with running(config):
        await ami.wait_finished(within=10)
        await drained(pool, at_least=2)
    assert fake_crm.calls
    assert API_KEY not in caplog.text
    assert "delivery retailcrm calls_upload" in caplog.text


async def test_failed_deliveries_are_listed_and_retried_through_the_api(
    fake_crm: FakeRetailCrm, pool: Pool, db_dsn: str, make_config: Callable[..., Config]
) -> None:
    import aiohttp

    from agent.store.secretbox import load_or_create_secret
    from agent.web.tokens import TokenSigner

    directory = recordings.recordings_dir()
    ami = FakeAmi(directory / "p_b_incoming_missed.ami", speed=math.inf)
    await ami.start()
    request_stop(ami)
    config = config_with(make_config, db_dsn, ami)
    await configure_retailcrm(pool, config.agent.state_dir, fake_crm, popup_in=False, popup_hangup=False)
    fake_crm.fail_next(1, status=400, body={"success": False, "errorMsg": "Calls are not loaded"})
    signer = TokenSigner(load_or_create_secret(config.agent.state_dir))
    async with running(config) as agent:
        await ami.wait_finished(within=10)
        await drained(pool, at_least=1)
        base = f"http://127.0.0.1:{agent.parts.http_port}/api/deliveries"
        own = {"Authorization": f"Bearer {signer.issue(ENTERPRISE, 1)}"}
        other = {"Authorization": f"Bearer {signer.issue('999', 1)}"}
        async with aiohttp.ClientSession() as http:
            async with http.get(base, params={"status": "failed", "enterprise": ENTERPRISE}, headers=own) as resp:
                (item,) = (await resp.json())["deliveries"]
            assert item["last_error"] == "Calls are not loaded" and item["crm"] == "retailcrm"
            async with http.get(base, params={"enterprise": ENTERPRISE}, headers=other) as resp:
                assert resp.status == 403
            async with http.post(f"{base}/{item['id']}/retry", headers=other) as resp:
                assert resp.status == 404
            async with http.post(f"{base}/{item['id']}/retry", headers=own) as resp:
                assert resp.status == 200
        await drained(pool, at_least=1)
    assert len(fake_crm.calls) == 1


async def test_a_recorded_call_carries_a_signed_record_url(
    fake_crm: FakeRetailCrm, pool: Pool, db_dsn: str, make_config: Callable[..., Config]
) -> None:
    directory = recordings.recordings_dir()
    ami = FakeAmi(directory / "p_o_recorded_call.ami", directory / "p_o_recorded_call.timing", speed=math.inf)
    await ami.start()
    request_stop(ami)
    # the recorded file is not on this host: link it without waiting for it (recording_wait off)
    config = replace(config_with(make_config, db_dsn, ami), outbox=OutboxSection(recording_wait=0))
    await configure_retailcrm(pool, config.agent.state_dir, fake_crm)
    async with running(config) as agent:
        await ami.wait_finished(within=10)
        await drained(pool, at_least=2)
        ((call,),) = fake_crm.uploads
        url = call["recordUrl"]
        assert url.startswith(config.agent.public_url + "/records/")
        path = agent.parts.records.relative(
            "/var/spool/asterisk/monitor/in-375173880003-+375291234567-20261124-005922-1795481962.0.wav"
        )
        assert path == "in-375173880003-+375291234567-20261124-005922-1795481962.0.wav"
    stored = await pool.fetchval("SELECT recording FROM calls")
    assert stored.endswith("1795481962.0.wav")


async def test_a_record_the_old_system_wrote_is_delivered_as_it_is(
    fake_crm: FakeRetailCrm, pool: Pool, db_dsn: str, make_config: Callable[..., Config]
) -> None:
    """Seed 003's layout (api_url with /api/v5, client_id the module code, user_mappings {extension: user id as
    a number}, `enabled` a string, no time zone), stored in clear as the old service wrote it: the running agent
    delivers with it, nobody re-enters anything, and the record is left as it was."""
    directory = recordings.recordings_dir()
    ami = FakeAmi(directory / "a_incoming_answered.ami", speed=math.inf)
    await ami.start()
    request_stop(ami)
    config = config_with(make_config, db_dsn, ami)
    old = {
        "enabled": "true",
        "api_url": f"{fake_crm.url}/api/v5",
        "api_key": API_KEY,
        "client_id": "vochi-asterisk",
        "user_mappings": {"150": 7, "151": 8, "152": None},
        "last_sync": "2025-01-09T19:20:00Z",
    }
    await pool.execute(
        "INSERT INTO enterprises (number, name, integrations_config) VALUES ($1, 'Shop', jsonb_build_object("
        "'retailcrm', $2::jsonb))",
        ENTERPRISE,
        old,
    )
    async with running(config):
        await ami.wait_finished(within=10)
        await drained(pool, at_least=2)
    ((call,),) = fake_crm.uploads
    assert call["result"] == "answered" and call["code"] == "150" and call["userId"] in (7, "7")
    assert await pool.fetchval("SELECT integrations_config -> 'retailcrm' FROM enterprises") == old
