"""agent.store.retention on a real PostgreSQL: what goes, what stays, batches, and one pruner at a time."""

from __future__ import annotations

import asyncio
import logging
from typing import cast

import pytest

from agent.app import Agent
from agent.config.sections import RetentionSection
from agent.store import database
from agent.store.retention import LOCK_CLASS, LOCK_ID, Pruner, next_delay
from agent.web.health import ComponentHealth
from agent.web.metrics import Metrics

STATUSES = ("pending", "in_progress", "done", "failed", "dead", "expired")
FINAL = {"done", "failed", "dead", "expired"}


async def add_log(pool: database.Pool, days_ago: float) -> int:
    return int(
        await pool.fetchval(
            "INSERT INTO integration_logs (enterprise_number, integration_type, event_type, status, request_data,"
            " created_at) VALUES ('0001', 'retailcrm', 'calls_upload', 'success', '{\"a\": 1}',"
            " now() - $1::float8 * interval '1 day') RETURNING id",
            days_ago,
        )
    )


async def add_delivery(pool: database.Pool, key: str, status: str, days_ago: float) -> None:
    await pool.execute(
        "INSERT INTO deliveries (idempotency_key, enterprise_number, integration_type, kind, payload, status,"
        " created_at, updated_at) VALUES ($1, '0001', 'amocrm', 'call', '{}', $2,"
        " now() - $3::float8 * interval '1 day', now() - $3::float8 * interval '1 day')",
        key,
        status,
        days_ago,
    )


async def add_steps(pool: database.Pool, key: str) -> None:
    await pool.execute(
        "INSERT INTO amocrm_call_steps (idempotency_key, enterprise_number, steps)"
        " VALUES ($1, '0001', '{\"recorded\": {}}')",
        key,
    )


async def add_call(pool: database.Pool, call_id: str, days_ago: float) -> None:
    await pool.execute(
        "INSERT INTO calls (call_id, enterprise_number, direction, result, ended_at)"
        " VALUES ($1, '0001', 'in', 'answered', now() - $2::float8 * interval '1 day')",
        call_id,
        days_ago,
    )


async def keys(pool: database.Pool, table: str) -> set[str]:
    return {r[0] for r in await pool.fetch(f"SELECT idempotency_key FROM {table}")}


async def count(pool: database.Pool, table: str) -> int:
    return int(await pool.fetchval(f"SELECT count(*) FROM {table}"))


async def test_old_rows_go_new_stay_and_unfinished_deliveries_never(pool: database.Pool) -> None:
    old_log, new_log = await add_log(pool, 31), await add_log(pool, 29)
    for status in STATUSES:
        await add_delivery(pool, f"amocrm:old-{status}:call", status, 400)
        await add_delivery(pool, f"amocrm:new-{status}:call", status, 29)
        await add_steps(pool, f"amocrm:old-{status}:call")
        await add_steps(pool, f"amocrm:new-{status}:call")
    await add_call(pool, "ancient", 3000)
    await pool.execute(
        "INSERT INTO admin_sessions (id_hash, role, expires_at) VALUES ('\\x01', 'admin',"
        " now() - interval '1 minute'), ('\\x02', 'admin', now() + interval '1 hour')"
    )
    await pool.execute(
        "INSERT INTO admin_links_used (jti, expires_at) VALUES"
        " ('old', now() - interval '2 days'), ('recent', now() - interval '1 hour')"
    )
    await pool.execute(
        "INSERT INTO amocrm_oauth_states (nonce, enterprise_number, expires_at) VALUES"
        " ('old', '0001', now() - interval '2 days'), ('recent', '0001', now())"
    )
    metrics = Metrics()

    result = await Pruner(pool, RetentionSection(), metrics).run_once()

    assert [r["id"] for r in await pool.fetch("SELECT id FROM integration_logs")] == [new_log]
    assert old_log != new_log
    kept = {f"amocrm:new-{s}:call" for s in STATUSES} | {"amocrm:old-pending:call", "amocrm:old-in_progress:call"}
    assert await keys(pool, "deliveries") == kept
    assert await keys(pool, "amocrm_call_steps") == kept  # the steps of the deleted deliveries went with them
    assert await count(pool, "calls") == 1  # calls_days = 0 by default: kept
    assert await pool.fetchval("SELECT array_agg(id_hash) FROM admin_sessions") == [b"\x02"]
    assert await pool.fetchval("SELECT array_agg(jti) FROM admin_links_used") == ["recent"]
    assert await pool.fetchval("SELECT array_agg(nonce) FROM amocrm_oauth_states") == ["recent"]
    assert not result.skipped
    assert result.deleted == {
        "integration_logs": 1,
        "deliveries": 4,
        "amocrm_call_steps": 4,
        "admin_sessions": 1,
        "admin_links_used": 1,
        "amocrm_oauth_states": 1,
    }
    for table, n in result.deleted.items():
        assert metrics.registry.get_sample_value("pbx_agent_pruned_rows_total", {"table": table}) == n


