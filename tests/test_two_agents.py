"""Two agents, one database, one PBX: only the lock holder consumes the AMI stream; when it is killed
with -9, the standby takes over within 10 s, reconciles the call in progress, and every call reaches the
fake RetailCRM exactly once."""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import signal
import urllib.request
from collections.abc import Callable
from pathlib import Path

from agent.store.database import Pool
from agent.store.secretbox import load_or_create_secret
from tests import recordings
from tests.agent_process import free_port, start_agent
from tests.crm_setup import API_KEY, configure_retailcrm
from tests.fakes.ami import FakeAmi
from tests.fakes.retailcrm import FakeRetailCrm
from tests.waiting import until

CALLS = 12


def stream() -> tuple[bytes, int]:
    """CALLS copies of a SIP call; and a byte offset inside copy 7, after its answer."""
    data = recordings.ami("p_a_incoming_answered")
    banner, _, body = data.partition(b"\r\n")
    copies = [recordings.rewrite_ids(body, offset=i * 10) for i in range(CALLS)]
    before = len(banner) + 2 + sum(len(c) for c in copies[:6])
    inside = copies[6].index(b"Event: BridgeEnter")
    return banner + b"\r\n" + b"".join(copies), before + inside


def write_config(directory: Path, dsn: str, ami_port: int) -> tuple[Path, int]:
    """An agent of its own (its own state dir), sharing the database and the secret key."""
    (directory / "state").mkdir(parents=True, exist_ok=True)
    shutil.copy(directory.parent / "state" / "secret.key", directory / "state" / "secret.key")
    port = free_port()
    cfg = directory / "agent.toml"
    cfg.write_text(
        f'[agent]\nstate_dir = "state"\n[database]\ndsn = "{dsn}"\n'
        f'[http]\nlisten = "127.0.0.1:{port}"\n[agi]\nlisten = "127.0.0.1:{free_port()}"\n'
        "[outbox]\nlease = 2\nagents_refresh = 1\n"
        f'[[pbx]]\nname = "office"\nenterprise = "100"\nusername = "agent"\nsecret = "secret"\nport = {ami_port}\n'
    )
    return cfg, port


def pbx_health(port: int) -> dict[str, object]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
            body = json.loads(resp.read())
    except OSError:
        return {}
    component: dict[str, object] = body["components"].get("pbx:office", {})
    return component


async def until_health(predicate: Callable[[], bool], within: float) -> None:
    """`predicate` reads /health over blocking HTTP: checked in a thread."""
    await until(lambda: asyncio.to_thread(predicate), within=within, every=0.05)


async def test_standby_takes_over_after_kill_9(pool: Pool, db_dsn: str, tmp_path: Path) -> None:
    data, pause = stream()
    async with FakeRetailCrm(api_key=API_KEY) as crm, FakeAmi(data, speed=math.inf, pause_at=pause) as ami:
        load_or_create_secret(tmp_path / "state")
        await configure_retailcrm(pool, tmp_path / "state", crm, popup_in=False, popup_hangup=False)
        cfg_a, port_a = write_config(tmp_path / "a", db_dsn, ami.port)
        cfg_b, port_b = write_config(tmp_path / "b", db_dsn, ami.port)
        first = await start_agent(cfg_a)
        second: asyncio.subprocess.Process | None = None
        try:
            await until_health(lambda: pbx_health(port_a).get("role") == "active", 30)
            second = await start_agent(cfg_b)
            await until_health(lambda: pbx_health(port_b).get("holder") is not None, 30)
            assert pbx_health(port_b)["role"] == "standby"
            assert str(pbx_health(port_b)["holder"]).startswith("pbx-agent ")
            await ami.wait_paused(within=30)

            async def stored_before_pause() -> bool:
                return bool(await pool.fetchval("SELECT count(*) FROM calls") >= 6)

            await until(stored_before_pause, within=30, every=0.05)  # everything before the pause is stored
            assert ami.logins == 1
            os.kill(first.pid, signal.SIGKILL)
            await first.wait()
            loop = asyncio.get_running_loop()
            killed_at = loop.time()
            await ami.wait_logins(2, within=15)
            assert loop.time() - killed_at < 10
            await until_health(lambda: pbx_health(port_b).get("role") == "active", 10)
            ami.unpause()
            await ami.wait_finished(within=30)

            async def all_delivered() -> bool:
                return len(crm.calls) >= CALLS and not await pool.fetchval(
                    "SELECT count(*) FROM deliveries WHERE status <> 'done'"
                )

            await until(all_delivered, within=30, every=0.05)
        finally:
            for proc in (first, second):
                if proc is not None and proc.returncode is None:
                    proc.send_signal(signal.SIGTERM)
                    await asyncio.wait_for(proc.wait(), 15)
    assert len(crm.calls) == CALLS
    assert sum(len(u) for u in crm.uploads) - crm.duplicates_seen == CALLS
    results = [c["result"] for c in crm.calls.values()]
    assert results == ["answered"] * CALLS
