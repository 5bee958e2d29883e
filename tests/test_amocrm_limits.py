"""amoCRM limits: 7 rps per account under a burst of 200 calls with a token rotation in the middle,
429 back-off, the 403 block breaker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from agent.config.sections import Config
from agent.store.database import Pool
from connectors.amocrm.plan import plan
from connectors.base import Delivery
from connectors.http import make_client
from tests.amocrm_setup import bound, configure_amocrm, connect_tokens
from tests.crm_setup import drained, running
from tests.fakes.amocrm import FakeAmoCrm
from tests.test_amocrm_agent import CALLER, PUBLIC, amo_of, config
from tests.test_amocrm_agent import missed as missed_event
from tests.waiting import until


@pytest.fixture
async def fake() -> AsyncIterator[FakeAmoCrm]:
    async with FakeAmoCrm() as amo:
        amo.redirect_uri = PUBLIC + "/amocrm/oauth/callback"
        yield amo


def busiest_window(times: list[float], seconds: float = 1.0) -> int:
    times = sorted(times)
    best, j = 0, 0
    for i in range(len(times)):
        while times[i] - times[j] >= seconds:
            j += 1
        best = max(best, i - j + 1)
    return best


@pytest.mark.timeout(150)
async def test_burst_of_200_calls_keeps_7_rps_and_survives_a_token_rotation(
    fake: FakeAmoCrm, pool: Pool, db_dsn: str, make_config: Callable[..., Config]
) -> None:
    fake.add_contact(CALLER, responsible_user_id=7)
    cfg = config(make_config, db_dsn)
    await configure_amocrm(pool, cfg.agent.state_dir, fake, missed_call_tasks=False)
    calls = 200
    async with running(cfg) as agent:
        await connect_tokens(amo_of(agent), fake)

        async def rotate_midway() -> None:
            await until(lambda: len(fake.calls) >= calls // 2, within=60, every=0.05)
            fake.expire_access_tokens()  # every request from now on gets 401 until we refresh

        rotation = asyncio.create_task(rotate_midway())
        for i in range(calls):
            agent.parts.on_call_event(missed_event(f"burst-{i}", ("150",)))
        counts = await drained(pool, at_least=calls, within=120)
        await rotation
    assert counts == {"done": calls}
    uniqs = [c["uniq"] for c in fake.calls]
    assert len(uniqs) == calls and len(set(uniqs)) == calls  # nothing lost, nothing twice
    assert fake.refreshes == 1 and fake.revoked_refresh_uses == 0
    api = fake.api_requests()
    assert not [r for r in api if r.status == 429]
    # measured where the requests arrive, so a loaded machine can bunch a pacing of 6.5/s a little:
    # judged over 3-second windows (at most 21), which still fails any sender faster than 7/s
    assert busiest_window([r.at for r in fake.requests], 3.0) <= 21
    # the expiry is met once per request in flight at most: the refresh goes before the waiting deliveries and
    # each request reads the token when its slot comes (a queue of 401s with the old token cost ~30 s of slots)
    assert 1 <= sum(r.status == 401 for r in api) <= cfg.outbox.account_concurrency


async def test_429_backs_off_and_403_block_pauses_the_account_loudly(
    fake: FakeAmoCrm, pool: Pool, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake.add_contact(CALLER)
    settings = await configure_amocrm(pool, tmp_path, fake)
    connector = bound(pool, tmp_path)
    await connect_tokens(connector, fake)
    (delivery,) = plan(missed_event("c1", ("150",)), settings)
    async with make_client() as http:
        client = connector.client(settings, http)
        fake.fail_next(1, status=429, body="Too Many Requests")
        outcome = await client.send([delivery])
        assert outcome.status == "transient" and outcome.retry_after == 2.0 and "429" in (outcome.error or "")
        fake.blocked = True
        outcome = await client.send([delivery])
        assert outcome.status == "transient" and (outcome.retry_after or 0) > 800
        assert "blocked" in (outcome.error or "")
        assert "AMOCRM ACCOUNT BLOCKED" in caplog.text
        sent = len(fake.requests)
        outcome = await client.send([delivery])  # paused: nothing goes out
        assert len(fake.requests) == sent
        assert outcome.status == "transient" and (outcome.retry_after or 0) > 800
        assert "blocked" in (outcome.error or "")


async def test_a_retry_after_a_partial_send_repeats_no_acknowledged_step(
    fake: FakeAmoCrm, pool: Pool, tmp_path: Path
) -> None:
    """unsorted done, task failed: the retry makes the task only (no second unsorted item)."""
    settings = await configure_amocrm(pool, tmp_path, fake)
    connector = bound(pool, tmp_path)
    await connect_tokens(connector, fake)
    (delivery,) = plan(missed_event("p1", ("151",)), settings)
    assert isinstance(delivery, Delivery) and "task" in delivery.payload
    fake.fail_next(1, status=502, body="bad gateway", path="/api/v4/tasks")  # the task's one POST
    async with make_client() as http:
        client = connector.client(settings, http)
        first = await client.send([delivery])
        assert first.status == "transient" and len(fake.unsorted) == 1 and not fake.tasks
        second = await client.send([delivery])
    assert second.status == "success"
    assert len(fake.unsorted) == 1 and len(fake.tasks) == 1
    (task,) = fake.tasks.values()
    assert task["responsible_user_id"] == 8  # 151, the one phone it rang, owns the missed call
