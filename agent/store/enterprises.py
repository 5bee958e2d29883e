"""Enterprises and their per-CRM settings in `enterprises.integrations_config`, secrets encrypted at rest.

Every change sends `NOTIFY integrations_config, '<number>'` in the same transaction, so every agent on
the database drops its cached copy when (and only when) the change is committed.
"""

from __future__ import annotations

import copy
from typing import Any

import asyncpg

from agent.life.masking import mask
from agent.store.database import Pool
from agent.store.secretbox import SecretBox, is_encrypted, looks_masked

NOTIFY_CHANNEL = "integrations_config"  # connectors.base.CONFIG_CHANGED names the same channel


# An enterprise's CRM records and its time zone (its routing rules' explicit one), for a record that has none.
CONFIG_AND_TIMEZONE = (
    "SELECT e.integrations_config, (SELECT r.rules ->> 'timezone' FROM routing_rules r"
    " WHERE r.enterprise_number = e.number) AS timezone FROM enterprises e WHERE e.number = $1"
)


class NotFound(Exception):
    pass


# Enterprise-wide settings (enterprises.settings) and their defaults.
SETTINGS_DEFAULTS: dict[str, Any] = {"redirect_when_busy": False}


async def get(pool: Pool, number: str) -> dict[str, Any] | None:
    row = await pool.fetchrow(
        "SELECT number, name, integrations_config, settings FROM enterprises WHERE number = $1", number
    )
    if not row:
        return None
    out = dict(row)
    out["settings"] = {**SETTINGS_DEFAULTS, **(out["settings"] or {})}
    return out


async def put(pool: Pool, number: str, name: str, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Create or rename an enterprise; `settings` (when given) replaces the enterprise-wide settings."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "INSERT INTO enterprises (number, name, settings) VALUES ($1, $2, COALESCE($3::jsonb, '{}')) "
            "ON CONFLICT (number) DO UPDATE SET name = EXCLUDED.name, "
            "settings = COALESCE($3::jsonb, enterprises.settings), updated_at = now() "
            "RETURNING number, name, integrations_config, settings",
            number,
            name,
            settings,
        )
        await conn.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, number)
    assert row is not None
    return dict(row)


async def timezone_of(pool: Pool, number: str) -> str | None:
    """The enterprise's own time zone, if it has one (a CRM record without a time zone takes it)."""
    row = await pool.fetchrow(CONFIG_AND_TIMEZONE, number)
    return row["timezone"] if row is not None else None


async def redirect_when_busy(pool: Pool, number: str) -> bool:
    value = await pool.fetchval("SELECT settings -> 'redirect_when_busy' FROM enterprises WHERE number = $1", number)
    return bool(value) if isinstance(value, bool) else bool(SETTINGS_DEFAULTS["redirect_when_busy"])


async def get_integration(pool: Pool, number: str, crm: str) -> dict[str, Any] | None:
    """The stored entry (secrets still encrypted), or None when not configured."""
    value = await pool.fetchval("SELECT integrations_config -> $2 FROM enterprises WHERE number = $1", number, crm)
    return value if isinstance(value, dict) else None


async def put_integration(
    pool: Pool, box: SecretBox, number: str, crm: str, settings: dict[str, Any]
) -> dict[str, Any]:
    """Replace one CRM's entry. A secret sent back masked keeps the stored secret. Returns the stored entry."""
    async with pool.acquire() as conn, conn.transaction():
        current = await conn.fetchval(
            "SELECT integrations_config -> $2 FROM enterprises WHERE number = $1 FOR UPDATE", number, crm
        )
        exists = await conn.fetchval("SELECT 1 FROM enterprises WHERE number = $1", number)
        if not exists:
            raise NotFound(number)
        stored = encrypt_secrets(box, crm, settings, current if isinstance(current, dict) else {})
        await conn.execute(
            "UPDATE enterprises SET integrations_config ="
            " jsonb_set(COALESCE(integrations_config, '{}'), ARRAY[$2::text], $3::jsonb),"
            " updated_at = now() WHERE number = $1",
            number,
            crm,
            stored,
        )
        await conn.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, number)
    return stored


async def delete_integration(pool: Pool, number: str, crm: str) -> bool:
    """Remove one CRM's entry (NOTIFY); False when there was none."""
    async with pool.acquire() as conn, conn.transaction():
        status = await conn.execute(
            "UPDATE enterprises SET integrations_config = integrations_config - $2, updated_at = now()"
            " WHERE number = $1 AND integrations_config ? $2",
            number,
            crm,
        )
        await conn.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, number)
    return bool(status.endswith(" 1"))


