"""Talking to one amoCRM account for one enterprise: bearer tokens, 401 -> refresh once -> retry once,
pacing (7 rps per account, shared by every enterprise on it and by every agent on the database), and the
block breaker (403 for everything).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from connectors.amocrm import problem
from connectors.amocrm.settings import AmoCrmSettings
from connectors.amocrm.stored_tokens import TokenError, Tokens
from connectors.amocrm.tokens import TokenStore
from connectors.amocrm.wire import perform_json
from connectors.base import SendOutcome
from connectors.http import Exchange, TokenBucket, shared_rate

log = logging.getLogger(__name__)

# crm-api.md §B2: at most 7 requests per second; we stay a little under so network jitter cannot
# put 8 requests into one of the server's seconds.
ACCOUNT_RPS = 6.5
BLOCK_PAUSE_S = 900.0
TOKEN_WAIT_S = 300.0  # a delivery whose tokens are expired waits this long before its next try


class StepFailed(Exception):
    """A request in a multi-step send did not succeed; `outcome` is what the outbox gets."""

    def __init__(self, outcome: SendOutcome) -> None:
        super().__init__(outcome.error or outcome.status)
        self.outcome = outcome


@dataclass
class AccountGuard:
    """Per process: a token bucket and a block breaker per amoCRM account (its host). With `agents` agents
    on one database, each paces every account at its share of `rate` (`share`)."""

    rate: float = ACCOUNT_RPS
    block_pause: float = BLOCK_PAUSE_S
    clock: Callable[[], float] = time.monotonic
    agents: int = 1
    _buckets: dict[str, TokenBucket] = field(default_factory=dict)
    _blocked_until: dict[str, float] = field(default_factory=dict)

    @property
    def account_rate(self) -> float:
        """The rate this process paces each account at now."""
        return shared_rate(self.rate, self.agents)

    def rate_of(self, account: str) -> float | None:
        """The rate `account`'s requests are paced at now (None: none sent to it yet)."""
        bucket = self._buckets.get(account)
        return bucket.rate if bucket is not None else None

    def share(self, agents: int) -> None:
        self.agents = agents
        for bucket in self._buckets.values():
            bucket.set_rate(self.account_rate)

    async def acquire(self, account: str, *, urgent: bool = False) -> None:
        """Wait for the account's next request slot; `urgent` (a lookup) goes before waiting deliveries."""
        bucket = self._buckets.get(account)
        if bucket is None:
            bucket = self._buckets[account] = TokenBucket(self.account_rate)
        await bucket.acquire(urgent=urgent)

    def blocked_for(self, account: str) -> float:
        return max(0.0, self._blocked_until.get(account, 0.0) - self.clock())

    def block(self, account: str, why: str) -> None:
        if self.blocked_for(account) > 0:
            return
        self._blocked_until[account] = self.clock() + self.block_pause
        log.critical(
            "AMOCRM ACCOUNT BLOCKED: %s answers 403 to everything (%s). The account or this "
            "server's IP is blocked for exceeding amoCRM's limits; every request to it is paused "
            "for %.0f s. Ask amoCRM support to lift the block.",
            account,
            why,
            self.block_pause,
        )


ExchangeSink = Callable[[str, str, Exchange, str | None], Awaitable[None]]


class Session:
    """The exchanges of one send (or one lookup) for one enterprise; `exchanges` keeps them all."""

    def __init__(
        self,
        enterprise: str,
        settings: AmoCrmSettings,
        http: httpx.AsyncClient,
        tokens: TokenStore,
        guard: AccountGuard,
        *,
        urgent: bool = False,
    ) -> None:
        self.enterprise = enterprise
        self.urgent = urgent  # a lookup a caller waits on: paced ahead of the deliveries
        self.settings = settings
        self.http = http
        self.tokens = tokens
        self.guard = guard
        self.exchanges: list[Exchange] = []
        self._current: Tokens | None = None

    @property
    def account(self) -> str:
        return self.settings.account_netloc

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        before_send: Callable[[], Awaitable[None]] | None = None,
    ) -> Exchange:
        """One API request; raises StepFailed when it could not be made (blocked account, no token).
        `before_send` runs once the request may go (paced, with a token), just before it is sent."""
        wait = self.guard.blocked_for(self.account)
        if wait > 0:
            raise StepFailed(
                SendOutcome(
                    "transient",
                    retry_after=wait,
                    error=f"amoCRM account {self.account} is blocked (403); paused for another {wait:.0f} s",
                )
            )
        tokens = await self._tokens()
        for attempt in (1, 2):
            await self.guard.acquire(self.account, urgent=self.urgent)
            if attempt == 1:
                # read again once the slot is ours: a refresh made while this request waited is not wasted on a 401
                tokens = await self._tokens()
                if before_send is not None:
                    await before_send()
            exchange = await perform_json(
                self.http,
                method,
                tokens.host + path,
                body,
                params=params,
                headers={"Authorization": f"Bearer {tokens.access_token}"},
                secrets=self._secrets(tokens),
            )
            self.exchanges.append(exchange)
            if exchange.http_status == 401 and attempt == 1:
                tokens = await self._after_401(tokens)
                continue
            if problem.is_block(exchange):
                self.guard.block(self.account, f"{method} {path} -> HTTP 403 {exchange.text[:80]!r}")
            return exchange
        raise AssertionError("unreachable")

    async def checked(self, method: str, path: str, **kw: Any) -> Exchange:
        """`request`, and StepFailed unless amoCRM said yes (2xx, 204 included)."""
        exchange = await self.request(method, path, **kw)
        result = problem.outcome(exchange)
        if not result.ok:
            wait = self.guard.blocked_for(self.account) if problem.is_block(exchange) else None
            error = f"amoCRM account blocked (403 to everything): {result.error}" if wait else result.error
            raise StepFailed(self.outcome(result.status, error, exchange, retry_after=wait or None))
        return exchange

    async def _tokens(self) -> Tokens:
        try:
            self._current = await self.tokens.access_token(self.enterprise, self.settings, self.http)
        except TokenError as exc:
            raise StepFailed(self._token_outcome(exc)) from None
        return self._current

    async def _after_401(self, used: Tokens) -> Tokens:
        try:
            self._current = await self.tokens.rejected(self.enterprise, self.settings, self.http, used)
        except TokenError as exc:
            raise StepFailed(self._token_outcome(exc)) from None
        return self._current

    def _token_outcome(self, exc: TokenError) -> SendOutcome:
        # transient either way: after a reconnect the waiting deliveries go out (nothing is lost)
        return self.outcome("transient", exc.message, None, retry_after=TOKEN_WAIT_S if exc.final else 10.0)

    def _secrets(self, tokens: Tokens) -> tuple[str, ...]:
        return tuple(s for s in (tokens.access_token, tokens.refresh_token, self.settings.client_secret) if s)

    def outcome(
        self,
        status: Any,
        error: str | None,
        last: Exchange | None,
        *,
        retry_after: float | None = None,
        **response: Any,
    ) -> SendOutcome:
        """One SendOutcome for everything this session sent (integration_logs gets every exchange)."""
        if last is not None and retry_after is None and status == "transient":
            retry_after = problem.outcome(last).retry_after
        return SendOutcome(
            status=status,
            http_status=last.http_status if last is not None else None,
            retry_after=retry_after,
            error=error,
            request={"exchanges": [e.request for e in self.exchanges]} if self.exchanges else {},
            response={**response, "exchanges": [e.response for e in self.exchanges]},
            duration_ms=sum(e.duration_ms for e in self.exchanges),
        )
