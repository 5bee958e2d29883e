"""The HTTP layer every CRM connector uses: client factory, one timed exchange, classification, pacing."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode

import httpx

from agent.life.masking import mask_data, mask_text
from connectors.base import Status

log = logging.getLogger("connectors.http")

CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 5.0
_BODY_KEEP = 4000  # characters of a non-JSON answer kept for integration_logs


def make_client(*, connect: float = CONNECT_TIMEOUT, read: float = READ_TIMEOUT) -> httpx.AsyncClient:
    """A keep-alive client for one process; share it between connectors and accounts."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(read, connect=connect, pool=connect),
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=30.0),
        follow_redirects=False,
        headers={"User-Agent": "pbx-agent"},
    )


def classify_status(status: int) -> Status:
    """By HTTP status alone: 2xx success; throttling and server trouble transient; other 4xx permanent."""
    if 200 <= status < 300:
        return "success"
    if status in (408, 425, 429) or status >= 500:
        return "transient"
    return "permanent"


def classify_exception(exc: Exception) -> tuple[Status, str]:
    if isinstance(exc, httpx.TimeoutException):
        return "transient", f"timeout ({type(exc).__name__})"
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return "permanent", f"bad URL ({exc})"
    if isinstance(exc, httpx.TransportError):
        return "transient", f"connection error ({type(exc).__name__}: {exc})"
    return "permanent", f"{type(exc).__name__}: {exc}"


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds from now: delta-seconds or an HTTP date; None when absent or garbage."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass(slots=True)
class Exchange:
    """One request and its answer (or the exception instead). `request`/`response` are masked."""

    request: dict[str, Any]
    response: dict[str, Any]
    duration_ms: float
    http_status: int | None = None
    body: Any = None  # decoded JSON, None when the answer was not JSON
    text: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    transport_error: str | None = None
    transport_status: Status | None = None

    @property
    def retry_after(self) -> float | None:
        return parse_retry_after(self.headers.get("retry-after"))


async def perform(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    params: Mapping[str, str] | None = None,
    form: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    secrets: Iterable[str] = (),
    clock: Callable[[], float] = time.perf_counter,
) -> Exchange:
    """Send one request, never raise for HTTP or transport trouble, capture both sides masked."""
    secret_list = tuple(secrets)
    shown_url = url + ("?" + urlencode(params) if params else "")
    request_log: dict[str, Any] = mask_data(
        {"method": method, "url": shown_url, "headers": dict(headers or {}), "form": dict(form or {})},
        secret_list,
    )
    started = clock()
    try:
        response = await client.request(method, url, params=params, data=form, headers=headers)
    except httpx.HTTPError as exc:
        elapsed = (clock() - started) * 1000
        status, error = classify_exception(exc)
        error = mask_text(error, secret_list)
        log.warning("%s %s -> %s in %.0f ms", method, request_log["url"], error, elapsed)
        return Exchange(request_log, {"error": error}, elapsed, transport_error=error, transport_status=status)
    elapsed = (clock() - started) * 1000
    text = response.text
    body: Any = None
    try:
        body = json.loads(text) if text else None
    except ValueError:
        body = None
    response_log: dict[str, Any] = {
        "status": response.status_code,
        "body": mask_data(body, secret_list) if body is not None else mask_text(text[:_BODY_KEEP], secret_list),
    }
    if "retry-after" in response.headers:
        response_log["retry_after"] = response.headers["retry-after"]
    # the outbox logs one line per delivery; this is the wire-level detail under it
    log.debug("%s %s -> %s in %.0f ms", method, request_log["url"], response.status_code, elapsed)
    return Exchange(
        request_log,
        response_log,
        elapsed,
        http_status=response.status_code,
        body=body,
        text=text,
        headers=response.headers,
    )


# Several agents on one database each take 1/N of an account's limit; a share never goes below this, so a
# count that is briefly too high (an agent that just died) slows sending but cannot stall it.
RATE_FLOOR = 0.5


