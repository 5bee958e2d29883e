"""The agent's embedded PostgreSQL dies in the middle of a burst of calls; the agent as a process, the fake
RetailCRM counting what reaches it. Every call must arrive exactly once."""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

from agent.store import database
from agent.store.embedded import EmbeddedPostgres
from agent.store.secretbox import load_or_create_secret
from tests import recordings
from tests.agent_process import free_port, postmaster_pid, start_agent
from tests.crm_setup import API_KEY, ENTERPRISE, configure_retailcrm
from tests.fakes.ami import FakeAmi
from tests.fakes.retailcrm import FakeRetailCrm
from tests.waiting import until

CALLS = 30
FIRST = 15  # calls that end before the database dies


def half_burst() -> tuple[bytes, int]:
    """The burst, and the byte offset where call FIRST + 1 begins (the fake AMI pauses there)."""
    stream = recordings.burst(CALLS)
    first_part = recordings.burst(FIRST)
    return stream, len(first_part)


def write_config(directory: Path, http_port: int, ami_port: int) -> Path:
    cfg = directory / "agent.toml"
    cfg.write_text(
        f'[agent]\nstate_dir = "state"\n[http]\nlisten = "127.0.0.1:{http_port}"\n'
        f'[agi]\nlisten = "127.0.0.1:{free_port()}"\n[outbox]\nlease = 5\nbreaker_cooldown = 1\n'
        f'[[pbx]]\nname = "office"\nenterprise = "{ENTERPRISE}"\nusername = "agent"\nsecret = "secret"\n'
        f"port = {ami_port}\n"
    )
    return cfg


@asynccontextmanager
async def embedded_cluster(root: Path, crm: FakeRetailCrm, state: Path | None = None) -> AsyncIterator[str]:
    """The cluster (in `root`/pg) the agent will use, started ahead so that the CRM is configured before the
    first call; `state`: the agent's state dir, for its secret key (default `root`)."""
    cluster = EmbeddedPostgres(root / "pg")
    await cluster.start()
    state = state or root
    load_or_create_secret(state)
    pool = await database.create_pool(cluster.dsn, 2, name="test")
    try:
        await database.migrate(pool)
        await configure_retailcrm(pool, state, crm)
    finally:
        await pool.close()
    yield cluster.dsn


async def count(dsn: str, sql: str) -> int:
    """A connection of its own each time: the server may be down or just restarted."""
    for _ in range(100):
        try:
            conn = await asyncpg.connect(dsn)
        except (OSError, asyncpg.CannotConnectNowError):
            await asyncio.sleep(0.1)
            continue
        try:
            return int(await conn.fetchval(sql) or 0)
        finally:
            await conn.close()
    raise AssertionError("database unreachable")


def health(port: int) -> dict[str, object]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
            return dict(json.loads(resp.read()))
    except urllib.error.HTTPError as exc:  # 503 while a critical component is down
        return dict(json.loads(exc.read()))


async def test_embedded_database_killed_mid_burst_every_call_once(agent_dir: Path) -> None:
    stream, pause = half_burst()
    http_port = free_port()
    async with (
        FakeRetailCrm(api_key=API_KEY) as crm,
        FakeAmi(stream, speed=math.inf, pause_at=pause) as ami,
        embedded_cluster(agent_dir / "state", crm) as dsn,
    ):
        cfg = write_config(agent_dir, http_port, ami.port)
        agent = await start_agent(cfg)
        try:
            await ami.wait_paused(within=60)

            async def first_stored() -> bool:
                return await count(dsn, "SELECT count(*) FROM calls") == FIRST

            await until(first_stored, within=30)
            server = postmaster_pid(agent_dir)
            assert server is not None
            os.kill(server, signal.SIGKILL)  # nothing else is done: the agent must notice and start it again
            ami.unpause()
            await ami.wait_finished(within=30)

            async def all_delivered() -> bool:
                stored = await count(dsn, "SELECT count(*) FROM calls")
                undone = await count(dsn, "SELECT count(*) FROM deliveries WHERE status <> 'done'")
                return stored == CALLS and undone == 0 and len(crm.calls) == CALLS

            try:
                await until(all_delivered, within=90, every=0.2)
            except AssertionError as exc:
                stored = await count(dsn, "SELECT count(*) FROM calls")
                states = await count(dsn, "SELECT count(*) FROM deliveries WHERE status <> 'done'")
                log = "\n".join(
                    x for x in (agent_dir / "agent.log").read_text().splitlines() if "delivery retailcrm" not in x
                )[-8000:]
                raise AssertionError(
                    f"{exc}: {stored} calls stored, {states} not done, {len(crm.calls)} at the CRM\n{log}"
                ) from None
            body = await asyncio.to_thread(health, http_port)
            components = body["components"]
            assert isinstance(components, dict)
            assert components["embedded_database"]["restarts"] >= 1
            assert components["database"]["status"] == "ok"
        finally:
            agent.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(agent.wait(), 30) == 0
    sent = sum(len(batch) for batch in crm.uploads)
    assert sent - crm.duplicates_seen == CALLS
    assert len(crm.calls) == CALLS
