"""kill -9 of the agent in the middle of a burst of 500 calls: after a restart, each call is at the fake
RetailCRM exactly once (stored once; a request whose answer the dead agent never saw is a duplicate the
CRM recognises by externalId, as RetailCRM does)."""

from __future__ import annotations

import asyncio
import math
import os
import signal
from pathlib import Path

from agent.store.database import Pool
from agent.store.secretbox import load_or_create_secret
from tests import recordings
from tests.agent_process import free_port, start_agent
from tests.crm_setup import API_KEY, configure_retailcrm
from tests.fakes.ami import FakeAmi
from tests.fakes.retailcrm import FakeRetailCrm
from tests.waiting import until

CALLS = 500


def write_config(directory: Path, dsn: str, ami_port: int) -> Path:
    cfg = directory / "agent.toml"
    cfg.write_text(
        f'[agent]\nstate_dir = "state"\n[database]\ndsn = "{dsn}"\n'
        f'[http]\nlisten = "127.0.0.1:{free_port()}"\n[agi]\nlisten = "127.0.0.1:{free_port()}"\n'
        "[outbox]\nlease = 2\nbreaker_cooldown = 1\n"
        f'[[pbx]]\nname = "office"\nenterprise = "100"\nusername = "agent"\nsecret = "secret"\nport = {ami_port}\n'
    )
    return cfg


async def count(pool: Pool, sql: str) -> int:
    return int(await pool.fetchval(sql) or 0)


async def test_kill_9_mid_burst_loses_and_duplicates_nothing(pool: Pool, db_dsn: str, tmp_path: Path) -> None:
    async with FakeRetailCrm(api_key=API_KEY) as crm, FakeAmi(recordings.burst(CALLS), speed=math.inf) as ami:
        crm.slow(0.01)
        cfg = write_config(tmp_path, db_dsn, ami.port)
        load_or_create_secret(tmp_path / "state")
        await configure_retailcrm(pool, tmp_path / "state", crm)
        first = await start_agent(cfg)
        try:

            async def planned_and_partly_delivered() -> bool:
                return (
                    await count(pool, "SELECT count(*) FROM deliveries WHERE kind = 'calls_upload'") >= CALLS
                    and await count(pool, "SELECT count(*) FROM deliveries WHERE status = 'done'") >= 200
                )

            await until(planned_and_partly_delivered, within=60)  # every call planned, part of them delivered
        finally:
            os.kill(first.pid, signal.SIGKILL)
            await first.wait()
        in_flight = await count(pool, "SELECT count(*) FROM deliveries WHERE status IN ('pending', 'in_progress')")
        assert in_flight > 0, "the kill came too late to prove anything"
        crm.slow(0)
        second = await start_agent(cfg)
        try:

            async def settled() -> bool:
                sql = "SELECT count(*) FROM deliveries WHERE status <> 'done' AND status <> 'expired'"
                return await count(pool, sql) == 0

            await until(settled, within=60, every=0.05)
        finally:
            second.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(second.wait(), 15) == 0
        call_ids = {r["call_id"] for r in await pool.fetch("SELECT call_id FROM calls")}
        assert len(call_ids) == CALLS
        assert set(crm.calls) == call_ids  # each call stored at the CRM once
        sent = sum(len(batch) for batch in crm.uploads)
        assert sent - crm.duplicates_seen == CALLS
        assert await count(pool, "SELECT count(*) FROM deliveries WHERE status = 'failed'") == 0
