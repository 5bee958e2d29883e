"""The agent as a process: embedded PostgreSQL start/stop, SIGTERM, kill -9 recovery, systemd notify."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from agent.life.supervisor import Supervisor
from agent.store import embedded as pgembed
from tests.agent_process import alive, free_port, output, postmaster_pid, start, wait_healthy, write_config
from tests.fakes.ami import FakeAmi
from tests.recordings import recordings_dir


def test_sigterm_stops_gracefully_and_stops_the_database(agent_dir: Path, agent_env: dict[str, str]) -> None:
    port = free_port()
    proc = start(write_config(agent_dir, port), agent_env)
    try:
        body = wait_healthy(port, proc)
        assert body["status"] == "degraded"
        components: dict[str, dict[str, object]] = body["components"]  # type: ignore[assignment]
        assert components["database"]["status"] == "ok"
        assert components["pbx:office"]["connected"] is False
        pg = postmaster_pid(agent_dir)
        assert pg is not None and alive(pg)
        assert oct((agent_dir / "state" / "secret.key").stat().st_mode & 0o777) == "0o600"
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert time.monotonic() - began < 10
        assert not alive(pg)
        log = output(agent_dir)
        assert "ami-secret-value" not in log
        assert "embedded PostgreSQL stopped" in log
    finally:
        proc.kill()
        proc.wait()


def test_recovers_after_kill_9(agent_dir: Path, agent_env: dict[str, str]) -> None:
    port = free_port()
    cfg = write_config(agent_dir, port)
    first = start(cfg, agent_env)
    wait_healthy(port, first)
    first.kill()  # SIGKILL: the embedded server is orphaned and its postmaster.pid stays
    first.wait()
    orphan = postmaster_pid(agent_dir)
    assert orphan is not None and alive(orphan)
    second = start(cfg, agent_env)
    try:
        assert wait_healthy(port, second)["status"] == "degraded"
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=15) == 0
    finally:
        second.kill()
        second.wait()


def test_recovers_when_agent_and_database_were_both_killed(agent_dir: Path, agent_env: dict[str, str]) -> None:
    port = free_port()
    cfg = write_config(agent_dir, port)
    first = start(cfg, agent_env)
    wait_healthy(port, first)
    pg = postmaster_pid(agent_dir)
    assert pg is not None
    first.kill()
    first.wait()
    os.kill(pg, signal.SIGKILL)  # stale postmaster.pid, leftover shared memory
    deadline = time.monotonic() + 10
    while alive(pg) and time.monotonic() < deadline:
        time.sleep(0.05)
    second = start(cfg, agent_env)
    try:
        assert wait_healthy(port, second)["status"] == "degraded"
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=15)


def _notifications(receiver: socket.socket) -> tuple[int, list[str]]:
    """One datagram: the sender's PID (from SCM_CREDENTIALS, as systemd reads it) and its lines."""
    creds = struct.calcsize("3i")
    data, ancillary, _flags, _addr = receiver.recvmsg(4096, socket.CMSG_SPACE(creds))
    sender = next(
        struct.unpack("3i", cdata[:creds])[0]
        for level, kind, cdata in ancillary
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS
    )
    return sender, data.decode().splitlines()


