"""Helpers for tests that run the agent against the fake RetailCRM."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from agent.app import Agent
from agent.config.sections import Config
from agent.delivery.outbox import OutboxPolicy
from agent.store import enterprises
from agent.store.database import Pool
from agent.store.secretbox import SecretBox, load_or_create_secret
from connectors.registry import secret_fields
from connectors.retailcrm.settings import parse
from tests.fakes.retailcrm import FakeRetailCrm

API_KEY = "Zq8PLr2mWx7TaK4nB9vC1dE6fG3hJ5kY"
ENTERPRISE = "100"
MAPPING = {"7": "150", "8": "151", "9": "152"}
FAST = OutboxPolicy(backoff_first=0.05, backoff_max=0.3, poll_interval=0.2, lease=5.0, breaker_cooldown=0.5)


async def configure_retailcrm(pool: Pool, state_dir: Path, fake: FakeRetailCrm, **over: Any) -> dict[str, Any]:
    box = SecretBox(load_or_create_secret(state_dir), secret_fields())
    await enterprises.put(pool, ENTERPRISE, "Shop")
    raw = {"domain": fake.url, "api_key": API_KEY, "timezone": "Europe/Minsk", "user_extensions": MAPPING, **over}
    settings = parse(raw).to_json()
    await enterprises.put_integration(pool, box, ENTERPRISE, "retailcrm", settings)
    return settings


@asynccontextmanager
async def running(config: Config, policy: OutboxPolicy = FAST, **fields: Any) -> AsyncIterator[Agent]:
    """The agent in this process until the block ends; `fields` set more of `Agent`'s fields."""
    agent = Agent(config, outbox_policy=policy, **fields)
    task = asyncio.create_task(agent.run())
    try:
        ready = asyncio.create_task(agent.ready.wait())
        done, _ = await asyncio.wait({task, ready}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            ready.cancel()
            task.result()
        yield agent
    finally:
        agent.stopping.set()
        await asyncio.wait_for(task, 15)


async def drained(pool: Pool, at_least: int = 1, within: float = 60.0) -> dict[str, int]:
    """Wait until no delivery is pending or in progress (and at least `at_least` exist)."""
    async with asyncio.timeout(within):
        while True:
            rows = await pool.fetch("SELECT status, count(*) AS n FROM deliveries GROUP BY status")
            counts = {r["status"]: int(r["n"]) for r in rows}
            busy = counts.get("pending", 0) + counts.get("in_progress", 0)
            if sum(counts.values()) >= at_least and busy == 0:
                return counts
            await asyncio.sleep(0.05)
