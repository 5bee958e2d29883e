"""Unknown callers become RetailCRM customers (and orders) through the running agent, the outbox and the fake:
once per number, before the call's upload so that the call is attached to the customer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import pytest

from agent.config.sections import Config
from agent.store.database import Pool
from connectors.retailcrm.plan import KIND_UPLOAD, plan
from connectors.retailcrm.settings import parse
from tests.crm_setup import API_KEY, configure_retailcrm, drained, running
from tests.fakes.retailcrm import FakeRetailCrm
from tests.test_retailcrm_tasks import CALLER, MANAGER, ended

CUSTOMERS = "/api/v5/customers/create"


@pytest.fixture
async def crm() -> AsyncIterator[FakeRetailCrm]:
    async with FakeRetailCrm(api_key=API_KEY) as fake:
        fake.add_users(10)
        yield fake


def no_pbx(make_config: Callable[..., Config], db_dsn: str) -> Config:
    return replace(make_config(db_dsn), pbx=())


async def test_an_unknown_caller_becomes_one_customer_with_the_calls_attached(
    crm: FakeRetailCrm, pool: Pool, db_dsn: str, make_config: Callable[..., Config]
) -> None:
    cfg = no_pbx(make_config, db_dsn)
    await configure_retailcrm(pool, cfg.agent.state_dir, crm, create_customers=True)
    async with running(cfg) as agent:
        agent.parts.on_call_event(ended("first", ("150",)))
        await drained(pool, at_least=2)
        agent.parts.on_call_event(ended("second", ("150",), answered_by="150"))
        await drained(pool, at_least=4)
    (customer,) = crm.records.customers.values()
    assert customer["phones"] == [{"number": CALLER}] and customer["firstName"] == CALLER
    # both calls were uploaded after the customer existed: RetailCRM attached them to it
    assert crm.linked == {"first": customer["id"], "second": customer["id"]}
    assert not crm.records.orders  # create_orders is off
    lookups = [r.query for r in crm.requests_to("/telephony/manager")]
    assert lookups and all(q["details"] == "1" for q in lookups)
    statuses = await pool.fetch("SELECT status FROM deliveries WHERE kind = $1", KIND_UPLOAD)
    assert [r["status"] for r in statuses] == ["done", "done"]


async def test_an_order_with_the_order_method_once_per_number(
    crm: FakeRetailCrm, pool: Pool, db_dsn: str, make_config: Callable[..., Config]
) -> None:
    cfg = no_pbx(make_config, db_dsn)
    await configure_retailcrm(pool, cfg.agent.state_dir, crm, create_customers=True, create_orders=True)
    async with running(cfg) as agent:
        agent.parts.on_call_event(ended("first", ("150",)))
        await drained(pool, at_least=2)
        agent.parts.on_call_event(ended("second", ("150",)))
        await drained(pool, at_least=4)
    (customer,) = crm.records.customers.values()
    (order,) = crm.records.orders.values()
    assert order["orderMethod"] == "phone" and order["customer"] == {"id": customer["id"]}
    assert order["phone"] == CALLER


async def test_a_lost_create_answer_does_not_make_a_second_customer(
    crm: FakeRetailCrm, pool: Pool, db_dsn: str, make_config: Callable[..., Config]
) -> None:
    cfg = no_pbx(make_config, db_dsn)
    await configure_retailcrm(pool, cfg.agent.state_dir, crm, create_customers=True, create_orders=True)
    crm.lose_answers.append("/customers/create")
    async with running(cfg) as agent:
        agent.parts.on_call_event(ended("first", ("150",)))
        await drained(pool, at_least=2)
    (customer,) = crm.records.customers.values()
    assert len(crm.requests_to("/customers/create")) == 1  # the retry asked RetailCRM first and found it
    assert crm.linked == {"first": customer["id"]}
    # the try that made the customer lost its answer before the order: no order rather than two
    assert not crm.records.orders


async def test_a_known_customer_and_an_outgoing_call_get_nothing_new(
    crm: FakeRetailCrm, pool: Pool, db_dsn: str, make_config: Callable[..., Config]
) -> None:
    crm.set_manager(CALLER, MANAGER, {"id": 55, "firstName": "Ivan", "phones": [{"number": CALLER}]})
    cfg = no_pbx(make_config, db_dsn)
    await configure_retailcrm(pool, cfg.agent.state_dir, crm, create_customers=True, create_orders=True)
    async with running(cfg) as agent:
        agent.parts.on_call_event(ended("known", ("150",)))
        agent.parts.on_call_event(ended("out", ("150",), phone="+375291110009", answered_by="150", direction="out"))
        await drained(pool, at_least=3)
    assert crm.requests_to("/telephony/manager"), "the known caller was looked up"
    assert not crm.requests_to(CUSTOMERS) and not crm.records.customers and not crm.records.orders
    assert set(crm.calls) == {"known", "out"}


def test_only_incoming_calls_from_outside_numbers_are_marked_and_only_when_switched_on() -> None:
    raw: dict[str, object] = {"domain": "https://shop.retailcrm.ru", "api_key": "abcd1234", "timezone": "Europe/Minsk"}
    raw |= {"user_extensions": {"7": "150"}, "external_phone": "+375173880001"}

    def marker(event_phone: str, direction: str = "in", **over: object) -> object:
        settings = parse({**raw, **over})
        event = replace(ended("c", ("150",)), phone=event_phone, direction=direction)  # type: ignore[arg-type]
        (upload,) = [d for d in plan(event, settings) if d.kind == KIND_UPLOAD]
        return upload.payload.get("new_customer")

    assert marker(CALLER) is None  # off by default
    assert marker(CALLER, create_customers=True) == {"order_method": None}
    assert marker(CALLER, create_customers=True, create_orders=True, order_method="call") == {"order_method": "call"}
    assert marker(CALLER, "out", create_customers=True) is None
    # an extension, a short number, the enterprise's own numbers: an employee, never a customer
    for own in ("150", "0123", "+375173880001", "375173880000"):
        assert marker(own, create_customers=True) is None, own