async def test_zero_keeps_each_table(pool: database.Pool) -> None:
    await add_log(pool, 500)
    await add_delivery(pool, "amocrm:a:call", "done", 500)
    await add_call(pool, "old", 500)
    await add_call(pool, "new", 1)

    await Pruner(pool, RetentionSection(logs_days=0, deliveries_days=0, calls_days=0)).run_once()
    assert (await count(pool, "integration_logs"), await count(pool, "deliveries"), await count(pool, "calls")) == (
        1,
        1,
        2,
    )

    result = await Pruner(pool, RetentionSection(logs_days=0, deliveries_days=0, calls_days=90)).run_once()
    assert result.deleted == {"calls": 1}
    assert await pool.fetchval("SELECT array_agg(call_id) FROM calls") == ["new"]
    assert (await count(pool, "integration_logs"), await count(pool, "deliveries")) == (1, 1)


async def test_more_rows_than_a_batch(pool: database.Pool) -> None:
    for _ in range(10):
        await add_log(pool, 40)
    await add_log(pool, 1)
    for i in range(7):
        await add_delivery(pool, f"retailcrm:c{i}:upload", "done", 40)
    pauses = 0

    async def pause() -> None:
        nonlocal pauses
        pauses += 1

    result = await Pruner(pool, RetentionSection(), batch=3, between_batches=pause).run_once()

    assert result.deleted == {"integration_logs": 10, "deliveries": 7}
    assert (await count(pool, "integration_logs"), await count(pool, "deliveries")) == (1, 0)
    assert pauses == 3 + 2  # logs: 3, 3, 3, 1; deliveries: 3, 3, 1


async def test_one_pruner_at_a_time(pool: database.Pool) -> None:
    for _ in range(4):
        await add_log(pool, 40)
    first_batch_done, go_on = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        first_batch_done.set()
        await go_on.wait()

    first = asyncio.create_task(Pruner(pool, RetentionSection(), batch=2, between_batches=hold).run_once())
    try:
        await asyncio.wait_for(first_batch_done.wait(), 10)
        second = await Pruner(pool, RetentionSection(), batch=2).run_once()
        assert second.skipped and second.deleted == {}
        assert await count(pool, "integration_logs") == 2  # only the first pruner's first batch is gone
    finally:
        go_on.set()  # a failure above must not leave the first one holding a pool connection
        first_result = await asyncio.wait_for(first, 10)
    assert first_result.deleted == {"integration_logs": 4}
    third = await Pruner(pool, RetentionSection()).run_once()
    assert not third.skipped  # the lock was given back


async def test_lock_held_by_another_session_skips_the_run(pool: database.Pool, db_dsn: str) -> None:
    await add_log(pool, 40)
    other = await database.create_pool(db_dsn, 2, name="other-agent")
    try:
        async with other.acquire() as conn:
            assert await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", LOCK_CLASS, LOCK_ID)
            assert (await Pruner(pool, RetentionSection()).run_once()).skipped
            await conn.execute("SELECT pg_advisory_unlock($1, $2)", LOCK_CLASS, LOCK_ID)
    finally:
        await other.close()
    assert await count(pool, "integration_logs") == 1


async def test_a_delivery_being_retried_is_neither_waited_for_nor_deleted(pool: database.Pool) -> None:
    await add_delivery(pool, "amocrm:busy:call", "dead", 40)
    await add_delivery(pool, "amocrm:idle:call", "dead", 40)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT 1 FROM deliveries WHERE idempotency_key = 'amocrm:busy:call' FOR UPDATE")
        result = await asyncio.wait_for(Pruner(pool, RetentionSection()).run_once(), 10)
        await conn.execute(
            "UPDATE deliveries SET status = 'pending', updated_at = now() WHERE idempotency_key = 'amocrm:busy:call'"
        )
    assert result.deleted == {"deliveries": 1}
    assert await keys(pool, "deliveries") == {"amocrm:busy:call"}


async def test_outcome_in_log_and_health(pool: database.Pool, caplog: pytest.LogCaptureFixture) -> None:
    health = ComponentHealth(critical=False)
    pruner = Pruner(pool, RetentionSection(), Metrics(), health)
    caplog.set_level(logging.INFO, logger="agent.store.retention")

    await pruner.run_reported()
    assert not [r for r in caplog.records if r.name == "agent.store.retention"]  # nothing deleted: nothing said
    assert health.status == "ok" and health.details["last_deleted"] == {}

    await add_log(pool, 40)
    await pruner.run_reported()
    lines = [r.getMessage() for r in caplog.records if r.name == "agent.store.retention"]
    assert len(lines) == 1 and lines[0].startswith("retention: deleted 1 integration_logs in ")
    assert health.details["last_deleted"] == {"integration_logs": 1} and health.details["logs_days"] == 30

    await pool.execute("DROP TABLE integration_logs")  # a run that fails reports, and raises nothing
    assert await pruner.run_reported() is None
    assert cast(str, health.status) == "down" and "integration_logs" in health.details["last_error"]
    assert any(r.levelno == logging.WARNING and "run failed" in r.getMessage() for r in caplog.records)


def test_next_delay_is_within_the_jitter() -> None:
    assert next_delay(3600, 0.1, lambda: 0.0) == pytest.approx(3240)
    assert next_delay(3600, 0.1, lambda: 0.5) == pytest.approx(3600)
    assert next_delay(3600, 0.1, lambda: 0.999999) == pytest.approx(3960, abs=0.01)


async def test_agent_runs_the_pruner(running_agent: Agent) -> None:
    health = running_agent.health.get("retention")
    assert health is not None and not health.critical and health.status == "ok"
    assert health.details["deliveries_days"] == 30 and health.details["next_run_at"] > 0
