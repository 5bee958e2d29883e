"""amoCRM through a SOCKS5 proxy (`proxy = "socks5://…"`): the agent's HTTP client tunnels through it (httpx's
SOCKS extra, installed with the agent), with the proxy's username and password; a real proxy on loopback."""

from __future__ import annotations

import httpx
import pytest

from connectors.amocrm.connector import AmoCrmConnector
from connectors.amocrm.settings import parse
from tests.fakes.amocrm import FakeAmoCrm
from tests.fakes.socks import FakeSocks5
from tests.test_amocrm_units import BASE


@pytest.mark.parametrize("scheme", ["socks5", "socks5h"])
async def test_requests_go_through_a_socks5_proxy(scheme: str) -> None:
    async with FakeAmoCrm() as fake, FakeSocks5("agent", "Pr0xy-pass") as proxy, httpx.AsyncClient() as shared:
        connector = AmoCrmConnector()
        settings = parse({**BASE, "proxy": f"{scheme}://agent:Pr0xy-pass@127.0.0.1:{proxy.port}"})
        client = connector.http_for(settings, shared)
        try:
            assert client is not shared
            host = "localhost" if scheme == "socks5h" else "127.0.0.1"  # socks5h: the proxy resolves the name
            port = int(fake.netloc.rsplit(":", 1)[1])
            response = await client.get(f"http://{host}:{port}/api/v4/account")
            assert response.status_code == 401  # the fake's answer to a request without a token
            assert [r.path for r in fake.requests] == ["/api/v4/account"]
            assert proxy.tunnels == [(host, port)]
        finally:
            await connector.aclose()
