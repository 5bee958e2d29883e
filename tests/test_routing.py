"""Router cache behaviour with a controlled clock; every CRM request is a real HTTP request to a fake CRM."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest

from agent.redirect.answers import Answer, CacheSettings
from agent.redirect.router import Router
from agent.redirect.variables import Status
from connectors.base import Manager, ResponsibleLookup
from tests.agi_env import CUSTOMER_A, CUSTOMER_B, UNKNOWN
from tests.fakes.crm_lookup import FakeResponsibleCrm, HttpLookup
from tests.waiting import until

SETTINGS = CacheSettings(
    found_ttl_s=600, not_found_ttl_s=60, stale_s=3600, failure_ttl_s=10, enterprise_ttl_s=300, fetch_timeout_s=2
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Crms:
    a: FakeResponsibleCrm
    b: FakeResponsibleCrm
    session: aiohttp.ClientSession

    def lookup(self, crm: FakeResponsibleCrm, name: str) -> HttpLookup:
        return HttpLookup(name, crm.url, self.session, {"7": "150", "8": "151", "9": "152"})


@pytest.fixture
async def crms() -> AsyncIterator[Crms]:
    a, b = FakeResponsibleCrm(), FakeResponsibleCrm()
    a.responsible = {CUSTOMER_A: ("7", "Ivan"), CUSTOMER_B: ("8", "Anna")}
    await a.start()
    await b.start()
    session = aiohttp.ClientSession()
    yield Crms(a, b, session)
    await session.close()
    await a.stop()
    await b.stop()


def router_over(lookups: list[ResponsibleLookup], clock: Clock) -> Router:
    async def source(enterprise: str) -> list[ResponsibleLookup]:
        return lookups

    return Router(source, default_region="BY", settings=SETTINGS, timer=clock)


async def settle(router: Router) -> None:
    await until(lambda: router.background == 0, every=0.005)


async def test_found_entry_is_fresh_then_served_stale_while_one_refresh_runs(crms: Crms) -> None:
    clock = Clock()
    router = router_over([crms.lookup(crms.a, "retailcrm")], clock)
    first = await router.resolve("100", CUSTOMER_A)
    assert (first.status, first.extension, first.cached) == (Status.FOUND, "150", False)
    clock.now += 599
    assert (await router.resolve("100", CUSTOMER_A)).cached
    assert crms.a.requests == 1
    crms.a.responsible[CUSTOMER_A] = ("9", "Olga")
    clock.now += 2  # past freshness: served the old value, refreshed once in the background
    stale = [router.cached("100", CUSTOMER_A) for _ in range(5)]
    assert {(s.status, s.extension) for s in stale if s} == {(Status.FOUND, "150")}
    await settle(router)
    assert crms.a.requests == 2
    assert (await router.resolve("100", CUSTOMER_A)).extension == "152"
    await router.close()


async def test_not_found_is_cached_shorter_and_entries_expire_past_stale(crms: Crms) -> None:
    clock = Clock()
    router = router_over([crms.lookup(crms.a, "retailcrm")], clock)
    assert (await router.resolve("100", UNKNOWN)).status == Status.NOT_FOUND
    clock.now += 59
    assert (await router.resolve("100", UNKNOWN)).cached
    assert crms.a.requests == 1
    clock.now += 2
    router.cached("100", UNKNOWN)
    await settle(router)
    assert crms.a.requests == 2
    clock.now += 60 + 3600 + 1  # past fresh + stale: gone, a plain miss
    assert router.cached("100", UNKNOWN) is None
    await router.close()


async def test_crm_failure_serves_the_last_good_value_and_backs_off(
    crms: Crms, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    router = router_over([crms.lookup(crms.a, "retailcrm")], clock)
    assert (await router.resolve("100", CUSTOMER_A)).extension == "150"
    crms.a.fail = True
    clock.now += 601
    with caplog.at_level(logging.INFO, logger="agent.redirect"):
        assert router.cached("100", CUSTOMER_A) == Answer(
            Status.FOUND, "150", "Ivan", "retailcrm", cached=True, source="crm"
        )
        await settle(router)
        assert crms.a.requests == 2
        for _ in range(3):  # the failed refresh kept the old value; no new request within failure_ttl_s
            assert (await router.resolve("100", CUSTOMER_A)).extension == "150"
        assert crms.a.requests == 2
        clock.now += 11
        router.cached("100", CUSTOMER_A)
        await settle(router)
        assert crms.a.requests == 3  # asked again, failed again: logged once
        crms.a.fail = False
        clock.now += 11
        router.cached("100", CUSTOMER_A)
        await settle(router)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("are failing" in m for m in messages) == 1
    assert sum("work again" in m for m in messages) == 1
    await router.close()


async def test_crm_failure_with_nothing_cached_is_unavailable_and_remembered(crms: Crms) -> None:
    clock = Clock()
    router = router_over([crms.lookup(crms.a, "retailcrm")], clock)
    crms.a.fail = True
    answer = await router.resolve("100", CUSTOMER_A)
    assert answer == Answer(Status.UNAVAILABLE, crm="retailcrm")
    assert (await router.resolve("100", CUSTOMER_A)).cached
    assert crms.a.requests == 1
    crms.a.fail = False
    clock.now += 11  # a failure is only remembered for failure_ttl_s, and never served stale
    assert router.cached("100", CUSTOMER_A) is None
    assert (await router.resolve("100", CUSTOMER_A)).status == Status.FOUND
    await router.close()


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("found", "fail", (Status.FOUND, "150", "retailcrm")),
        ("none", "found", (Status.FOUND, "151", "amocrm")),
        ("none", "none", (Status.NOT_FOUND, "", "")),
        ("none", "fail", (Status.UNAVAILABLE, "", "amocrm")),
        ("unmapped", "found", (Status.FOUND, "151", "amocrm")),
        ("unmapped", "none", (Status.NOT_FOUND, "", "retailcrm")),
    ],
)
async def test_every_enabled_crm_is_asked_and_a_mapped_manager_wins(
    crms: Crms, a: str, b: str, expected: tuple[Status, str, str]
) -> None:
    crms.a.responsible = (
        {CUSTOMER_A: ("7", "Ivan")} if a == "found" else ({CUSTOMER_A: ("77", "Unmapped")} if a == "unmapped" else {})
    )
    crms.b.responsible = {CUSTOMER_A: ("8", "Anna")} if b == "found" else {}
    crms.b.fail = b == "fail"
    crms.b.delay = 0.05  # concurrent, not one after the other
    router = router_over([crms.lookup(crms.a, "retailcrm"), crms.lookup(crms.b, "amocrm")], Clock())
    answer = await router.resolve("100", CUSTOMER_A)
    assert (answer.status, answer.extension, answer.crm) == expected
    assert (crms.a.requests, crms.b.requests) == (1, 1)
    await router.close()


async def test_within_answers_timeout_and_the_lookup_goes_on(crms: Crms) -> None:
    crms.a.delay = 0.2
    router = router_over([crms.lookup(crms.a, "retailcrm")], Clock())
    assert await router.resolve("100", CUSTOMER_A, within=0.05) == Answer(Status.TIMEOUT)
    assert router.background == 1
    await settle(router)
    assert router.cached("100", CUSTOMER_A) == Answer(
        Status.FOUND, "150", "Ivan", "retailcrm", cached=True, source="crm"
    )
    await router.close()


async def test_invalidation_detaches_a_lookup_in_flight(crms: Crms) -> None:
    crms.a.delay = 0.1
    router = router_over([crms.lookup(crms.a, "retailcrm")], Clock())
    waiting = asyncio.create_task(router.resolve("100", CUSTOMER_A))
    await until(lambda: crms.a.requests == 1, every=0.005)
    crms.a.responsible[CUSTOMER_A] = ("8", "Anna")
    router.invalidate("100")
    assert (await router.resolve("100", CUSTOMER_A)).extension == "151"  # not joined to the old request
    assert (await waiting).extension == "150"
    await settle(router)
    assert router.cached("100", CUSTOMER_A) == Answer(
        Status.FOUND, "151", "Anna", "retailcrm", cached=True, source="crm"
    )
    await router.close()


async def test_numbers_without_digits_are_not_found_without_asking(crms: Crms) -> None:
    router = router_over([crms.lookup(crms.a, "retailcrm")], Clock())
    for caller in ("", "unknown", "anonymous", "<unknown>", "1" * 40):
        assert (await router.resolve("100", caller)).status == Status.NOT_FOUND
    assert crms.a.requests == 0
    await router.close()


class BadExtension:
    crm = "retailcrm"

    async def find_responsible(self, phone_e164: str) -> Manager | None:
        return Manager(self.crm, "7", "Ivan", '150"; Dial(evil)')


class Broken:
    crm = "amocrm"

    async def find_responsible(self, phone_e164: str) -> Manager | None:
        raise RuntimeError("boom")


async def test_a_crm_extension_that_is_not_dialable_is_ignored() -> None:
    router = router_over([BadExtension()], Clock())
    answer = await router.resolve("100", CUSTOMER_A)
    assert (answer.status, answer.extension, answer.manager) == (Status.NOT_FOUND, "", "Ivan")
    await router.close()


async def test_lookup_raising_anything_is_a_crm_failure() -> None:
    router = router_over([Broken()], Clock())
    assert await router.resolve("100", CUSTOMER_A) == Answer(Status.UNAVAILABLE, crm="amocrm")
    await router.close()


async def test_settings_are_re_read_after_their_ttl_and_kept_when_unreadable() -> None:
    clock = Clock()
    calls: list[str] = []
    broken = False

    async def source(enterprise: str) -> list[ResponsibleLookup]:
        calls.append(enterprise)
        if broken:
            raise OSError("database down")
        return []

    router = Router(source, settings=SETTINGS, timer=clock)
    assert (await router.resolve("100", CUSTOMER_A)).status == Status.DISABLED
    assert router.cached("100", CUSTOMER_A) == Answer(Status.DISABLED, cached=True)
    broken = True
    clock.now += 301
    assert router.cached("100", CUSTOMER_A) == Answer(Status.DISABLED, cached=True)  # last good settings
    await settle(router)
    assert calls == ["100", "100"]
    assert router.cached("100", CUSTOMER_A) == Answer(Status.DISABLED, cached=True)
    router.invalidate("100")
    assert (await router.resolve("100", CUSTOMER_A)).status == Status.ERROR
    await router.close()


async def test_a_crm_that_never_answers_is_cut_at_the_fetch_timeout(crms: Crms) -> None:
    crms.a.delay = 5
    clock = Clock()

    async def source(enterprise: str) -> list[ResponsibleLookup]:
        return [crms.lookup(crms.a, "retailcrm")]

    router = Router(source, settings=CacheSettings(fetch_timeout_s=0.1), timer=clock)
    assert await router.resolve("100", CUSTOMER_A, within=1) == Answer(Status.UNAVAILABLE, crm="retailcrm")
    await router.close()


class Gated:
    """A CRM that answers only when the test lets it; counts the requests in flight at once."""

    crm = "retailcrm"

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.in_flight = 0
        self.most = 0

    async def find_responsible(self, phone_e164: str) -> Manager | None:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await self.gate.wait()
            return Manager(self.crm, "7", "Ivan", "150")
        finally:
            self.in_flight -= 1


async def test_a_burst_of_new_callers_is_answered_at_once_beyond_the_lookup_slots() -> None:
    crm = Gated()

    async def source(enterprise: str) -> list[ResponsibleLookup]:
        return [crm]

    settings = CacheSettings(fetch_timeout_s=30, max_lookups=4)
    router = Router(source, default_region="BY", settings=settings)
    callers = [f"+3752911{i:05d}" for i in range(40)]
    first = [asyncio.create_task(router.resolve("100", c, within=30)) for c in callers[:4]]
    await until(lambda: crm.in_flight == 4)  # these four hold every slot
    # the others do not wait out their 30 s: the fallback (TIMEOUT) at once, their lookups queued
    later = asyncio.gather(*(router.resolve("100", c, within=30) for c in callers[4:]))
    answers = await asyncio.wait_for(later, 5)
    assert all(a.status == Status.TIMEOUT for a in answers) and crm.most == 4
    crm.gate.set()
    assert all(a.status == Status.FOUND for a in await asyncio.gather(*first))
    await settle(router)
    assert crm.most == 4  # never more at once
    assert all(router.cached("100", c) is not None for c in callers)  # the queued lookups filled the cache
    await router.close()
