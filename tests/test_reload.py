"""SIGHUP re-reads agent.toml; systemd hears RELOADING=1 / READY=1; journald gets priority prefixes; the PBXs'
recordings sources follow."""

from __future__ import annotations

import json
import signal
import socket
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import aiohttp

from agent.config.sections import Config, PbxSection, RecordingsSource
from tests.agent_process import free_port, output, start, wait_healthy
from tests.rc_agent import started

PBX = '[[pbx]]\nname = "{name}"\nenterprise = "0001"\nusername = "agent"\nsecret = "s3cret-{name}"\nport = {port}\n'


def health(port: int) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as resp:
        body: dict[str, object] = json.loads(resp.read())
        return body


def messages_until(receiver: socket.socket, wanted: str) -> list[str]:
    got: list[str] = []
    while wanted not in got:
        got.extend(receiver.recv(4096).decode().splitlines())
    return got


def test_sighup_reloads_pbx_links_and_refuses_a_broken_file(
    agent_dir: Path,
    agent_env: dict[str, str],
) -> None:
    port = free_port()
    head = (
        f'[agent]\nstate_dir = "state"\n[http]\nlisten = "127.0.0.1:{port}"\n'
        f'[agi]\nlisten = "127.0.0.1:{free_port()}"\n'
    )
    cfg = agent_dir / "agent.toml"
    cfg.write_text(head + PBX.format(name="office", port=free_port()))
    sock_path = agent_dir / "notify.sock"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(sock_path))
    receiver.settimeout(60)
    env = {**agent_env, "NOTIFY_SOCKET": str(sock_path), "JOURNAL_STREAM": "8:12345"}
    proc = start(cfg, env)
    try:
        ready = messages_until(receiver, "READY=1")
        assert any(m.startswith("STATUS=0 PBX connected of 1") for m in ready)
        wait_healthy(port, proc)
        components = health(port)["components"]
        assert isinstance(components, dict) and set(components) >= {"pbx:office", "database"}

        cfg.write_text(head + PBX.format(name="office", port=free_port()) + PBX.format(name="branch", port=free_port()))
        proc.send_signal(signal.SIGHUP)
        got = messages_until(receiver, "READY=1")
        assert "RELOADING=1" in got and got.index("RELOADING=1") < got.index("READY=1")
        deadline = time.monotonic() + 10
        while "pbx:branch" not in health(port)["components"] and time.monotonic() < deadline:  # type: ignore[operator]
            time.sleep(0.05)
        components = health(port)["components"]
        assert isinstance(components, dict) and {"pbx:office", "pbx:branch"} <= set(components)

        cfg.write_text(head.replace('listen = "127.0.0.1', 'listen = "nowhere', 1) + "[agi]\ndeadline_ms = 'fast'\n")
        proc.send_signal(signal.SIGHUP)
        messages_until(receiver, "READY=1")
        time.sleep(0.2)
        components = health(port)["components"]
        assert isinstance(components, dict) and {"pbx:office", "pbx:branch"} <= set(components)  # unchanged
        log = output(agent_dir)
        assert "reload refused: agent.toml:" in log
        assert "s3cret-" not in log
        lines = [line for line in log.splitlines() if line.strip() and not line.startswith(" ")]
        assert lines and all(line[:3] in ("<3>", "<4>", "<6>", "<7>") for line in lines), lines[:5]
        assert "<3>" in log  # the refusal is an error
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        receiver.close()
        proc.kill()
        proc.wait()


NAME = "2026/11/in-375291234567-1795481962.0.wav"


def spool(root: Path, body: bytes) -> str:
    (root / "2026" / "11").mkdir(parents=True)
    (root / NAME).write_bytes(body)
    return str(root)


def pbx_toml(name: str, port: int, recordings: str) -> str:
    return PBX.format(name=name, port=port) + f'recordings = "local:{recordings}"\n'


async def get(url: str | None) -> tuple[int, bytes]:
    assert url is not None
    async with aiohttp.ClientSession() as s, s.get(url) as resp:
        return resp.status, await resp.read()


async def test_reload_brings_the_recordings_sources_along(
    db_dsn: str, make_config: Callable[..., Config], tmp_path: Path
) -> None:
    """A PBX added by reload has its recordings served; a changed root takes effect, for links handed out
    before too; a removed PBX's links are 404."""
    old, new, branch = (spool(tmp_path / d, d.encode() * 100) for d in ("old", "new", "branch"))
    port = free_port()
    office = PbxSection(
        name="office",
        enterprise="0001",
        username="agent",
        secret="s3cret-office",
        port=port,
        recordings=RecordingsSource("local", old),
    )
    async with started(make_config, db_dsn, pbx=(office,)) as agent:
        links = agent.parts.records
        assert links is not None
        before = links.record_url(NAME, pbx="office")
        assert await get(before) == (200, b"old" * 100)
        assert (await get(links.record_url(NAME, pbx="branch")))[0] == 404  # [agent] recordings_dir has none

        agent.config.path.write_text(
            '[agent]\nstate_dir = "state"\n' + pbx_toml("office", port, new) + pbx_toml("branch", free_port(), branch)
        )
        await agent.reload()
        assert await get(links.record_url(NAME, pbx="branch")) == (200, b"branch" * 100)
        assert await get(links.record_url(NAME, pbx="office")) == (200, b"new" * 100)
        assert await get(before) == (200, b"new" * 100)  # a link given out earlier: the PBX's root now
        component = (await agent.health.report())["components"]["recordings"]
        assert component["sources"] == {"office": f"local:{new}", "branch": f"local:{branch}"}

        branch_link = links.record_url(NAME, pbx="branch")
        agent.config.path.write_text('[agent]\nstate_dir = "state"\n' + pbx_toml("office", port, new))
        await agent.reload()
        assert (await get(branch_link))[0] == 404
        assert (await agent.health.report())["components"]["recordings"]["sources"] == {"office": f"local:{new}"}
