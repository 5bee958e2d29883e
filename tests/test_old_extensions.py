"""The agent's extension list on the platform's shared `user_internal_phones` (tests/old_platform.py): a row
carries columns other services read (`id`, `user_id`, `password`, `created_at`), so saving the list through the
agent must keep them on every extension it keeps, and touch no other enterprise's rows."""

from __future__ import annotations

import asyncpg
import pytest

from agent.store import database, extensions
from agent.store.extensions import Extension

ROWS = "SELECT id, user_id, phone_number, password, enterprise_number, created_at FROM user_internal_phones"


async def _rows(conn: asyncpg.Connection, where: str = "") -> dict[tuple[str, str], tuple[object, ...]]:
    return {
        (r["enterprise_number"], r["phone_number"]): tuple(r.values())
        for r in await conn.fetch(ROWS + where + " ORDER BY id")
    }


async def test_saving_the_list_keeps_the_platform_columns(old_migrated: str) -> None:
    conn = await asyncpg.connect(old_migrated)
    pool = await database.create_pool(old_migrated, 2, name="pbx-agent-test")
    try:
        before = await _rows(conn)
        # 150 renamed, 151 kept as it is, 152 taken away
        await extensions.replace(pool, "0367", [Extension("150", "Джулай Джуновый"), Extension("151", "")])
        after = await _rows(conn)
        assert after[("0367", "150")] == before[("0367", "150")]  # same id, user_id, password, created_at
        assert after[("0367", "151")] == before[("0367", "151")]
        assert ("0367", "152") not in after
        assert after[("0201", "151")] == before[("0201", "151")]  # another enterprise's row: untouched
        assert [(e.extension, e.display_name) for e in await extensions.list_for(pool, "0367")] == [
            ("150", "Джулай Джуновый"),
            ("151", ""),
        ]
    finally:
        await pool.close()
        await conn.close()


async def test_a_new_extension_the_table_cannot_take_changes_nothing(old_migrated: str) -> None:
    """The platform's rows need a SIP `password` the agent does not have: a clear refusal, and no row lost."""
    conn = await asyncpg.connect(old_migrated)
    pool = await database.create_pool(old_migrated, 2, name="pbx-agent-test")
    try:
        before = await _rows(conn)
        with pytest.raises(extensions.InvalidExtensions, match="password"):
            await extensions.replace(pool, "0367", [Extension("150", "Renamed"), Extension("160", "New")])
        assert await _rows(conn) == before
        assert {e.display_name for e in await extensions.list_for(pool, "0367")} == {""}
    finally:
        await pool.close()
        await conn.close()
