"""The customer's name on the manager's phone: the smart-redirect lookup also names the caller, sent to the
dialplan as REDIRECT_CALLERNAME over real FastAGI, through the whole agent with the fake RetailCRM and amoCRM."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import pytest

from agent.app import Agent
from agent.config.sections import Config
from agent.redirect.answers import Answer, CacheSettings
from agent.redirect.entries import Failure, entry_for
from agent.redirect.variables import CALLERNAME, MAX_CALLERNAME_CHARS, Status, caller_name
from agent.redirect.wire import _lines, commands_for
from agent.store.database import Pool
from connectors.amocrm.connector import AmoCrmConnector
from connectors.base import Caller, Manager
from tests.agi_client import Exchange, agi_call, recorded_request, request_with
from tests.amocrm_setup import configure_amocrm, connect_tokens
from tests.crm_setup import API_KEY, ENTERPRISE, configure_retailcrm, running
from tests.fakes.amocrm import FakeAmoCrm
from tests.fakes.retailcrm import FakeRetailCrm

A_REQUEST = recorded_request("a_incoming_answered")  # agi_callerid +375291234567
CUSTOMER = "+375291234567"
OTHER = "+375297654321"
UNKNOWN = "+375445550011"
IVAN = {"id": 7, "firstName": "Ivan", "lastName": "Petrov", "status": "free"}


def ask(caller: str) -> bytes:
    return request_with(A_REQUEST, callerid=caller, arg_1=ENTERPRISE)


async def call(agent: Agent, caller: str) -> Exchange:
    return await agi_call(agent.parts.agi.port, ask(caller))


# -- the sanitiser ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("Мария Иванова", "Мария Иванова"),
        ('Anna "Big" <Smith>', "Anna Big Smith"),  # quotes and <> would end the name in "name" <number>
        ("O'Brien", "OBrien"),
        ("John\r\nDoe\x00\x1b[31m\tJr", "John Doe 31m Jr"),  # control characters: no line breaks, no escapes
        ("  ООО   «Ромашка»,  опт ", "ООО Ромашка опт"),
        ("Set(x)=1;Dial(PJSIP/evil),${EXTEN}|&", "Set x 1 Dial PJSIP evil EXTEN"),
        ("", ""),
    ],
)
def test_a_name_is_made_fit_for_a_caller_id(raw: str, shown: str) -> None:
    assert caller_name(raw) == shown


def test_a_long_name_is_cut_at_a_word_end() -> None:
    company = "ООО «Торговый дом Северная Звезда и партнёры» (оптовый отдел)"
    shown = caller_name(company)
    assert shown == "ООО Торговый дом Северная Звезда и"
    assert len(shown) <= MAX_CALLERNAME_CHARS and len(shown.encode()) <= 80
    assert caller_name("x" * 100) == "x" * MAX_CALLERNAME_CHARS  # one long word: cut inside it


# -- RetailCRM ----------------------------------------------------------------------------------------


@pytest.fixture
async def retailcrm() -> AsyncIterator[FakeRetailCrm]:
    async with FakeRetailCrm(api_key=API_KEY) as fake:
        fake.set_manager(CUSTOMER, IVAN, {"id": 31, "firstName": "Мария", "lastName": "Иванова", "patronymic": "П."})
        yield fake


async def test_retailcrm_customer_named_on_the_line_and_cached_with_the_manager(
    retailcrm: FakeRetailCrm, pool: Pool, db_dsn: str, make_config: Callable[..., Config]
) -> None:
    last = "O'Hara <VIP>\r\nof the Grand Northern Trading House"
    retailcrm.set_manager(OTHER, None, {"id": 32, "firstName": 'Anna "Big"', "lastName": last})
    config = make_config(db_dsn)
    await configure_retailcrm(pool, config.agent.state_dir, retailcrm)
    async with running(replace(config, pbx=())) as agent:
        first = await call(agent, CUSTOMER)  # a miss: the name comes with the same lookup, within the deadline
        assert (first.status, first.exten, first.variables[CALLERNAME]) == ("FOUND", "150", "Мария Иванова")
        (asked,) = retailcrm.requests_to("/api/v5/telephony/manager")
        assert asked.query["details"] == "1"  # telephony/manager names the customer only with details
        again = await call(agent, CUSTOMER)
        assert again.variables[CALLERNAME] == "Мария Иванова"
        assert len(retailcrm.requests_to("/api/v5/telephony/manager")) == 1  # from the cache, name and all

        # a known customer with no responsible manager: the queue's phones still show the name, made safe
        nobody = await call(agent, OTHER)
        assert (nobody.status, nobody.exten) == ("NOT_FOUND", "")
        assert nobody.variables[CALLERNAME] == "Anna Big OHara VIP of the Grand Northern"
        assert f'SET VARIABLE {CALLERNAME} "Anna Big OHara VIP of the Grand Northern"' in nobody.commands

        unknown = await call(agent, UNKNOWN)
        assert (unknown.status, unknown.variables[CALLERNAME]) == ("NOT_FOUND", "")


async def test_retailcrm_name_and_a_slow_crm(
    retailcrm: FakeRetailCrm, pool: Pool, db_dsn: str, make_config: Callable[..., Config]
) -> None:
    """The name adds no wait: a CRM slower than the deadline gives TIMEOUT with no name at the deadline, and the
    lookup that goes on in the background brings the name to the next call."""
    config = replace(make_config(db_dsn), pbx=())
    config = replace(config, agi=replace(config.agi, deadline_ms=300))
    await configure_retailcrm(pool, config.agent.state_dir, retailcrm)
    async with running(config) as agent:
        await call(agent, UNKNOWN)  # the enterprise's settings are loaded
        retailcrm.slow(0.6)
        late = await call(agent, CUSTOMER)
        assert (late.status, late.variables[CALLERNAME]) == ("TIMEOUT", "")
        # the agent answers 5 ms before 300 ms from the connection's arrival; the client's clock also counts its
        # connect and a loaded loop's lateness: the same +50 ms as test_agi's deadline checks, far below the CRM's 0.6 s
        assert late.first_command_s is not None and late.first_command_s <= 0.3 + 0.05
        retailcrm.normal()
        for _ in range(100):
            warm = await call(agent, CUSTOMER)
            if warm.status == "FOUND":
                break
        assert warm.variables[CALLERNAME] == "Мария Иванова"


# -- amoCRM -------------------------------------------------------------------------------------------


async def test_amocrm_contact_named_on_the_line(pool: Pool, db_dsn: str, make_config: Callable[..., Config]) -> None:
    async with FakeAmoCrm() as amo:
        amo.add_contact("375 (29) 123-45-67", name="Пётр Сидоров\t(VIP)", responsible_user_id=8)
        amo.add_contact(OTHER, name="Ольга", responsible_user_id=0)  # no responsible user
        config = replace(make_config(db_dsn), pbx=())
        await configure_amocrm(pool, config.agent.state_dir, amo)
        async with running(config) as agent:
            connector = agent.parts.integrations.connectors["amocrm"]
            assert isinstance(connector, AmoCrmConnector)
            await connect_tokens(connector, amo)
            found = await call(agent, CUSTOMER)
            assert (found.status, found.exten, found.variables[CALLERNAME]) == ("FOUND", "151", "Пётр Сидоров VIP")
            nobody = await call(agent, OTHER)
            assert (nobody.status, nobody.variables[CALLERNAME]) == ("NOT_FOUND", "Ольга")
            unknown = await call(agent, UNKNOWN)
            assert (unknown.status, unknown.variables[CALLERNAME]) == ("NOT_FOUND", "")


# -- several CRMs ---------------------------------------------------------------------------------------


def test_the_name_comes_from_the_crm_whose_manager_wins() -> None:
    s = CacheSettings()
    unmapped, mapped = Manager("retailcrm", "7", "Ivan", None), Manager("amocrm", "8", "Olga", "151")
    both = entry_for([Caller("retailcrm", "Maria", unmapped), Caller("amocrm", "Maria Ivanova", mapped)], None, s, 0)
    assert (both.manager, both.caller_name) == (mapped, "Maria Ivanova")
    nameless = entry_for([Caller("retailcrm", "Maria", None), Caller("amocrm", "", mapped)], None, s, 0)
    assert (nameless.manager, nameless.caller_name) == (mapped, "Maria")  # another CRM's name rather than none
    failed = entry_for([Caller("retailcrm", "Maria"), Failure("amocrm", "HTTP 500")], None, s, 0)
    assert (failed.kind, failed.caller_name) == ("failed", "Maria")
    kept = entry_for([Failure("retailcrm", "HTTP 500")], both, s, 5)
    assert (kept.manager, kept.caller_name) == (mapped, "Maria Ivanova")  # the last good answer, name and all


def test_a_name_per_caller_keeps_the_memo_of_the_other_lines_one_per_manager() -> None:
    """Thousands of callers of one manager: the six lines they share are rendered once, the name's line apart."""
    before = _lines.cache_info()
    for i in range(5000):
        answer = Answer(Status.FOUND, "150", "Ivan Petrov", "retailcrm", source="crm", caller_name=f"Caller {i}")
        lines = commands_for(answer)
        assert lines[0] == f'SET VARIABLE {CALLERNAME} "Caller {i}"\n'.encode()
        assert lines[-1] == b'SET VARIABLE REDIRECT_EXTEN "150"\n'  # popped first
    after = _lines.cache_info()
    assert after.misses - before.misses <= 1 and after.hits - before.hits >= 4999
