"""Routing rules inside the Router, with both clocks injected (the cache's monotonic timer and the wall clock
the rules read): every CRM request is a real HTTP request to the fake CRM, so "no CRM asked" is counted there."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from agent.redirect.answers import Answer, CacheSettings
from agent.redirect.router import Router
from agent.redirect.rules import Rules, parse
from agent.redirect.variables import Status
from agent.tracking.event import CallEvent
from connectors.base import ResponsibleLookup
from tests.agi_env import CUSTOMER_A, UNKNOWN
from tests.fakes.crm_lookup import FakeResponsibleCrm, HttpLookup
from tests.waiting import until

BERLIN = ZoneInfo("Europe/Berlin")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")


class Clocks:
    def __init__(self) -> None:
        self.mono = 1000.0
        self.wall = datetime(2026, 11, 27, 17, 59, tzinfo=BERLIN)  # a Friday, a minute before closing

    def timer(self) -> float:
        return self.mono

    def clock(self) -> datetime:
        return self.wall


class Env:
    def __init__(self, crm: FakeResponsibleCrm, session: aiohttp.ClientSession) -> None:
        self.crm = crm
        self.session = session
        self.clocks = Clocks()
        self.rules: dict[str, Any] = {}
        self.away: dict[tuple[str, str], str] = {}
        self.history: dict[str, tuple[str, datetime]] = {}
        self.history_asked = 0

    def router(self) -> Router:
        lookups: list[ResponsibleLookup] = [HttpLookup("retailcrm", self.crm.url, self.session, {"7": "150"})]

        async def source(_enterprise: str) -> list[ResponsibleLookup]:
            return lookups

        async def rules(_enterprise: str) -> Rules:
            return parse(self.rules)

        async def away(_enterprise: str) -> Mapping[tuple[str, str], str]:
            return dict(self.away)

        async def history(_enterprise: str, phone: str, since: datetime) -> tuple[str, datetime] | None:
            self.history_asked += 1
            hit = self.history.get(phone)
            return hit if hit is not None and hit[1] >= since else None

        return Router(
            source,
            default_region="BY",
            settings=CacheSettings(fetch_timeout_s=2),
            timer=self.clocks.timer,
            clock=self.clocks.clock,
            rules=rules,
            away=away,
            history=history,
        )


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    crm = FakeResponsibleCrm()
    crm.responsible = {CUSTOMER_A: ("7", "Ivan")}
    await crm.start()
    async with aiohttp.ClientSession() as session:
        yield Env(crm, session)
    await crm.stop()


async def settled(router: Router) -> None:
    await until(lambda: router.background == 0, every=0.005)


async def test_friday_evening_cut_off_needs_no_crm(env: Env) -> None:
    env.rules = {"timezone": "Europe/Berlin", "hours": {d: [["09:00", "18:00"]] for d in WEEKDAYS}}
    router = env.router()
    assert (await router.resolve("100", CUSTOMER_A)).status == Status.FOUND
    env.clocks.wall += timedelta(minutes=1)  # 18:00: closed, from the cache's plan, in the same call
    assert router.cached("100", CUSTOMER_A) == Answer(Status.CLOSED, cached=True)
    assert router.cached("100", UNKNOWN) == Answer(Status.CLOSED, cached=True)  # not even a miss
    env.clocks.wall += timedelta(days=2, hours=15)  # Monday 09:00
    answer = router.cached("100", CUSTOMER_A)
    assert answer is not None and (answer.status, answer.extension, answer.source) == (Status.FOUND, "150", "crm")
    await settled(router)
    assert env.crm.requests == 1
    await router.close()


async def test_closed_on_a_holiday_and_blocked_before_any_lookup(env: Env) -> None:
    env.rules = {"timezone": "Europe/Berlin", "holidays": ["2026-11-27"], "blocklist": ["+37529*"]}
    router = env.router()
    assert (await router.resolve("100", CUSTOMER_A)).status == Status.BLOCKED  # blocked wins over closed
    assert (await router.resolve("100", UNKNOWN)).status == Status.CLOSED
    env.clocks.wall += timedelta(hours=7)  # 00:59 on the 28th in Berlin: the holiday is over
    assert (await router.resolve("100", UNKNOWN)).status == Status.NOT_FOUND
    await settled(router)
    assert env.crm.phones == [UNKNOWN]
    await router.close()


async def test_manager_off_hours_and_away(env: Env) -> None:
    env.rules = {"timezone": "Europe/Berlin", "managers": {"150": {"hours": {"fri": [["09:00", "17:00"]]}}}}
    router = env.router()
    off = await router.resolve("100", CUSTOMER_A)
    assert (off.status, off.extension, off.manager, off.reason) == (Status.UNAVAILABLE, "", "Ivan", "off_hours")
    env.clocks.wall = datetime(2026, 11, 27, 10, 0, tzinfo=BERLIN)
    assert router.cached("100", CUSTOMER_A) == Answer(
        Status.FOUND, "150", "Ivan", "retailcrm", cached=True, source="crm"
    )
    env.away[("retailcrm", "7")] = "away"
    router.invalidate("100")
    away = await router.resolve("100", CUSTOMER_A)
    assert (away.status, away.reason) == (Status.UNAVAILABLE, "away")
    await router.close()


async def test_history_answers_and_a_new_answered_call_counts_at_once(env: Env) -> None:
    env.rules = {"history_days": 30}
    now = env.clocks.wall
    env.history[UNKNOWN] = ("151", now - timedelta(days=3))
    router = env.router()
    found = await router.resolve("100", UNKNOWN)
    assert (found.status, found.extension, found.source) == (Status.FOUND, "151", "history")
    assert env.history_asked == 1 and env.crm.requests == 1  # asked together, cached together
    router.note_answered(CallEvent("answered", "c9", "100", "in", UNKNOWN, None, "152", now))
    moved = router.cached("100", UNKNOWN)
    assert moved is not None and (moved.extension, moved.source, moved.cached) == ("152", "history", True)
    assert env.history_asked == 1
    env.clocks.wall += timedelta(days=31)  # older than history_days: no longer used
    assert router.cached("100", UNKNOWN) == Answer(Status.NOT_FOUND, cached=True)
    # a CRM manager wins over history
    router.note_answered(
        CallEvent(
            "ended",
            "c10",
            "100",
            "in",
            CUSTOMER_A,
            None,
            "152",
            env.clocks.wall,
            answered_by="152",
            result="answered",
            ended_at=env.clocks.wall,
        )
    )
    crm = await router.resolve("100", CUSTOMER_A)
    assert (crm.extension, crm.source) == ("150", "crm")
    await router.close()


async def test_history_off_and_outgoing_calls_do_not_count(env: Env) -> None:
    router = env.router()
    now = env.clocks.wall
    router.note_answered(CallEvent("answered", "c1", "100", "in", UNKNOWN, None, "152", now))
    assert (await router.resolve("100", UNKNOWN)).status == Status.NOT_FOUND  # history_days 0
    assert env.history_asked == 0
    env.rules = {"history_days": 7}
    router.invalidate("100")
    router.note_answered(CallEvent("answered", "c2", "100", "out", "+375445550099", None, "151", now))
    assert (await router.resolve("100", "+375445550099")).status == Status.NOT_FOUND
    assert (await router.resolve("100", UNKNOWN)).extension == "152"
    await router.close()


def test_wall_clock_default_is_aware_utc() -> None:
    from agent.redirect.answers import utcnow

    assert utcnow().tzinfo is UTC


async def test_crm_status_is_re_read_without_a_notify(env: Env) -> None:
    router = env.router()
    assert (await router.resolve("100", CUSTOMER_A)).status == Status.FOUND
    env.away[("retailcrm", "7")] = "busy"  # changeUserStatusUrl wrote it; no NOTIFY
    env.clocks.mono += 14
    assert router.cached("100", CUSTOMER_A) == Answer(
        Status.FOUND, "150", "Ivan", "retailcrm", cached=True, source="crm"
    )
    env.clocks.mono += 2  # past away_ttl_s: re-read in the background, this call served as before
    router.cached("100", CUSTOMER_A)
    await settled(router)
    busy = router.cached("100", CUSTOMER_A)
    assert busy is not None and (busy.status, busy.reason, busy.cached) == (Status.UNAVAILABLE, "busy", True)
    assert env.crm.requests == 1  # the CRM answer itself stayed cached
    await router.close()


async def test_anonymous_caller_is_closed_outside_hours(env: Env) -> None:
    env.rules = {"timezone": "Europe/Berlin", "hours": {d: [["09:00", "18:00"]] for d in WEEKDAYS}}
    router = env.router()
    assert (await router.resolve("100", "anonymous")).status == Status.NOT_FOUND  # rules load meanwhile
    await settled(router)
    env.clocks.wall += timedelta(minutes=1)
    assert router.cached("100", "anonymous") == Answer(Status.CLOSED, cached=True)
    assert env.crm.requests == 0
    await router.close()
