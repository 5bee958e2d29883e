"""SIGHUP re-reads agent.toml; systemd hears RELOADING=1 / READY=1; journald gets priority prefixes."""

from __future__ import annotations

import json
import signal
import socket
import time
import urllib.request
from pathlib import Path

from tests.test_lifecycle import agent_dir, free_port, output, start, wait_healthy  # noqa: F401

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


def test_sighup_reloads_pbx_links_and_refuses_a_broken_file(agent_dir: Path,  # noqa: F811
                                                           agent_env: dict[str, str]) -> None:
    port = free_port()
    head = f'[agent]\nstate_dir = "state"\n[http]\nlisten = "127.0.0.1:{port}"\n' \
           f'[agi]\nlisten = "127.0.0.1:{free_port()}"\n'
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
