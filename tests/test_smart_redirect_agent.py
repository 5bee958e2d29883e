"""Smart redirect through the whole agent: the recorded FastAGI request, RetailCRM (fake) as the CRM,
the enterprise's extension mapping, and a manager whose phone is busy per the AMI stream."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import pytest

from agent.config.sections import Config
from agent.store import enterprises
from agent.store.database import Pool
from agent.store.secretbox import SecretBox, load_or_create_secret
from connectors.registry import secret_fields
from tests import recordings
from tests.agi_client import agi_call, recorded_request, request_with
from tests.crm_setup import API_KEY, ENTERPRISE, configure_retailcrm, running
from tests.fakes.ami import FakeAmi
from tests.fakes.retailcrm import FakeRetailCrm
from tests.test_ami_link import pbx_for


@pytest.fixture
async def fake_crm() -> AsyncIterator[FakeRetailCrm]:
    async with FakeRetailCrm(api_key=API_KEY) as fake:
        fake.set_manager("+375291234567", {"id": 7, "firstName": "Ivan", "lastName": "Petrov", "status": "free"})
        fake.set_manager("+375297654321", {"id": 8, "firstName": "Olga", "lastName": "Sidorova", "status": "free"})
        yield fake


async def test_recorded_requests_answered_from_retailcrm(
    fake_crm: FakeRetailCrm, pool: Pool, db_dsn: str, make_config: Callable[..., Config]
) -> None:
    config = make_config(db_dsn)
    await configure_retailcrm(pool, config.agent.state_dir, fake_crm)
    async with running(replace(config, pbx=())) as agent:  # no [[pbx]]: the enterprise comes as an argument
        port = agent.parts.agi.port

        def ask(name: str) -> bytes:
            return request_with(recorded_request(name), arg_1=ENTERPRISE)

        found = await agi_call(port, ask("a_incoming_answered"))
        assert (found.status, found.exten) == ("FOUND", "150")
        other = await agi_call(port, ask("p_i_queue_second_member"))
        assert (other.status, other.exten) == ("NOT_FOUND", "")
        again = await agi_call(port, ask("a_incoming_answered"))
        assert (again.status, again.exten) == ("FOUND", "150")
        assert len(fake_crm.requests_to("/telephony/manager")) == 2  # the repeat came from the cache

        # the mapping changes in the config API -> NOTIFY -> the next answer uses the new extension
        box = SecretBox(load_or_create_secret(config.agent.state_dir), secret_fields())
        stored = await enterprises.get_integration(pool, ENTERPRISE, "retailcrm")
        assert stored is not None
        settings = box.decrypted("retailcrm", stored)
        settings["user_extensions"] = {"7": "152", "8": "151"}
        await enterprises.put_integration(pool, box, ENTERPRISE, "retailcrm", settings)
        for _ in range(100):
            moved = await agi_call(port, ask("a_incoming_answered"))
            if moved.exten == "152":
                break
        assert (moved.status, moved.exten) == ("FOUND", "152")


async def test_busy_manager_is_unavailable(
    fake_crm: FakeRetailCrm, pool: Pool, db_dsn: str, make_config: Callable[..., Config]
) -> None:
    """While the p_a call has 150 in a call (ExtensionStatus InUse from the AMI stream), customer A's
    next call is not sent to 150."""
    directory = recordings.recordings_dir()
    stream = (directory / "p_a_incoming_answered.ami").read_bytes()
    pause = stream.index(b"Event: BridgeLeave")  # 150 is talking here
    async with FakeAmi(stream, speed=math.inf, pause_at=pause) as ami:
        config = replace(make_config(db_dsn), pbx=(replace(pbx_for(ami), enterprise=ENTERPRISE),))
        await configure_retailcrm(pool, config.agent.state_dir, fake_crm)
        async with running(config) as agent:
            await ami.wait_paused(within=10)
            busy = await agi_call(agent.parts.agi.port, recorded_request("a_incoming_answered"))
            assert (busy.status, busy.exten) == ("UNAVAILABLE", "")
            # the enterprise wants its callers sent to a busy manager anyway (call waiting)
            await enterprises.put(pool, ENTERPRISE, "Shop", {"redirect_when_busy": True})
            for _ in range(100):
                anyway = await agi_call(agent.parts.agi.port, recorded_request("a_incoming_answered"))
                if anyway.status == "FOUND":
                    break
            assert (anyway.status, anyway.exten) == ("FOUND", "150")
            await enterprises.put(pool, ENTERPRISE, "Shop", {"redirect_when_busy": False})
            ami.unpause()
            await ami.wait_finished(within=10)
            for _ in range(100):
                free = await agi_call(agent.parts.agi.port, recorded_request("a_incoming_answered"))
                if free.status == "FOUND":
                    break
            assert (free.status, free.exten) == ("FOUND", "150")
