"""AMI through SSH: a real asyncssh server on loopback in front of FakeAmi, the agent's link through it."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from agent.config.sections import PbxSection, SshSection
from agent.ingest.pipeline import PbxPipeline
from agent.tracking.event import CallEvent
from agent.web.health import HealthRegistry
from agent.web.metrics import Metrics
from tests import recordings
from tests.fakes.ami import FakeAmi
from tests.fakes.ssh import FakeSshServer, new_key
from tests.test_ami_link import essence
from tests.waiting import until

NAME = "a_incoming_answered"
RECONCILED: dict[PbxPipeline, int] = {}  # snapshots (CoreShowChannels answers) each pipeline has applied


def fake_ami(**kw: Any) -> FakeAmi:
    directory = recordings.recordings_dir()
    return FakeAmi(directory / f"{NAME}.ami", directory / f"{NAME}.timing", speed=math.inf, **kw)


def ssh_pbx(fake: FakeAmi, ssh: FakeSshServer, tmp_path: Path, **over: Any) -> PbxSection:
    key_file, known_hosts = ssh.write_client_files(tmp_path, host_key=over.pop("host_key", None))
    settings = SshSection(
        host="127.0.0.1", port=ssh.port, username=ssh.username, key_file=key_file, known_hosts=known_hosts
    )
    return replace(
        PbxSection(
            name="remote",
            enterprise="100",
            username="agent",
            secret="secret",
            host="127.0.0.1",
            port=fake.port,
            region="BY",
            ssh=settings,
        ),
        **over,
    )


@asynccontextmanager
async def pipeline(
    pbx: PbxSection, **link_options: float
) -> AsyncIterator[tuple[PbxPipeline, list[CallEvent], HealthRegistry]]:
    events: list[CallEvent] = []
    health = HealthRegistry()
    pipe = PbxPipeline(pbx, "BY", health, Metrics(), events.append)
    for name, value in link_options.items():
        setattr(pipe.link, name, value)
    applied = pipe.link.on_reconcile

    def counted(channels: list[Any], at: Any) -> None:
        applied(channels, at)
        RECONCILED[pipe] = RECONCILED.get(pipe, 0) + 1

    pipe.link.on_reconcile = counted
    task = asyncio.create_task(pipe.run())
    try:
        yield pipe, events, health
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def link_health(health: HealthRegistry) -> dict[str, Any]:
    report = await health.report()
    result: dict[str, Any] = report["components"]["pbx:remote"]
    return result


def error_of(health: HealthRegistry) -> str | None:
    component = health.get("pbx:remote")
    assert component is not None
    error: str | None = component.details.get("error")
    return error


async def test_a_recorded_call_end_to_end_through_ssh(tmp_path: Path) -> None:
    fake = fake_ami(chunk_size=97)
    async with fake, FakeSshServer(new_key(), allow_ports=(fake.port,)) as ssh:
        async with pipeline(ssh_pbx(fake, ssh, tmp_path)) as (pipe, events, health):
            await fake.wait_finished(within=10)
            await until(lambda: pipe.tracker.live_calls() == 0 and any(e.event == "ended" for e in events))
            link = await link_health(health)
            assert (link["status"], link["connected"], link["ssh_refused"]) == ("ok", True, False)
            assert link["via"] == f"ssh pbxagent@127.0.0.1:{ssh.port}"
        assert ssh.channel_requests == [("127.0.0.1", fake.port, True)]
        assert ssh.connections == 1
    assert essence(events) == essence(recordings.play(NAME, with_timing=False))


async def test_ssh_session_dropped_mid_call_reconnects_and_the_call_ends_once(tmp_path: Path) -> None:
    stream = (recordings.recordings_dir() / f"{NAME}.ami").read_bytes()
    cut = stream.index(b"Event: BridgeEnter") + 40  # the call is answered and talking
    fake = fake_ami(pause_at=cut)
    async with fake, FakeSshServer(new_key(), allow_ports=(fake.port,)) as ssh:
        async with pipeline(ssh_pbx(fake, ssh, tmp_path)) as (pipe, events, health):
            await fake.wait_paused(within=10)
            await fake.wait_action("CoreShowChannels")
            await until(lambda: any(e.event == "answered" for e in events))
            await until(lambda: RECONCILED.get(pipe) == 1)  # the snapshot's answer is applied
            await ssh.drop_clients()  # the SSH server side closes: the tunnel and AMI go with it
            await until(lambda: fake.clients == 0)
            fake.unpause()
            await fake.wait_finished(within=15)
            await until(lambda: any(e.event == "ended" for e in events))
            assert pipe.link.reconnects == 1
            assert ssh.connections == 2 and fake.logins == 2
            link = await link_health(health)
            assert (link["connected"], link["reconnects"]) == (True, 1)
        assert sum(a.get("Action") == "CoreShowChannels" for a in fake.actions) == 2  # reconciled again
    ended = [e for e in events if e.event == "ended"]
    assert len(ended) == 1
    assert (ended[0].answered_by, ended[0].result, ended[0].direction) == ("150", "answered", "in")
    assert sum(e.event == "answered" for e in events) == 1


async def test_an_ami_reconnect_reuses_the_live_ssh_connection(tmp_path: Path) -> None:
    fake = fake_ami()
    async with fake, FakeSshServer(new_key(), allow_ports=(fake.port,)) as ssh:
        async with pipeline(ssh_pbx(fake, ssh, tmp_path)) as (pipe, _, _h):
            await until(lambda: fake.logins == 1)
            await fake.drop_clients()  # Asterisk side only; sshd stays
            await until(lambda: fake.logins == 2 and pipe.link.connected.is_set())
            assert ssh.connections == 1 and len(ssh.channel_requests) == 2
        await until(lambda: not ssh.live)  # the link's end closes its SSH connection


async def test_a_wrong_host_key_is_refused_clearly_and_retried_slowly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake = fake_ami()
    async with fake, FakeSshServer(new_key(), allow_ports=(fake.port,)) as ssh:
        pbx = ssh_pbx(fake, ssh, tmp_path, host_key=new_key())  # known_hosts lists another key
        async with pipeline(pbx, auth_retry=0.2) as (_pipe, events, health):
            await until(lambda: ssh.connections >= 2, within=5)
            link = await link_health(health)
            assert (link["status"], link["connected"], link["ssh_refused"]) == ("down", False, True)
            assert pbx.ssh is not None
            assert "host key not trusted" in link["error"] and str(pbx.ssh.known_hosts) in link["error"]
            await asyncio.sleep(0.3)
            assert ssh.connections <= 4  # slow retries, not a crash loop
        assert fake.connections == 0 and not events
    assert any("host key not trusted" in r.getMessage() and r.levelname == "ERROR" for r in caplog.records)


async def test_the_pbx_refusing_the_tunnel_is_a_clear_transient_error(tmp_path: Path) -> None:
    fake = fake_ami()
    async with (
        fake,
        FakeSshServer(new_key(), allow_ports=(fake.port + 1,)) as ssh,
        pipeline(ssh_pbx(fake, ssh, tmp_path)) as (_pipe, _, health),
    ):
        await until(lambda: len(ssh.channel_requests) >= 2, within=5)
        link = await link_health(health)
        assert link["status"] == "down" and link["ssh_refused"] is False
        assert f"the PBX cannot reach AMI at 127.0.0.1:{fake.port}" in link["error"]
        assert ssh.connections == 1  # the SSH connection itself is fine and kept


@pytest.mark.parametrize("fault", ["unknown client key", "broken key file", "empty known_hosts"])
async def test_other_ssh_refusals_are_clear(tmp_path: Path, fault: str) -> None:
    fake = fake_ami()
    async with fake, FakeSshServer(new_key(), allow_ports=(fake.port,)) as ssh:
        pbx = ssh_pbx(fake, ssh, tmp_path)
        assert pbx.ssh is not None
        if fault == "unknown client key":
            new_key().write_private_key(str(pbx.ssh.key_file))
            expected = "login refused: is the public key of"
        elif fault == "broken key file":
            pbx.ssh.key_file.write_text("not a key")
            expected = f"cannot use key_file {pbx.ssh.key_file}"
        else:
            pbx.ssh.known_hosts.write_text("")
            expected = "host key not trusted"
        async with pipeline(pbx, auth_retry=0.2) as (_pipe, _, health):
            await until(lambda: error_of(health) is not None, within=5)
            link = await link_health(health)
            assert link["ssh_refused"] is True and expected in link["error"], link["error"]
        assert fake.connections == 0


async def test_the_agent_with_a_remote_pbx(db_dsn: str, make_config: Any, tmp_path: Path) -> None:
    """The whole agent: AMI through SSH, the call stored, its recording served from the PBX over SFTP."""
    import aiohttp

    from agent.config.sections import RecordingsSource
    from tests.rc_agent import started

    spool = tmp_path / "monitor"
    spool.mkdir()
    (spool / "in-1.wav").write_bytes(b"RIFF" + bytes(1000))
    fake = fake_ami()
    async with fake, FakeSshServer(new_key(), allow_ports=(fake.port,)) as ssh:
        pbx = ssh_pbx(fake, ssh, tmp_path, recordings=RecordingsSource("sftp", str(spool)))
        async with started(make_config, db_dsn, pbx=(pbx,)) as agent:
            pool = agent.parts.pool
            async with asyncio.timeout(15):
                while not await pool.fetchval("SELECT count(*) FROM calls"):  # noqa: ASYNC110 - a table
                    await asyncio.sleep(0.05)
            url = agent.parts.records.record_url(str(spool / "in-1.wav"), pbx="remote")
            assert url is not None
            async with aiohttp.ClientSession() as http:
                async with http.get(url, headers={"Range": "bytes=0-3"}) as resp:
                    assert (resp.status, await resp.read()) == (206, b"RIFF")
                async with http.get(f"http://127.0.0.1:{agent.parts.http_port}/health") as resp:
                    components = (await resp.json())["components"]
            assert components["pbx:remote"]["via"] == f"ssh pbxagent@127.0.0.1:{ssh.port}"
            assert components["pbx:remote"]["connected"] is True
            assert components["recordings"]["sources"] == {"remote": f"sftp:{spool}"}
        await until(lambda: not ssh.live)  # the agent's stop closed both SSH connections
        assert ssh.connections == 2  # one for AMI, one for SFTP
