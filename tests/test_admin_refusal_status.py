"""A delivery the CRM refused shows under "refused (HTTP 400)" with the CRM's own words quoted, on the call page
and the log page: the delivery keeps only the text, the status comes from the exchange that stored it."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import pytest

from admin.i18n import translator
from agent.config.sections import Config
from agent.store.database import Pool
from tests import recordings
from tests.admin_client import base, client
from tests.crm_setup import API_KEY, configure_retailcrm, drained, running
from tests.fakes.ami import FakeAmi
from tests.fakes.retailcrm import FakeRetailCrm
from tests.test_admin_browser import stored_call
from tests.test_ami_link import pbx_for

REFUSAL = "Calls are not loaded"


@pytest.fixture
async def fake_crm() -> AsyncIterator[FakeRetailCrm]:
    async with FakeRetailCrm(api_key=API_KEY) as fake:
        yield fake


async def test_a_refused_delivery_names_the_http_status_of_its_refusal(
    fake_crm: FakeRetailCrm, pool: Pool, db_dsn: str, make_config: Callable[..., Config]
) -> None:
    ami = FakeAmi(recordings.recordings_dir() / "p_b_incoming_missed.ami", speed=math.inf)
    await ami.start()
    try:
        config = replace(make_config(db_dsn), pbx=(pbx_for(ami),))
        await configure_retailcrm(pool, config.agent.state_dir, fake_crm, popup_in=False, popup_hangup=False)
        fake_crm.fail_next(1, status=400, body={"success": False, "errorMsg": REFUSAL, "errors": ["Bad value"]})
        async with running(config) as agent:
            await ami.wait_finished(within=10)
            await drained(pool, at_least=1)
            call_id = await stored_call(pool)
            b = f"{base(agent)}/admin/100"
            async with client(agent, "100", headers={"Accept-Language": "ru"}) as http:
                async with http.get(f"{b}/calls/{call_id}.json") as resp:
                    (failed,) = [d for d in (await resp.json())["deliveries"] if d["status"] == "failed"]
                async with http.get(f"{b}/log.json") as resp:
                    (listed,) = (await resp.json())["deliveries"]
                async with http.get(f"{b}/calls/{call_id}") as resp:
                    call_page = await resp.text()
                async with http.get(f"{b}/log") as resp:
                    log_page = await resp.text()
                assert failed["last_http_status"] == listed["last_http_status"] == 400
                headline = translator("ru")("said.crm_refused", status="400")
                for html in (call_page, log_page):
                    assert f'<span class="said">{headline} <q class="crm-said" lang="und">{REFUSAL}' in html
                # a text stored with no exchange (the outbox gave up on its own) borrows no earlier status
                await pool.execute("UPDATE deliveries SET last_error = 'not delivered within 86400 s'")
                async with http.get(f"{b}/calls/{call_id}.json") as resp:
                    (failed,) = [d for d in (await resp.json())["deliveries"] if d["status"] == "failed"]
                assert failed["last_http_status"] is None
    finally:
        await ami.stop()
