"""The agent is stopped (SIGTERM) in the middle of a day's calls and started again a few seconds later: the
calls that ended while it was down are in the PBX's CDR, and each call reaches the CRM once. The agent as a
process, a real AMI socket, real PostgreSQL, the fake RetailCRM counting."""

from __future__ import annotations

import asyncio
import math
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.store.database import Pool
from agent.store.secretbox import load_or_create_secret
from tests import recordings
from tests.agent_process import can_move_var_log, free_port, start_agent
from tests.crm_setup import API_KEY, ENTERPRISE, configure_retailcrm
from tests.fakes.ami import FakeAmi
from tests.fakes.retailcrm import FakeRetailCrm
from tests.test_backfill_on_connect import call_rows
from tests.waiting import until

CALLS = 30
BEFORE, DOWN = 15, 10  # calls 0-14 with the first agent, 15-24 while none runs, 25-29 with the second


def write_config(directory: Path, dsn: str, ami_port: int, cdr: Path | None) -> Path:
    """`cdr=None`: no cdr_csv key, the agent reads the standard /var/log/asterisk/cdr-csv/Master.csv."""
    cfg = directory / "agent.toml"
    cfg.write_text(
        f'[agent]\nstate_dir = "state"\n[database]\ndsn = "{dsn}"\n'
        f'[http]\nlisten = "127.0.0.1:{free_port()}"\n[agi]\nlisten = "127.0.0.1:{free_port()}"\n'
        f'[[pbx]]\nname = "office"\nenterprise = "{ENTERPRISE}"\nusername = "agent"\nsecret = "secret"\n'
        f"port = {ami_port}\n" + (f'cdr_csv = "{cdr}"\n' if cdr is not None else "")
    )
    return cfg


async def count(pool: Pool, sql: str) -> int:
    return int(await pool.fetchval(sql) or 0)


@pytest.mark.parametrize(
    "where",
    [
        pytest.param("standard", marks=pytest.mark.skipif(not can_move_var_log(), reason="needs root and unshare")),
        "configured",
    ],
)
async def test_calls_while_the_agent_was_stopped_reach_the_crm_once(
    pool: Pool, db_dsn: str, tmp_path: Path, where: str
) -> None:
    """ "standard": the agent's config names no CDR at all, and the PBX's cdr_csv writes where it does by
    default; the agent runs with a /var/log of its own (a mount namespace) holding that file."""
    began = datetime.now(UTC).replace(microsecond=0)
    epoch = int(began.timestamp())
    ids = recordings.burst_call_ids(CALLS, ENTERPRISE, epoch=epoch)
    var_log = tmp_path / "var-log" if where == "standard" else None
    cdr = var_log / "asterisk" / "cdr-csv" / "Master.csv" if var_log is not None else tmp_path / "Master.csv"
    cdr.parent.mkdir(parents=True, exist_ok=True)
    cdr.write_text("")
    port = free_port()
    async with FakeRetailCrm(api_key=API_KEY) as crm:
        cfg = write_config(tmp_path, db_dsn, port, None if var_log is not None else cdr)
        load_or_create_secret(tmp_path / "state")
        await configure_retailcrm(pool, tmp_path / "state", crm, popup_in=False, popup_hangup=False)
        before = FakeAmi(recordings.burst(BEFORE, epoch=epoch), speed=math.inf)
        await before.start(port=port)
        try:
            first = await start_agent(cfg, var_log)
            try:

                async def stored_before() -> bool:
                    return await count(pool, "SELECT count(*) FROM calls") == BEFORE

                await until(stored_before, within=60)
            finally:
                first.send_signal(signal.SIGTERM)
                assert await asyncio.wait_for(first.wait(), 30) == 0
        finally:
            await before.stop()
        # while no agent runs the PBX goes on; its CDR keeps every call (20 s each, ended before the restart)
        gap_start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=24)
        cdr.write_text("".join(call_rows(gap_start, n, linkedid=ids[n]) for n in range(BEFORE + DOWN)))
        await asyncio.sleep(1)
        after = FakeAmi(recordings.burst(CALLS - BEFORE - DOWN, epoch=epoch, first=BEFORE + DOWN), speed=math.inf)
        await after.start(port=port)
        try:
            second = await start_agent(cfg, var_log)
            try:

                async def all_delivered() -> bool:
                    left = await count(pool, "SELECT count(*) FROM deliveries WHERE status <> 'done'")
                    return left == 0 and len(crm.calls) == CALLS

                await until(all_delivered, within=60, every=0.1)
            finally:
                second.send_signal(signal.SIGTERM)
                assert await asyncio.wait_for(second.wait(), 30) == 0
        finally:
            await after.stop()
    assert sorted(crm.calls) == sorted(ids)
    sent = sum(len(batch) for batch in crm.uploads)
    assert sent - crm.duplicates_seen == CALLS
