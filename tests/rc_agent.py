"""Helpers for the RetailCRM route tests: a whole agent whose public_url is its real port, API calls,
an enterprise configured against a FakeRetailCrm."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import aiohttp

from agent.app import Agent
from agent.config.checks import Address
from agent.config.sections import Config, PbxSection
from agent.store.secretbox import load_or_create_secret
from agent.web.tokens import TokenSigner
from tests.agent_process import free_port
from tests.fakes.ami import FakeAmi
from tests.fakes.retailcrm import FakeRetailCrm

KEY = "Zq8PLr2mWx7TaK4nB9vC1dE6fG3hJ5kY"
CLIENT_ID = "cid-" + "5a" * 20
ENTERPRISE = "100"
# Just a banner and the Login answer: an idle PBX.
IDLE_AMI = (
    b"Asterisk Call Manager/11.0.0\r\n"
    b"Response: Success\r\nActionID: 1\r\nMessage: Authentication accepted\r\n\r\n"
    b"Event: FullyBooted\r\nPrivilege: system,all\r\nStatus: Fully Booted\r\n\r\n"
)


def pbx_for(fake: FakeAmi, **over: Any) -> PbxSection:
    return replace(
        PbxSection(
            name="office", enterprise=ENTERPRISE, username="agent", secret="secret", host="127.0.0.1", port=fake.port
        ),
        **over,
    )


@asynccontextmanager
async def started(
    make_config: Callable[..., Config], dsn: str, *, pbx: tuple[PbxSection, ...] = (), **agent_fields: Any
) -> AsyncIterator[Agent]:
    """The whole agent, listening on a port chosen up front so that public_url points at it."""
    port = free_port()
    config = make_config(dsn, public_url=f"http://127.0.0.1:{port}", **agent_fields)
    config = replace(config, http=replace(config.http, listen=Address("127.0.0.1", port)), pbx=pbx)
    agent = Agent(config)
    task = asyncio.create_task(agent.run())
    ready = asyncio.create_task(agent.ready.wait())
    done, _ = await asyncio.wait({task, ready}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        ready.cancel()
        task.result()
    assert ready in done, "agent did not become ready"
    try:
        yield agent
    finally:
        agent.stopping.set()
        await asyncio.wait_for(task, timeout=15)


def admin_token(agent: Agent) -> str:
    return TokenSigner(load_or_create_secret(agent.config.agent.state_dir)).issue(None, 1)


async def call(
    agent: Agent,
    method: str,
    path: str,
    token: str | None = None,
    body: Any = None,
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = json.dumps(body).encode() if body is not None else None
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, f"http://127.0.0.1:{agent.parts.http_port}{path}", headers=headers, data=data) as resp,
    ):
        text = await resp.text()
        return resp.status, json.loads(text) if resp.content_type == "application/json" else text


async def configure(agent: Agent, crm: FakeRetailCrm, token: str, **settings: Any) -> None:
    """Enterprise 100 with RetailCRM settings pointing at the fake."""
    status, _ = await call(agent, "PUT", f"/api/enterprises/{ENTERPRISE}", token, {"name": "Shop"})
    assert status == 200
    body = {"domain": crm.url, "api_key": KEY, "client_id": CLIENT_ID, "timezone": "Europe/Moscow", **settings}
    status, answer = await call(agent, "PUT", f"/api/enterprises/{ENTERPRISE}/integrations/retailcrm", token, body)
    assert status == 200, answer


def rc(path: str) -> str:
    return f"/api/enterprises/{ENTERPRISE}/integrations/retailcrm{path}"
