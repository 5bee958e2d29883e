"""amoCRM processes a request and its answer never arrives (the connection is cut after the work is done): the
next try must find what the first one made instead of making it again. Every call exactly once."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import pytest

from agent.config.sections import Config
from agent.store.database import Pool
from connectors.amocrm.connector import AmoCrmConnector
from tests import recordings
from tests.amocrm_setup import configure_amocrm, connect_tokens
from tests.crm_setup import running
from tests.fakes.ami import FakeAmi
from tests.fakes.amocrm import FakeAmoCrm
from tests.test_ami_link import pbx_for
from tests.waiting import until

CALLS = 10
LOST = 4
CALLER = "+375291234567"  # the caller of every copy of the recording


@pytest.fixture
async def fake() -> AsyncIterator[FakeAmoCrm]:
    async with FakeAmoCrm() as amo:
        amo.redirect_uri = "https://pbx.example.com/amocrm/oauth/callback"
        yield amo


async def deliver_burst(
    fake: FakeAmoCrm, pool: Pool, config: Config, recording: str, calls: int, **settings: object
) -> None:
    """`calls` copies of `recording` through the agent to the fake amoCRM, until every call delivery is done."""
    async with FakeAmi(recordings.burst(calls, recording), speed=math.inf, pause_at=0) as ami:
        cfg = replace(config, pbx=(pbx_for(ami),))
        await configure_amocrm(pool, cfg.agent.state_dir, fake, **settings)
        async with running(cfg) as agent:
            connector = agent.parts.integrations.connectors["amocrm"]
            assert isinstance(connector, AmoCrmConnector)
            await connect_tokens(connector, fake)  # before the first call: tokens exist when it is sent
            ami.unpause()
            await ami.wait_finished(within=20)

            async def settled() -> bool:
                left = await pool.fetchval("SELECT count(*) FROM deliveries WHERE kind = 'call' AND status <> 'done'")
                done = await pool.fetchval("SELECT count(*) FROM deliveries WHERE kind = 'call'")
                return bool(left == 0 and done == calls)

            await until(settled, within=60, every=0.1)


@pytest.mark.parametrize(
    ("caller", "path"),
    [("known", "/api/v4/calls"), ("unknown", "/api/v4/leads/unsorted/sip")],
)
async def test_lost_answers_make_nothing_twice(
    caller: str, path: str, fake: FakeAmoCrm, pool: Pool, db_dsn: str, make_config: Callable[..., Config]
) -> None:
    if caller == "known":
        fake.add_contact(CALLER, responsible_user_id=8)
    fake.lose_answers(LOST, path)
    config = make_config(db_dsn, public_url="https://pbx.example.com")
    await deliver_burst(fake, pool, config, "p_a_incoming_answered", CALLS, unknown_caller="unsorted")
    assert fake.lost_answers == LOST
    made = Counter(c["uniq"] for c in fake.calls)
    assert len(made) == CALLS and set(made.values()) == {1}, made  # each call once, none twice
    if caller == "unknown":
        assert len(fake.unsorted) == CALLS
    assert await pool.fetchval("SELECT count(*) FROM deliveries WHERE status = 'failed'") == 0


async def test_a_lost_task_answer_makes_no_second_task(
    fake: FakeAmoCrm, pool: Pool, db_dsn: str, make_config: Callable[..., Config]
) -> None:
    fake.add_contact(CALLER, responsible_user_id=8)
    fake.lose_answers(1, "/api/v4/tasks")
    missed = 5  # the same caller, missed five times: one call-back task while it stays open
    await deliver_burst(
        fake, pool, make_config(db_dsn, public_url="https://pbx.example.com"), "p_b_incoming_missed", missed
    )
    assert fake.lost_answers == 1
    assert len(fake.tasks) == 1, fake.tasks
    assert len(fake.calls) == missed
