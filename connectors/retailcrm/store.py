"""RetailCRM state in PostgreSQL beside the settings: the module's account token and activity, the
managers' statuses, and finding an enterprise by the module `clientId` RetailCRM sends back."""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connectors.base import Pool, Secrets
from connectors.retailcrm.legacy import adapt
from connectors.retailcrm.settings import RetailCrmSettings, SettingsError, parse

log = logging.getLogger(__name__)

CRM = "retailcrm"
# the enterprise's time zone (its routing rules'), for a record without one (agent.store.enterprises says the same)
_ZONE = "(SELECT r.rules ->> 'timezone' FROM routing_rules r WHERE r.enterprise_number = e.number)"


@dataclass(frozen=True, slots=True)
class Account:
    """The enterprise a callback belongs to, with its settings (secrets in clear)."""

    enterprise: str
    settings: RetailCrmSettings


async def settings_of(pool: Pool, box: Secrets, enterprise: str) -> RetailCrmSettings | None:
    """The stored settings, decrypted and validated; None when RetailCRM is not configured."""
    row = await pool.fetchrow(
        f"SELECT e.integrations_config -> $2 AS settings, {_ZONE} AS timezone FROM enterprises e WHERE e.number = $1",
        enterprise,
        CRM,
    )
    if row is None or not isinstance(row["settings"], dict):
        return None
    return parse(adapt(box.decrypted(CRM, row["settings"]), timezone=row["timezone"]))


async def account_by_client_id(pool: Pool, box: Secrets, client_id: str) -> Account | None:
    """The enabled account whose module `clientId` this is, compared in constant time.

    Client ids are encrypted at rest with a random nonce, so each stored one is decrypted and compared;
    every candidate is compared (no early exit) so timing says nothing about which matched.
    """
    rows = await pool.fetch(
        f"SELECT e.number, e.integrations_config -> $1 AS settings, {_ZONE} AS timezone FROM enterprises e"
        " WHERE e.integrations_config ? $1 ORDER BY e.number",
        CRM,
    )
    found: Account | None = None
    for row in rows:
        stored = row["settings"]
        if not isinstance(stored, dict):
            continue
        try:
            settings = parse(adapt(box.decrypted(CRM, stored), timezone=row["timezone"]))
        except (SettingsError, ValueError) as exc:
            log.warning("enterprise %s: stored retailcrm settings unusable (%s)", row["number"], exc)
            continue
        if hmac.compare_digest(settings.client_id.encode(), client_id.encode()) and settings.enabled:
            found = Account(row["number"], settings)
    return found


# -- the accountUrl token ------------------------------------------------------------------------


async def set_account_token(pool: Pool, enterprise: str, token_id: str | None) -> None:
    """Make `token_id` the one valid accountUrl token of the enterprise (None: revoke them all)."""
    await pool.execute(
        "INSERT INTO retailcrm_modules (enterprise_number, account_token_id, registered_at)"
        " VALUES ($1, $2, CASE WHEN $2::text IS NULL THEN NULL ELSE now() END)"
        " ON CONFLICT (enterprise_number) DO UPDATE SET account_token_id = EXCLUDED.account_token_id,"
        " registered_at = COALESCE(EXCLUDED.registered_at, retailcrm_modules.registered_at),"
        " updated_at = now()",
        enterprise,
        token_id,
    )


async def registered_by_agent(pool: Pool, enterprise: str) -> bool:
    """The agent has registered the module for this enterprise at least once (its accountUrl replaced the old one)."""
    at = await pool.fetchval("SELECT registered_at FROM retailcrm_modules WHERE enterprise_number = $1", enterprise)
    return at is not None


async def token_current(pool: Pool, source: str | None, enterprise: str | None, token_id: str) -> bool:
    """A token issued for a source (the module's accountUrl) is valid only while it is the one in force."""
    if source != CRM or enterprise is None:
        return False
    current = await pool.fetchval(
        "SELECT account_token_id FROM retailcrm_modules WHERE enterprise_number = $1", enterprise
    )
    return isinstance(current, str) and hmac.compare_digest(current.encode(), token_id.encode())


# -- callbacks -------------------------------------------------------------------------------------


async def set_activity(pool: Pool, enterprise: str, active: bool, freeze: bool, system_url: str | None) -> None:
    await pool.execute(
        "INSERT INTO retailcrm_modules (enterprise_number, active, frozen, system_url, activity_at)"
        " VALUES ($1, $2, $3, $4, now())"
        " ON CONFLICT (enterprise_number) DO UPDATE SET active = EXCLUDED.active, frozen = EXCLUDED.frozen,"
        " system_url = COALESCE(EXCLUDED.system_url, retailcrm_modules.system_url),"
        " activity_at = now(), updated_at = now()",
        enterprise,
        active,
        freeze,
        system_url,
    )


async def module_state(pool: Pool, enterprise: str) -> dict[str, Any] | None:
    row = await pool.fetchrow(
        "SELECT account_token_id IS NOT NULL AS registered, registered_at, active, frozen, system_url,"
        " activity_at FROM retailcrm_modules WHERE enterprise_number = $1",
        enterprise,
    )
    return dict(row) if row else None


async def set_user_status(pool: Pool, enterprise: str, user_id: str, code: str | None, status: str) -> None:
    await pool.execute(
        "INSERT INTO retailcrm_user_statuses (enterprise_number, user_id, code, status) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (enterprise_number, user_id) DO UPDATE SET code = COALESCE(EXCLUDED.code,"
        " retailcrm_user_statuses.code), status = EXCLUDED.status, changed_at = now()",
        enterprise,
        user_id,
        code,
        status,
    )


@dataclass(frozen=True, slots=True)
class UserStatus:
    user_id: str
    code: str | None
    status: str
    changed_at: datetime


async def user_statuses(pool: Pool, enterprise: str) -> list[UserStatus]:
    rows = await pool.fetch(
        "SELECT user_id, code, status, changed_at FROM retailcrm_user_statuses WHERE enterprise_number = $1"
        " ORDER BY user_id::numeric",
        enterprise,
    )
    return [UserStatus(r["user_id"], r["code"], r["status"], r["changed_at"]) for r in rows]


async def log_exchange(
    pool: Pool,
    enterprise: str,
    event_type: str,
    request: dict[str, Any],
    response: dict[str, Any],
    ok: bool,
    error: str | None = None,
    http_status: int | None = None,
    duration_ms: float | None = None,
) -> None:
    """One row of integration_logs; `request`/`response` must already be masked."""
    await pool.execute(
        "INSERT INTO integration_logs (enterprise_number, integration_type, event_type, request_data,"
        " response_data, status, error_message, http_status, duration_ms) VALUES ($1, $2, $3, $4, $5, $6, $7,"
        " $8, $9)",
        enterprise,
        CRM,
        event_type,
        request,
        response,
        "success" if ok else "error",
        error,
        http_status,
        duration_ms,
    )
