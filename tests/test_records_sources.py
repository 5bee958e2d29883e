"""Recordings wherever they are: a local directory per PBX or SFTP on the PBX (a real asyncssh SFTP server
on loopback), ranges, traversal, bad tokens, MP3 for amoCRM's player, waiting for MixMonitor to finish."""

from __future__ import annotations

import asyncio
import logging
import math
import struct
import time
import wave
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from agent.config.sections import Config, PbxSection, RecordingsSource, SshSection
from agent.ingest.ssh import SshClient
from agent.web import keys
from agent.web import recording_http as records_http
from agent.web import recordings as records
from agent.web.health import HealthRegistry
from agent.web.recording_sources import LocalSource, SftpSource
from agent.web.recordings import RecordLinks
from tests.fakes.ssh import FakeSshServer, new_key

SECRET = b"s" * 32
NAME = "2026/11/in-375291234567-1795481962.0.wav"
BODY = bytes(range(256)) * 1200  # 307200 bytes: several read chunks


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    root = tmp_path / "monitor"
    (root / "2026" / "11").mkdir(parents=True)
    (root / NAME).write_bytes(BODY)
    (tmp_path / "secret.txt").write_text("not a recording")
    (root / "escape.wav").symlink_to(tmp_path / "secret.txt")
    return root


@pytest.fixture
async def ssh(tmp_path: Path) -> AsyncIterator[tuple[FakeSshServer, SshSection]]:
    async with FakeSshServer(new_key()) as server:
        (tmp_path / "keys").mkdir()
        key_file, known_hosts = server.write_client_files(tmp_path / "keys")
        yield (
            server,
            SshSection(
                host="127.0.0.1", port=server.port, username=server.username, key_file=key_file, known_hosts=known_hosts
            ),
        )


