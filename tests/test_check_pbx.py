"""`pbx-agent check-pbx` against a fake Asterisk over real TCP: what an installer sees before the first start.

Fields relied on (docs.asterisk.org, Asterisk 22, AMI_Actions): `CoreSettings` answers `AsteriskVersion`;
`ListCommands` answers one message with a `<Action>: <synopsis> (Priv: <classes>)` line for each action the
user's `write` classes allow (manager.c action_listcommands filters by writeperm).
"""

from __future__ import annotations

import asyncio
import math
import socket
from pathlib import Path

import pytest

from agent.cli import main
from tests import recordings
from tests.fakes.ami import ActionResponder, FakeAmi
from tests.fakes.ami_endpoints import Pjsip, responders
from tests.test_config import write

ALL = {
    "Ping": "Keepalive command. (Priv: <none>)",
    "Originate": "Originate a call. (Priv: originate,all)",
    "CoreShowChannels": "List currently active channels. (Priv: system,reporting,all)",
    "PJSIPShowEndpoints": "Lists PJSIP endpoints. (Priv: system,all)",
    "ExtensionStateList": "List the current known extension states. (Priv: call,reporting,all)",
}


def config(folder: Path, port: int, secret: str = "secret") -> Path:
    return write(
        folder,
        f"""
[agent]
state_dir = "st"
[[pbx]]
name = "office"
enterprise = "0001"
host = "127.0.0.1"
port = {port}
username = "agent"
secret = "{secret}"
""",
    )


def asterisk(allowed: dict[str, str]) -> dict[str, ActionResponder]:
    def list_commands(headers: dict[str, str]) -> bytes:
        lines = ["Response: Success", f"ActionID: {headers.get('ActionID', '')}"]
        lines += [f"{action}: {text}" for action, text in allowed.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def core_settings(headers: dict[str, str]) -> bytes:
        return (
            f"Response: Success\r\nActionID: {headers.get('ActionID', '')}\r\nAMIversion: 11.0.0\r\n"
            "AsteriskVersion: 22.10.1\r\nSystemName: \r\nCoreMaxCalls: 0\r\n\r\n"
        ).encode()

    office = [Pjsip("150"), Pjsip("151"), Pjsip("provider", context="from-pstn", identify="203.0.113.5")]
    return {**responders(office, {}), "ListCommands": list_commands, "CoreSettings": core_settings}


def fake(allowed: dict[str, str] = ALL) -> FakeAmi:
    return FakeAmi(
        recordings.recordings_dir() / "a_incoming_answered.ami", speed=math.inf, responders=asterisk(allowed)
    )


async def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, argv)  # the command runs its own event loop
    out, err = capsys.readouterr()
    return code, out, err


async def test_a_pbx_that_lets_the_agent_do_everything(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async with fake() as ami:
        code, out, _ = await run(["check-pbx", "-c", str(config(tmp_path, ami.port))], capsys)
    assert code == 0, out
    assert out.splitlines() == [
        f"office (127.0.0.1:{ami.port}): connected (Asterisk Call Manager/11.0.0, Asterisk 22.10.1)",
        "  CoreShowChannels: ok — rebuilding calls after a reconnect (write: system or reporting)",
        "  Originate: ok — click-to-call (write: originate)",
        "  PJSIPShowEndpoints: ok — telling trunks from phones, finding extensions (write: system)",
        "  ExtensionStateList: ok — finding extensions from hints (write: call or reporting)",
        "  trunks: 1: PJSIP/provider",
        "  phones: 2: PJSIP/150, PJSIP/151",
        "  extensions: 2: 150, 151",
    ]


async def test_what_the_ami_user_may_not_do_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    without_originate = {k: v for k, v in ALL.items() if k != "Originate"}
    async with fake(without_originate) as ami:
        code, out, _ = await run(["check-pbx", "-c", str(config(tmp_path, ami.port))], capsys)
    assert code == 0 and "  Originate: NOT ALLOWED (or its module is not loaded) — click-to-call" in out, out
    reporting_only = {k: v for k, v in ALL.items() if k in ("Ping", "ExtensionStateList")}
    async with fake(reporting_only) as ami:
        code, out, _ = await run(["check-pbx", "-c", str(config(tmp_path, ami.port))], capsys)
    assert code == 1 and "  CoreShowChannels: NOT ALLOWED" in out, out  # the agent cannot rebuild calls


async def test_a_refused_login_and_a_closed_port_say_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async with fake() as ami:
        code, out, _ = await run(["check-pbx", "-c", str(config(tmp_path, ami.port, secret="wrong"))], capsys)
    assert code == 1
    assert out.strip() == f"office (127.0.0.1:{ami.port}): NOT CONNECTED: login refused: Authentication failed"
    assert "wrong" not in out.replace("secret=", "")
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    code, out, _ = await run(["check-pbx", "-c", str(config(tmp_path, port)), "--within", "5"], capsys)
    assert code == 1 and out.strip() == (
        f"office (127.0.0.1:{port}): NOT CONNECTED: 127.0.0.1:{port} refused the connection: is AMI on there"
        " (manager.conf [general] enabled, bindaddr, port)?"
    )


async def test_an_unknown_pbx_name_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = await run(["check-pbx", "-c", str(config(tmp_path, 5038)), "--pbx", "branch"], capsys)
    assert code == 2 and not out and "no [[pbx]] named 'branch'" in err
