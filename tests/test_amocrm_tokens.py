"""amoCRM tokens: code exchange, refresh ahead of expiry and on 401, single flight, and the crash case."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent.store.database import Pool
from connectors.amocrm.stored_tokens import TokenError
from connectors.http import make_client
from tests.amocrm_setup import ENTERPRISE, PUBLIC_URL, bound, configure_amocrm, connect_tokens
from tests.fakes.amocrm import FakeAmoCrm


@pytest.fixture
async def fake() -> AsyncIterator[FakeAmoCrm]:
    async with FakeAmoCrm() as amo:
        amo.redirect_uri = PUBLIC_URL + "/amocrm/oauth/callback"
        yield amo


async def test_expired_access_token_is_refreshed_saved_then_used(fake: FakeAmoCrm, pool: Pool, tmp_path: Path) -> None:
    settings = await configure_amocrm(pool, tmp_path, fake)
    connector = bound(pool, tmp_path)
    first = await connect_tokens(connector, fake)
    fake.expire_access_tokens()  # amoCRM says 401 although our clock thinks the token is good
    async with make_client() as http:
        client = connector.client(settings, http)
        account = await client.account(ENTERPRISE)
    assert account["id"] == fake.account_id
    calls = fake.api_requests()
    assert [r.status for r in calls] == [401, 200]
    assert fake.refreshes == 1
    row = await pool.fetchrow("SELECT generation, refresh_started_at, status FROM amocrm_tokens")
    assert row is not None
    assert row["generation"] == first.generation + 1 and row["refresh_started_at"] is None
    assert row["status"] == "connected"
    # the retried request used the new token, which was in the database before it was used
    assert calls[1].headers["Authorization"] != calls[0].headers["Authorization"]
    stored = await pool.fetchval("SELECT access_token FROM amocrm_tokens")
    assert stored.startswith("enc:v1:")
    logged = await pool.fetch("SELECT event_type, status FROM integration_logs ORDER BY id")
    assert [(r["event_type"], r["status"]) for r in logged] == [("token_refresh", "success"), ("account", "success")]


async def test_refresh_ahead_of_expiry_and_single_flight(fake: FakeAmoCrm, pool: Pool, tmp_path: Path) -> None:
    settings = await configure_amocrm(pool, tmp_path, fake)
    connector = bound(pool, tmp_path, refresh_ahead=3600)
    await connect_tokens(connector, fake, expires_in=600)  # within the refresh-ahead window
    async with make_client() as http:
        client = connector.client(settings, http)
        results = await asyncio.gather(*(client.account(ENTERPRISE) for _ in range(10)))
    assert all(r["id"] == fake.account_id for r in results)
    assert fake.refreshes == 1 and fake.revoked_refresh_uses == 0
    assert all(r.status == 200 for r in fake.api_requests())


async def test_two_agents_refresh_once_between_them(fake: FakeAmoCrm, pool: Pool, tmp_path: Path) -> None:
    settings = await configure_amocrm(pool, tmp_path, fake)
    first, second = bound(pool, tmp_path), bound(pool, tmp_path)  # two processes: own caches, own locks
    await connect_tokens(first, fake)
    fake.expire_access_tokens()
    async with make_client() as http:
        a, b = first.client(settings, http), second.client(settings, http)
        await asyncio.gather(*(c.account(ENTERPRISE) for c in (a, b, a, b)))
    assert fake.refreshes == 1 and fake.revoked_refresh_uses == 0


async def test_reused_refresh_token_marks_expired_with_the_reason(fake: FakeAmoCrm, pool: Pool, tmp_path: Path) -> None:
    settings = await configure_amocrm(pool, tmp_path, fake)
    connector = bound(pool, tmp_path)
    tokens = await connect_tokens(connector, fake)
    assert tokens.refresh_token is not None
    fake.refresh[tokens.refresh_token] = False  # someone else used it
    fake.expire_access_tokens()
    async with make_client() as http:
        client = connector.client(settings, http)
        with pytest.raises(Exception, match="Token has been revoked"):
            await client.account(ENTERPRISE)
    row = await pool.fetchrow("SELECT status, reason FROM amocrm_tokens")
    assert row is not None
    assert row["status"] == "expired" and "Reconnect" in row["reason"]


async def test_crash_between_receiving_and_saving_ends_expired_not_looping(
    fake: FakeAmoCrm, pool: Pool, tmp_path: Path
) -> None:
    """amoCRM rotated, we died before saving: the saved refresh token is dead. The next process checks it
    once, marks the connection expired with the reason, and never retries on its own."""
    settings = await configure_amocrm(pool, tmp_path, fake)
    crashing = bound(pool, tmp_path, refresh_lease=0.3)
    await connect_tokens(crashing, fake)
    fake.expire_access_tokens()

    class Crash(Exception):
        pass

    async def die(enterprise: str) -> None:
        raise Crash  # as if kill -9 hit between the answer and the commit

    assert crashing.tokens is not None
    crashing.tokens.before_save = die  # type: ignore[method-assign]
    async with make_client() as http:
        with pytest.raises(Crash):
            await crashing.client(settings, http).account(ENTERPRISE)
        assert fake.refreshes == 1
        marker = await pool.fetchval("SELECT refresh_started_at FROM amocrm_tokens")
        assert marker is not None  # the marker outlives the crash

        restarted = bound(pool, tmp_path, refresh_lease=0.3)
        client = restarted.client(settings, http)
        # within the lease another agent might still be refreshing: the new process waits, then checks once
        with pytest.raises(Exception, match="was never saved"):
            await client.account(ENTERPRISE)
        assert fake.revoked_refresh_uses == 1
        row = await pool.fetchrow("SELECT status, reason, refresh_started_at FROM amocrm_tokens")
        assert row is not None
        assert row["status"] == "expired" and "Reconnect amoCRM" in row["reason"]
        assert row["refresh_started_at"] is None
        # and from now on nothing is sent to amoCRM until an admin reconnects
        before = len(fake.requests)
        for _ in range(3):
            with pytest.raises(Exception, match="expired"):
                await client.account(ENTERPRISE)
        assert len(fake.requests) == before
        # the admin reconnects: everything works again
        await connect_tokens(restarted, fake)
        assert (await client.account(ENTERPRISE))["id"] == fake.account_id


async def test_crash_before_the_request_left_recovers_by_itself(fake: FakeAmoCrm, pool: Pool, tmp_path: Path) -> None:
    settings = await configure_amocrm(pool, tmp_path, fake)
    connector = bound(pool, tmp_path, refresh_lease=0.2)
    await connect_tokens(connector, fake)
    # a marker left by a process that died before sending (the refresh token was never used)
    await pool.execute("UPDATE amocrm_tokens SET refresh_started_at = now(), refresh_owner = 'dead'")
    fake.expire_access_tokens()
    async with make_client() as http:
        account = await connector.client(settings, http).account(ENTERPRISE)
    assert account["id"] == fake.account_id
    assert fake.refreshes == 1 and fake.revoked_refresh_uses == 0
    assert await pool.fetchval("SELECT status FROM amocrm_tokens") == "connected"


async def test_long_lived_token_401_is_final(fake: FakeAmoCrm, pool: Pool, tmp_path: Path) -> None:
    settings = await configure_amocrm(pool, tmp_path, fake)
    connector = bound(pool, tmp_path)
    assert connector.tokens is not None
    token = fake.issue_long_lived()
    await connector.tokens.connect(ENTERPRISE, fake.url, "long_lived", token, None, None)
    fake.revoke_access(token)
    async with make_client() as http:
        with pytest.raises(Exception, match="long-lived"):
            await connector.client(settings, http).account(ENTERPRISE)
    assert fake.refreshes == 0
    row = await pool.fetchrow("SELECT status, reason FROM amocrm_tokens")
    assert row is not None
    assert row["status"] == "expired" and "long-lived" in row["reason"]


async def test_a_refresh_answered_with_an_error_keeps_the_pair(fake: FakeAmoCrm, pool: Pool, tmp_path: Path) -> None:
    settings = await configure_amocrm(pool, tmp_path, fake)
    connector = bound(pool, tmp_path)
    tokens = await connect_tokens(connector, fake)
    assert connector.tokens is not None
    async with make_client() as http:
        fake.fail_next(1, status=503)  # amoCRM answered an error: nothing was issued
        with pytest.raises(TokenError) as info:
            await connector.tokens.refresh(ENTERPRISE, settings, http, seen=tokens, forced=True)
        assert not info.value.final
        row = await pool.fetchrow("SELECT status, refresh_started_at, generation FROM amocrm_tokens")
        assert row is not None
        assert row["status"] == "connected" and row["refresh_started_at"] is None
        await fake.stop()  # connection refused: the request never left
        with pytest.raises(TokenError):
            await connector.tokens.refresh(ENTERPRISE, settings, http, seen=tokens, forced=True)
        assert await pool.fetchval("SELECT refresh_started_at FROM amocrm_tokens") is None
        await fake.start(int(fake.url.rsplit(":", 1)[1]))
        fresh = await connector.tokens.refresh(ENTERPRISE, settings, http, seen=tokens, forced=True)
    assert fresh.generation == tokens.generation + 1
    assert fake.refreshes == 1 and fake.revoked_refresh_uses == 0