@asynccontextmanager
async def serving(links: RecordLinks) -> AsyncIterator[str]:
    app = web.Application()
    app[keys.RECORDS] = links
    records_http.add_routes(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()
        await links.close()


def sftp_links(spool: Path, settings: SshSection, tmp_path: Path, **kw: Any) -> RecordLinks:
    source = SftpSource("remote", SshClient(settings), str(spool))
    return RecordLinks(
        "https://agent.example.com",
        SECRET,
        tmp_path / "unused",
        sources={"remote": source},
        cache_dir=tmp_path / "cache",
        **kw,
    )


async def fetch(base: str, url: str | None, headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
    assert url is not None
    async with aiohttp.ClientSession() as s, s.get(base + "/records/" + url.rsplit("/", 1)[1], headers=headers) as resp:
        return resp.status, await resp.read(), dict(resp.headers)


async def test_sftp_served_whole_and_by_range(
    spool: Path, ssh: tuple[FakeSshServer, SshSection], tmp_path: Path
) -> None:
    links = sftp_links(spool, ssh[1], tmp_path)
    url = links.record_url(str(spool / NAME), pbx="remote")
    assert url is not None and url.startswith("https://agent.example.com/records/")
    assert links.record_url(str(spool / NAME)) is not None  # the only source in use: no PBX needed
    claim = links.claim(url.rsplit("/", 1)[1])
    assert (claim.source, claim.relative, claim.fmt) == ("remote", NAME, None)
    async with serving(links) as base:
        status, body, headers = await fetch(base, url)
        assert (status, body) == (200, BODY)
        assert headers["Accept-Ranges"] == "bytes" and headers["Content-Type"] == "audio/x-wav"
        assert 'filename="in-375291234567-1795481962.0.wav"' in headers["Content-Disposition"]
        status, body, headers = await fetch(base, url, {"Range": "bytes=100-199"})
        assert (status, body, headers["Content-Range"]) == (206, BODY[100:200], f"bytes 100-199/{len(BODY)}")
        status, body, _ = await fetch(base, url, {"Range": "bytes=-16"})
        assert (status, body) == (206, BODY[-16:])
        status, body, _ = await fetch(base, url, {"Range": "bytes=70000-"})
        assert (status, body) == (206, BODY[70000:])
        for bad in (f"bytes={len(BODY)}-", "bytes=9-2", "lines=1-2"):
            status, _, headers = await fetch(base, url, {"Range": bad})
            assert status == 416 and headers["Content-Range"] == f"bytes */{len(BODY)}", bad
    assert ssh[0].connections == 1  # one SSH connection for every request


@pytest.mark.parametrize("kind", ["local", "sftp"])
async def test_traversal_is_404_and_logged(
    kind: str, spool: Path, ssh: tuple[FakeSshServer, SshSection], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if kind == "sftp":
        links = sftp_links(spool, ssh[1], tmp_path)
    else:
        links = RecordLinks(
            "https://agent.example.com", SECRET, tmp_path / "unused", sources={"remote": LocalSource("remote", spool)}
        )
    for outside in ("/etc/passwd", str(spool / "../secret.txt"), "../secret.txt", str(spool), "", "a\x00b"):
        assert links.record_url(outside, pbx="remote") is None, outside
    later = time.time() + 600
    caplog.set_level(logging.INFO, "agent.web.recordings")
    async with serving(links) as base:
        # validly signed tokens (as if a bug signed them) for paths that must never be served
        for path in (
            "../secret.txt",
            "2026/../../secret.txt",
            "/etc/passwd",
            "escape.wav",
            "2026/11",
            "2026/11/missing.wav",
            "./" + NAME,
        ):
            caplog.clear()
            status, body, _ = await fetch(base, "/" + links.token(path, expires_at=later, source="remote"))
            assert status == 404, path
            assert b"not a recording" not in body
            refused = [r for r in caplog.records if "refused" in r.getMessage()]
            assert bool(refused) == (path not in ("2026/11", "2026/11/missing.wav")), path
        assert (await fetch(base, "/" + links.token(NAME, expires_at=later, source="gone")))[0] == 404


async def test_expired_or_forged_links_are_403(
    spool: Path, ssh: tuple[FakeSshServer, SshSection], tmp_path: Path
) -> None:
    links = sftp_links(spool, ssh[1], tmp_path)
    expired = sftp_links(spool, ssh[1], tmp_path, clock=lambda: time.time() - 7200, ttl=3600)
    forged = RecordLinks("https://agent.example.com", b"another secret" * 3, spool)
    async with serving(links) as base:
        status, body, _ = await fetch(base, expired.record_url(NAME, pbx="remote"))
        assert status == 403 and b"expired" in body
        assert (await fetch(base, forged.record_url(NAME)))[0] == 403
        for token in ("garbage", "eyJhbGciOiJub25lIn0.eyJwIjoiZXNjYXBlLndhdiJ9.", "..%2F..%2Fetc%2Fpasswd"):
            assert (await fetch(base, "/" + token))[0] == 403, token
    await expired.close()


async def test_the_token_says_which_pbx(spool: Path, tmp_path: Path) -> None:
    other = tmp_path / "branch"
    (other / "2026" / "11").mkdir(parents=True)
    (other / NAME).write_bytes(b"branch recording")
    default = LocalSource("", spool)
    links = RecordLinks(
        "https://agent.example.com", SECRET, spool, sources={"office": default, "branch": LocalSource("branch", other)}
    )
    assert links.record_url(NAME) is None  # relative: could be either
    assert links.record_url(str(other / NAME)) is not None  # absolute: only one root holds it
    async with serving(links) as base:
        assert (await fetch(base, links.record_url(NAME, pbx="office")))[1] == BODY
        assert (await fetch(base, links.record_url(NAME, pbx="branch")))[1] == b"branch recording"
        assert (await fetch(base, links.record_url(NAME, pbx="unknown")))[1] == BODY  # [agent] recordings_dir


async def test_sftp_source_down_is_503_then_back(spool: Path, tmp_path: Path) -> None:
    async with FakeSshServer(new_key()) as server:
        key_file, known_hosts = server.write_client_files(tmp_path)
        settings = SshSection(
            host="127.0.0.1", port=server.port, username=server.username, key_file=key_file, known_hosts=known_hosts
        )
        links = sftp_links(spool, settings, tmp_path)
        url = links.record_url(NAME, pbx="remote")
        async with serving(links) as base:
            assert (await fetch(base, url))[0] == 200
            await server.drop_clients()
            assert (await fetch(base, url))[0] == 200  # a new SSH connection
            assert server.connections == 2
            await server.stop()
            status, _, headers = await fetch(base, url)
            assert status == 503 and headers["Retry-After"] == "30"


async def test_reload_keeps_an_unchanged_sftp_source_and_closes_a_replaced_one_after_its_downloads(
    spool: Path, tmp_path: Path, ssh: tuple[FakeSshServer, SshSection]
) -> None:
    server, settings = ssh
    pbx = PbxSection(
        name="remote",
        enterprise="100",
        username="agent",
        secret="x",
        ssh=settings,
        recordings=RecordingsSource("sftp", str(spool)),
    )
    links = RecordLinks("https://agent.example.com", SECRET, tmp_path / "unused", pbx=[pbx])
    url = links.record_url(NAME, pbx="remote")
    assert url is not None
    other = tmp_path / "moved"
    (other / "2026" / "11").mkdir(parents=True)
    (other / NAME).write_bytes(b"moved")
    async with serving(links) as base:
        assert (await fetch(base, url))[:2] == (200, BODY)
        first = links.sources["remote"]
        assert isinstance(first, SftpSource)
        await links.apply([pbx])  # unchanged: the same source, the same SSH connection
        assert links.sources["remote"] is first
        assert (await fetch(base, url))[:2] == (200, BODY) and server.connections == 1

        async with links.opened(links.claim(url.rsplit("/", 1)[1])) as (source, file):  # a download under way
            chunks = source.read(file, 0, file.size)
            got = [await anext(chunks)]
            await links.apply([replace(pbx, recordings=RecordingsSource("sftp", str(other)))])
            assert links.sources["remote"] is not first
            assert (await fetch(base, url))[:2] == (200, b"moved")  # the same link: the PBX's new root
            got += [chunk async for chunk in chunks]
            assert b"".join(got) == BODY  # the reload did not cut it
            assert first.client.connected
        async with asyncio.timeout(5):
            await links.replaced_closed()
        assert not first.client.connected  # the download done, the replaced source is closed

        second = links.sources["remote"]
        assert isinstance(second, SftpSource) and second.client.connected
        await links.apply([])  # the PBX removed: its connection closed, its links 404
        assert not second.client.connected
        assert (await fetch(base, url))[0] == 404


async def write_slowly(path: Path, pieces: int, every: float) -> float:
    """MixMonitor at work; returns when it last wrote."""
    with path.open("ab") as f:
        for _ in range(pieces):
            await asyncio.sleep(every)
            f.write(b"\0" * 320)
            f.flush()
    return time.monotonic()


@pytest.mark.parametrize("kind", ["local", "sftp"])
async def test_wait_ready_holds_until_mixmonitor_is_done(
    kind: str, spool: Path, tmp_path: Path, ssh: tuple[FakeSshServer, SshSection]
) -> None:
    links = (
        sftp_links(spool, ssh[1], tmp_path)
        if kind == "sftp"
        else RecordLinks("https://agent.example.com", SECRET, spool)
    )
    pbx = "remote" if kind == "sftp" else None
    path = str(spool / "2026/11/growing.wav")
    writer = asyncio.create_task(write_slowly(Path(path), 12, 0.1))
    assert await links.wait_ready(path, 10, pbx=pbx, poll_s=0.05, settle_s=0.4)
    assert writer.done()  # not before the writing stopped
    assert time.monotonic() - writer.result() >= 0.35
    started = time.monotonic()
    assert not await links.wait_ready(str(spool / "2026/11/never.wav"), 0.3, pbx=pbx, poll_s=0.05)
    assert 0.25 <= time.monotonic() - started < 2
    assert not await links.wait_ready("/etc/passwd", 5, pbx=pbx)  # not servable: no wait
    assert not await links.wait_ready("escape.wav", 5, pbx=pbx, poll_s=0.05)
    await links.close()


def make_wav(path: Path, seconds: float = 1.0) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        frames = b"".join(
            struct.pack("<h", int(8000 * math.sin(i / 8000 * 2 * math.pi * 440))) for i in range(int(8000 * seconds))
        )
        w.writeframes(frames)


def is_mp3(body: bytes) -> bool:
    return body.startswith(b"ID3") or (len(body) > 2 and body[0] == 0xFF and body[1] & 0xE0 == 0xE0)


@pytest.mark.parametrize("kind", ["local", "sftp"])
async def test_mp3_made_once_and_cached(
    kind: str, spool: Path, tmp_path: Path, ssh: tuple[FakeSshServer, SshSection]
) -> None:
    wav = spool / "2026/11/out-375291234567-1795482000.1.wav"
    make_wav(wav)
    if kind == "sftp":
        links = sftp_links(spool, ssh[1], tmp_path, ffmpeg=None)
    else:
        links = RecordLinks("https://agent.example.com", SECRET, spool, cache_dir=tmp_path / "cache", ffmpeg=None)
    pbx = "remote" if kind == "sftp" else None  # no ffmpeg: the agent's own encoder
    url = links.record_url(str(wav), fmt="mp3", pbx=pbx)
    async with serving(links) as base:
        results = await asyncio.gather(fetch(base, url), fetch(base, url))  # two players at once
        for status, body, headers in results:
            assert status == 200 and headers["Content-Type"] == "audio/mpeg" and is_mp3(body)
            assert 'filename="out-375291234567-1795482000.1.mp3"' in headers["Content-Disposition"]
        status, body, _ = await fetch(base, url, {"Range": "bytes=0-99"})
        assert (status, body) == (206, results[0][1][:100])
        assert (await fetch(base, links.record_url(str(wav), pbx=pbx)))[1] == wav.read_bytes()  # original
        assert links.mp3.made == 1
        assert len(list((tmp_path / "cache").glob("*.mp3"))) == 1
        # not a WAV: served as it is
        status, body, headers = await fetch(base, links.record_url(NAME.replace(".wav", ".mp3"), fmt="mp3", pbx=pbx))
        assert status == 404  # (there is no such mp3; the point is no transcoding attempt)
        assert links.mp3.made == 1


async def test_a_wav_the_encoder_does_not_take_is_served_as_it_is_without_ffmpeg(spool: Path, tmp_path: Path) -> None:
    """NAME holds no RIFF header (a WAV49's GSM is refused the same way: tests/test_lame.py)."""
    links = RecordLinks("https://agent.example.com", SECRET, spool, cache_dir=tmp_path / "cache", ffmpeg=None)
    async with serving(links) as base:
        status, body, headers = await fetch(base, links.record_url(NAME, fmt="mp3"))
        assert (status, body) == (200, BODY) and "mp3" not in headers["Content-Disposition"]
    with pytest.raises(ValueError, match="unknown recording format"):
        links.record_url(NAME, fmt="ogg")


async def test_health_says_when_ffmpeg_is_missing(
    make_config: Callable[..., Config],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    ssh: tuple[FakeSshServer, SshSection],
) -> None:
    pbx = PbxSection(
        name="remote",
        enterprise="100",
        username="agent",
        secret="x",
        ssh=ssh[1],
        recordings=RecordingsSource("sftp", "/var/spool/asterisk/monitor"),
    )
    config = replace(make_config(), pbx=(pbx, replace(pbx, name="office", ssh=None, recordings=None)))
    monkeypatch.setattr(records, "find_ffmpeg", lambda: None)
    health = HealthRegistry()
    links = records.from_config(config, SECRET, health)
    report = await health.report()
    component = report["components"]["recordings"]
    assert report["status"] == "ok"
    assert (component["status"], component["ffmpeg"], component["info"]) == (
        "ok",
        False,
        "MP3 by the built-in encoder; without ffmpeg, GSM (WAV49) recordings are served as they are",
    )
    assert component["sources"] == {
        "remote": "sftp:/var/spool/asterisk/monitor",
        "office": "local:/var/spool/asterisk/monitor",
    }
    assert set(links.sources) == {"", "remote"}
    await links.close()
