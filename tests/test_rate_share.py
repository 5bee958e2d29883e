"""Several agents on one database share every CRM account's rate limit: each paces at 1/N of it, N counted
from PostgreSQL's own list of the agents' connections (agent.peers)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest

from agent.app import Agent
from agent.config.sections import Config
from agent.store import database, peers
from agent.store.database import Pool
from agent.store.embedded import DB_USER, EmbeddedPostgres
from connectors.amocrm.session import ACCOUNT_RPS, AccountGuard
from connectors.http import RATE_FLOOR, RateLimiter, TokenBucket, retailcrm_route, shared_rate
from tests.amocrm_setup import configure_amocrm, connect_tokens
from tests.crm_setup import FAST, drained, running
from tests.fakes.amocrm import FakeAmoCrm
from tests.test_amocrm_agent import CALLER, PUBLIC, amo_of, config
from tests.test_amocrm_agent import missed as missed_event
from tests.test_amocrm_limits import busiest_window
from tests.test_connectors_base import FakeClock

# -- the share: pure ------------------------------------------------------------------------------------


def test_a_starting_agent_holds_its_outbox_only_beside_others() -> None:
    assert peers.join_hold(1, 20.0) == 0.0
    assert peers.join_hold(2, 20.0) == 30.0  # the others' refresh period, with slack
    assert peers.join_hold(5, 2.0) == 3.0


def test_shared_rate_divides_by_the_agents_and_never_goes_below_the_floor() -> None:
    assert shared_rate(6.5, 1) == 6.5
    assert shared_rate(6.5, 2) == 3.25
    assert shared_rate(40.0, 4) == 10.0
    assert shared_rate(10.0, 0) == 10.0  # no agent counted (a stale or failed count): this one at least
    assert shared_rate(10.0, -3) == 10.0
    assert shared_rate(6.5, 100) == RATE_FLOOR == 0.5  # a count gone wild slows sending, never stalls it
    assert shared_rate(0.2, 5) == 0.2  # a limit already under the floor is not raised to it


async def test_a_bucket_changes_its_rate_in_place_keeping_what_it_earned() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10, clock=clock, sleep=clock.sleep)
    await bucket.acquire()
    clock.now += 0.05  # half a token earned at 10/s
    bucket.set_rate(1)
    await bucket.acquire()  # the other half at 1/s: 0.5 s
    assert clock.now == pytest.approx(0.55)
    await bucket.acquire()
    assert clock.now == pytest.approx(1.55)
    with pytest.raises(ValueError):
        bucket.set_rate(0)


async def test_the_limiter_shares_existing_and_new_buckets() -> None:
    clock = FakeClock()
    limiter = RateLimiter(retailcrm_route, clock=clock, sleep=clock.sleep)
    await limiter.acquire("a", "/api/v5/users")
    limiter.share(2)
    assert limiter.rate("a", "/api/v5/users") == 5.0
    await limiter.acquire("a", "/api/v5/users")  # the existing bucket: 5/s now
    assert clock.now == pytest.approx(0.2)
    start = clock.now
    await limiter.acquire("b", "/api/v5/telephony/call/event")  # a new one: 20/s from the start
    await limiter.acquire("b", "/api/v5/telephony/call/event")
    assert clock.now - start == pytest.approx(1 / 20)
    limiter.share(1)  # at 0.25: "a" earned 0.05 s x 5/s = 0.25 token since 0.2; the rest comes at 10/s
    await limiter.acquire("a", "/api/v5/users")
    assert clock.now == pytest.approx(0.25 + 0.75 / 10)
    await limiter.acquire("a", "/api/v5/users")
    assert clock.now == pytest.approx(0.25 + 0.75 / 10 + 0.1)


# -- the count: refreshed, listeners told -----------------------------------------------------------------


async def test_the_count_goes_back_up_when_an_agent_stops_within_one_refresh() -> None:
    """An injected count source: 2 agents, then one stops; the guard's rate follows at the next refresh."""
    live = [2]

    async def source() -> int:
        return live[0]

    count = peers.AgentCount(source, interval=0.05)
    guard = AccountGuard()
    limiter = RateLimiter(retailcrm_route)
    seen: list[int] = []
    alone = asyncio.Event()
    count.on_change(guard.share)
    count.on_change(limiter.share)
    count.on_change(seen.append)
    count.on_change(lambda n: alone.set() if n == 1 and seen[-2:] == [2, 1] else None)
    await guard.acquire("acct")  # a bucket that exists before the change
    assert await count.refresh() == 2
    assert guard.account_rate == ACCOUNT_RPS / 2 and guard.rate_of("acct") == ACCOUNT_RPS / 2
    assert limiter.rate("x", "/api/v5/users") == 5.0
    task = asyncio.create_task(count.run())
    try:
        live[0] = 1
        await asyncio.wait_for(alone.wait(), 2)
        live[0] = 0  # nobody counted (e.g. this agent's connections all idle-closed): still itself
        await count.refresh()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert guard.account_rate == ACCOUNT_RPS and guard.rate_of("acct") == ACCOUNT_RPS
    assert limiter.rate("x", "/api/v5/users") == 10.0
    assert seen == [1, 2, 1]


