"""Recordings at signed, expiring URLs: GET /records/{token} on the running agent, ranges, refusals."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest

from agent.app import Agent
from agent.config.sections import Config
from agent.store.secretbox import load_or_create_secret
from agent.web.recordings import RecordLinks

BODY = bytes(range(256)) * 40  # 10240 bytes


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    root = tmp_path / "monitor"
    (root / "2026" / "11").mkdir(parents=True)
    (root / "2026" / "11" / "in-375291234567-1795481962.0.wav").write_bytes(BODY)
    (tmp_path / "secret.txt").write_text("not a recording")
    (root / "escape.wav").symlink_to(tmp_path / "secret.txt")
    return root


def test_record_url_only_inside_the_directory(spool: Path) -> None:
    links = RecordLinks("https://pbx.example.com/", b"k" * 32, spool)
    url = links.record_url(str(spool / "2026/11/in-375291234567-1795481962.0.wav"))
    assert url is not None and url.startswith("https://pbx.example.com/records/")
    claim = links.claim(url.rsplit("/", 1)[1])
    assert (claim.source, claim.relative, claim.fmt) == ("", "2026/11/in-375291234567-1795481962.0.wav", None)
    relative = links.record_url("2026/11/in-375291234567-1795481962.0.wav")  # relative to the directory
    assert relative is not None
    for outside in ("/etc/passwd", str(spool / "../secret.txt"), "../secret.txt", str(spool), "", "a\x00b"):
        assert links.record_url(outside) is None, outside


@pytest.fixture
async def agent(db_dsn: str, make_config: Callable[..., Config], spool: Path) -> AsyncIterator[Agent]:
    from tests.rc_agent import started

    async with started(make_config, db_dsn, recordings_dir=spool) as a:
        yield a


def links_of(agent: Agent, **kw: object) -> RecordLinks:
    secret = load_or_create_secret(agent.config.agent.state_dir)
    return RecordLinks(agent.config.agent.public_url, secret, agent.config.agent.recordings_dir, **kw)  # type: ignore[arg-type]


async def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
    async with aiohttp.ClientSession() as s, s.get(url, headers=headers) as resp:
        return resp.status, await resp.read(), dict(resp.headers)


async def test_served_whole_and_by_range(agent: Agent, spool: Path) -> None:
    url = agent.parts.records.record_url(str(spool / "2026/11/in-375291234567-1795481962.0.wav"))
    assert url is not None and url.startswith(agent.config.agent.public_url + "/records/")
    status, body, headers = await fetch(url)
    assert (status, body) == (200, BODY)
    assert headers["Accept-Ranges"] == "bytes"
    assert 'filename="in-375291234567-1795481962.0.wav"' in headers["Content-Disposition"]
    status, body, headers = await fetch(url, {"Range": "bytes=100-199"})
    assert (status, body) == (206, BODY[100:200])
    assert headers["Content-Range"] == f"bytes 100-199/{len(BODY)}"
    status, body, _ = await fetch(url, {"Range": "bytes=-16"})
    assert (status, body) == (206, BODY[-16:])


async def test_expired_or_forged_links_are_403(agent: Agent, spool: Path) -> None:
    path = str(spool / "2026/11/in-375291234567-1795481962.0.wav")
    expired = links_of(agent, clock=lambda: time.time() - 7200, ttl=3600).record_url(path)
    assert expired is not None
    status, body, _ = await fetch(expired)
    assert status == 403 and b"expired" in body
    forged = RecordLinks(agent.config.agent.public_url, b"another secret" * 3, spool).record_url(path)
    assert forged is not None
    assert (await fetch(forged))[0] == 403
    base = agent.config.agent.public_url + "/records/"
    for token in ("garbage", "eyJhbGciOiJub25lIn0.eyJwIjoiZXNjYXBlLndhdiJ9.", "..%2F..%2Fetc%2Fpasswd"):
        assert (await fetch(base + token))[0] == 403, token


async def test_outside_the_directory_is_404(agent: Agent, spool: Path) -> None:
    links = links_of(agent)
    later = time.time() + 600
    base = agent.config.agent.public_url + "/records/"
    # validly signed tokens (as if a bug signed them) for paths that must never be served
    for path in (
        "../secret.txt",
        "2026/../../secret.txt",
        "/etc/passwd",
        "escape.wav",
        "2026/11",
        "2026/11/missing.wav",
    ):
        status, body, _ = await fetch(base + links.token(path, expires_at=later))
        assert status == 404, path
        assert b"not a recording" not in body
