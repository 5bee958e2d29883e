"""`pbx-agent redeliver`: stored calls of a period are planned again; what exists is not stored twice."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent.store import routing_rules as routing_store
from agent.store.calls import INSERT, event_from_row, row
from agent.store.database import Pool
from agent.tracking.event import CallEvent, CallResult
from tests.crm_setup import API_KEY, ENTERPRISE, configure_retailcrm
from tests.fakes.retailcrm import FakeRetailCrm

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def call(i: int, result: CallResult = "answered") -> CallEvent:
    return CallEvent(
        event="ended",
        call_id=f"1795000000.{i}",
        enterprise=ENTERPRISE,
        direction="in",
        phone="+375291234567",
        did="375173880000",
        extension="150",
        at=T0 + timedelta(hours=i),
        extensions=("150",),
        answered_by="150" if result == "answered" else None,
        result=result,
        ring_seconds=3.0,
        talk_seconds=8.0 if result == "answered" else 0.0,
        started_at=T0 + timedelta(hours=i, seconds=-11),
        ended_at=T0 + timedelta(hours=i),
        pbx="office",
    )


def write_config(tmp_path: Path, dsn: str) -> Path:
    cfg = tmp_path / "agent.toml"
    cfg.write_text(f'[agent]\nstate_dir = "state"\n[database]\ndsn = "{dsn}"\n')
    return cfg


def redeliver(cfg: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", "redeliver", "-c", str(cfg), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


async def test_a_period_is_planned_again_once(
    pool: Pool, db_dsn: str, tmp_path: Path, agent_env: dict[str, str]
) -> None:
    for i in range(5):
        await pool.execute(INSERT, *row(call(i, "answered" if i % 2 else "no_answer")))
    found = await pool.fetchrow("SELECT * FROM calls WHERE call_id = '1795000000.1'")
    assert found is not None
    stored = dict(found)
    again = event_from_row(stored)
    assert (again.answered_by, again.result, again.extensions, again.ended_at) == (
        "150",
        "answered",
        ("150",),
        T0 + timedelta(hours=1),
    )
    cfg = write_config(tmp_path, db_dsn)
    async with FakeRetailCrm(api_key=API_KEY) as crm:
        await configure_retailcrm(pool, tmp_path / "state", crm)
    first = redeliver(
        cfg, agent_env, "--enterprise", ENTERPRISE, "--since", "2026-11-20T11:00", "--until", "2026-11-20T14:00"
    )
    assert first.returncode == 0, first.stderr
    assert "3 call(s) planned again" in first.stdout  # hours 1, 2, 3
    uploads = await pool.fetch("SELECT idempotency_key FROM deliveries WHERE kind = 'calls_upload' ORDER BY 1")
    assert [r["idempotency_key"] for r in uploads] == [f"retailcrm:1795000000.{i}:upload" for i in (1, 2, 3)]
    second = redeliver(cfg, agent_env, "--enterprise", ENTERPRISE, "--since", "2026-11-20")
    assert second.returncode == 0, second.stderr
    assert await pool.fetchval("SELECT count(*) FROM deliveries WHERE kind = 'calls_upload'") == 5
    bad = redeliver(cfg, agent_env, "--enterprise", "999", "--since", "2026-11-20")
    assert bad.returncode == 2 and "no enabled CRM" in bad.stderr
    worse = redeliver(cfg, agent_env, "--enterprise", ENTERPRISE, "--since", "yesterday")
    assert worse.returncode == 2 and "not an ISO date" in worse.stderr


async def test_a_blocked_caller_is_not_planned_again(
    pool: Pool, db_dsn: str, tmp_path: Path, agent_env: dict[str, str]
) -> None:
    await pool.execute(INSERT, *row(call(1)))
    await pool.execute(INSERT, *row(replace(call(2), phone="+375297654321")))
    cfg = write_config(tmp_path, db_dsn)
    async with FakeRetailCrm(api_key=API_KEY) as crm:
        await configure_retailcrm(pool, tmp_path / "state", crm)
    await routing_store.put(pool, ENTERPRISE, {"blocklist": ["+375291234567"]})
    done = redeliver(cfg, agent_env, "--enterprise", ENTERPRISE, "--since", "2026-11-20")
    assert done.returncode == 0, done.stderr
    uploads = await pool.fetch("SELECT idempotency_key FROM deliveries WHERE kind = 'calls_upload'")
    assert [r["idempotency_key"] for r in uploads] == ["retailcrm:1795000000.2:upload"]
