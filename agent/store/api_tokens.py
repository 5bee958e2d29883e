"""`api_tokens`: the API tokens `pbx-agent token` issued, so that each can be listed and revoked alone."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from agent.store.database import Pool

RECORD = (
    "INSERT INTO api_tokens (jti, enterprise_number, label, issued_at, expires_at) VALUES ($1, $2, $3, $4, $5)"
    " ON CONFLICT (jti) DO NOTHING"
)


async def record(
    pool: Pool, jti: str, enterprise: str | None, label: str, issued_at: datetime, expires_at: datetime
) -> None:
    await pool.execute(RECORD, jti, enterprise, label, issued_at, expires_at)


async def revoked(pool: Pool, jti: str) -> bool:
    return bool(await pool.fetchval("SELECT revoked_at IS NOT NULL FROM api_tokens WHERE jti = $1", jti))


async def revoke(pool: Pool, jti: str) -> bool:
    """True when a token that was valid is revoked now (False: unknown, or revoked before)."""
    done = await pool.fetchval(
        "UPDATE api_tokens SET revoked_at = now() WHERE jti = $1 AND revoked_at IS NULL RETURNING jti", jti
    )
    return done is not None


async def listing(pool: Pool) -> list[dict[str, Any]]:
    """Every recorded token, newest first, without the token itself (it is never stored)."""
    rows = await pool.fetch(
        "SELECT jti, enterprise_number, label, issued_at, expires_at, revoked_at, expires_at < now() AS expired"
        " FROM api_tokens ORDER BY issued_at DESC, jti"
    )
    return [
        {
            "id": r["jti"],
            "enterprise": r["enterprise_number"],
            "label": r["label"],
            "issued_at": r["issued_at"].isoformat(),
            "expires_at": r["expires_at"].isoformat(),
            "revoked_at": r["revoked_at"].isoformat() if r["revoked_at"] else None,
            "state": "revoked" if r["revoked_at"] else "expired" if r["expired"] else "valid",
        }
        for r in rows
    ]
