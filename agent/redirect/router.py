"""Who is the caller's responsible manager: a cache in front of every enabled CRM's lookup.

`Router.resolve(enterprise, caller)` normalises the caller to E.164 (the enterprise's region, else the
default), then answers from the cache, or asks every enabled CRM of the enterprise concurrently and
caches what they say. `Router.cached()` is the same answer when it needs no waiting (the AGI server's
fast path); it returns None when a CRM must be asked.

The cache owns the responsible-manager map in the manner of Home Assistant's update coordinator:

- **Single flight**: one CRM request per (enterprise, number) at a time, however many calls wait on it.
- **Never holds the caller**: `resolve(..., within=)` answers `TIMEOUT` when the time is up; the lookup
  goes on in the background (bounded by `fetch_timeout_s`) and fills the cache for the next call. At most
  `max_lookups` CRM requests run at once (agent.redirect.asking); when as many lookups are under way, a new
  caller is answered `TIMEOUT` at once and its lookup waits for a free slot.
- **Stale while refreshing**: a found entry is fresh for `found_ttl_s`, a not-found one for
  `not_found_ttl_s`. After that it is still served, for up to `stale_s` more, while one background
  refresh runs; so a busy number never waits on a CRM after its first call.
- **CRM failures serve the last good value**: when a refresh fails the old entry is kept and served (and
  retried no sooner than `failure_ttl_s`). With nothing to serve, a CRM failure answers `UNAVAILABLE`
  with `crm` naming the CRM that failed, remembered for `failure_ttl_s` so a CRM that is down is not
  asked again on every call. A CRM's failing/recovered state is logged when it changes, not per call.
- **Invalidation**: `invalidate(enterprise)` (wired to `NOTIFY integrations_config, '<enterprise>'` through
  `Integrations.on_change`) drops the enterprise's entries, its lookups and settings, and detaches lookups
  in flight (their results are not stored), so a reassigned manager takes effect on the next call.

Routing rules come first, then the CRMs' answer, then the caller's history: agent.redirect.decide.
What it answers and what it is handed: agent.redirect.answers; what the cache holds: agent.redirect.entries.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

from cachetools import TLRUCache

from agent.redirect import answers as sources  # what the router is handed, and the defaults
from agent.redirect.answers import Answer, CacheSettings, by_rules
from agent.redirect.asking import CrmAsker
from agent.redirect.decide import answer_for
from agent.redirect.entries import Entry, Plan, entry_for, normalised
from agent.redirect.rules import Rules
from agent.redirect.variables import Status
from agent.tracking.event import CallEvent
from agent.tracking.extstates import ExtensionStates
from connectors.base import LookupSource

log = logging.getLogger(__name__)
T = TypeVar("T")


class Router:
    def __init__(
        self,
        source: LookupSource,
        *,
        busy_policy: sources.BusyPolicy = sources.never_when_busy,
        states: Mapping[str, ExtensionStates] | None = None,
        regions: Mapping[str, str | None] | None = None,
        default_region: str | None = None,
        settings: CacheSettings | None = None,
        timer: Callable[[], float] = time.monotonic,
        rules: sources.RulesSource = sources.no_rules,
        away: sources.AwaySource = sources.nobody_away,
        history: sources.HistoryLookup | None = None,
        clock: Callable[[], datetime] = sources.utcnow,
    ) -> None:
        """`states`: enterprise -> its phones' states (fed from AMI); `regions`: enterprise -> region."""
        self.settings = settings or CacheSettings()
        self._source = source
        self._busy_policy = busy_policy
        self._states = states if states is not None else {}
        self._regions = regions if regions is not None else {}
        self._default_region = default_region
        self._timer = timer
        self._rules_source = rules
        self._away_source = away
        self._history = history
        self._clock = clock
        self._recent: TLRUCache[tuple[str, str], tuple[str, datetime]] = TLRUCache(
            maxsize=self.settings.maxsize, ttu=lambda _k, _v, now: now + self.settings.stale_s, timer=timer
        )
        self._cache: TLRUCache[tuple[str, str], Entry] = TLRUCache(
            maxsize=self.settings.maxsize, ttu=lambda _k, e, _now: e.keep_until, timer=timer
        )
        self._plans: dict[str, Plan] = {}
        self._inflight: dict[tuple[str, str], asyncio.Task[Entry | Answer]] = {}
        self._plan_inflight: dict[str, asyncio.Task[Plan | None]] = {}
        self._away_inflight: dict[str, asyncio.Task[None]] = {}
        self._generation: dict[str, int] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._failing: set[tuple[str, str]] = set()  # (enterprise, crm or "settings") now failing
        self._asker = CrmAsker(self.settings, self._failing)

    # --- answering -------------------------------------------------------------------------------

    def phone(self, enterprise: str, caller: str) -> str:
        """The caller as the CRMs are asked about it (E.164 where possible); "" when there is no number."""
        return normalised(caller, self._regions.get(enterprise) or self._default_region)

    def cached(self, enterprise: str, caller: str) -> Answer | None:
        """The answer if it needs no waiting (a cache hit, stale or not), else None. Never blocks."""
        phone = self.phone(enterprise, caller)
        plan = self._plans.get(enterprise)
        if not phone:  # no number to look up; the enterprise's hours still hold once its rules are loaded
            if plan is None:
                self._refresh_plan(enterprise)
            elif not plan.rules.is_open(self._clock()):
                return Answer(Status.CLOSED, cached=True)
            return Answer(Status.NOT_FOUND, cached=True)
        if plan is None:
            return None
        now = self._timer()
        if plan.fresh_until <= now:
            self._refresh_plan(enterprise)
        elif plan.away_until <= now:
            self._refresh_away(enterprise)
        wall = self._clock()
        ruled = by_rules(plan.rules, phone, wall)
        if ruled is not None:
            return replace(ruled, cached=True)
        if not plan.lookups and not plan.rules.history_days:
            return Answer(Status.DISABLED, cached=True)
        key = (enterprise, phone)
        entry = self._cache.get(key)
        if entry is None:
            return None
        if entry.fresh_until <= now:
            self._fetch_task(enterprise, phone)  # one background refresh; this call is served the old value
        return self._answer(enterprise, phone, entry, plan, wall, cached=True)

    async def resolve(self, enterprise: str, caller: str, within: float | None = None) -> Answer:
        """The answer; `TIMEOUT` after `within` seconds, the lookup going on in the background."""
        answer = self.cached(enterprise, caller)
        if answer is not None:
            return answer
        phone = self.phone(enterprise, caller)
        # as many lookups under way as may run at once (asking, or waiting for the settings or a slot)
        queued = len(self._inflight) >= self.settings.max_lookups and (enterprise, phone) not in self._inflight
        task = self._fetch_task(enterprise, phone)
        if queued:  # every lookup slot is taken (a burst of new callers): the fallback at once, the lookup queued
            return Answer(Status.TIMEOUT)
        try:
            async with asyncio.timeout(within):
                outcome = await asyncio.shield(task)
        except TimeoutError:
            return Answer(Status.TIMEOUT)
        if isinstance(outcome, Answer):
            return outcome
        plan = self._plans.get(enterprise)
        return self._answer(enterprise, self.phone(enterprise, caller), outcome, plan, self._clock(), cached=False)

    def _answer(
        self, enterprise: str, phone: str, entry: Entry, plan: Plan | None, wall: datetime, *, cached: bool
    ) -> Answer:
        asks_history = entry.manager is None and plan is not None and plan.rules.history_days
        recent = self._recent.get((enterprise, phone)) if asks_history else None
        return answer_for(entry, plan, wall, states=self._states.get(enterprise), recent=recent, cached=cached)

    def note_answered(self, event: CallEvent) -> None:
        """An incoming call was answered (`answered`, or `ended` with `answered_by`): the caller's history
        answer changes at once, before the call reaches the database. Cheap: for the AMI reader's path."""
        if event.direction != "in" or not event.phone:
            return
        extension = (
            event.answered_by if event.event == "ended" else (event.extension if event.event == "answered" else None)
        )
        if not extension:
            return
        phone = self.phone(event.enterprise, event.phone)
        if not phone:
            return
        at = event.ended_at or event.at or self._clock()
        key = (event.enterprise, phone)
        old = self._recent.get(key)
        if old is None or at >= old[1]:
            self._recent[key] = (extension, at)

    # --- invalidation and lifecycle --------------------------------------------------------------

    def invalidate(self, enterprise: str | None = None) -> None:
        """Drop what is cached for `enterprise` (every enterprise when None); lookups in flight are detached."""
        if enterprise is None:
            for name in set(self._generation) | set(self._plans) | {k[0] for k in self._inflight}:
                self._generation[name] = self._generation.get(name, 0) + 1
            self._cache.clear()
            self._plans.clear()
            self._inflight.clear()
            self._plan_inflight.clear()
            self._away_inflight.clear()
            return
        self._generation[enterprise] = self._generation.get(enterprise, 0) + 1
        self._plans.pop(enterprise, None)
        self._plan_inflight.pop(enterprise, None)
        self._away_inflight.pop(enterprise, None)
        for key in [k for k in self._cache if k[0] == enterprise]:
            self._cache.pop(key, None)
        for key in [k for k in self._inflight if k[0] == enterprise]:
            del self._inflight[key]
        log.info("smart-redirect: cache dropped for enterprise %s", enterprise)

    async def close(self) -> None:
        """Cancel the background lookups."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._inflight.clear()
        self._plan_inflight.clear()

    @property
    def background(self) -> int:
        """Lookups running now (for tests and /health details)."""
        return len(self._tasks)

    # --- fetching --------------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _fetch_task(self, enterprise: str, phone: str) -> asyncio.Task[Entry | Answer]:
        key = (enterprise, phone)
        task = self._inflight.get(key)
        if task is None:
            gen = self._generation.get(enterprise, 0)
            task = self._spawn(self._fetch(enterprise, phone, gen), f"lookup:{enterprise}")
            self._inflight[key] = task
        return task

    async def _fetch(self, enterprise: str, phone: str, gen: int) -> Entry | Answer:
        key = (enterprise, phone)
        try:
            plan = await self._plan(enterprise)
            if plan is None:
                return Answer(Status.ERROR)
            ruled = by_rules(plan.rules, phone, self._clock())
            if ruled is not None:  # blocked or closed: no CRM is asked
                return ruled
            if not plan.lookups and not plan.rules.history_days:
                return Answer(Status.DISABLED)
            results, history = await asyncio.gather(
                asyncio.gather(*(self._asker.ask(enterprise, lookup, phone) for lookup in plan.lookups)),
                self._ask_history(enterprise, phone, plan.rules),
            )
            entry = replace(entry_for(results, self._cache.get(key), self.settings, self._timer()), history=history)
            if self._generation.get(enterprise, 0) == gen:
                self._cache[key] = entry
            return entry
        except Exception:  # a bug of ours: the caller gets ERROR, the traceback goes to the log
            log.exception("smart-redirect: lookup of %s for enterprise %s failed", phone, enterprise)
            return Answer(Status.ERROR)
        finally:
            if self._inflight.get(key) is asyncio.current_task():
                del self._inflight[key]

    async def _ask_history(self, enterprise: str, phone: str, rules: Rules) -> tuple[str, datetime] | None:
        if not rules.history_days or self._history is None:
            return None
        try:
            async with asyncio.timeout(self.settings.fetch_timeout_s):
                return await self._history(enterprise, phone, self._clock() - timedelta(days=rules.history_days))
        except Exception as exc:  # the database is away: no history answer this time
            log.warning(
                "smart-redirect: history of %s for enterprise %s unavailable: %s: %s",
                phone,
                enterprise,
                type(exc).__name__,
                exc,
            )
            return None

    # --- the enterprise's lookups and settings ---------------------------------------------------

    async def _plan(self, enterprise: str) -> Plan | None:
        plan = self._plans.get(enterprise)
        if plan is not None:
            if plan.fresh_until <= self._timer():
                self._refresh_plan(enterprise)
            return plan
        return await asyncio.shield(self._refresh_plan(enterprise))

    def _refresh_plan(self, enterprise: str) -> asyncio.Task[Plan | None]:
        task = self._plan_inflight.get(enterprise)
        if task is None:
            gen = self._generation.get(enterprise, 0)
            task = self._spawn(self._load_plan(enterprise, gen), f"settings:{enterprise}")
            self._plan_inflight[enterprise] = task
        return task

    def _refresh_away(self, enterprise: str) -> None:
        """Re-read the managers' CRM statuses in the background (they change without a NOTIFY)."""
        if enterprise not in self._away_inflight:
            gen = self._generation.get(enterprise, 0)
            self._away_inflight[enterprise] = self._spawn(self._load_away(enterprise, gen), f"statuses:{enterprise}")

    async def _load_away(self, enterprise: str, gen: int) -> None:
        away: Mapping[tuple[str, str], str] | None = None
        try:
            async with asyncio.timeout(self.settings.fetch_timeout_s):
                away = await self._away_source(enterprise)
            self._failing.discard((enterprise, "statuses"))
        except Exception as exc:  # the old statuses stay; tried again after away_ttl_s
            if (enterprise, "statuses") not in self._failing:
                self._failing.add((enterprise, "statuses"))
                log.warning(
                    "smart-redirect: cannot read the managers' statuses of enterprise %s: %s: %s",
                    enterprise,
                    type(exc).__name__,
                    exc,
                )
        finally:
            if self._away_inflight.get(enterprise) is asyncio.current_task():
                del self._away_inflight[enterprise]
        plan = self._plans.get(enterprise)
        if plan is not None and self._generation.get(enterprise, 0) == gen:
            until = self._timer() + self.settings.away_ttl_s
            self._plans[enterprise] = replace(
                plan, away=dict(away) if away is not None else plan.away, away_until=until
            )

    async def _load_plan(self, enterprise: str, gen: int) -> Plan | None:
        try:
            async with asyncio.timeout(self.settings.fetch_timeout_s):
                lookups, when_busy, rules, away = await asyncio.gather(
                    self._source(enterprise),
                    self._busy_policy(enterprise),
                    self._rules_source(enterprise),
                    self._away_source(enterprise),
                )
        except Exception as exc:  # settings unreadable: logged on the state change; the old plan stays
            if (enterprise, "settings") not in self._failing:
                self._failing.add((enterprise, "settings"))
                log.warning(
                    "smart-redirect: cannot read the settings of enterprise %s: %s: %s",
                    enterprise,
                    type(exc).__name__,
                    exc,
                )
            return self._plans.get(enterprise)
        finally:
            if self._plan_inflight.get(enterprise) is asyncio.current_task():
                del self._plan_inflight[enterprise]
        if (enterprise, "settings") in self._failing:
            self._failing.discard((enterprise, "settings"))
            log.info("smart-redirect: the settings of enterprise %s can be read again", enterprise)
        now = self._timer()
        away_until = now + self.settings.away_ttl_s if self._away_source is not sources.nobody_away else float("inf")
        plan = Plan(
            tuple(lookups), bool(when_busy), now + self.settings.enterprise_ttl_s, rules, dict(away), away_until
        )
        if self._generation.get(enterprise, 0) == gen:
            self._plans[enterprise] = plan
        return plan
