"""Watchdog pings come from the event loop itself: while the loop is blocked, systemd hears none."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.app import Agent
from agent.config.sections import Config
from agent.life.sdnotify import Notifier


async def test_no_pings_while_the_loop_is_blocked(
    db_dsn: str, make_config: Callable[..., Config], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sock_path = tmp_path / "notify.sock"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(sock_path))
    receiver.setblocking(False)
    monkeypatch.setenv("WATCHDOG_USEC", "100000")  # a ping every 50 ms
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    agent = Agent(make_config(db_dsn), notifier=Notifier(str(sock_path)))
    task = asyncio.create_task(agent.run())
    try:
        await asyncio.wait_for(agent.ready.wait(), 30)
        await asyncio.sleep(0.3)
        pings: list[float] = []

        def drain() -> None:
            while True:
                try:
                    data = receiver.recv(4096)
                except BlockingIOError:
                    return
                pings.extend(time.monotonic() for line in data.decode().splitlines() if line == "WATCHDOG=1")

        drain()
        assert pings, "no watchdog pings at all"
        pings.clear()
        time.sleep(1.0)  # noqa: ASYNC251 - blocking the event loop is the point: a hung agent
        drain()
        assert len(pings) <= 1, "pings were sent while the loop was blocked"  # at most one queued before
        await asyncio.sleep(0.3)
        drain()
        assert len(pings) >= 3, "pings did not resume with the loop"
    finally:
        agent.stopping.set()
        await asyncio.wait_for(task, 15)
        agent.notifier.close()
        receiver.close()
