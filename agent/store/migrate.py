"""Plain SQL migrations, applied in file-name order, each once, recorded in `schema_migrations`.

Each one says what it did (tables, columns, indexes and constraints it added, read from the catalogue before
and after), so that on a database other services share the operator sees that nothing of theirs changed."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

log = logging.getLogger(__name__)

# Serialises agents that start at the same time against one database.
_LOCK_KEY = 0x70627861  # "pbxa"


@dataclass(frozen=True, slots=True)
class Migration:
    version: str
    sql: str


def available() -> list[Migration]:
    folder = resources.files("agent.store") / "migrations"
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [Migration(version=f.name.removesuffix(".sql"), sql=f.read_text(encoding="utf-8")) for f in files]


Conn: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"
Report = Callable[[str, list[str]], None]  # (version, what it changed)

_CATALOGUE = """
SELECT 'table ' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')
UNION ALL
SELECT 'column ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'index ' || i.relname || ' on ' || t.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
  JOIN pg_class t ON t.oid = x.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace
 WHERE n.nspname = current_schema()
UNION ALL
SELECT 'constraint ' || co.conname || ' on ' || t.relname FROM pg_constraint co JOIN pg_class t ON t.oid = co.conrelid
  JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = current_schema()
"""


async def catalogue(conn: Conn) -> set[str]:
    """The schema's tables, columns (with their types), indexes and constraints, one line each."""
    return {r[0] for r in await conn.fetch(_CATALOGUE)}


def changes(before: set[str], after: set[str]) -> list[str]:
    """What a migration did, as lines: `added ...`, and (never expected) `removed ...`."""
    return [f"added {x}" for x in sorted(after - before)] + [f"removed {x}" for x in sorted(before - after)]


async def apply(conn: Conn, report: Report | None = None) -> list[str]:
    """Apply what is missing; return the versions applied now. Each file runs in its own transaction;
    `report(version, changes)` hears what each one changed in the schema."""
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        applied: list[str] = []
        for migration in available():
            if migration.version in done:
                continue
            async with conn.transaction():
                before = await catalogue(conn)
                await conn.execute(migration.sql)
                await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", migration.version)
                changed = changes(before, await catalogue(conn))
            log.info("applied migration %s", migration.version)
            if report is not None:
                report(migration.version, changed)
            applied.append(migration.version)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
