"""Routing rules and caller history in PostgreSQL: `routing_rules` (one JSON document per enterprise,
validated by `agent.redirect.rules`), the history query on `calls`, and the managers' CRM statuses routing needs.

A change of the rules sends `NOTIFY integrations_config, '<number>'` in its transaction, like every
settings change; each agent's `Integrations` hears it and tells its `on_change` listeners, to which agent.app
wires the caches of rules (the Router's plan, the planner's `RulesCache`): nothing here listens itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from cachetools import TTLCache

from agent.redirect.rules import NO_RULES, Rules, RulesError, parse
from agent.store import enterprises
from agent.store.database import Pool

log = logging.getLogger(__name__)

# RetailCRM user statuses (changeUserStatusUrl) -> REDIRECT_REASON; "free" is not listed: available.
AWAY_REASONS = {"break": "away", "dinner": "away", "busy": "busy"}

HISTORY = (
    "SELECT answered_by, ended_at FROM calls WHERE enterprise_number = $1 AND phone = $2 AND ended_at >= $3"
    " AND direction = 'in' AND result = 'answered' AND answered_by IS NOT NULL ORDER BY ended_at DESC LIMIT 1"
)


class NotFound(Exception):
    pass


async def get_raw(pool: Pool, number: str) -> dict[str, Any]:
    value = await pool.fetchval("SELECT rules FROM routing_rules WHERE enterprise_number = $1", number)
    return value if isinstance(value, dict) else {}


async def get(pool: Pool, number: str) -> Rules:
    """The enterprise's rules (without a `timezone`: its RetailCRM account's, else UTC); a stored document
    that no longer validates counts as no rules (logged)."""
    row = await pool.fetchrow(
        "SELECT r.rules, e.integrations_config #>> '{retailcrm,timezone}' AS tz FROM enterprises e"
        " LEFT JOIN routing_rules r ON r.enterprise_number = e.number WHERE e.number = $1",
        number,
    )
    raw = row["rules"] if row is not None and isinstance(row["rules"], dict) else {}
    try:
        return parse(raw, row["tz"] if row is not None else None)
    except RulesError as exc:
        log.warning("enterprise %s: stored routing rules unusable (%s); routing without them", number, exc)
        return NO_RULES


async def put(pool: Pool, number: str, raw: dict[str, Any]) -> Rules:
    """Validate (RulesError names the field) and store as `parse` normalised it (`rules.raw`: `9:00` stored as
    `09:00`); NOTIFY in the same transaction."""
    rules = parse(raw)
    async with pool.acquire() as conn, conn.transaction():
        if not await conn.fetchval("SELECT 1 FROM enterprises WHERE number = $1", number):
            raise NotFound(number)
        await conn.execute(
            "INSERT INTO routing_rules (enterprise_number, rules) VALUES ($1, $2)"
            " ON CONFLICT (enterprise_number) DO UPDATE SET rules = EXCLUDED.rules, updated_at = now()",
            number,
            dict(rules.raw),
        )
        await conn.execute("SELECT pg_notify($1, $2)", enterprises.NOTIFY_CHANNEL, number)
    return rules


async def last_answered(pool: Pool, enterprise: str, phone: str, since: datetime) -> tuple[str, datetime] | None:
    """The extension that answered the most recent incoming call from `phone` since `since` (one index scan)."""
    row = await pool.fetchrow(HISTORY, enterprise, phone, since)
    return None if row is None else (str(row["answered_by"]), row["ended_at"])


async def away_statuses(pool: Pool, enterprise: str) -> dict[tuple[str, str], str]:
    """(crm, user id) -> REDIRECT_REASON for the managers whose CRM status says they are not taking calls."""
    rows = await pool.fetch(
        "SELECT user_id, status FROM retailcrm_user_statuses WHERE enterprise_number = $1 AND status <> 'free'",
        enterprise,
    )
    return {("retailcrm", r["user_id"]): AWAY_REASONS[r["status"]] for r in rows if r["status"] in AWAY_REASONS}


class RulesCache:
    """The planner's copy of each enterprise's rules: read once, dropped by `invalidate` (wired by agent.app to
    `Integrations.on_change`: a NOTIFY or its periodic full refresh) or after `ttl_s`."""

    def __init__(self, pool: Pool, ttl_s: float = 300.0, timer: Callable[[], float] = time.monotonic) -> None:
        self.pool = pool
        self._cache: TTLCache[str, Rules] = TTLCache(maxsize=10_000, ttl=ttl_s, timer=timer)
        self._generation = 0  # a read that a NOTIFY overtook is used once, not cached

    async def get(self, enterprise: str) -> Rules:
        rules = self._cache.get(enterprise)
        if rules is None:
            generation = self._generation
            rules = await get(self.pool, enterprise)
            if generation == self._generation:
                self._cache[enterprise] = rules
        return rules

    def invalidate(self, enterprise: str | None = None) -> None:
        self._generation += 1
        if enterprise is None:
            self._cache.clear()
        else:
            self._cache.pop(enterprise, None)