async def test_a_failed_refresh_keeps_the_last_count() -> None:
    answers: list[int | BaseException] = [3, ConnectionResetError("gone"), 2]

    async def source() -> int:
        answer = answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    count = peers.AgentCount(source, interval=0.01)
    await count.refresh()
    seen: list[int] = []
    two = asyncio.Event()
    count.on_change(seen.append)
    count.on_change(lambda n: two.set() if n == 2 else None)
    task = asyncio.create_task(count.run())
    try:
        await asyncio.wait_for(two.wait(), 2)  # past the failure, which changed nothing
        assert seen == [3, 2] and not task.done()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


# -- the count: from PostgreSQL ----------------------------------------------------------------------------


async def test_postgres_counts_agents_by_application_name_not_tools_and_not_other_databases(
    db_dsn: str, pg_cluster: EmbeddedPostgres
) -> None:
    """Counted from a role that is not a superuser and not the other sessions' role (an external DSN's role
    may be such): application_name is visible to every role."""
    agents = [await database.create_pool(db_dsn, 1, name=peers.agent_name(f"host-{i}:1")) for i in (1, 2)]
    others = [
        await database.create_pool(db_dsn, 1, name=peers.tool_name("redeliver")),
        await database.create_pool(pg_cluster.dsn_for("postgres"), 1, name=peers.agent_name("elsewhere:1")),
    ]
    admin = await asyncpg.connect(db_dsn)
    await admin.execute("CREATE ROLE peer_counter LOGIN")
    try:
        counter = await database.create_pool(
            db_dsn.replace(f"{DB_USER}@", "peer_counter@", 1), 1, name=peers.agent_name("host-3:1")
        )
        try:
            assert not await counter.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            assert await peers.count_agents(counter) == 3  # host-1, host-2 and itself
            await agents.pop().close()
            assert await peers.count_agents(counter) == 2  # an agent gone is gone from the count at once
        finally:
            await counter.close()
    finally:
        for p in agents + others:
            await p.close()
        await admin.execute("DROP ROLE peer_counter")
        await admin.close()


# -- two agents, one database, one amoCRM account -----------------------------------------------------------

CALLS = 32
INTERVAL = 2.5  # each agent's count refresh
SHARED = replace(FAST, claim_batch=2, max_in_flight=4, lease=30.0)  # small claims: both agents take a part


def second_config(cfg: Config, tmp_path: Path) -> Config:
    """Another agent on the same database: its own state dir, the same secret key (tokens are encrypted)."""
    state = tmp_path / "b" / "state"
    state.mkdir(parents=True)
    shutil.copy(cfg.agent.state_dir / "secret.key", state / "secret.key")
    return replace(cfg, agent=replace(cfg.agent, state_dir=state))


def sent(agent: Agent) -> float:
    return (
        agent.metrics.registry.get_sample_value("pbx_agent_deliveries_total", {"crm": "amocrm", "status": "success"})
        or 0.0
    )


async def counted(agent: Agent, agents: int, within: float) -> None:
    """Until the agent's count of agents on the database is `agents` (it refreshes every [outbox] agents_refresh)."""
    reached = asyncio.Event()
    agent.parts.agent_count.on_change(lambda n: reached.set() if n == agents else None)
    await asyncio.wait_for(reached.wait(), within)


@pytest.fixture
async def fake() -> AsyncIterator[FakeAmoCrm]:
    async with FakeAmoCrm() as amo:
        amo.redirect_uri = PUBLIC + "/amocrm/oauth/callback"
        yield amo


@pytest.mark.timeout(60)
async def test_two_agents_keep_one_amocrm_account_under_7_rps_and_one_alone_goes_back_to_full_rate(
    fake: FakeAmoCrm, pool: Pool, db_dsn: str, make_config: Callable[..., Config], tmp_path: Path
) -> None:
    """The burst starts as soon as the second agent is up, before the first has counted it: the second
    holds its outbox until then (join_hold), else the account gets 6.5 + 3.25 requests/s for a while."""
    fake.add_contact(CALLER, responsible_user_id=7)
    cfg = config(make_config, db_dsn)
    cfg = replace(cfg, outbox=replace(cfg.outbox, agents_refresh=INTERVAL))
    await configure_amocrm(pool, cfg.agent.state_dir, fake, missed_call_tasks=False)
    cfg_b = second_config(cfg, tmp_path)
    async with running(cfg, SHARED, name=peers.agent_name("test-a:1")) as first:
        await connect_tokens(amo_of(first), fake)
        async with running(cfg_b, SHARED, name=peers.agent_name("test-b:1")) as second:
            assert second.parts.agent_count.agents == 2  # counted at its start
            assert amo_of(second).guard.account_rate == ACCOUNT_RPS / 2
            assert not second.outbox_started.is_set()
            for i in range(CALLS):
                first.parts.on_call_event(missed_event(f"shared-{i}", ("150",)))
            counts = await drained(pool, at_least=CALLS, within=40)
            assert amo_of(first).guard.account_rate == ACCOUNT_RPS / 2
            assert sent(first) > 0 and sent(second) > 0, "both agents must have sent to the account"
        await counted(first, 1, within=INTERVAL + 1)  # the other stopped: its connections are gone
        assert amo_of(first).guard.account_rate == ACCOUNT_RPS
    assert counts == {"done": CALLS}
    assert len({c["uniq"] for c in fake.calls}) == len(fake.calls) == CALLS
    assert not [r for r in fake.api_requests() if r.status == 429]
    # measured at the fake, over 2-second windows as in test_amocrm_limits (at most 14 for 7 rps)
    assert busiest_window([r.at for r in fake.requests], 2.0) <= 14, len(fake.requests)
