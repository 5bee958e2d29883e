"""Sends that take too long: none outlives its lease (no row is sent by two workers at once), and a graceful
stop hands the rows of unfinished sends back at once instead of leaving them leased."""

from __future__ import annotations

import asyncio
import itertools
import math
import signal
import time
from collections.abc import Sequence
from pathlib import Path

from agent.delivery.outbox import Outbox, OutboxPolicy
from agent.store.database import Pool
from agent.store.secretbox import load_or_create_secret
from connectors.base import Delivery, SendOutcome
from tests import recordings
from tests.agent_process import free_port, start_agent
from tests.crm_setup import API_KEY, ENTERPRISE, configure_retailcrm
from tests.fakes.ami import FakeAmi
from tests.fakes.retailcrm import FakeRetailCrm
from tests.waiting import until


class HangingCrm:
    """A CRM that takes `hang` seconds to answer each send; it notes when each send began and ended."""

    def __init__(self, hang: float) -> None:
        self.hang = hang
        self.sends: list[tuple[str, float, float]] = []

    def batch_limit(self, crm: str, kind: str) -> int:
        return 1

    async def prepare(self, crm: str, deliveries: Sequence[Delivery]) -> None:
        return None

    async def send(self, enterprise: str, crm: str, deliveries: Sequence[Delivery]) -> SendOutcome:
        began = time.monotonic()
        try:
            await asyncio.sleep(self.hang)
            return SendOutcome(status="success")
        finally:
            self.sends.append((deliveries[0].idempotency_key, began, time.monotonic()))


async def test_no_send_outlives_its_lease(pool: Pool) -> None:
    crm = HangingCrm(hang=10.0)
    policy = OutboxPolicy(lease=2.0, backoff_first=0.1, backoff_max=0.2, poll_interval=0.1)
    workers = [Outbox(pool, crm, policy=policy), Outbox(pool, crm, policy=policy)]  # two agents, one table
    await workers[0].enqueue([Delivery("k1", ENTERPRISE, "retailcrm", "call_event", {"n": 1})])
    tasks = [asyncio.create_task(w.run()) for w in workers]
    try:
        await until(lambda: len(crm.sends) >= 3, within=20)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    spans = sorted((began, ended) for _key, began, ended in crm.sends)
    for (_, first_end), (second_begin, _) in itertools.pairwise(spans):
        assert second_begin >= first_end, f"two sends of one row at once: {spans}"
    assert all(ended - began < policy.lease for began, ended in spans)


CALLS = 20


def write_config(directory: Path, dsn: str, ami_port: int) -> Path:
    cfg = directory / "agent.toml"
    cfg.write_text(
        f'[agent]\nstate_dir = "state"\n[database]\ndsn = "{dsn}"\n'
        f'[http]\nlisten = "127.0.0.1:{free_port()}"\n[agi]\nlisten = "127.0.0.1:{free_port()}"\n'
        f'[[pbx]]\nname = "office"\nenterprise = "{ENTERPRISE}"\nusername = "agent"\nsecret = "secret"\n'
        f"port = {ami_port}\n"
    )
    return cfg


async def test_sigterm_with_sends_in_flight_hands_them_back(pool: Pool, db_dsn: str, tmp_path: Path) -> None:
    async with FakeRetailCrm(api_key=API_KEY) as crm, FakeAmi(recordings.burst(CALLS), speed=math.inf) as ami:
        crm.slow(20.0)  # every request outlasts the stop's grace
        cfg = write_config(tmp_path, db_dsn, ami.port)
        load_or_create_secret(tmp_path / "state")
        await configure_retailcrm(pool, tmp_path / "state", crm)
        first = await start_agent(cfg)
        try:

            async def sending() -> bool:
                n = await pool.fetchval("SELECT count(*) FROM deliveries WHERE status = 'in_progress'")
                return bool(n)

            await until(sending, within=30)
        finally:
            first.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(first.wait(), 20) == 0
        leased = await pool.fetchval(
            "SELECT count(*) FROM deliveries WHERE status = 'in_progress' OR next_attempt_at > now() + interval '5 s'"
        )
        rows = await pool.fetch(
            "SELECT kind, status, attempts, last_error FROM deliveries"
            " WHERE status = 'in_progress' OR next_attempt_at > now() + interval '5 s'"
        )
        assert leased == 0, [dict(r) for r in rows]  # handed back, not held for the 60 s of a lease
        crm.slow(0)
        began = time.monotonic()
        second = await start_agent(cfg)
        try:

            async def delivered() -> bool:
                left = await pool.fetchval("SELECT count(*) FROM deliveries WHERE status <> 'done'")
                return left == 0 and len(crm.calls) == CALLS

            await until(delivered, within=40, every=0.1)
        finally:
            second.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(second.wait(), 20) == 0
        assert time.monotonic() - began < 30  # well before the first agent's leases would have run out
    sent = sum(len(batch) for batch in crm.uploads)
    assert sent - crm.duplicates_seen == CALLS
