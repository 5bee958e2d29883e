"""Who is the caller's responsible manager: a cache in front of every enabled CRM's lookup.

`Router.resolve(enterprise, caller)` normalises the caller to E.164 (the enterprise's region, else the
default), then answers from the cache, or asks every enabled CRM of the enterprise concurrently and
caches what they say. `Router.cached()` is the same answer when it needs no waiting (the AGI server's
fast path); it returns None when a CRM must be asked.

The cache owns the responsible-manager map in the manner of Home Assistant's update coordinator:

- **Single flight**: one CRM request per (enterprise, number) at a time, however many calls wait on it.
- **Never holds the caller**: `resolve(..., within=)` answers `TIMEOUT` when the time is up; the lookup
  goes on in the background (bounded by `fetch_timeout_s`) and fills the cache for the next call.
- **Stale while refreshing**: a found entry is fresh for `found_ttl_s`, a not-found one for
  `not_found_ttl_s`. After that it is still served, for up to `stale_s` more, while one background
  refresh runs; so a busy number never waits on a CRM after its first call.
- **CRM failures serve the last good value**: when a refresh fails the old entry is kept and served (and
  retried no sooner than `failure_ttl_s`). With nothing to serve, a CRM failure answers `UNAVAILABLE`
  with `crm` naming the CRM that failed, remembered for `failure_ttl_s` so a CRM that is down is not
  asked again on every call. A CRM's failing/recovered state is logged when it changes, not per call.
- **Invalidation**: `invalidate(enterprise)` (wired to `NOTIFY integrations_config, '<enterprise>'`
  through `on_notify`) drops the enterprise's entries, its lookups and settings, and detaches lookups in
  flight (their results are not stored), so a reassigned manager takes effect on the next call.

Statuses (see `agent.dialplan_vars.Status`): a manager with a mapped extension is `FOUND`, unless their
phone is occupied or unavailable per `ExtensionStates` and the enterprise's `redirect_when_busy` is off,
which answers `UNAVAILABLE` (manager named, no extension). A manager with no mapped extension, or no
manager, is `NOT_FOUND`. No enabled CRM is `DISABLED`. The `LookupSource` or `BusyPolicy` raising (our
settings unreadable: database down, unknown enterprise) is `ERROR`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Literal, Protocol, TypeVar

from cachetools import TLRUCache

from agent.dialplan_vars import Status
from agent.extstates import ExtensionStates
from agent.phones import normalise

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Manager:
    """What a CRM says: the responsible user, and their extension mapped through the enterprise's mapping."""

    crm: str
    user_id: str
    name: str
    extension: str | None  # None when the enterprise has no extension mapped for this user


class ResponsibleLookup(Protocol):
    crm: str

    async def find_responsible(self, phone_e164: str) -> Manager | None:
        """The responsible manager, or None when the CRM knows none; raises when the CRM fails."""
        ...


# enterprise -> its enabled lookups (an empty list answers DISABLED); raises when settings are unreadable.
LookupSource = Callable[[str], Awaitable[list[ResponsibleLookup]]]
# enterprise -> its `redirect_when_busy` setting (default False: a busy manager's calls go to the queue).
BusyPolicy = Callable[[str], Awaitable[bool]]


async def never_when_busy(enterprise: str) -> bool:
    return False


@dataclass(frozen=True, slots=True)
class Answer:
    status: Status
    extension: str = ""
    manager: str = ""
    crm: str = ""
    cached: bool = False  # answered without waiting for a CRM


@dataclass(frozen=True, slots=True)
class CacheSettings:
    found_ttl_s: float = 600.0
    not_found_ttl_s: float = 60.0
    stale_s: float = 3600.0  # how long past freshness an entry is still served (refreshing, CRM down)
    failure_ttl_s: float = 10.0  # how long a CRM failure is remembered before the CRM is asked again
    enterprise_ttl_s: float = 300.0  # lookups and settings are re-read after this even without a NOTIFY
    fetch_timeout_s: float = 10.0  # one CRM lookup in the background, at most
    maxsize: int = 100_000  # numbers cached, all enterprises together


Kind = Literal["found", "none", "failed"]


@dataclass(frozen=True, slots=True)
class _Entry:
    kind: Kind
    manager: Manager | None
    crm: str  # the CRM that answered, or that failed
    fresh_until: float
    keep_until: float


@dataclass(frozen=True, slots=True)
class _Plan:
    lookups: tuple[ResponsibleLookup, ...]
    redirect_when_busy: bool
    fresh_until: float


@dataclass(frozen=True, slots=True)
class _Failure:
    crm: str
    error: str


_EXTENSION = re.compile(r"[\w*#+-]{1,32}")
_MAX_NUMBER = 20


@lru_cache(maxsize=65_536)
def _normalised(caller: str, region: str | None) -> str:
    phone = normalise(caller, region)
    if len(phone) > _MAX_NUMBER or not any(ch.isdigit() for ch in phone):
        return ""
    return phone


