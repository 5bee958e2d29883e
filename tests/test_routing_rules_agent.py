"""Routing rules through the whole agent: rules changed through the config API, recorded FastAGI requests
over real sockets, the fake RetailCRM, and recorded AMI streams replayed by FakeAmi into the calls table."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from agent.app import Agent
from agent.config.sections import Config
from agent.store.database import Pool
from agent.store.secretbox import load_or_create_secret
from agent.web.tokens import TokenSigner
from connectors.retailcrm import store as retailcrm_store
from tests import recordings
from tests.agi_client import Exchange, agi_call, recorded_request, request_with
from tests.crm_setup import API_KEY, ENTERPRISE, configure_retailcrm, running
from tests.fakes.ami import FakeAmi
from tests.fakes.retailcrm import FakeRetailCrm
from tests.test_ami_link import pbx_for

CUSTOMER_A = "+375291234567"  # the caller of the a_* recordings; RetailCRM user 7 -> extension 150
CUSTOMER_B = "+375297654321"  # RetailCRM user 8 -> extension 151
STRANGER = "+375445550011"


@pytest.fixture
async def fake_crm() -> AsyncIterator[FakeRetailCrm]:
    async with FakeRetailCrm(api_key=API_KEY) as fake:
        fake.set_manager(CUSTOMER_A, {"id": 7, "firstName": "Ivan", "lastName": "Petrov", "status": "free"})
        fake.set_manager(CUSTOMER_B, {"id": 8, "firstName": "Olga", "lastName": "Sidorova", "status": "free"})
        yield fake


async def api(agent: Agent, method: str, body: Any = None, number: str = ENTERPRISE) -> tuple[int, Any]:
    token = TokenSigner(load_or_create_secret(agent.config.agent.state_dir)).issue(None, 1)
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method,
            f"http://127.0.0.1:{agent.parts.http_port}/api/enterprises/{number}/routing",
            headers={"Authorization": f"Bearer {token}"},
            data=None if body is None else json.dumps(body).encode(),
        ) as resp,
    ):
        return resp.status, await resp.json()


def ask(caller: str, recording: str = "a_incoming_answered") -> bytes:
    return request_with(recorded_request(recording), arg_1=ENTERPRISE, callerid=caller)


async def until(agent: Agent, request: bytes, status: str, tries: int = 200) -> Exchange:
    """The answer once a rule change has reached the agent (NOTIFY is asynchronous); polled, no fixed sleep."""
    assert agent.parts.agi.port is not None
    for _ in range(tries):
        got = await agi_call(agent.parts.agi.port, request)
        if got.status == status:
            return got
        await asyncio.sleep(0.01)
    return got


async def test_each_status_and_rule_changes_through_the_api(
    fake_crm: FakeRetailCrm, pool: Pool, db_dsn: str, make_config: Callable[..., Config]
) -> None:
    config = make_config(db_dsn)
    await configure_retailcrm(pool, config.agent.state_dir, fake_crm)
    async with running(replace(config, pbx=())) as agent:
        found = await until(agent, ask(CUSTOMER_A), "FOUND")
        assert (found.exten, found.variables["REDIRECT_SOURCE"], found.variables["REDIRECT_REASON"]) == (
            "150",
            "crm",
            "",
        )

        # blocked: answered at once, no CRM asked
        assert await api(agent, "PUT", {"blocklist": ["+37544*"]}) == (200, {"blocklist": ["+37544*"]})
        blocked = await until(agent, ask(STRANGER), "BLOCKED")
        assert (blocked.status, blocked.exten) == ("BLOCKED", "")

        def asked_about_stranger() -> int:
            return len([r for r in fake_crm.requests if STRANGER in json.dumps(r.query)])

        # (until the NOTIFY arrived, the stranger was looked up like anyone; from the block on, never)
        before = asked_about_stranger()
        assert agent.parts.agi.port is not None
        for _ in range(3):
            assert (await agi_call(agent.parts.agi.port, ask(STRANGER))).status == "BLOCKED"
        assert asked_about_stranger() == before

        # closed: a holiday today (yesterday and tomorrow too, so midnight cannot race the test)
        today = datetime.now(UTC).date()
        days = [str(today + timedelta(days=d)) for d in (-1, 0, 1)]
        assert (await api(agent, "PUT", {"timezone": "UTC", "holidays": days}))[0] == 200
        closed = await until(agent, ask(CUSTOMER_A), "CLOSED")
        assert (closed.status, closed.exten) == ("CLOSED", "")
        # outside the hours: open one minute a week, on a day that is not today
        other_day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[(today.weekday() + 3) % 7]
        assert (await api(agent, "PUT", {"hours": {other_day: [["03:00", "03:01"]]}}))[0] == 200
        await until(agent, ask(CUSTOMER_A), "FOUND")  # the holiday went with the previous document
        assert (await until(agent, ask(CUSTOMER_A), "CLOSED")).exten == ""

        # the manager's own hours: 150 is never on duty -> UNAVAILABLE off_hours, named
        assert (await api(agent, "PUT", {"managers": {"150": {"hours": {}}}}))[0] == 200
        off = await until(agent, ask(CUSTOMER_A), "UNAVAILABLE")
        assert (off.exten, off.variables["REDIRECT_REASON"], off.variables["REDIRECT_MANAGER"]) == (
            "",
            "off_hours",
            "Ivan Petrov",
        )

        # the manager's RetailCRM status (changeUserStatusUrl): dinner -> away, busy -> busy
        assert (await until(agent, ask(CUSTOMER_B), "FOUND")).exten == "151"
        for status, reason in (("dinner", "away"), ("break", "away"), ("busy", "busy")):
            await retailcrm_store.set_user_status(pool, ENTERPRISE, "8", None, status)
            assert (await api(agent, "PUT", {"managers": {"150": {"hours": {}}}}))[0] == 200  # NOTIFY
            away = await until(agent, ask(CUSTOMER_B), "UNAVAILABLE")
            assert (away.status, away.variables["REDIRECT_REASON"]) == ("UNAVAILABLE", reason), status
            await retailcrm_store.set_user_status(pool, ENTERPRISE, "8", None, "free")
            assert (await api(agent, "PUT", {}))[0] == 200
            assert (await until(agent, ask(CUSTOMER_B), "FOUND")).exten == "151"


async def test_api_validates_and_stores(
    fake_crm: FakeRetailCrm, pool: Pool, db_dsn: str, make_config: Callable[..., Config]
) -> None:
    config = make_config(db_dsn)
    await configure_retailcrm(pool, config.agent.state_dir, fake_crm)
    async with running(replace(config, pbx=())) as agent:
        assert await api(agent, "GET") == (200, {})
        rules = {
            "timezone": "Europe/Berlin",
            "hours": {"mon": [["09:00", "18:00"]]},
            "history_days": 14,
            "did_rules": {"+375173880000": {"default_extension": "150", "crm_delivery": False}},
        }
        assert await api(agent, "PUT", rules) == (200, rules)
        assert await api(agent, "GET") == (200, rules)
        status, body = await api(agent, "PUT", {"hours": {"mon": [["18:00", "09:00"]]}})
        assert (status, body["field"]) == (400, "hours.mon[0]")
        status, body = await api(agent, "PUT", {"timezone": "Europe/Nowhere"})
        assert (status, body["field"]) == (400, "timezone")
        assert await api(agent, "GET") == (200, rules)  # a refused document changes nothing
        # a time as the routing form takes it (9:00) is taken, and stored as the form stores it (09:00)
        loose = {
            **rules,
            "hours": {"mon": [["9:00", "18:00"]]},
            "managers": {"150": {"hours": {"fri": [["8:30", "9:45"]]}}},
        }
        tidy = {
            **rules,
            "hours": {"mon": [["09:00", "18:00"]]},
            "managers": {"150": {"hours": {"fri": [["08:30", "09:45"]]}}},
        }
        assert await api(agent, "PUT", loose) == (200, tidy)
        assert await api(agent, "GET") == (200, tidy)
        assert (await api(agent, "PUT", {}, number="999"))[0] == 404
        assert (await api(agent, "GET", number="999"))[0] == 404


async def wait_rows(pool: Pool, query: str, *args: object, within: float = 20.0) -> list[Any]:
    async with asyncio.timeout(within):
        while True:
            rows = await pool.fetch(query, *args)
            if rows:
                return rows
            await asyncio.sleep(0.05)


async def test_history_after_a_replayed_answered_call(
    pool: Pool, db_dsn: str, make_config: Callable[..., Config]
) -> None:
    """FakeAmi -> agent -> calls table -> the next AGI request from that number is FOUND via history,
    also for an agent that starts afterwards (the answer then comes from the database)."""
    stream = (recordings.recordings_dir() / "a_incoming_answered.ami").read_bytes()
    async with FakeRetailCrm(api_key=API_KEY) as fake:  # RetailCRM knows no manager for anyone
        async with FakeAmi(stream, speed=math.inf) as ami:
            config = replace(make_config(db_dsn), pbx=(replace(pbx_for(ami), enterprise=ENTERPRISE),))
            await configure_retailcrm(pool, config.agent.state_dir, fake)
            async with running(config) as agent:
                assert (await until(agent, ask(CUSTOMER_A), "NOT_FOUND")).exten == ""
                assert (await api(agent, "PUT", {"history_days": 3650}))[0] == 200
                rows = await wait_rows(
                    pool, "SELECT phone, answered_by FROM calls WHERE enterprise_number = $1", ENTERPRISE
                )
                assert [(r["phone"], r["answered_by"]) for r in rows] == [(CUSTOMER_A, "150")]
                got = await until(agent, ask(CUSTOMER_A), "FOUND")
                assert (got.status, got.exten, got.variables["REDIRECT_SOURCE"]) == ("FOUND", "150", "history")
                assert (await until(agent, ask(CUSTOMER_B), "NOT_FOUND")).exten == ""
        async with running(replace(config, pbx=())) as fresh:  # no in-memory history: from `calls`
            got = await until(fresh, ask(CUSTOMER_A), "FOUND")
            assert (got.status, got.exten, got.variables["REDIRECT_SOURCE"]) == ("FOUND", "150", "history")
            assert (await api(fresh, "PUT", {"history_days": 0}))[0] == 200
            assert (await until(fresh, ask(CUSTOMER_A), "NOT_FOUND")).exten == ""


async def test_blocked_caller_produces_no_crm_traffic(
    fake_crm: FakeRetailCrm, pool: Pool, db_dsn: str, make_config: Callable[..., Config]
) -> None:
    stream = (recordings.recordings_dir() / "a_incoming_answered.ami").read_bytes()
    async with FakeAmi(stream, speed=math.inf, pause_at=0) as ami:
        config = replace(make_config(db_dsn), pbx=(replace(pbx_for(ami), enterprise=ENTERPRISE),))
        await configure_retailcrm(pool, config.agent.state_dir, fake_crm)
        async with running(config) as agent:
            assert (await api(agent, "PUT", {"blocklist": [CUSTOMER_A]}))[0] == 200
            assert (await until(agent, ask(CUSTOMER_A), "BLOCKED")).exten == ""
            before = len(fake_crm.requests)  # (lookups made before the NOTIFY arrived do not count)
            assert (await agi_call(agent.parts.agi.port, ask(CUSTOMER_A))).status == "BLOCKED"
            ami.unpause()
            await ami.wait_finished(within=10)
            await wait_rows(pool, "SELECT 1 FROM calls WHERE enterprise_number = $1", ENTERPRISE)
            assert await pool.fetchval("SELECT count(*) FROM deliveries") == 0
            assert fake_crm.requests[before:] == []  # no lookup, no delivery


async def test_did_with_crm_delivery_off_sends_nothing(
    fake_crm: FakeRetailCrm, pool: Pool, db_dsn: str, make_config: Callable[..., Config]
) -> None:
    stream = (recordings.recordings_dir() / "a_incoming_answered.ami").read_bytes()
    async with FakeAmi(stream, speed=math.inf, pause_at=0) as ami:
        config = replace(make_config(db_dsn), pbx=(replace(pbx_for(ami), enterprise=ENTERPRISE),))
        await configure_retailcrm(pool, config.agent.state_dir, fake_crm)
        async with running(config) as agent:
            rules = {"did_rules": {"+375173880000": {"crm_delivery": False}}}
            assert (await api(agent, "PUT", rules))[0] == 200
            await until(agent, ask(CUSTOMER_A), "FOUND")  # smart redirect still works on that DID
            before = len(fake_crm.requests)
            ami.unpause()
            await ami.wait_finished(within=10)
            [row] = await wait_rows(pool, "SELECT did FROM calls WHERE enterprise_number = $1", ENTERPRISE)
            assert row["did"].lstrip("+") == "375173880000"
            assert await pool.fetchval("SELECT count(*) FROM deliveries") == 0
            assert fake_crm.requests[before:] == []
