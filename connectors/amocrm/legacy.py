"""amoCRM records of the old integration (../shared/seeds/002_*, 004_*), read as the agent's layout, and their
OAuth tokens adopted into `amocrm_tokens`, so a connected account stays connected without a new consent.

The seeds show the old integration's settings form and environment, not its JSON, so the reader takes every
name they use: `subdomain` (`mycompany`) or `domain` (`mycompany.amocrm.ru`, `AMOCRM_DOMAIN`) for `host`;
`lead_pipeline_id` / `lead_status_id`; `enabled` as a string; the tokens (`access_token`, `refresh_token`,
`expires_at` as ISO time or epoch seconds; without it the access token's own `exp`). Tokens are not settings
in the agent's layout: they are adopted once into the token store, encrypted, and left in the record as they
were (the old service reads them) until amoCRM is disconnected. Other keys (`redirect_uri`, `sync_*`,
`auto_create_lead`, ...) are kept as they were. A record the agent saved always has `webhook_secret`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from connectors.amocrm.oauth import token_expiry
from connectors.amocrm.settings import SettingsError, parse
from connectors.base import CONFIG_CHANGED, Pool, Secrets

log = logging.getLogger(__name__)

CRM = "amocrm"
TOKEN_KEYS = ("access_token", "refresh_token", "expires_at", "expires_in", "token_type", "long_lived_token")
_RENAMED = {"lead_pipeline_id": "pipeline_id", "lead_status_id": "status_id"}
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off", ""})


def is_legacy(raw: Mapping[str, Any]) -> bool:
    return bool(raw) and "webhook_secret" not in raw


def adapt(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The record in the agent's layout (tokens left out: the token store holds them)."""
    if not is_legacy(raw):
        return dict(raw)
    out = {k: v for k, v in raw.items() if k not in TOKEN_KEYS and k not in ("subdomain", "domain")}
    for old, new in _RENAMED.items():
        if old in out:
            value = out.pop(old)
            out.setdefault(new, value)
    if not out.get("host"):
        host = _host(raw)
        if host:
            out["host"] = host
    enabled = out.get("enabled")
    if isinstance(enabled, str) and enabled.strip().lower() in _TRUE | _FALSE:
        out["enabled"] = enabled.strip().lower() in _TRUE
    return out


def _host(raw: Mapping[str, Any]) -> str | None:
    domain, sub = raw.get("domain"), raw.get("subdomain")
    if isinstance(domain, str) and domain.strip():
        return domain.strip()
    if isinstance(sub, str) and sub.strip():
        sub = sub.strip().lower()
        return sub if "." in sub else f"{sub}.amocrm.ru"
    return None


def _expiry(raw: Mapping[str, Any], access: str) -> datetime | None:
    value = raw.get("expires_at")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str) and value.strip():
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is not None:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return token_expiry(access)  # None: unknown, refreshed on the first 401


async def adopt(pool: Pool, box: Secrets, enterprise: str) -> bool:
    """Copy the old record's tokens into `amocrm_tokens` when the enterprise has no row there; True if it did."""
    raw = await pool.fetchval(
        "SELECT integrations_config -> $2 FROM enterprises WHERE number = $1 AND NOT EXISTS"
        " (SELECT 1 FROM amocrm_tokens t WHERE t.enterprise_number = $1)",
        enterprise,
        CRM,
    )
    if not isinstance(raw, dict) or not is_legacy(raw):
        return False
    clear = box.decrypted(CRM, raw)
    access = clear.get("access_token") or clear.get("long_lived_token")
    if not isinstance(access, str) or not access:
        return False
    try:
        host = parse(adapt(clear)).host
    except SettingsError as exc:
        log.error("amoCRM %s: the old record's tokens cannot be adopted: %s", enterprise, exc)
        return False
    refresh = clear.get("refresh_token") if isinstance(clear.get("refresh_token"), str) else None
    async with pool.acquire() as conn, conn.transaction():
        status = await conn.execute(
            "INSERT INTO amocrm_tokens (enterprise_number, host, kind, access_token, refresh_token, expires_at)"
            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (enterprise_number) DO NOTHING",
            enterprise,
            host,
            "oauth" if refresh else "long_lived",
            box.encrypt(access),
            box.encrypt(refresh) if refresh else None,
            _expiry(clear, access),
        )
        await conn.execute("SELECT pg_notify($1, $2)", CONFIG_CHANGED, enterprise)
    adopted = status.endswith(" 1")
    if adopted:
        log.info("amoCRM %s: the old integration's tokens adopted (no new consent needed)", enterprise)
    return adopted


async def adopt_all(pool: Pool, box: Secrets) -> list[str]:
    """At start-up: every enterprise whose old record holds tokens the store does not have yet."""
    numbers = await pool.fetch(
        "SELECT number FROM enterprises e WHERE integrations_config -> $1 ?| $2::text[] AND NOT EXISTS"
        " (SELECT 1 FROM amocrm_tokens t WHERE t.enterprise_number = e.number) ORDER BY number",
        CRM,
        ["access_token", "long_lived_token"],
    )
    return [r["number"] for r in numbers if await adopt(pool, box, r["number"])]


FORGET_TOKENS = (
    "UPDATE enterprises SET integrations_config = jsonb_set(integrations_config, ARRAY['amocrm'],"
    " (integrations_config -> 'amocrm') - $2::text[])"
    " WHERE number = $1 AND integrations_config -> 'amocrm' ?| $2::text[]"
)
