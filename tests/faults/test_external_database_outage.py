"""The agent uses a PostgreSQL of the site's (`[database] dsn`), which goes away in the middle of a burst of
calls and comes back a few seconds later, started by its own admin: the agent does not own it and must not try
to start it, but no call may be lost or sent twice. The agent as a process, the fake RetailCRM counting."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
from pathlib import Path

from agent.delivery.journal import decode
from agent.store.embedded import EmbeddedPostgres
from tests import recordings
from tests.agent_process import free_port, start_agent
from tests.crm_setup import API_KEY, ENTERPRISE
from tests.fakes.ami import FakeAmi
from tests.fakes.retailcrm import FakeRetailCrm
from tests.faults.test_database_faults import CALLS, FIRST, count, embedded_cluster, half_burst, health
from tests.waiting import until


def write_config(directory: Path, dsn: str, http_port: int, ami_port: int) -> Path:
    cfg = directory / "agent.toml"
    cfg.write_text(
        f'[agent]\nstate_dir = "state"\n[database]\ndsn = "{dsn}"\n[http]\nlisten = "127.0.0.1:{http_port}"\n'
        f'[agi]\nlisten = "127.0.0.1:{free_port()}"\n[outbox]\nlease = 5\nbreaker_cooldown = 1\n'
        f'[[pbx]]\nname = "office"\nenterprise = "{ENTERPRISE}"\nusername = "agent"\nsecret = "secret"\n'
        f"port = {ami_port}\n"
    )
    return cfg


def kill_server(postmaster: int) -> None:
    """The server goes away at once, as when its host dies: the postmaster and every backend. (A backend whose
    postmaster is gone serves its connection until it notices, so killing the postmaster alone lets some calls
    of the "outage" still be stored: a race, not an outage.)"""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == postmaster:  # the parent pid
            children.append(int(stat.parent.name))
    for pid in [postmaster, *children]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def database_status(http_port: int) -> str:
    components = health(http_port)["components"]
    assert isinstance(components, dict)
    return str(components["database"]["status"])


async def test_external_database_away_mid_burst_every_call_once(agent_dir: Path) -> None:
    stream, pause = half_burst()
    http_port = free_port()
    site = agent_dir / "site-db"  # the site's server: a cluster of its own, not in the agent's state dir
    site.mkdir()
    async with (
        FakeRetailCrm(api_key=API_KEY) as crm,
        FakeAmi(stream, speed=math.inf, pause_at=pause) as ami,
        embedded_cluster(site, crm, state=agent_dir / "state") as dsn,
    ):
        server = EmbeddedPostgres(site / "pg")
        cfg = write_config(agent_dir, dsn, http_port, ami.port)
        try:
            agent = await start_agent(cfg)
            try:
                await burst_through_outage(agent_dir, server, dsn, crm, ami, http_port)
            finally:
                agent.send_signal(signal.SIGTERM)
                assert await asyncio.wait_for(agent.wait(), 30) == 0
        finally:
            await server.stop()  # agent_dir's cleanup stops only the agent's own cluster
    sent = sum(len(batch) for batch in crm.uploads)
    assert sent - crm.duplicates_seen == CALLS
    assert len(crm.calls) == CALLS


async def burst_through_outage(
    agent_dir: Path, server: EmbeddedPostgres, dsn: str, crm: FakeRetailCrm, ami: FakeAmi, http_port: int
) -> None:
    await ami.wait_paused(within=60)

    async def first_stored() -> bool:
        return await count(dsn, "SELECT count(*) FROM calls") == FIRST

    await until(first_stored, within=30)
    pid = int((server.data_dir / "postmaster.pid").read_text().split()[0])
    kill_server(pid)
    ami.unpause()
    await ami.wait_finished(within=30)

    async def noticed() -> bool:
        return await asyncio.to_thread(database_status, http_port) != "ok"

    await until(noticed, within=30)
    journal = agent_dir / "state" / "journal.jsonl"

    outage = set(recordings.burst_call_ids(CALLS, ENTERPRISE)[FIRST:])

    async def journaled() -> bool:
        """The calls that ended meanwhile are on the agent's disk (others may be there too: should the AMI link
        drop and come back, the fake PBX sends its stream again, and calls stored before are journaled twice,
        harmless: they are keyed)."""
        text = await asyncio.to_thread(lambda: journal.read_text() if journal.exists() else "")
        return outage <= {e.call_id for e in map(decode, text.splitlines()) if e.event == "ended"}

    try:
        await until(journaled, within=30)
    except AssertionError:
        text = journal.read_text() if journal.exists() else ""
        ended = sorted({e.call_id for e in map(decode, text.splitlines()) if e.event == "ended"})
        log = [x for x in (agent_dir / "agent.log").read_text().splitlines() if not x.startswith((" ", "\t"))]
        raise AssertionError(f"journal: {len(ended)} ended calls {ended}\n" + "\n".join(log[-60:])) from None
    assert not server.server_alive(), "the agent must not start a server it does not own"
    await server.start()  # its admin brings it back

    async def all_delivered() -> bool:
        stored = await count(dsn, "SELECT count(*) FROM calls")
        undone = await count(dsn, "SELECT count(*) FROM deliveries WHERE status <> 'done'")
        return stored == CALLS and undone == 0 and len(crm.calls) == CALLS

    await until(all_delivered, within=90, every=0.2)
    assert await asyncio.to_thread(database_status, http_port) == "ok"
