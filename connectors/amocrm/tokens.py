"""The owner of each enterprise's amoCRM tokens: stored encrypted in `amocrm_tokens`, refreshed safely.

amoCRM refresh tokens are single-use and rotate on every refresh (crm-api.md §B3.2), so a refresh whose
answer is lost leaves us with a dead refresh token. The rules, and why:

1. **Single flight.** One refresh per enterprise at a time: an asyncio lock in the process, and across
   agents a marker (`refresh_started_at`, `refresh_owner`) claimed under a row lock and **committed before
   the request is sent**. An agent that finds a fresh marker waits for the owner's result.
2. **Save, then use.** The new pair is committed (with `generation + 1`, the marker cleared and a
   `NOTIFY integrations_config`) before the new access token is handed to anyone. The previous refresh
   token stays in the row until that commit; nothing overwrites it earlier.
3. **Never a blind retry.** What we know decides what happens:
   - the server refused (400/401, e.g. `Token has been revoked`): status `expired`, reason shown; the
     admin reconnects;
   - the request never left (connection refused): the marker is cleared, the old pair is still good;
   - the server answered an error (5xx, 429): nothing was issued, the marker is cleared;
   - sent and no usable answer (read timeout, connection cut, agent killed between receiving and saving):
     **unknown**. The marker is left in place. While the current access token works it keeps being used.
     Once the marker is older than `refresh_lease` and a refresh is needed again, exactly one refresh is
     made with the saved refresh token as a deliberate check (logged as such): if amoCRM had not rotated,
     it succeeds and is saved; if it had, it answers `Token has been revoked`, and the status becomes
     `expired` with the reason "a refresh at <time> was never saved" — the admin reconnects. No loop.
4. A long-lived token has no refresh: a 401 with it is final (status `expired`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Literal

import httpx

from connectors.amocrm import legacy, oauth
from connectors.amocrm.settings import AmoCrmSettings
from connectors.amocrm.stored_tokens import Kind, TokenError, Tokens, TokenStatus, iso
from connectors.base import CONFIG_CHANGED, Pool, Secrets
from connectors.http import Exchange

log = logging.getLogger(__name__)

REFRESH_AHEAD_S = 3600.0
REFRESH_LEASE_S = 30.0
ExchangeLog = Callable[[str, str, Exchange, str | None], Awaitable[None]]  # enterprise, event, exchange, error


class TokenStore:
    def __init__(
        self,
        pool: Pool,
        box: Secrets,
        redirect_uri: str,
        *,
        refresh_ahead: float = REFRESH_AHEAD_S,
        refresh_lease: float = REFRESH_LEASE_S,
        on_exchange: ExchangeLog | None = None,
        pace: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.pool = pool
        self.box = box
        self.redirect_uri = redirect_uri
        self.refresh_ahead = refresh_ahead
        self.refresh_lease = refresh_lease
        self.on_exchange = on_exchange
        # paces a refresh like any other request to the account (AccountGuard.acquire), when set
        self.pace = pace
        self.owner = uuid.uuid4().hex  # this process, in refresh markers
        self._cache: dict[str, Tokens] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    # -- reading -------------------------------------------------------------------------------

    def forget(self, enterprise: str | None) -> None:
        """Drop the cached row (NOTIFY integrations_config): the next use reads the database.
        None: every enterprise's (notifications may have been missed)."""
        if enterprise is None:
            self._cache.clear()
        else:
            self._cache.pop(enterprise, None)

    async def get(self, enterprise: str, *, fresh: bool = False) -> Tokens | None:
        if not fresh and enterprise in self._cache:
            return self._cache[enterprise]
        row = await self.pool.fetchrow("SELECT * FROM amocrm_tokens WHERE enterprise_number = $1", enterprise)
        if row is None and await legacy.adopt(self.pool, self.box, enterprise):  # the old integration's tokens
            row = await self.pool.fetchrow("SELECT * FROM amocrm_tokens WHERE enterprise_number = $1", enterprise)
        tokens = self._decode(row) if row is not None else None
        if tokens is None:
            self._cache.pop(enterprise, None)
        else:
            self._cache[enterprise] = tokens
        return tokens

    def _decode(self, row: Any) -> Tokens:
        account = row["account"]
        return Tokens(
            enterprise=row["enterprise_number"],
            host=row["host"],
            kind=row["kind"],
            access_token=self.box.decrypt(row["access_token"]),
            refresh_token=self.box.decrypt(row["refresh_token"]) if row["refresh_token"] else None,
            expires_at=row["expires_at"],
            generation=row["generation"],
            status=row["status"],
            reason=row["reason"],
            refresh_started_at=row["refresh_started_at"],
            account=account if isinstance(account, dict) else None,
            updated_at=row["updated_at"],
        )

    async def access_token(self, enterprise: str, settings: AmoCrmSettings, http: httpx.AsyncClient) -> Tokens:
        """Tokens to use now: refreshed first when the access token expires within `refresh_ahead`."""
        tokens = await self.get(enterprise)
        if tokens is None:
            raise TokenError("amoCRM is not connected for this enterprise", final=True)
        if tokens.status == "expired":
            tokens = await self.get(enterprise, fresh=True) or tokens  # reconnected by another agent?
            if tokens.status == "expired":
                raise TokenError(f"amoCRM tokens expired: {tokens.reason}", final=True)
        if tokens.kind == "oauth" and tokens.due(datetime.now(UTC), self.refresh_ahead):
            return await self.refresh(enterprise, settings, http, seen=tokens)
        return tokens

    async def rejected(
        self, enterprise: str, settings: AmoCrmSettings, http: httpx.AsyncClient, used: Tokens
    ) -> Tokens:
        """The CRM answered 401 to `used`: a newer pair (another agent's refresh), or refresh once."""
        if used.kind == "long_lived":
            reason = "amoCRM refused the long-lived token (401): it expired or was revoked; generate a new one"
            await self.mark(enterprise, "expired", reason, generation=used.generation)
            raise TokenError(reason, final=True)
        return await self.refresh(enterprise, settings, http, seen=used, forced=True)

    # -- refreshing ----------------------------------------------------------------------------

    async def refresh(
        self, enterprise: str, settings: AmoCrmSettings, http: httpx.AsyncClient, *, seen: Tokens, forced: bool = False
    ) -> Tokens:
        lock = self._locks.setdefault(enterprise, asyncio.Lock())
        async with lock:
            while True:
                current = await self.get(enterprise, fresh=True)
                if current is None:
                    raise TokenError("amoCRM was disconnected", final=True)
                changed = current.generation != seen.generation or current.access_token != seen.access_token
                if changed and current.status == "connected":
                    return current  # someone (here or another agent) refreshed or reconnected
                if current.status == "expired":
                    raise TokenError(f"amoCRM tokens expired: {current.reason}", final=True)
                if not forced and not current.due(datetime.now(UTC), self.refresh_ahead):
                    return current
                claim, owner = await self._claim(current)
                if claim == "busy":
                    usable = current.expires_at is None or current.expires_at > datetime.now(UTC)
                    if not forced and usable:
                        return current  # the current token still works while the other refresh lands
                    if owner == self.owner:  # our own earlier refresh, outcome unknown: check after the lease
                        raise TokenError(
                            "a token refresh with an unknown outcome is pending; it is checked "
                            f"once {self.refresh_lease:.0f} s after it started",
                            final=False,
                        )
                    await asyncio.sleep(0.2)  # another agent is refreshing: wait for its result
                    continue
                return await self._refresh(current, settings, http, probe=claim == "probe")

    async def _claim(self, current: Tokens) -> tuple[Literal["claimed", "probe", "busy"], str | None]:
        """Set the refresh marker (committed before anything is sent); `probe` when an earlier refresh's
        outcome is unknown (its marker outlived the lease)."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT generation, refresh_started_at, refresh_owner, now() AS now FROM amocrm_tokens"
                " WHERE enterprise_number = $1 FOR UPDATE",
                current.enterprise,
            )
            if row is None or row["generation"] != current.generation:
                return "busy", None  # changed under us: the loop re-reads it
            started = row["refresh_started_at"]
            if started is not None and (row["now"] - started).total_seconds() < self.refresh_lease:
                return "busy", row["refresh_owner"]
            await conn.execute(
                "UPDATE amocrm_tokens SET refresh_started_at = now(), refresh_owner = $2, updated_at = now()"
                " WHERE enterprise_number = $1",
                current.enterprise,
                self.owner,
            )
            if started is not None:
                log.warning(
                    "amoCRM %s: a refresh started at %s was never saved (agent stopped or answer "
                    "lost); checking once whether the saved refresh token still works",
                    current.enterprise,
                    started.isoformat(),
                )
                return "probe", None
            return "claimed", None

    async def _refresh(
        self, current: Tokens, settings: AmoCrmSettings, http: httpx.AsyncClient, *, probe: bool
    ) -> Tokens:
        enterprise = current.enterprise
        if not settings.client_id or not settings.client_secret or not current.refresh_token:
            await self._release(enterprise)
            reason = "client_id and client_secret are needed to refresh the token; set them and reconnect"
            await self.mark(enterprise, "error", reason, generation=current.generation)
            raise TokenError(reason, final=True)
        body = oauth.refresh_body(settings.client_id, settings.client_secret, current.refresh_token, self.redirect_uri)
        secrets = (settings.client_secret, current.refresh_token, current.access_token)
        if self.pace is not None:
            await self.pace(settings.account_netloc)
        try:
            pair, exchange = await oauth.grant(http, current.host, body, secrets=secrets)
        except oauth.OAuthError as exc:
            await self._log(enterprise, "token_refresh", exc.exchange, exc.message)
            await self._refresh_failed(current, exc, probe=probe)
            raise AssertionError("unreachable") from None  # _refresh_failed always raises
        await self._log(enterprise, "token_refresh", exchange, None)
        await self.before_save(enterprise)
        saved = await self._save_refreshed(current, pair)
        if saved is None:  # disconnected or reconnected meanwhile: that newer state wins
            fresh = await self.get(enterprise, fresh=True)
            if fresh is None or fresh.status != "connected":
                raise TokenError("amoCRM was disconnected during a token refresh", final=True)
            return fresh
        log.info(
            "amoCRM %s: token refreshed (generation %d, valid until %s)",
            enterprise,
            saved.generation,
            iso(saved.expires_at),
        )
        return saved

    async def before_save(self, enterprise: str) -> None:
        """Between receiving a new pair and saving it. A test hook (a crash here is the case rule 3 covers)."""

    async def _save_refreshed(self, current: Tokens, pair: oauth.TokenPair) -> Tokens | None:
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "UPDATE amocrm_tokens SET access_token = $2, refresh_token = $3, expires_at = $4,"
                " generation = generation + 1, refresh_started_at = NULL, refresh_owner = NULL,"
                " status = 'connected', reason = NULL, updated_at = now()"
                " WHERE enterprise_number = $1 AND generation = $5 AND refresh_owner = $6 RETURNING *",
                current.enterprise,
                self.box.encrypt(pair.access_token),
                self.box.encrypt(pair.refresh_token),
                pair.expires_at,
                current.generation,
                self.owner,
            )
            await conn.execute("SELECT pg_notify($1, $2)", CONFIG_CHANGED, current.enterprise)
        if row is None:
            return None
        tokens = self._decode(row)
        self._cache[current.enterprise] = tokens
        return tokens

    async def _refresh_failed(self, current: Tokens, exc: oauth.OAuthError, *, probe: bool) -> None:
        enterprise = current.enterprise
        if exc.failure == "rejected":
            since = iso(current.refresh_started_at) or "earlier"
            if probe:
                reason = (
                    f"amoCRM refused the saved refresh token ({exc.message}): a token refresh started "
                    f"{since} was never saved (the agent stopped or the answer was lost), so amoCRM "
                    "rotated to a pair we do not have. Reconnect amoCRM."
                )
            else:
                reason = f"amoCRM refused the refresh token ({exc.message}). Reconnect amoCRM."
            await self.mark(enterprise, "expired", reason, generation=current.generation, clear_marker=True)
            log.error("amoCRM %s: %s", enterprise, reason)
            raise TokenError(reason, final=True)
        if exc.failure in ("not_sent", "failed"):
            await self._release(enterprise)
            raise TokenError(f"token refresh failed, will try again: {exc.message}", final=False)
        # unknown: keep the marker; once it is older than the lease the next refresh is a single check
        log.error(
            "amoCRM %s: the outcome of a token refresh is unknown (%s); the current access token is "
            "used while it works, then the saved refresh token is checked once",
            enterprise,
            exc.message,
        )
        raise TokenError(f"token refresh outcome unknown: {exc.message}", final=False)

    async def _release(self, enterprise: str) -> None:
        await self.pool.execute(
            "UPDATE amocrm_tokens SET refresh_started_at = NULL, refresh_owner = NULL"
            " WHERE enterprise_number = $1 AND refresh_owner = $2",
            enterprise,
            self.owner,
        )

    # -- writing -------------------------------------------------------------------------------

    async def connect(
        self,
        enterprise: str,
        host: str,
        kind: Kind,
        access_token: str,
        refresh_token: str | None,
        expires_at: datetime | None,
        account: dict[str, Any] | None = None,
    ) -> Tokens:
        """A new connection (OAuth callback, pasted code, long-lived token) replaces whatever was there."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "INSERT INTO amocrm_tokens (enterprise_number, host, kind, access_token, refresh_token,"
                " expires_at, account) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                " ON CONFLICT (enterprise_number) DO UPDATE SET host = EXCLUDED.host, kind = EXCLUDED.kind,"
                " access_token = EXCLUDED.access_token, refresh_token = EXCLUDED.refresh_token,"
                " expires_at = EXCLUDED.expires_at, account = EXCLUDED.account,"
                " generation = amocrm_tokens.generation + 1, refresh_started_at = NULL, refresh_owner = NULL,"
                " status = 'connected', reason = NULL, updated_at = now() RETURNING *",
                enterprise,
                host,
                kind,
                self.box.encrypt(access_token),
                self.box.encrypt(refresh_token) if refresh_token else None,
                expires_at,
                account,
            )
            await conn.execute("SELECT pg_notify($1, $2)", CONFIG_CHANGED, enterprise)
        assert row is not None
        tokens = self._decode(row)
        self._cache[enterprise] = tokens
        return tokens

    async def mark(
        self,
        enterprise: str,
        status: TokenStatus,
        reason: str | None,
        *,
        generation: int | None = None,
        clear_marker: bool = False,
    ) -> None:
        """Set the status (only if the row is still `generation`, so a reconnect is never overwritten)."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "UPDATE amocrm_tokens SET status = $2, reason = $3, updated_at = now(),"
                " refresh_started_at = CASE WHEN $5 THEN NULL ELSE refresh_started_at END,"
                " refresh_owner = CASE WHEN $5 THEN NULL ELSE refresh_owner END"
                " WHERE enterprise_number = $1 AND ($4::int IS NULL OR generation = $4)",
                enterprise,
                status,
                reason,
                generation,
                clear_marker,
            )
            await conn.execute("SELECT pg_notify($1, $2)", CONFIG_CHANGED, enterprise)
        self.forget(enterprise)

    async def save_account(self, enterprise: str, account: dict[str, Any]) -> None:
        await self.pool.execute(
            "UPDATE amocrm_tokens SET account = $2 WHERE enterprise_number = $1", enterprise, account
        )
        cached = self._cache.get(enterprise)
        if cached is not None:
            self._cache[enterprise] = replace(cached, account=account)

    async def disconnect(self, enterprise: str) -> bool:
        async with self.pool.acquire() as conn, conn.transaction():
            status = await conn.execute("DELETE FROM amocrm_tokens WHERE enterprise_number = $1", enterprise)
            await conn.execute(legacy.FORGET_TOKENS, enterprise, list(legacy.TOKEN_KEYS))  # or they come back
            await conn.execute("SELECT pg_notify($1, $2)", CONFIG_CHANGED, enterprise)
        self.forget(enterprise)
        return status.endswith(" 1")

    async def use_state(self, nonce: str, enterprise: str, expires_at: datetime) -> bool:
        """Record an OAuth state as used; False when it was used before (a replay)."""
        with contextlib.suppress(Exception):
            await self.pool.execute("DELETE FROM amocrm_oauth_states WHERE expires_at < now() - interval '1 day'")
        status = await self.pool.execute(
            "INSERT INTO amocrm_oauth_states (nonce, enterprise_number, expires_at) VALUES ($1, $2, $3)"
            " ON CONFLICT DO NOTHING",
            nonce,
            enterprise,
            expires_at,
        )
        return status.endswith(" 1")

    async def _log(self, enterprise: str, event: str, exchange: Exchange | None, error: str | None) -> None:
        if self.on_exchange is not None and exchange is not None:
            await self.on_exchange(enterprise, event, exchange, error)
