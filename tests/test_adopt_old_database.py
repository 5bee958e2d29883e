"""`pbx-agent migrate` on the database of the platform the agent replaces (tests/old_platform.py): the agent's
tables and columns are added, nothing of the platform's is dropped, renamed, retyped or rewritten, a second run
changes nothing, and the agent starts on it with every enterprise's records active as they are."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from agent import cli
from agent.config.sections import Config
from agent.store import migrate as migrations
from tests import old_platform
from tests.crm_setup import running


async def test_migrate_adopts_the_old_database_and_says_what_it_did(old_dsn: str) -> None:
    conn = await asyncpg.connect(old_dsn)
    try:
        columns = await old_platform.old_columns(conn)
        rows = await old_platform.dump(conn, columns)
        said: dict[str, list[str]] = {}

        def report(version: str, changes: list[str]) -> None:
            said[version] = changes

        applied = await migrations.apply(conn, report)
        assert applied == [m.version for m in migrations.available()]
        assert list(said) == applied
        lines = [line for changes in said.values() for line in changes]
        assert not [line for line in lines if line.startswith("removed")]
        # the old tables are adopted: only the agent's columns are added to them, none of theirs is touched
        assert "added column enterprises.updated_at timestamp with time zone" in said["0001_initial"]
        assert "added column integration_logs.duration_ms double precision" in said["0001_initial"]
        assert "added column user_internal_phones.display_name text" in said["0001_initial"]
        assert "added index enterprises_number_unique on enterprises" not in lines  # number was unique already
        assert not [line for line in lines if line.startswith("added table") and line.split()[2] in columns]
        assert "added table amocrm_tokens" in said["0004_amocrm_tokens"]
        assert await old_platform.old_columns(conn, only=columns) == columns  # same types, defaults, nullability
        assert await old_platform.dump(conn, columns) == rows

        before = await migrations.catalogue(conn)
        assert await migrations.apply(conn, report) == []
        assert await migrations.catalogue(conn) == before
        assert await old_platform.dump(conn, columns) == rows
    finally:
        await conn.close()


async def test_number_without_a_unique_index_gets_one(old_dsn: str) -> None:
    """A platform whose enterprises are keyed by id only: the agent's foreign keys need number to be unique."""
    conn = await asyncpg.connect(old_dsn)
    try:
        await conn.execute("ALTER TABLE enterprises DROP CONSTRAINT enterprises_number_key")
        said: dict[str, list[str]] = {}
        await migrations.apply(conn, lambda version, changes: said.__setitem__(version, changes))
        assert "added index enterprises_number_unique on enterprises" in said["0001_initial"]
    finally:
        await conn.close()


async def test_the_agent_starts_on_it_and_every_record_is_active(
    old_dsn: str, make_config: Callable[..., Config]
) -> None:
    conn = await asyncpg.connect(old_dsn)
    try:
        columns = await old_platform.old_columns(conn)
        rows = await old_platform.dump(conn, columns)
    finally:
        await conn.close()
    async with running(make_config(old_dsn)) as agent:
        integrations = agent.parts.integrations
        active: dict[str, Any] = {n: await integrations.enabled(n) for n in old_platform.RECORDS}
        assert set(active["0367"]) == {"retailcrm", "amocrm"}
        assert active["0367"]["amocrm"].settings.host == "https://julaycompany.amocrm.ru"
        tokens = await agent.parts.pool.fetchrow("SELECT * FROM amocrm_tokens WHERE enterprise_number = '0367'")
        assert tokens is not None
        assert tokens["status"] == "connected" and tokens["refresh_token"].startswith("enc:v1:")
        assert tokens["expires_at"].year == 2031
        rc = active["0367"]["retailcrm"].settings
        assert rc.domain == "https://evgenybaevski.retailcrm.ru" and dict(rc.user_extensions) == {
            "19": "150",
            "18": "151",
        }
        old = active["0201"]["retailcrm"].settings
        assert old.domain == "https://example.retailcrm.ru" and old.code == "vochi-asterisk"
        assert dict(old.user_extensions) == {"16": "151", "18": "152"}
        assert "retailcrm" not in active["0105"]  # switched off ("false"), read without error
        assert active["0999"] == {} and active["0400"] == {} and active["0500"] == {}
    conn = await asyncpg.connect(old_dsn)
    try:
        assert await old_platform.dump(conn, columns) == rows  # the agent ran and changed none of it
    finally:
        await conn.close()


def test_the_command_says_what_each_migration_did(
    old_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "agent.toml"
    cfg.write_text(f'[agent]\nstate_dir = "state"\n[database]\ndsn = "{old_dsn}"\n')
    assert cli.main(["migrate", "-c", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "0001_initial:\n" in out and "  added column enterprises.updated_at" in out
    assert "  added table deliveries" in out and "removed" not in out
    assert cli.main(["migrate", "-c", str(cfg)]) == 0
    assert capsys.readouterr().out.strip() == "applied 0 migration(s)"


@pytest.mark.parametrize("migrated", [False, True])
def test_check_legacy_lists_each_enterprise_and_what_is_unusable(
    old_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], migrated: bool
) -> None:
    """Before the cut-over (the old database as it is) and after it; read only, secrets never printed."""
    cfg = tmp_path / "agent.toml"
    cfg.write_text(f'[agent]\nstate_dir = "state"\n[database]\ndsn = "{old_dsn}"\n')
    if migrated:
        assert cli.main(["migrate", "-c", str(cfg)]) == 0
        capsys.readouterr()
    assert cli.main(["check-legacy", "-c", str(cfg)]) == 1  # 0999 has no API key
    out = capsys.readouterr().out
    blocks = {b.split()[0]: b for b in ("\n" + out).split("\n0")[1:]}
    assert set(blocks) == {n[1:] for n in old_platform.RECORDS}
    assert "retailcrm: UNUSABLE: retailcrm.api_key: required" in blocks["999"] and "UNUSABLE RECORD" in blocks["999"]
    assert "retailcrm: ok: enabled; written by the old system" in blocks["201"]
    assert "retailcrm: ok: disabled" in blocks["105"]
    assert "no time zone: Europe/Moscow (default)" in blocks["367"]
    assert "no CRM configured" in blocks["400"] and "no CRM configured" in blocks["500"]
    assert "6 enterprise(s), 1 with an unusable record" in out
    for secret in (old_platform.RC_KEY, old_platform.RC_KEY[::-1], old_platform.AMO_ACCESS, old_platform.AMO_SECRET):
        assert secret not in out
