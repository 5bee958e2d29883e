"""amoCRM smart redirect by the caller's open deal: the newest open lead's responsible user wins over the
contact's (setting `route_by_deal`, on by default), and the manager's name comes back with the extension. Over
real FastAGI through the whole agent, against the fake amoCRM's contacts, leads (open, won 142, lost 143) and
users (admin tokens only)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import pytest

from agent.app import Agent
from agent.config.sections import Config
from agent.redirect.variables import CALLERNAME, CRM, MANAGER
from agent.store.database import Pool
from connectors.amocrm.connector import AmoCrmConnector
from connectors.amocrm.deals import newest_open_owner
from tests.agi_client import Exchange, agi_call, recorded_request, request_with
from tests.amocrm_setup import ENTERPRISE, configure_amocrm, connect_tokens
from tests.crm_setup import running
from tests.fakes.amocrm import FakeAmoCrm

A_REQUEST = recorded_request("a_incoming_answered")
CALLER = "+375291234567"
OTHER = "+375297654321"
WON, LOST = 142, 143
T0 = 1_760_000_000
USERS = {7: "Ivan Petrov", 8: "Olga Sidorova", 9: "Petr Ivanov"}  # MAPPING: 7 -> 150, 8 -> 151, 9 -> 152


def ask(caller: str) -> bytes:
    return request_with(A_REQUEST, callerid=caller, arg_1=ENTERPRISE)


@pytest.fixture
async def amo() -> AsyncIterator[FakeAmoCrm]:
    async with FakeAmoCrm() as fake:
        fake.users += [{"id": uid, "name": name, "rights": {"is_active": True}} for uid, name in USERS.items()]
        contact = fake.add_contact(CALLER, name="Мария Иванова", responsible_user_id=7)
        fake.add_lead(contact, name="old deal", responsible_user_id=9, created_at=T0)
        fake.add_lead(contact, name="current deal", responsible_user_id=8, created_at=T0 + 100)
        fake.add_lead(contact, name="won later", status_id=WON, responsible_user_id=1, created_at=T0 + 200)
        fake.add_lead(contact, name="lost later", status_id=LOST, responsible_user_id=1, created_at=T0 + 300)
        closed = fake.add_contact(OTHER, name="Closed Deals", responsible_user_id=9)
        fake.add_lead(closed, status_id=WON, responsible_user_id=8, created_at=T0)
        fake.add_lead(closed, status_id=LOST, responsible_user_id=7, created_at=T0 + 1)
        yield fake


async def started(agent: Agent, amo: FakeAmoCrm) -> None:
    connector = agent.parts.integrations.connectors["amocrm"]
    assert isinstance(connector, AmoCrmConnector)
    await connect_tokens(connector, amo)


async def call(agent: Agent, caller: str) -> Exchange:
    return await agi_call(agent.parts.agi.port, ask(caller))


async def test_the_newest_open_deal_routes_and_the_manager_is_named(
    amo: FakeAmoCrm, pool: Pool, db_dsn: str, make_config: Callable[..., Config]
) -> None:
    config = replace(make_config(db_dsn), pbx=())
    await configure_amocrm(pool, config.agent.state_dir, amo)
    async with running(config) as agent:
        await started(agent, amo)
        deal = await call(agent, CALLER)
        assert (deal.status, deal.exten, deal.variables[MANAGER]) == ("FOUND", "151", "Olga Sidorova")
        assert (deal.variables[CRM], deal.variables[CALLERNAME]) == ("amocrm", "Мария Иванова")
        (leads,) = amo.requests_to("/api/v4/leads", "GET")
        asked = {v for k, v in leads.query.items() if k.startswith("filter[id]")}
        (contact,) = [c for c in amo.contacts.values() if c["name"] == "Мария Иванова"]
        assert asked == {str(x["id"]) for x in contact["_embedded"]["leads"]}  # the caller's four leads, no other

        # every lead closed (won, lost): the contact's own responsible user
        closed = await call(agent, OTHER)
        assert (closed.status, closed.exten, closed.variables[MANAGER]) == ("FOUND", "152", "Petr Ivanov")
        assert len(amo.requests_to("/api/v4/users")) == 1  # the names are read once, not per lookup


async def test_route_by_deal_off_asks_the_contact_only(
    amo: FakeAmoCrm, pool: Pool, db_dsn: str, make_config: Callable[..., Config]
) -> None:
    config = replace(make_config(db_dsn), pbx=())
    await configure_amocrm(pool, config.agent.state_dir, amo, route_by_deal=False)
    async with running(config) as agent:
        await started(agent, amo)
        contact = await call(agent, CALLER)
        assert (contact.status, contact.exten, contact.variables[MANAGER]) == ("FOUND", "150", "Ivan Petrov")
        assert not amo.requests_to("/api/v4/leads", "GET")


async def test_a_token_that_may_not_read_users_routes_unnamed_and_is_not_asked_again(
    amo: FakeAmoCrm, pool: Pool, db_dsn: str, make_config: Callable[..., Config]
) -> None:
    config = replace(make_config(db_dsn), pbx=())
    await configure_amocrm(pool, config.agent.state_dir, amo)
    async with running(config) as agent:
        await started(agent, amo)
        for token in amo.access.values():
            token.admin = False  # an integration installed by a manager, not an admin: /users answers 403
        deal = await call(agent, CALLER)
        assert (deal.status, deal.exten, deal.variables[MANAGER]) == ("FOUND", "151", "")
        closed = await call(agent, OTHER)
        assert (closed.status, closed.exten, closed.variables[MANAGER]) == ("FOUND", "152", "")
        assert [r.status for r in amo.requests_to("/api/v4/users")] == [403]
        log = await pool.fetchrow("SELECT status, http_status FROM integration_logs WHERE event_type = 'users'")
        assert log is not None and (log["status"], log["http_status"]) == ("error", 403)


async def test_a_failing_lead_read_fails_the_lookup_rather_than_misroute(
    amo: FakeAmoCrm, pool: Pool, db_dsn: str, make_config: Callable[..., Config]
) -> None:
    """A CRM answer we did not get is not a "no open deal": the caller gets UNAVAILABLE (the fallback route) and
    the contact's manager is not cached as the answer."""
    config = replace(make_config(db_dsn), pbx=())
    await configure_amocrm(pool, config.agent.state_dir, amo)
    async with running(config) as agent:
        await started(agent, amo)
        amo.fail_next(1, status=500, path="/api/v4/leads")
        failed = await call(agent, CALLER)
        assert (failed.status, failed.exten, failed.variables[CRM]) == ("UNAVAILABLE", "", "amocrm")


# -- the choice itself --------------------------------------------------------------------------------


def lead(lid: int, status: Any, user: Any, created: Any = None, **extra: Any) -> dict[str, Any]:
    return {"id": lid, "status_id": status, "responsible_user_id": user, "created_at": created, **extra}


def test_newest_open_owner() -> None:
    assert newest_open_owner([]) is None
    assert newest_open_owner([lead(1, WON, 7, T0), lead(2, LOST, 8, T0)]) is None
    assert newest_open_owner([lead(1, 40002, 7, T0 + 5), lead(2, 40002, 8, T0)]) == 7  # created later, not larger id
    assert newest_open_owner([lead(1, 40002, 7), lead(2, 40002, 8)]) == 8  # no created_at: the larger id
    assert newest_open_owner([lead(1, 40002, 7, T0), lead(2, 40002, 0, T0 + 9)]) == 7  # no responsible user: skipped
    assert newest_open_owner([lead(1, 40002, 7, T0), lead(2, 40002, 8, T0 + 9, is_deleted=True)]) == 7
    assert newest_open_owner([lead(1, None, 7), lead(2, "40002", 8), "junk", None, lead(3, 40002, True)]) is None
