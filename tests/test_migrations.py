from __future__ import annotations

import asyncpg

from agent.store import migrate as migrations
from tests.conftest import dbname


async def test_from_empty_then_rerun(pg_cluster, db_dsn: str) -> None:  # type: ignore[no-untyped-def]
    name = "m_" + dbname(db_dsn)
    admin = await asyncpg.connect(pg_cluster.dsn_for("postgres"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        conn = await asyncpg.connect(pg_cluster.dsn_for(name))
        try:
            applied = await migrations.apply(conn)
            assert applied == [m.version for m in migrations.available()]
            tables = {
                r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")
            }
            assert {
                "enterprises",
                "integration_logs",
                "user_internal_phones",
                "deliveries",
                "calls",
                "schema_migrations",
            } <= tables
            assert await migrations.apply(conn) == []
            assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == len(applied)
            cols = {
                r["column_name"]
                for r in await conn.fetch(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = 'integration_logs'"
                )
            }
            assert {
                "id",
                "enterprise_number",
                "integration_type",
                "event_type",
                "request_data",
                "response_data",
                "status",
                "error_message",
                "created_at",
                "delivery_id",
                "delivery_ids",
            } <= cols
            assert (
                await conn.fetchval(
                    "SELECT count(*) FROM information_schema.columns WHERE table_name='deliveries' "
                    "AND column_name = ANY($1)",
                    ["idempotency_key", "payload", "status", "attempts", "next_attempt_at", "last_error"],
                )
                == 6
            )
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()
