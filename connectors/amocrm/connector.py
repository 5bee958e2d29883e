"""amoCRM as a `connectors.base.Connector`, plus what the agent binds to it at start-up.

`bind(pool, box, public_url, state_signer=...)` gives it the database (tokens, call steps, logs) and the key
that signs OAuth `state` values; the composition root calls it through `agent.parts.delivery.attach_amocrm`.
Until bound, `client()` refuses (nothing can be sent without tokens).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from agent.tracking.event import CallEvent
from connectors.amocrm import legacy, oauth
from connectors.amocrm.client import AmoCrmClient, Lookup
from connectors.amocrm.plan import CRM, plan
from connectors.amocrm.session import AccountGuard
from connectors.amocrm.settings import SECRET_FIELDS, AmoCrmSettings, parse
from connectors.amocrm.tokens import TokenStore
from connectors.amocrm.users import UserNames
from connectors.base import Connector, Delivery, Pool, Secrets, SendOutcome
from connectors.http import CONNECT_TIMEOUT, READ_TIMEOUT, Exchange

log = logging.getLogger(__name__)

ENV_PROXY = "AMOCRM_PROXY"
ResponsibleHook = Callable[[str, list[str]], None]

LOG_ROW = """
INSERT INTO integration_logs (enterprise_number, integration_type, event_type, request_data, response_data,
                              status, error_message, http_status, duration_ms)
VALUES ($1, 'amocrm', $2, $3, $4, $5, $6, $7, $8)
"""


class AmoCrmConnector(Connector[AmoCrmSettings, AmoCrmClient]):
    name: str = CRM
    secret_fields: tuple[str, ...] = SECRET_FIELDS
    lookup_route: str | None = None  # its AccountGuard paces lookups ahead of deliveries (connectors.amocrm.session)

    def __init__(self) -> None:
        self.tokens: TokenStore | None = None
        self.state_signer: oauth.StateSigner | None = None
        self.pool: Pool | None = None
        self.public_url = ""
        self.guard = AccountGuard()
        self.phone_locks: dict[tuple[str, str], asyncio.Lock] = {}
        self.user_names = UserNames()  # per account, for the managers' names smart redirect sends
        self._proxied: dict[str, httpx.AsyncClient] = {}
        self._responsible_hooks: list[ResponsibleHook] = []

    def bind(
        self,
        pool: Pool,
        box: Secrets,
        public_url: str,
        *,
        state_signer: oauth.StateSigner | None = None,
        **token_options: Any,
    ) -> TokenStore:
        """Bind to the database: tokens (refreshes paced by the account guard, logged), call steps, logs;
        `state_signer` signs the OAuth `state` of consent links (none: no consent links)."""
        self.pool = pool
        self.public_url = public_url.rstrip("/")
        self.state_signer = state_signer
        self.tokens = TokenStore(
            pool,
            box,
            oauth.redirect_uri(public_url),
            on_exchange=self._token_exchange,
            pace=self._pace_refresh,
            **token_options,
        )
        return self.tokens

    async def _pace_refresh(self, account: str) -> None:
        # every request to the account waits on a token refresh: it goes before the waiting deliveries, which
        # would otherwise each spend a slot on a 401 with the old token first
        await self.guard.acquire(account, urgent=True)

    # -- the Connector protocol ------------------------------------------------------------------

    def parse_settings(self, raw: Mapping[str, Any], *, enterprise_timezone: str | None = None) -> AmoCrmSettings:
        return parse(legacy.adapt(raw), enterprise_timezone=enterprise_timezone)

    def settings_json(self, settings: AmoCrmSettings) -> dict[str, Any]:
        return settings.to_json()

    def enabled(self, settings: AmoCrmSettings) -> bool:
        return settings.enabled

    def plan(self, event: CallEvent, settings: AmoCrmSettings) -> list[Delivery]:
        return plan(event, settings)

    def batch_limit(self, kind: str) -> int:
        return 1

    def account(self, settings: AmoCrmSettings) -> str:
        return settings.account_netloc

    def client(self, settings: AmoCrmSettings, http: httpx.AsyncClient) -> AmoCrmClient:
        if self.tokens is None:
            raise RuntimeError("the amoCRM connector is not bound to the database (agent.parts.delivery.attach_amocrm)")
        return AmoCrmClient(
            settings,
            self.http_for(settings, http),
            self.tokens,
            self.guard,
            self.phone_locks,
            self.log_outcome,
            names=self.user_names,
        )

    def responsible_lookup(self, settings: AmoCrmSettings, client: AmoCrmClient, enterprise: str) -> Lookup:
        return Lookup(client, enterprise)

    def lookup(self, settings: AmoCrmSettings, http: httpx.AsyncClient, enterprise: str) -> Lookup:
        """For agent.redirect.router: `crm` + `find_responsible(phone)` for one enterprise."""
        return Lookup(self.client(settings, http), enterprise)

    # -- HTTP through a proxy ----------------------------------------------------------------------

    def http_for(self, settings: AmoCrmSettings, shared: httpx.AsyncClient) -> httpx.AsyncClient:
        """The shared client, or one per proxy (settings' `proxy`, else env AMOCRM_PROXY)."""
        proxy = settings.proxy or os.environ.get(ENV_PROXY) or None
        if proxy is None:
            return shared
        client = self._proxied.get(proxy)
        if client is None:
            client = self._proxied[proxy] = httpx.AsyncClient(
                proxy=proxy,
                timeout=httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT, pool=CONNECT_TIMEOUT),
                follow_redirects=False,
                headers={"User-Agent": "pbx-agent"},
            )
        return client

    async def aclose(self) -> None:
        for client in self._proxied.values():
            await client.aclose()
        self._proxied.clear()

    # -- webhooks -> routing ---------------------------------------------------------------------

    def on_responsible_change(self, hook: ResponsibleHook) -> None:
        """`hook(enterprise, phones)` when amoCRM says a contact's or lead's responsible user changed."""
        self._responsible_hooks.append(hook)

    def responsible_changed(self, enterprise: str, phones: list[str]) -> None:
        for hook in self._responsible_hooks:
            try:
                hook(enterprise, phones)
            except Exception:
                log.exception("amoCRM: a responsible-change hook failed")

    # -- integration_logs for exchanges that are not deliveries -------------------------------------

    async def log_outcome(self, enterprise: str, event: str, outcome: SendOutcome) -> None:
        await self._write(
            enterprise,
            event,
            outcome.request,
            outcome.response,
            outcome.ok,
            outcome.error,
            outcome.http_status,
            outcome.duration_ms,
        )

    async def _token_exchange(self, enterprise: str, event: str, exchange: Exchange, error: str | None) -> None:
        await self._write(
            enterprise,
            event,
            exchange.request,
            exchange.response,
            error is None,
            error,
            exchange.http_status,
            exchange.duration_ms,
        )

    async def _write(
        self,
        enterprise: str,
        event: str,
        request: Any,
        response: Any,
        ok: bool,
        error: str | None,
        http_status: int | None,
        duration_ms: float,
    ) -> None:
        if self.pool is None:
            return
        try:
            await self.pool.execute(
                LOG_ROW,
                enterprise,
                event,
                request,
                response,
                "success" if ok else "error",
                error,
                http_status,
                duration_ms,
            )
        except Exception as exc:
            log.warning("amoCRM: could not write integration_logs (%s)", exc)