def encrypt_secrets(box: SecretBox, crm: str, settings: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(settings)
    for key in box.fields(crm):
        value = out.get(key)
        if not isinstance(value, str) or not value:
            continue
        if looks_masked(value) or is_encrypted(value):
            previous = current.get(key)
            if isinstance(previous, str) and previous:
                out[key] = previous
            else:
                out.pop(key)
        else:
            out[key] = box.encrypt(value)
    return out


def unmask(box: SecretBox, crm: str, submitted: dict[str, Any], stored: dict[str, Any] | None) -> dict[str, Any]:
    """A submitted entry with each secret that came back masked replaced by the stored secret in clear."""
    out = copy.deepcopy(submitted)
    current = box.decrypted(crm, stored or {})
    for key in box.fields(crm):
        value = out.get(key)
        if isinstance(value, str) and looks_masked(value):
            if key in current:
                out[key] = current[key]
            else:
                out.pop(key)
    return out


def masked(box: SecretBox, crm: str, stored: dict[str, Any]) -> dict[str, Any]:
    """For API answers and pages: every secret as `abcd…wxyz`."""
    out = copy.deepcopy(stored)
    for key in box.fields(crm):
        value = out.get(key)
        if isinstance(value, str) and value:
            try:
                out[key] = mask(box.decrypt(value))
            except ValueError:
                out[key] = "…"
    return out


# -- rename and remove (the Instance page) -----------------------------------------------------------------

REMOVED = "removed"  # enterprises.settings key: removed with its data kept (hidden from the lists, nothing deleted)
NOT_REMOVED = f"NOT coalesce((settings->>'{REMOVED}')::boolean, false)"
# the agent's own per-enterprise rows, deleted with "remove data" (then the enterprises row itself); children first
AGENT_TABLES = (
    "deliveries",
    "calls",
    "integration_logs",
    "user_internal_phones",
    "retailcrm_user_statuses",
    "retailcrm_modules",
    "amocrm_missed_tasks",
    "retailcrm_missed_tasks",
    "amocrm_call_steps",
    "amocrm_oauth_states",
    "amocrm_tokens",
    "routing_rules",
    "admin_sessions",
    "api_tokens",
    "admin_links_issued",
    "admin_passwords",
    "admin_password_failures",
)


class StillReferenced(Exception):
    """Another service's rows still refer to the enterprise: its data was not removed (nothing changed)."""


async def rename(pool: Pool, number: str, name: str) -> bool:
    """Only `name` changes (on the platform's table every other column stays as it is); NOTIFY. False: no such one."""
    async with pool.acquire() as conn, conn.transaction():
        status = await conn.execute(
            "UPDATE enterprises SET name = $2, updated_at = now() WHERE number = $1", number, name
        )
        await conn.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, number)
    return status.endswith(" 1")


async def remove(pool: Pool, number: str, *, with_data: bool) -> bool:
    """Without data: the enterprise is marked removed in the agent's own `settings` column and leaves every list;
    its row, calls, logs and settings stay, so other services reading the table see no change and adding the number
    again brings it back. With data: the agent's tables lose its rows, then the enterprises row goes (one
    transaction); a row of another service that still refers to it raises StillReferenced and changes nothing."""
    async with pool.acquire() as conn, conn.transaction():
        if not with_data:
            status = await conn.execute(
                "UPDATE enterprises SET settings = settings || jsonb_build_object($2::text, true), updated_at = now()"
                " WHERE number = $1",
                number,
                REMOVED,
            )
        else:
            present = {
                r["table_name"]
                for r in await conn.fetch(
                    "SELECT table_name FROM information_schema.columns WHERE table_schema = current_schema()"
                    " AND column_name = 'enterprise_number'"
                )
            }
            try:
                for table in (t for t in AGENT_TABLES if t in present):
                    await conn.execute(f"DELETE FROM {table} WHERE enterprise_number = $1", number)
                status = await conn.execute("DELETE FROM enterprises WHERE number = $1", number)
            except asyncpg.ForeignKeyViolationError as exc:
                raise StillReferenced(exc.table_name or "") from None
        await conn.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, number)
    return status.endswith(" 1")


async def restore(pool: Pool, number: str, name: str) -> None:
    """An enterprise removed with its data kept, back in the lists under `name`."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "UPDATE enterprises SET name = $2, settings = settings - $3::text, updated_at = now() WHERE number = $1",
            number,
            name,
            REMOVED,
        )
        await conn.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, number)
