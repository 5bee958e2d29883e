"""`public_url` judged as the CRMs' servers would meet it."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp
import pytest

from agent.app import Agent
from agent.config.sections import Config
from agent.web.publishing import unreachable_because
from tests.admin_client import base, client
from tests.browser import seed
from tests.crm_setup import API_KEY, ENTERPRISE, configure_retailcrm, running
from tests.fakes.retailcrm import FakeRetailCrm
from tests.test_amocrm_agent import api_headers


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://127.0.0.1:8019", "loopback"),
        ("https://localhost", "loopback"),
        ("https://[::1]:8443", "loopback"),
        ("https://0.0.0.0", "loopback"),
        ("https://192.168.1.10", "private"),
        ("https://10.0.0.5/pbx", "private"),
        ("https://172.16.3.4", "private"),
        ("https://169.254.1.1", "private"),
        ("https://[fd00::1]", "private"),
        ("https://pbx", "local_name"),
        ("https://pbx.office.lan", "local_name"),
        ("https://asterisk.local", "local_name"),
        ("http://pbx.example.com", "http"),
        ("http://203.0.113.7", "private"),  # documentation range: reserved, never routed
        ("https://pbx.example.com", None),
        ("https://pbx.example.com:8443/agent", None),
        ("https://8.8.8.8", None),
    ],
)
def test_public_url(url: str, problem: str | None) -> None:
    assert unreachable_because(url) == problem


async def test_the_overview_warns_while_the_crms_cannot_reach_the_agent(running_agent: Agent) -> None:
    await seed(running_agent.parts.pool)
    assert running_agent.config.agent.public_url.startswith("http://127.0.0.1")  # the embedded default
    url = f"{base(running_agent)}/admin/100/overview"
    async with client(running_agent, "100") as http:
        async with http.get(f"{url}.json") as resp:
            assert (await resp.json())["public_url_problem"] == "loopback"
        async with http.get(url) as resp:
            html = await resp.text()
        assert 'id="public-url-warning" data-problem="loopback"' in html and "loopback address" in html
        async with http.get(url, headers={"Accept-Language": "ru"}) as resp:
            assert "адрес локальной петли" in await resp.text()


async def test_registering_a_module_at_a_loopback_url_is_refused(
    db_dsn: str, make_config: Callable[..., Config]
) -> None:
    fake = FakeRetailCrm(api_key=API_KEY)
    async with fake:
        config = make_config(db_dsn, allow_private_public_url=False)
        async with running(config) as agent:
            await configure_retailcrm(agent.parts.pool, config.agent.state_dir, fake)
            headers = api_headers(config, ENTERPRISE)
            async with aiohttp.ClientSession(headers=headers) as http:
                url = f"{base(agent)}/api/enterprises/{ENTERPRISE}/integrations/retailcrm/register"
                async with http.post(url) as resp:
                    assert resp.status == 409
                    body = await resp.json()
    assert "loopback address" in str(body) and "allow_private_public_url" in str(body)
    assert not [r for r in fake.requests if "integration-modules" in r.path]  # RetailCRM was never asked