def test_systemd_notify_ready_watchdog_stopping(agent_dir: Path, agent_env: dict[str, str]) -> None:
    port = free_port()
    sock_path = agent_dir / "notify.sock"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    receiver.bind(str(sock_path))
    os.chmod(sock_path, 0o777)  # as systemd's own socket: any process of the unit may send
    receiver.settimeout(60)
    env = {**agent_env, "NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "400000"}
    proc = start(write_config(agent_dir, port), env)
    senders: set[int] = set()

    def receive_until(wanted: str) -> list[str]:
        lines: list[str] = []
        while wanted not in lines:
            sender, got = _notifications(receiver)
            senders.add(sender)
            lines.extend(got)
        return lines

    try:
        receive_until("READY=1")
        # READY=1 only once HTTP answers: healthy at the first request, no waiting
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
            assert response.status == 200
        pings = 0
        while pings < 2:
            sender, got = _notifications(receiver)
            senders.add(sender)
            pings += got.count("WATCHDOG=1")
        proc.send_signal(signal.SIGTERM)
        receive_until("STOPPING=1")
        assert proc.wait(timeout=15) == 0
        # NotifyAccess=main: a message from the embedded PostgreSQL (it speaks sd_notify too) is refused
        assert senders == {proc.pid}
    finally:
        receiver.close()
        proc.kill()
        proc.wait()


def test_status_follows_a_pbx_link_within_seconds(agent_dir: Path, agent_env: dict[str, str]) -> None:
    """`systemctl status` says a PBX connected soon after it did, not at the next 10 s refresh."""
    fake_loop = asyncio.new_event_loop()
    thread = threading.Thread(target=fake_loop.run_forever, daemon=True)
    thread.start()
    fake = FakeAmi(recordings_dir() / "a_incoming_answered.ami", username="agent", secret="ami-secret-value")
    asyncio.run_coroutine_threadsafe(fake.start(), fake_loop).result(10)
    cfg = write_config(agent_dir, free_port())
    cfg.write_text(re.sub(r"port = \d+\n$", f"port = {fake.port}\n", cfg.read_text()))
    sock_path = agent_dir / "notify.sock"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(sock_path))
    receiver.settimeout(60)
    proc = start(cfg, {**agent_env, "NOTIFY_SOCKET": str(sock_path)})
    try:
        lines: list[str] = []
        while "READY=1" not in lines:
            lines = receiver.recv(4096).decode().splitlines()
        ready_at = time.monotonic()
        status = next(line for line in lines if line.startswith("STATUS="))
        if status.startswith("STATUS=0 PBX connected"):  # the link came up after READY=1
            receiver.settimeout(5)
            while not status.startswith("STATUS=1 PBX connected of 1"):
                status = next(
                    (line for line in receiver.recv(4096).decode().splitlines() if line.startswith("STATUS=")), status
                )
            assert time.monotonic() - ready_at < 5
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        receiver.close()
        proc.kill()
        proc.wait()
        asyncio.run_coroutine_threadsafe(fake.stop(), fake_loop).result(10)
        fake_loop.call_soon_threadsafe(fake_loop.stop)
        thread.join(5)
        fake_loop.close()


def test_no_server_binaries_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("agent.store.embedded.shutil.which", lambda _name: None)
    monkeypatch.setattr("agent.store.embedded.glob.glob", lambda _pattern: [])
    with pytest.raises(pgembed.EmbeddedPgError) as info:
        pgembed.find_binaries()
    assert "apt-get install postgresql" in str(info.value) and "[database] dsn" in str(info.value)


async def test_supervisor_restarts_a_crashed_component() -> None:
    runs = 0
    third_run = asyncio.Event()

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs < 3:
            raise RuntimeError("boom")
        third_run.set()
        await asyncio.Event().wait()

    supervisor = Supervisor(backoff_base=0.01)
    supervisor.start("flaky", flaky)
    await asyncio.wait_for(third_run.wait(), 5)
    assert supervisor.restarts["flaky"] == 2
    await supervisor.stop()


def test_a_second_agent_on_the_same_state_dir_or_port_exits_2(agent_dir: Path, agent_env: dict[str, str]) -> None:
    port = free_port()
    cfg = write_config(agent_dir, port)
    first = start(cfg, agent_env)
    try:
        wait_healthy(port, first)
        other_dir = agent_dir / "other"
        other_dir.mkdir()
        same_state = other_dir / "same-state.toml"
        same_state.write_text(
            cfg.read_text()
            .replace('state_dir = "state"', f'state_dir = "{agent_dir}/state"')
            .replace(f"127.0.0.1:{port}", f"127.0.0.1:{free_port()}")
        )
        second = subprocess.run(
            [sys.executable, "-m", "agent", "run", "-c", str(same_state)],
            env=agent_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 2
        assert f"another pbx-agent (PID {first.pid}) is running on state_dir" in second.stdout + second.stderr
        same_port = other_dir / "same-port.toml"
        # its own state dir (relative to it) and AGI port, the same HTTP port
        same_port.write_text(
            re.sub(r'\[agi\]\nlisten = "127.0.0.1:\d+"', f'[agi]\nlisten = "127.0.0.1:{free_port()}"', cfg.read_text())
        )
        third = subprocess.run(
            [sys.executable, "-m", "agent", "run", "-c", str(same_port)],
            env=agent_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert third.returncode == 2
        assert f"cannot listen on [http] listen 127.0.0.1:{port}" in third.stdout + third.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=15)
