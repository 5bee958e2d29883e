"""Sends the outbox's deliveries to the right CRM account, paced and guarded per account.

Per (CRM, account): a concurrency cap, the CRM's rate limit (token buckets from connectors.http),
and a circuit breaker: after `breaker_threshold` consecutive transient failures the account pauses
for `breaker_cooldown` seconds and its deliveries are rescheduled without being sent, so one CRM
that is down does not slow other enterprises.

A delivery with a recording (`payload["recording"]`, of the PBX `payload["recording_pbx"]`) first waits,
at most `recording_wait` seconds, for the file to be finished (MixMonitor may still be writing it when the
call ends); then it goes with the recording's link if the file was ready, without it if not (logged).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from agent.config.sections import OUTBOX_DEFAULTS
from agent.delivery.integrations import Integrations
from connectors.base import Delivery, RecordUrl, SendOutcome, recording_of
from connectors.http import RateLimiter

log = logging.getLogger(__name__)


class Recordings(Protocol):
    """What the dispatcher needs of agent.web.recordings.RecordLinks."""

    def record_url(self, path: str, fmt: str | None = None, *, pbx: str | None = None) -> str | None: ...

    async def wait_ready(self, path: str, limit_s: float, *, pbx: str | None = None) -> bool: ...


@dataclass
class Breaker:
    threshold: int
    cooldown: float
    failures: int = 0
    open_until: float = 0.0

    def remaining(self, now: float) -> float:
        return max(0.0, self.open_until - now)

    def record(self, status: str, now: float) -> None:
        if status == "transient":
            self.failures += 1
            if self.failures >= self.threshold:
                self.open_until = now + self.cooldown
                self.failures = 0
        else:
            self.failures = 0


@dataclass
class _Account:
    slots: asyncio.Semaphore
    breaker: Breaker


# The route each delivery kind uses, for the per-route rate limits (RetailCRM: 40 rps for /telephony).
PREPARED_MAX = 10_000
KIND_PATHS = {"call_event": "/api/v5/telephony/call/event", "calls_upload": "/api/v5/telephony/calls/upload"}


class CrmDispatcher:
    def __init__(
        self,
        integrations: Integrations,
        *,
        concurrency: int = OUTBOX_DEFAULTS.account_concurrency,
        breaker_threshold: int = OUTBOX_DEFAULTS.breaker_threshold,
        breaker_cooldown: float = OUTBOX_DEFAULTS.breaker_cooldown,
        record_url: RecordUrl | None = None,
        clock: Callable[[], float] = time.monotonic,
        limiter: RateLimiter | None = None,
        recordings: Recordings | None = None,
        recording_wait: float = 0.0,
    ) -> None:
        self.integrations = integrations
        self.concurrency = concurrency
        self.breaker_threshold = breaker_threshold
        self.breaker_cooldown = breaker_cooldown
        self.record_url = record_url if record_url is not None or recordings is None else recordings.record_url
        self.recordings = recordings
        self.recording_wait = recording_wait
        self._prepared: dict[str, bool] = {}  # idempotency key -> its recording was ready (from `prepare`)
        self.clock = clock
        self._accounts: dict[tuple[str, str], _Account] = {}
        self._limiter = limiter or integrations.limiter  # the lookups take their turns in it too

    def share_limits(self, agents: int) -> None:
        """`agents` agents send from this database: pace every account at its share of the CRM's limit."""
        self._limiter.share(agents)

    def batch_limit(self, crm: str, kind: str) -> int:
        connector = self.integrations.connectors.get(crm)
        return connector.batch_limit(kind) if connector is not None else 1

    async def prepare(self, crm: str, deliveries: Sequence[Delivery]) -> None:
        """Wait for the deliveries' recordings now (the outbox calls this before it takes a request slot, so
        the wait holds up no other delivery); `send` then links the ones that were ready."""
        found = await self._wait_recordings(crm, deliveries)
        if len(self._prepared) > PREPARED_MAX:  # sends that never came (cancelled): forget them
            self._prepared.clear()
        self._prepared.update(found)

    async def send(self, enterprise: str, crm: str, deliveries: Sequence[Delivery]) -> SendOutcome:
        prepared = {
            d.idempotency_key: self._prepared.pop(d.idempotency_key)
            for d in deliveries
            if d.idempotency_key in self._prepared
        }
        enabled = (await self.integrations.enabled(enterprise)).get(crm)
        if enabled is None:
            return SendOutcome(status="permanent", error=f"{crm} is not enabled for enterprise {enterprise}")
        account_name = enabled.connector.account(enabled.settings)
        account = self._account(crm, account_name)
        wait = account.breaker.remaining(self.clock())
        if wait > 0:
            return SendOutcome(
                status="transient",
                retry_after=wait,
                error=f"{crm} account paused for {wait:.0f} s after repeated failures",
            )
        record_url = await self._ready_recordings(crm, deliveries, prepared)
        async with account.slots:
            await self._limiter.acquire(Integrations.account_key(enabled), KIND_PATHS.get(deliveries[0].kind, ""))
            outcome = await self.integrations.client(enabled).send(deliveries, record_url=record_url)
        before = account.breaker.open_until
        account.breaker.record(outcome.status, self.clock())
        if account.breaker.open_until != before:
            log.warning(
                "%s account %s: %d transient failures in a row; pausing it for %.0f s",
                crm,
                account_name,
                self.breaker_threshold,
                self.breaker_cooldown,
            )
        return outcome

    def _waits(self) -> bool:
        return self.record_url is not None and self.recordings is not None and self.recording_wait > 0

    async def _wait_recordings(self, crm: str, deliveries: Sequence[Delivery]) -> dict[str, bool]:
        """Wait (together, at most `recording_wait` s) for the deliveries' recordings to be finished:
        {idempotency key: ready} for the deliveries that have one."""
        if not self._waits():
            return {}
        wanted = {d.idempotency_key: r for d in deliveries if (r := recording_of(d.payload)) is not None}
        files = list(dict.fromkeys(wanted.values()))
        ready = dict(zip(files, await asyncio.gather(*(self._wait(path, pbx) for path, pbx in files)), strict=True))
        for key, (path, pbx) in wanted.items():
            if ready[(path, pbx)]:
                log.info("%s %s: recording %s ready; sent with its link", crm, key, path)
            else:
                log.warning(
                    "%s %s: recording %s%s not finished within %g s; sent without its link",
                    crm,
                    key,
                    path,
                    f" of PBX {pbx}" if pbx else "",
                    self.recording_wait,
                )
        return {key: ready[file] for key, file in wanted.items()}

    async def _ready_recordings(
        self, crm: str, deliveries: Sequence[Delivery], prepared: dict[str, bool] | None = None
    ) -> RecordUrl | None:
        """The send-time hook: links only the recordings that were ready (waited for now unless `prepare`
        already did)."""
        base = self.record_url
        if base is None or not self._waits():
            return base
        known = dict(prepared or {})
        todo = [d for d in deliveries if d.idempotency_key not in known]
        known.update(await self._wait_recordings(crm, todo))
        unready = {
            r
            for d in deliveries
            if not known.get(d.idempotency_key, True) and (r := recording_of(d.payload)) is not None
        }
        if not unready:
            return base

        def linked_when_ready(path: str, fmt: str | None = None, *, pbx: str | None = None) -> str | None:
            return None if (path, pbx) in unready else base(path, fmt, pbx=pbx)

        return linked_when_ready

    async def _wait(self, path: str, pbx: str | None) -> bool:
        assert self.recordings is not None
        try:
            return await self.recordings.wait_ready(path, self.recording_wait, pbx=pbx)
        except Exception:  # a broken source must not hold the call back
            log.exception("recording %s: could not check whether it is finished", path)
            return False

    def _account(self, crm: str, name: str) -> _Account:
        account = self._accounts.get((crm, name))
        if account is None:
            account = _Account(
                asyncio.Semaphore(self.concurrency), Breaker(self.breaker_threshold, self.breaker_cooldown)
            )
            self._accounts[(crm, name)] = account
        return account


class StoreOnly:
    """The dispatcher of a command that only stores deliveries (`backfill`, `redeliver`): the running agent's
    workers send them."""

    def __init__(self, command: str) -> None:
        self.command = command

    def batch_limit(self, crm: str, kind: str) -> int:
        return 1

    async def prepare(self, crm: str, deliveries: Sequence[Delivery]) -> None:
        return None

    async def send(self, enterprise: str, crm: str, deliveries: Sequence[Delivery]) -> SendOutcome:
        raise RuntimeError(f"{self.command} does not send")
