"""Helpers for the admin-site tests: sign-in links, a cookie-keeping client, sample calls and logs."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from admin.auth import LinkSigner
from agent.app import Agent
from agent.store.database import Pool
from agent.store.secretbox import load_or_create_secret

CSRF_RE = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')


def links(agent: Agent) -> LinkSigner:
    return LinkSigner(load_or_create_secret(agent.config.agent.state_dir))


def base(agent: Agent) -> str:
    return f"http://127.0.0.1:{agent.parts.http_port}"


def link(agent: Agent, enterprise: str | None = None, role: str = "admin") -> str:
    return f"{base(agent)}/admin/login?token={links(agent).issue(enterprise, role)}"


@asynccontextmanager
async def client(
    agent: Agent, enterprise: str | None = None, role: str = "admin", headers: dict[str, str] | None = None
) -> AsyncIterator[aiohttp.ClientSession]:
    """A client signed in by a fresh link (or not signed in, with enterprise='-')."""
    async with aiohttp.ClientSession(
        cookie_jar=aiohttp.CookieJar(unsafe=True), headers=headers or {"Accept-Language": "en"}
    ) as http:
        if enterprise != "-":
            async with http.get(link(agent, enterprise, role)) as resp:
                assert resp.status == 200, await resp.text()
        yield http


async def csrf(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(url) as resp:
        found = CSRF_RE.search(await resp.text())
        assert found, "no csrf token on the page"
        return found.group(1)


async def add_calls(pool: Pool, enterprise: str, n: int, start: datetime | None = None) -> list[str]:
    """n calls, one a minute back from `start`, ids 'c<i>': a third each in/out/internal, every 4th missed."""
    start = start or datetime.now(UTC)
    rows: list[tuple[Any, ...]] = []
    for i in range(n):
        direction = ("in", "out", "internal")[i % 3]
        result = "no_answer" if i % 4 == 0 else "answered"
        ended = start - timedelta(minutes=i)
        rows.append(
            (
                f"c{i}",
                enterprise,
                direction,
                f"+37529{i:07d}",
                [str(150 + i % 3)],
                None if result != "answered" else str(150 + i % 3),
                result,
                ended - timedelta(minutes=1),
                ended,
            )
        )
    await pool.executemany(
        "INSERT INTO calls (call_id, enterprise_number, direction, phone, extensions, answered_by, result,"
        " started_at, ended_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        rows,
    )
    return [r[0] for r in rows]
