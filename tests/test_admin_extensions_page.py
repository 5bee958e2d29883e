"""The Extensions page (issue 19, item 8): discovery from the PBX as a button, and an extension added on the old
platform's database (its rows need a SIP password the agent has not got) refused clearly instead of a 500."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import pytest

from agent.app import Agent
from agent.config.sections import Config
from agent.store import database, extensions
from agent.store.database import Pool
from agent.store.extensions import Extension
from tests import recordings
from tests.admin_client import base, client, csrf
from tests.crm_setup import running
from tests.fakes.ami import FakeAmi
from tests.test_admin_site import setup_enterprises
from tests.test_ami_link import pbx_for
from tests.test_discovery import endpoints, hints


@pytest.mark.parametrize(
    ("lang", "found"), [("en", "3 new extension(s) found on the PBX: 151, 152, 153."), ("ru", "Найдено новых номеров")]
)
async def test_the_discover_button_adds_what_the_pbx_has(
    pool: Pool, db_dsn: str, make_config: Callable[..., Config], lang: str, found: str
) -> None:
    async with FakeAmi(
        recordings.recordings_dir() / "p_a_incoming_answered.ami",
        speed=math.inf,
        responders={"ExtensionStateList": hints, "PJSIPShowEndpoints": endpoints},
    ) as ami:
        config = replace(make_config(db_dsn), pbx=(replace(pbx_for(ami), enterprise="0001"),))
        async with running(config) as agent:
            await pool.execute("INSERT INTO enterprises (number, name) VALUES ('0001', 'Shop')")
            await extensions.replace(pool, "0001", [Extension("150", "Ivan Petrov")])
            await agent.pipelines["office"].link.connected.wait()
            url = f"{base(agent)}/admin/0001/extensions"
            async with client(agent, "0001", headers={"Accept-Language": lang}) as http:
                token = await csrf(http, url)
                async with http.post(url, data={"csrf_token": token, "action": "discover"}) as resp:
                    html = await resp.text()
                    assert resp.status == 200, html
                assert found in html and 'id="discovered"' in html
                async with http.post(url, data={"csrf_token": token, "action": "discover"}) as resp:
                    assert 'id="discovered"' in await resp.text()  # nothing new the second time: said so
    assert {e.extension: e.display_name for e in await extensions.list_for(pool, "0001")} == {
        "150": "Ivan Petrov",
        "151": "",
        "152": "",
        "153": "",
    }


@pytest.mark.parametrize(("lang", "message"), [("en", "No PBX of this enterprise"), ("ru", "Ни одна АТС")])
async def test_discovery_without_a_connected_pbx_says_why(running_agent: Agent, lang: str, message: str) -> None:
    await setup_enterprises(running_agent)
    url = f"{base(running_agent)}/admin/100/extensions"
    async with client(running_agent, "100", headers={"Accept-Language": lang}) as http:
        token = await csrf(http, url)
        async with http.post(url, data={"csrf_token": token, "action": "discover"}) as resp:
            html = await resp.text()
            assert resp.status == 503
        assert message in html and 'id="error-discover"' in html
        async with http.post(url, json={"action": "discover"}, headers={"X-CSRF-Token": token}) as resp:
            assert resp.status == 503 and (await resp.json())["field"] == "discover"


@pytest.mark.parametrize(("lang", "message"), [("en", "SIP password"), ("ru", "SIP-пароль")])
async def test_adding_on_the_platforms_table_is_refused_clearly(
    old_migrated: str, make_config: Callable[..., Config], lang: str, message: str
) -> None:
    async with running(make_config(old_migrated)) as agent:
        url = f"{base(agent)}/admin/0367/extensions"
        async with client(agent, "0367", headers={"Accept-Language": lang}) as http:
            token = await csrf(http, url)
            form = {"csrf_token": token, "action": "add", "phone_number": "160", "display_name": "New"}
            async with http.post(url, data=form) as resp:
                html = await resp.text()
                assert resp.status == 400, html
            assert message in html
            body = {"action": "add", "phone_number": "160"}
            async with http.post(url, json=body, headers={"X-CSRF-Token": token}) as resp:
                assert resp.status == 409 and (await resp.json())["field"] == "phone_number"
    assert "160" not in {e.extension for e in await extensions_of(old_migrated)}


async def extensions_of(dsn: str) -> list[Extension]:
    pool = await database.create_pool(dsn, 1, name="pbx-agent-test")
    try:
        return await extensions.list_for(pool, "0367")
    finally:
        await pool.close()
