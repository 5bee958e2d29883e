"""The JSON config API and /health, against the whole agent running on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiohttp
import asyncpg
import pytest

from agent.app import Agent
from agent.store import enterprises
from agent.store.secretbox import SecretBox, load_or_create_secret
from agent.web.tokens import TokenSigner
from connectors.registry import secret_fields
from tests.conftest import dbname
from tests.waiting import until

API_KEY = "rcrm-0123456789abcdef-SECRET"


def signer(agent: Agent) -> TokenSigner:
    return TokenSigner(load_or_create_secret(agent.config.agent.state_dir))


async def call(
    agent: Agent, method: str, path: str, token: str | None = None, body: Any = None, raw: bytes | None = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, f"http://127.0.0.1:{agent.parts.http_port}{path}", headers=headers, data=data) as resp,
    ):
        text = await resp.text()
        return resp.status, json.loads(text) if resp.content_type == "application/json" else text


async def test_health_ok_with_database(running_agent: Agent) -> None:
    status, body = await call(running_agent, "GET", "/health")
    assert status == 200
    assert body["status"] == "ok"
    assert body["components"]["database"]["status"] == "ok"


async def test_health_fails_when_database_is_unreachable(running_agent: Agent, db_dsn: str, pg_cluster: Any) -> None:
    name = dbname(db_dsn)
    admin = await asyncpg.connect(pg_cluster.dsn_for("postgres"))
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name)
        status, body = await call(running_agent, "GET", "/health")
        assert status == 503
        assert body["status"] == "failed"
        assert body["components"]["database"]["status"] == "down"
        assert body["components"]["database"]["error"]
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        status, body = await call(running_agent, "GET", "/health")
        assert (status, body["status"]) == (200, "ok")
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()


async def test_health_degraded_for_a_non_critical_component(running_agent: Agent) -> None:
    link = running_agent.health.register("pbx:office", critical=False)
    link.set("down", connected=False)
    status, body = await call(running_agent, "GET", "/health")
    assert (status, body["status"]) == (200, "degraded")
    link.set("ok", connected=True)
    assert (await call(running_agent, "GET", "/health"))[1]["status"] == "ok"


async def test_metrics_in_prometheus_format(running_agent: Agent) -> None:
    await call(running_agent, "GET", "/health")
    status, text = await call(running_agent, "GET", "/metrics")
    assert status == 200
    assert "pbx_agent_up 1.0" in text
    assert 'pbx_agent_http_requests_total{route="/health",status="200"}' in text
    assert 'pbx_agent_deliveries_by_status{status="failed"} 0.0' in text


async def test_api_requires_a_valid_token(running_agent: Agent) -> None:
    assert (await call(running_agent, "GET", "/api/enterprises/0001"))[0] == 401
    assert (await call(running_agent, "GET", "/api/enterprises/0001", token="not.a.jwt"))[0] == 401
    forged = TokenSigner(b"another secret" * 3).issue(None, 1)
    assert (await call(running_agent, "GET", "/api/enterprises/0001", token=forged))[0] == 401
    expired = signer(running_agent).issue(None, 1, now=0)
    status, body = await call(running_agent, "GET", "/api/enterprises/0001", token=expired)
    assert (status, body["error"]) == (401, "token expired")


async def test_enterprise_token_reaches_only_its_enterprise(running_agent: Agent) -> None:
    admin = signer(running_agent).issue(None, 1)
    for number in ("0001", "0002"):
        assert (await call(running_agent, "PUT", f"/api/enterprises/{number}", admin, {"name": number}))[0] == 200
    scoped = signer(running_agent).issue("0001", 1)
    assert (await call(running_agent, "GET", "/api/enterprises/0001", scoped))[0] == 200
    assert (await call(running_agent, "GET", "/api/enterprises/0002", scoped))[0] == 403
    assert (await call(running_agent, "PUT", "/api/enterprises/0002/integrations/retailcrm", scoped, {}))[0] == 403
    assert (await call(running_agent, "GET", "/api/enterprises/0002", admin))[0] == 200


async def test_secrets_encrypted_at_rest_masked_on_the_way_out(
    running_agent: Agent, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = signer(running_agent).issue(None, 1)
    await call(running_agent, "PUT", "/api/enterprises/0001", token, {"name": "Shop"})
    settings = {"enabled": True, "domain": "https://shop.retailcrm.ru", "api_key": API_KEY, "timezone": "Europe/Minsk"}
    status, body = await call(running_agent, "PUT", "/api/enterprises/0001/integrations/retailcrm", token, settings)
    assert status == 200
    assert body["api_key"] == "rcrm…CRET"
    assert body["domain"] == "https://shop.retailcrm.ru"

    pool = running_agent.parts.pool
    assert pool is not None
    raw = await pool.fetchval("SELECT integrations_config::text FROM enterprises WHERE number = '0001'")
    assert API_KEY not in raw
    box = SecretBox(load_or_create_secret(running_agent.config.agent.state_dir), secret_fields())
    stored = await enterprises.get_integration(pool, "0001", "retailcrm")
    assert stored is not None and box.decrypt(stored["api_key"]) == API_KEY

    # the masked value sent back keeps the stored secret
    body["enabled"] = False
    status, again = await call(running_agent, "PUT", "/api/enterprises/0001/integrations/retailcrm", token, body)
    assert status == 200 and again["enabled"] is False and again["api_key"] == "rcrm…CRET"
    stored = await enterprises.get_integration(pool, "0001", "retailcrm")
    assert stored is not None and box.decrypt(stored["api_key"]) == API_KEY

    for path in ("/api/enterprises/0001", "/api/enterprises/0001/integrations/retailcrm"):
        status, text = await call(running_agent, "GET", path, token)
        assert API_KEY not in json.dumps(text)
    assert API_KEY not in caplog.text


async def test_changes_are_notified(running_agent: Agent, db_dsn: str) -> None:
    token = signer(running_agent).issue(None, 1)
    listener = await asyncpg.connect(db_dsn)
    received: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener(enterprises.NOTIFY_CHANNEL, lambda *args: received.put_nowait(args[3]))
    try:
        await call(running_agent, "PUT", "/api/enterprises/0042", token, {"name": "x"})
        assert await asyncio.wait_for(received.get(), 5) == "0042"
        await call(
            running_agent,
            "PUT",
            "/api/enterprises/0042/integrations/amocrm",
            token,
            {"enabled": False, "host": "https://x.amocrm.ru"},
        )
        assert await asyncio.wait_for(received.get(), 5) == "0042"
    finally:
        await listener.close()


@pytest.mark.parametrize(
    ("method", "path", "raw", "status", "field"),
    [
        ("PUT", "/api/enterprises/0001", b"{not json", 400, None),
        ("PUT", "/api/enterprises/0001", b"[1, 2]", 400, None),
        ("PUT", "/api/enterprises/0001", b'{"name": 5}', 400, "name"),
        ("PUT", "/api/enterprises/0001", b'{"name": "a", "colour": "b"}', 400, "colour"),
        ("PUT", "/api/enterprises/0001/integrations/bitrix", b"{}", 400, "crm"),
        ("GET", "/api/enterprises/0001/integrations/bitrix", None, 400, "crm"),
        ("PUT", "/api/enterprises/9999/integrations/retailcrm", b"{}", 404, None),
        ("GET", "/api/enterprises/9999", None, 404, None),
    ],
)
async def test_bad_requests_change_nothing(
    running_agent: Agent, method: str, path: str, raw: bytes | None, status: int, field: str | None
) -> None:
    token = signer(running_agent).issue(None, 1)
    await call(running_agent, "PUT", "/api/enterprises/0001", token, {"name": "Before"})
    got, body = await call(running_agent, method, path, token, raw=raw)
    assert got == status
    assert body["error"]
    assert body.get("field") == field
    assert (await call(running_agent, "GET", "/api/enterprises/0001", token))[1]["name"] == "Before"
    assert (await call(running_agent, "GET", "/api/enterprises/9999", token))[0] == 404


async def test_cached_settings_are_refreshed_even_without_notify(
    db_dsn: str, make_config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The safety net under LISTEN/NOTIFY: a change that arrived without a NOTIFY (a lost notification) is
    picked up at the next periodic refresh."""
    from agent.delivery import integrations as integrations_module
    from tests.crm_setup import running

    monkeypatch.setattr(integrations_module, "FULL_REFRESH_S", 0.3)
    async with running(make_config(db_dsn)) as agent:
        integrations = agent.parts.integrations
        assert integrations is not None
        token = signer(agent).issue(None, 1)
        await call(agent, "PUT", "/api/enterprises/0001", token, {"name": "Shop"})
        assert await integrations.enabled("0001") == {}
        dropped: list[str | None] = []
        integrations.on_change(dropped.append)
        await agent.parts.pool.execute(  # behind the agent's back: no NOTIFY
            'UPDATE enterprises SET integrations_config = \'{"retailcrm": {"enabled": true, "domain": '
            '"https://x.retailcrm.ru", "api_key": "0123456789abcdef", "timezone": "UTC"}}\''
            " WHERE number = '0001'"
        )

        async def enabled() -> bool:
            return bool(await integrations.enabled("0001"))

        await until(enabled, within=10, every=0.05)
        assert None in dropped