class Router:
    def __init__(
        self,
        source: LookupSource,
        *,
        busy_policy: BusyPolicy = never_when_busy,
        states: Mapping[str, ExtensionStates] | None = None,
        regions: Mapping[str, str | None] | None = None,
        default_region: str | None = None,
        settings: CacheSettings | None = None,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        """`states`: enterprise -> its phones' states (fed from AMI); `regions`: enterprise -> region."""
        self.settings = settings or CacheSettings()
        self._source = source
        self._busy_policy = busy_policy
        self._states = states if states is not None else {}
        self._regions = regions if regions is not None else {}
        self._default_region = default_region
        self._timer = timer
        self._cache: TLRUCache[tuple[str, str], _Entry] = TLRUCache(
            maxsize=self.settings.maxsize, ttu=lambda _k, e, _now: e.keep_until, timer=timer)
        self._plans: dict[str, _Plan] = {}
        self._inflight: dict[tuple[str, str], asyncio.Task[_Entry | Answer]] = {}
        self._plan_inflight: dict[str, asyncio.Task[_Plan | None]] = {}
        self._generation: dict[str, int] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._failing: set[tuple[str, str]] = set()  # (enterprise, crm or "settings") now failing

    # --- answering -------------------------------------------------------------------------------

    def phone(self, enterprise: str, caller: str) -> str:
        """The caller as the CRMs are asked about it (E.164 where possible); "" when there is no number."""
        return _normalised(caller, self._regions.get(enterprise) or self._default_region)

    def cached(self, enterprise: str, caller: str) -> Answer | None:
        """The answer if it needs no waiting (a cache hit, stale or not), else None. Never blocks."""
        phone = self.phone(enterprise, caller)
        if not phone:
            return Answer(Status.NOT_FOUND, cached=True)
        plan = self._plans.get(enterprise)
        if plan is None:
            return None
        now = self._timer()
        if plan.fresh_until <= now:
            self._refresh_plan(enterprise)
        if not plan.lookups:
            return Answer(Status.DISABLED, cached=True)
        key = (enterprise, phone)
        entry = self._cache.get(key)
        if entry is None:
            return None
        if entry.fresh_until <= now:
            self._fetch_task(enterprise, phone)  # one background refresh; this call is served the old value
        return self._answer(enterprise, entry, plan, cached=True)

    async def resolve(self, enterprise: str, caller: str, within: float | None = None) -> Answer:
        """The answer; `TIMEOUT` after `within` seconds, the lookup going on in the background."""
        answer = self.cached(enterprise, caller)
        if answer is not None:
            return answer
        task = self._fetch_task(enterprise, self.phone(enterprise, caller))
        try:
            async with asyncio.timeout(within):
                outcome = await asyncio.shield(task)
        except TimeoutError:
            return Answer(Status.TIMEOUT)
        if isinstance(outcome, Answer):
            return outcome
        plan = self._plans.get(enterprise)
        return self._answer(enterprise, outcome, plan, cached=False)

    def _answer(self, enterprise: str, entry: _Entry, plan: _Plan | None, *, cached: bool) -> Answer:
        m = entry.manager
        if entry.kind == "failed":
            return Answer(Status.UNAVAILABLE, crm=entry.crm, cached=cached)
        if m is None:
            return Answer(Status.NOT_FOUND, cached=cached)
        if not m.extension:
            return Answer(Status.NOT_FOUND, manager=m.name, crm=m.crm, cached=cached)
        states = self._states.get(enterprise)
        if states is not None and not states.available(m.extension) and not (plan and plan.redirect_when_busy):
            return Answer(Status.UNAVAILABLE, manager=m.name, crm=m.crm, cached=cached)
        return Answer(Status.FOUND, extension=m.extension, manager=m.name, crm=m.crm, cached=cached)

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
            return
        self._generation[enterprise] = self._generation.get(enterprise, 0) + 1
        self._plans.pop(enterprise, None)
        self._plan_inflight.pop(enterprise, None)
        for key in [k for k in self._cache if k[0] == enterprise]:
            self._cache.pop(key, None)
        for key in [k for k in self._inflight if k[0] == enterprise]:
            del self._inflight[key]
        log.info("smart-redirect: cache dropped for enterprise %s", enterprise)

    def on_notify(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        """An asyncpg listener: `await conn.add_listener(enterprises.NOTIFY_CHANNEL, router.on_notify)`."""
        self.invalidate(payload.strip() or None)

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

    def _fetch_task(self, enterprise: str, phone: str) -> asyncio.Task[_Entry | Answer]:
        key = (enterprise, phone)
        task = self._inflight.get(key)
        if task is None:
            gen = self._generation.get(enterprise, 0)
            task = self._spawn(self._fetch(enterprise, phone, gen), f"lookup:{enterprise}")
            self._inflight[key] = task
        return task

    async def _fetch(self, enterprise: str, phone: str, gen: int) -> _Entry | Answer:
        key = (enterprise, phone)
        try:
            plan = await self._plan(enterprise)
            if plan is None:
                return Answer(Status.ERROR)
            if not plan.lookups:
                return Answer(Status.DISABLED)
            results = await asyncio.gather(*(self._ask(enterprise, lookup, phone) for lookup in plan.lookups))
            entry = self._entry(key, results)
            if self._generation.get(enterprise, 0) == gen:
                self._cache[key] = entry
            return entry
        except Exception:  # a bug of ours: the caller gets ERROR, the traceback goes to the log
            log.exception("smart-redirect: lookup of %s for enterprise %s failed", phone, enterprise)
            return Answer(Status.ERROR)
        finally:
            if self._inflight.get(key) is asyncio.current_task():
                del self._inflight[key]

    async def _ask(self, enterprise: str, lookup: ResponsibleLookup, phone: str) -> Manager | _Failure | None:
        crm = getattr(lookup, "crm", type(lookup).__name__)
        try:
            async with asyncio.timeout(self.settings.fetch_timeout_s):
                manager = await lookup.find_responsible(phone)
        except Exception as exc:  # the CRM failed: reported as data, logged once per state change
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if (enterprise, crm) not in self._failing:
                self._failing.add((enterprise, crm))
                log.warning("smart-redirect: %s lookups for enterprise %s are failing: %s", crm, enterprise, error)
            return _Failure(crm, error)
        if (enterprise, crm) in self._failing:
            self._failing.discard((enterprise, crm))
            log.info("smart-redirect: %s lookups for enterprise %s work again", crm, enterprise)
        if manager is not None and manager.extension is not None and not _EXTENSION.fullmatch(manager.extension):
            log.warning("smart-redirect: %s gave extension %r for user %s, not a dialable extension; ignored",
                        crm, manager.extension, manager.user_id)
            manager = replace(manager, extension=None)
        return manager

    def _entry(self, key: tuple[str, str], results: list[Manager | _Failure | None]) -> _Entry:
        s, now = self.settings, self._timer()
        managers = [r for r in results if isinstance(r, Manager)]
        failures = [r for r in results if isinstance(r, _Failure)]
        if managers:
            best = next((m for m in managers if m.extension), managers[0])
            fresh = now + s.found_ttl_s
            return _Entry("found", best, best.crm, fresh, fresh + s.stale_s)
        if not failures:
            fresh = now + s.not_found_ttl_s
            return _Entry("none", None, "", fresh, fresh + s.stale_s)
        old = self._cache.get(key)
        if old is not None and old.kind != "failed":  # serve the last good value; ask again later
            retry = now + s.failure_ttl_s
            return replace(old, fresh_until=retry, keep_until=max(old.keep_until, retry))
        fresh = now + s.failure_ttl_s
        return _Entry("failed", None, failures[0].crm, fresh, fresh)

    # --- the enterprise's lookups and settings ---------------------------------------------------

    async def _plan(self, enterprise: str) -> _Plan | None:
        plan = self._plans.get(enterprise)
        if plan is not None:
            if plan.fresh_until <= self._timer():
                self._refresh_plan(enterprise)
            return plan
        return await asyncio.shield(self._refresh_plan(enterprise))

    def _refresh_plan(self, enterprise: str) -> asyncio.Task[_Plan | None]:
        task = self._plan_inflight.get(enterprise)
        if task is None:
            gen = self._generation.get(enterprise, 0)
            task = self._spawn(self._load_plan(enterprise, gen), f"settings:{enterprise}")
            self._plan_inflight[enterprise] = task
        return task

    async def _load_plan(self, enterprise: str, gen: int) -> _Plan | None:
        try:
            async with asyncio.timeout(self.settings.fetch_timeout_s):
                lookups, when_busy = await asyncio.gather(self._source(enterprise), self._busy_policy(enterprise))
        except Exception as exc:  # settings unreadable: logged on the state change; the old plan stays
            if (enterprise, "settings") not in self._failing:
                self._failing.add((enterprise, "settings"))
                log.warning("smart-redirect: cannot read the settings of enterprise %s: %s: %s",
                            enterprise, type(exc).__name__, exc)
            return self._plans.get(enterprise)
        finally:
            if self._plan_inflight.get(enterprise) is asyncio.current_task():
                del self._plan_inflight[enterprise]
        if (enterprise, "settings") in self._failing:
            self._failing.discard((enterprise, "settings"))
            log.info("smart-redirect: the settings of enterprise %s can be read again", enterprise)
        plan = _Plan(tuple(lookups), bool(when_busy), self._timer() + self.settings.enterprise_ttl_s)
        if self._generation.get(enterprise, 0) == gen:
            self._plans[enterprise] = plan
        return plan
