"""Missed-call tasks in RetailCRM through the running agent, the outbox and the fake: one open call-back task
per caller, for the right manager, linked to the customer."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Literal

import pytest

from agent.config.sections import Config
from agent.store.database import Pool
from agent.tracking.event import CallEvent
from tests import recordings
from tests.crm_setup import API_KEY, ENTERPRISE, configure_retailcrm, drained, running
from tests.fakes.ami import FakeAmi
from tests.fakes.retailcrm import FakeRetailCrm
from tests.test_ami_link import pbx_for

CALLER = "+375291234567"  # the caller of the p_* recordings
MANAGER = {"id": 8, "firstName": "Olga", "lastName": "K", "code": "151", "status": "busy"}


@pytest.fixture
async def crm() -> AsyncIterator[FakeRetailCrm]:
    async with FakeRetailCrm(api_key=API_KEY) as fake:
        fake.add_users(10)
        yield fake


_amis: list[FakeAmi] = []


@pytest.fixture(autouse=True)
async def _stop_amis() -> AsyncIterator[None]:
    yield
    while _amis:
        await _amis.pop().stop()


async def config_for(make_config: Callable[..., Config], db_dsn: str, name: str | None) -> Config:
    base = make_config(db_dsn)
    if name is None:
        return replace(base, pbx=())
    d = recordings.recordings_dir()
    ami = FakeAmi(d / f"{name}.ami", d / f"{name}.timing", speed=math.inf)
    await ami.start()
    _amis.append(ami)
    return replace(base, pbx=(pbx_for(ami),))


def ended(
    call_id: str,
    rang: tuple[str, ...],
    phone: str = CALLER,
    answered_by: str | None = None,
    direction: Literal["in", "out"] = "in",
    ago: float = 0.0,
) -> CallEvent:
    now = datetime.now(UTC) - timedelta(seconds=ago)
    return CallEvent(
        event="ended",
        call_id=call_id,
        enterprise=ENTERPRISE,
        direction=direction,
        phone=phone,
        did="375173880000",
        extension=answered_by or (rang[0] if len(rang) == 1 else None),
        at=now,
        extensions=rang,
        answered_by=answered_by,
        result="answered" if answered_by else "no_answer",
        ring_seconds=12.0,
        talk_seconds=30.0 if answered_by else 0.0,
        started_at=now - timedelta(seconds=12),
        ended_at=now,
    )


@pytest.mark.parametrize("string_ids", [False, True], ids=["int-id", "string-id"])
async def test_a_missed_call_gives_one_task_for_the_customers_manager_and_a_repeat_none(
    crm: FakeRetailCrm, pool: Pool, db_dsn: str, make_config: Callable[..., Config], string_ids: bool
) -> None:
    crm.records.string_ids = string_ids  # the task's id answered as "1" is that id too: the repeat finds it open
    crm.set_manager(CALLER, MANAGER, {"id": 55, "firstName": "Ivan", "phones": [{"number": CALLER}]})
    cfg = await config_for(make_config, db_dsn, "p_b_incoming_missed")
    await configure_retailcrm(pool, cfg.agent.state_dir, crm, missed_call_tasks=True, task_due_minutes=30)
    async with running(cfg) as agent:
        await drained(pool, at_least=4)
        (task,) = crm.records.tasks.values()
        # the customer's manager, even while busy (ignoreStatus), on the customer's card, due in 30 minutes
        assert task["performerId"] == 8 and task["customer"] == {"id": 55} and task["complete"] is False
        assert CALLER in task["text"] and task["phone"] == CALLER
        due = datetime.strptime(task["datetime"], "%Y-%m-%d %H:%M")
        assert 20 <= (due - datetime.now()).total_seconds() / 60 <= 31 + 180  # Europe/Minsk, the test host may be UTC
        # the same caller misses again while it is open: no second task; once it is done, a new one
        agent.parts.on_call_event(ended("second", ("150",)))
        await drained(pool, at_least=7)
        assert len(crm.records.tasks) == 1
        task["complete"] = True
        agent.parts.on_call_event(ended("third", ("150",)))
        await drained(pool, at_least=10)
    assert len(crm.records.tasks) == 2
    statuses = await pool.fetch("SELECT status FROM deliveries WHERE kind = 'task'")
    assert [r["status"] for r in statuses] == ["done"] * 3


async def test_without_a_customers_manager_the_owner_then_the_fallback_user_gets_it(
    crm: FakeRetailCrm, pool: Pool, db_dsn: str, make_config: Callable[..., Config]
) -> None:
    cfg = await config_for(make_config, db_dsn, None)
    await configure_retailcrm(pool, cfg.agent.state_dir, crm, missed_call_tasks=True, task_default_user_id="9")
    async with running(cfg) as agent:
        agent.parts.on_call_event(ended("one", ("150",), phone="+375291110001"))  # 150 = user 7
        agent.parts.on_call_event(ended("group", ("150", "151"), phone="+375291110002"))  # nobody's
        await drained(pool, at_least=6)
    by_phone = {t["phone"]: t for t in crm.records.tasks.values()}
    assert by_phone["+375291110001"]["performerId"] == 7 and "customer" not in by_phone["+375291110001"]
    assert by_phone["+375291110002"]["performerId"] == 9


async def test_an_unknown_performer_is_refused_and_shows_in_the_delivery(
    crm: FakeRetailCrm, pool: Pool, db_dsn: str, make_config: Callable[..., Config]
) -> None:
    cfg = await config_for(make_config, db_dsn, None)
    await configure_retailcrm(pool, cfg.agent.state_dir, crm, missed_call_tasks=True, task_default_user_id="99")
    async with running(cfg) as agent:
        agent.parts.on_call_event(ended("lost", ("150", "151")))
        await drained(pool, at_least=3)
    assert not crm.records.tasks
    row = await pool.fetchrow("SELECT status, last_error FROM deliveries WHERE kind = 'task'")
    assert row is not None and row["status"] == "failed" and "performerId" in row["last_error"]


async def test_an_answered_call_with_the_customer_completes_the_task_exactly_once(
    crm: FakeRetailCrm, pool: Pool, db_dsn: str, make_config: Callable[..., Config]
) -> None:
    crm.set_manager(CALLER, MANAGER)
    cfg = await config_for(make_config, db_dsn, None)
    await configure_retailcrm(pool, cfg.agent.state_dir, crm, missed_call_tasks=True)
    async with running(cfg) as agent:
        agent.parts.on_call_event(ended("missed", ("150",)))
        await drained(pool, at_least=3)  # the hangup pop-up, the upload, the task
        (task,) = crm.records.tasks.values()
        assert task["complete"] is False
        # any manager calls the customer back and reaches them: the task is completed
        agent.parts.on_call_event(ended("back", ("152",), answered_by="152", direction="out"))
        await drained(pool, at_least=6)
        assert task["complete"] is True and task["completedAt"]
        # the customer calls again and is answered: nothing left to complete
        agent.parts.on_call_event(ended("again", ("150",), answered_by="150"))
        await drained(pool, at_least=9)
    assert len(crm.requests_to("/edit")) == 1
    done = await pool.fetch("SELECT status FROM deliveries WHERE kind = 'task_done' ORDER BY id")
    assert [r["status"] for r in done] == ["done", "done"]


async def test_a_task_for_a_customer_reached_since_is_not_made(
    crm: FakeRetailCrm, pool: Pool, db_dsn: str, make_config: Callable[..., Config]
) -> None:
    cfg = await config_for(make_config, db_dsn, None)
    await configure_retailcrm(pool, cfg.agent.state_dir, crm, missed_call_tasks=True)
    async with running(cfg) as agent:
        # the callback's delivery got through first; the older missed call's task comes late
        agent.parts.on_call_event(ended("back", ("150",), answered_by="150", direction="out"))
        await drained(pool, at_least=3)
        agent.parts.on_call_event(ended("missed", ("150",), ago=600))
        await drained(pool, at_least=6)
    assert not crm.records.tasks
