"""The Instance page (issue 19, item 8): the same enterprises as the switcher, renamed and removed from the page
(data kept or removed as chosen, confirmed by typing the number), in both languages; nothing another service reads
is deleted unless "remove data" was chosen."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace

import aiohttp
import pytest

from agent.app import Agent
from agent.config.sections import Config, PbxSection
from agent.store import enterprises
from tests.admin_client import add_calls, base, client, csrf
from tests.crm_setup import running
from tests.test_admin_site import setup_enterprises


async def form_post(http: aiohttp.ClientSession, url: str, **fields: str) -> tuple[int, str]:
    token = await csrf(http, url)
    async with http.post(url, data={"csrf_token": token, **fields}) as resp:
        return resp.status, await resp.text()


def switcher(html: str) -> list[str]:
    return re.findall(r'<option value="([^"]+)"', html.split('class="switcher"', 1)[1].split("</select>", 1)[0])


async def test_the_list_is_the_switchers(db_dsn: str, make_config: Callable[..., Config]) -> None:
    config = make_config(db_dsn)
    pbx = pbx_for_nothing()
    async with running(replace(config, pbx=(pbx,))) as agent:
        await setup_enterprises(agent)
        async with client(agent) as http, http.get(f"{base(agent)}/admin/instance") as resp:
            html = await resp.text()
        assert "No enterprises yet" not in html
        for number in ("100", "200", "300"):
            assert f'id="enterprise-{number}"' in html
        assert "named in agent.toml only" in html.split('id="enterprise-300"', 1)[1].split("</tr>", 1)[0]
        async with client(agent) as http, http.get(f"{base(agent)}/admin/instance.json") as resp:
            listed = (await resp.json())["enterprises"]
        assert [(e["number"], e["stored"]) for e in listed] == [("100", True), ("200", True), ("300", False)]


def pbx_for_nothing() -> PbxSection:
    """A PBX of enterprise 300 that nothing answers for: the enterprise is only named in agent.toml."""
    return PbxSection(
        name="office", enterprise="300", username="agent", secret="s", host="127.0.0.1", port=9, region="BY"
    )


@pytest.mark.parametrize(("lang", "renamed"), [("en", "Shop Minsk"), ("ru", "Магазин Минск")])
async def test_rename(running_agent: Agent, lang: str, renamed: str) -> None:
    await setup_enterprises(running_agent)
    url = f"{base(running_agent)}/admin/instance"
    async with client(running_agent, headers={"Accept-Language": lang}) as http:
        status, html = await form_post(http, url, action="rename", number="100", name=renamed)
        assert status == 200, html
        assert f"100 · {renamed}" in html or renamed in html
        status, html = await form_post(http, url, action="rename", number="100", name="")
        assert status == 400 and 'id="error-name"' in html
    assert (await enterprises.get(running_agent.parts.pool, "100") or {})["name"] == renamed


@pytest.mark.parametrize(("lang", "confirm_msg"), [("en", "Type the enterprise"), ("ru", "введите номер предприятия")])
async def test_remove_keeping_the_data_hides_it_and_deletes_nothing(
    running_agent: Agent, lang: str, confirm_msg: str
) -> None:
    pool = running_agent.parts.pool
    await setup_enterprises(running_agent)
    await add_calls(pool, "200", 5)
    url = f"{base(running_agent)}/admin/instance"
    async with client(running_agent, headers={"Accept-Language": lang}) as http:
        status, html = await form_post(http, url, action="remove", number="200", data="keep", confirm="20")
        assert status == 400 and confirm_msg in html  # not confirmed: nothing happens
        assert 'id="enterprise-200"' in html
        status, html = await form_post(http, url, action="remove", number="200", data="keep", confirm="200")
        assert status == 200, html
        assert 'id="enterprise-200"' not in html and "200" not in switcher(html)
        async with http.get(f"{base(running_agent)}/admin/200/overview") as resp:
            assert resp.status == 404
    assert await pool.fetchval("SELECT count(*) FROM calls WHERE enterprise_number = '200'") == 5
    assert await pool.fetchval("SELECT name FROM enterprises WHERE number = '200'") == "Other"
    async with client(running_agent) as http:  # adding the number again brings it back, with its calls
        status, html = await form_post(http, url, action="add", number="200", name="Other again")
        assert status == 200 and 'id="enterprise-200"' in html
        async with http.get(f"{base(running_agent)}/admin/200/calls.json") as resp:
            assert len((await resp.json())["calls"]) == 5


async def test_remove_with_data_deletes_the_agents_rows(running_agent: Agent) -> None:
    pool = running_agent.parts.pool
    await setup_enterprises(running_agent)
    await add_calls(pool, "200", 5)
    await add_calls(pool, "100", 3)
    async with client(running_agent) as http:
        url = f"{base(running_agent)}/admin/instance"
        status, _ = await form_post(http, url, action="remove", number="200", data="remove", confirm="200")
        assert status == 200
    assert await pool.fetchval("SELECT count(*) FROM calls WHERE enterprise_number = '200'") == 0
    assert await pool.fetchval("SELECT count(*) FROM enterprises WHERE number = '200'") == 0
    assert await pool.fetchval("SELECT count(*) FROM calls WHERE enterprise_number = '100'") == 3


async def test_on_the_platforms_table(old_migrated: str, make_config: Callable[..., Config]) -> None:
    """Keeping the data leaves the platform's row as the other services read it; a table that needs more than
    a number and a name refuses an add with a message, not a 500."""
    async with running(make_config(old_migrated)) as agent:
        pool = agent.parts.pool
        columns = "id, number, name, bot_token, chat_id, ip, secret, host, active, created_at, integrations_config"
        before = await pool.fetchrow(f"SELECT {columns} FROM enterprises WHERE number = '0367'")
        url = f"{base(agent)}/admin/instance"
        async with client(agent, headers={"Accept-Language": "ru"}) as http:
            status, html = await form_post(http, url, action="remove", number="0367", data="keep", confirm="0367")
            assert status == 200, html
            assert 'id="enterprise-0367"' not in html
            assert await pool.fetchrow(f"SELECT {columns} FROM enterprises WHERE number = '0367'") == before
            await pool.execute("ALTER TABLE enterprises ADD COLUMN tariff text NOT NULL DEFAULT 'base'")
            await pool.execute("ALTER TABLE enterprises ALTER COLUMN tariff DROP DEFAULT")
            status, html = await form_post(http, url, action="add", number="7777", name="Новое")
            assert status == 409, html
            assert "Таблице предприятий этой базы нужно больше" in html, re.findall(r"field-error[^<]*<", html)