def shared_rate(rate: float, agents: int, floor: float = RATE_FLOOR) -> float:
    """This agent's share of `rate` when `agents` agents (itself included, at least 1) send to the same
    account: rate / agents, but not below `floor` (nor above `rate` when `rate` is itself below the floor)."""
    return max(min(rate, floor), rate / max(1, agents))


URGENT_RESERVE = 1  # tokens an ordinary acquirer leaves in the bucket for an urgent one


class TokenBucket:
    """`rate` tokens per second; `acquire` waits for one, in arrival order within its lane. `urgent`
    acquirers (smart redirect's lookups: a caller waits on the line) go before every ordinary one
    (deliveries, which can wait), and one token is held back for them: the ordinary lane takes a token only
    while another stays, so an occasional lookup never waits at all, and a backlog of deliveries never
    queues one behind it. Both lanes together keep to `rate` (bursting by at most `capacity` + 1).
    `set_rate` changes the rate in place (tokens earned so far are kept, at the old rate)."""

    def __init__(
        self,
        rate: float,
        capacity: float = 1.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate <= 0 or capacity < 1:
            raise ValueError("rate must be > 0 and capacity >= 1")
        self.rate = rate
        self.capacity = capacity + URGENT_RESERVE
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.capacity
        self._stamp = clock()
        self._lock = asyncio.Lock()  # the ordinary lane
        self._urgent_lock = asyncio.Lock()  # the urgent lane
        self._urgent = 0  # urgent acquirers waiting: the ordinary lane gives way to them

    def set_rate(self, rate: float) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self._refill()
        self.rate = rate

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def _take(self, keep: float) -> bool:
        """Take a token if `keep` tokens stay after it."""
        self._refill()
        # tolerance: float steps such as 0.3 - 0.2 would otherwise leave us a hair short forever
        if self._tokens >= 1 + keep - 1e-9:
            self._tokens = max(0.0, self._tokens - 1)
            return True
        return False

    def _until(self, tokens: float) -> float:
        return max((tokens - self._tokens) / self.rate, 1e-3)

    async def acquire(self, *, urgent: bool = False) -> None:
        if urgent:
            self._urgent += 1
            try:
                async with self._urgent_lock:
                    while not self._take(keep=0):
                        await self._sleep(self._until(1))
            finally:
                self._urgent -= 1
            return
        async with self._lock:
            while self._urgent or not self._take(keep=URGENT_RESERVE):
                await self._sleep(self._until(1 + URGENT_RESERVE))


RouteRule = Callable[[str], tuple[str, float]]


class RateLimiter:
    """Token buckets per (account, route class); `rule(path)` names the class and its rate, of which this
    process takes its share (`share(agents)`, see `shared_rate`)."""

    def __init__(
        self,
        rule: RouteRule,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._rule = rule
        self._clock = clock
        self._sleep = sleep
        self._buckets: dict[tuple[str, str], tuple[float, TokenBucket]] = {}  # (full rate, bucket)
        self.agents = 1

    def share(self, agents: int) -> None:
        """`agents` processes send to the same accounts: every bucket, existing or new, takes its share."""
        self.agents = agents
        for rate, bucket in self._buckets.values():
            bucket.set_rate(shared_rate(rate, agents))

    def rate(self, account: str, path: str) -> float:
        """The rate this process paces `account`'s `path` at now."""
        return shared_rate(self._rule(path)[1], self.agents)

    async def acquire(self, account: str, path: str, *, urgent: bool = False) -> None:
        """Wait for `path`'s turn on `account`; `urgent` goes before the waiting ordinary requests."""
        name, rate = self._rule(path)
        entry = self._buckets.get((account, name))
        if entry is None:
            entry = self._buckets[(account, name)] = (
                rate,
                TokenBucket(shared_rate(rate, self.agents), clock=self._clock, sleep=self._sleep),
            )
        await entry[1].acquire(urgent=urgent)


def retailcrm_route(path: str) -> tuple[str, float]:
    """RetailCRM pacing per API key, from the official Go client: 40 rps for /telephony*, else 10 rps."""
    route = path.split("/api/v5", 1)[-1]
    if route.startswith("/telephony"):
        return "telephony", 40.0
    return "general", 10.0
