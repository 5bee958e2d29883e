"""Recording links carry their PBX (two PBXs with the same relative path each get their own file), amoCRM
gets an MP3 link, and an upload waits (bounded) for a recording that is still being written."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from agent.delivery.dispatch import CrmDispatcher
from agent.tracking.event import CallEvent
from agent.web.recording_sources import LocalSource
from agent.web.recordings import RecordLinks
from connectors.amocrm import settings as amo_settings
from connectors.amocrm.calls import CallSender
from connectors.amocrm.plan import plan as amo_plan
from connectors.base import Delivery
from connectors.retailcrm import settings as rc_settings
from connectors.retailcrm.client import _with_record_url
from connectors.retailcrm.plan import KIND_UPLOAD
from connectors.retailcrm.plan import plan as rc_plan

SECRET = b"r" * 32
NAME = "2026/11/in-1.wav"
T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
RC = {"domain": "https://shop.retailcrm.ru", "api_key": "k" * 32, "client_id": "c" * 32, "timezone": "UTC"}
AMO = {
    "host": "https://shop.amocrm.ru",
    "client_id": "5f2b8d9e-1c3a-4b7e-9f00-aa11bb22cc33",
    "client_secret": "Sx9kT2mQ7vW4yZ1aB8cD3eF6gH0jK5lN",
}


def ended(pbx: str, recording: str = NAME) -> CallEvent:
    return CallEvent(
        event="ended",
        call_id="1795481962.7",
        enterprise="0367",
        direction="in",
        phone="+375291234567",
        did=None,
        extension="101",
        at=T0,
        extensions=("101",),
        answered_by="101",
        result="answered",
        ring_seconds=3,
        talk_seconds=20,
        started_at=T0,
        ended_at=T0,
        recording=recording,
        pbx=pbx,
    )


@pytest.fixture
def two_pbx(tmp_path: Path) -> RecordLinks:
    for pbx in ("office", "branch"):
        (tmp_path / pbx / "2026" / "11").mkdir(parents=True)
        (tmp_path / pbx / NAME).write_bytes(pbx.encode() * 100)
    sources = {pbx: LocalSource(pbx, tmp_path / pbx) for pbx in ("office", "branch")}
    return RecordLinks("https://agent.example.com", SECRET, tmp_path / "default", sources=sources)


def token_of(url: str | None) -> str:
    assert url is not None
    return url.rsplit("/", 1)[-1]


def test_retailcrm_upload_links_the_recording_of_its_own_pbx(two_pbx: RecordLinks) -> None:
    assert two_pbx.record_url(NAME) is None  # relative, two PBXs: the path alone cannot say which
    for pbx in ("office", "branch"):
        (upload,) = [d for d in rc_plan(ended(pbx), rc_settings.parse(RC)) if d.kind == KIND_UPLOAD]
        assert upload.payload["recording_pbx"] == pbx
        call = _with_record_url(upload.payload, two_pbx.record_url)
        claim = two_pbx.claim(token_of(call["recordUrl"]))
        assert (claim.source, claim.relative, claim.fmt) == (pbx, NAME, None)


def test_amocrm_call_links_an_mp3_of_its_own_pbx(two_pbx: RecordLinks) -> None:
    (delivery,) = amo_plan(ended("branch"), amo_settings.parse(AMO))
    assert delivery.payload["recording_pbx"] == "branch"
    session: Any = SimpleNamespace(settings=SimpleNamespace(source="pbx-agent"))
    body = CallSender(session, delivery, two_pbx.record_url, {})._call_body()
    claim = two_pbx.claim(token_of(body["link"]))
    assert (claim.source, claim.relative, claim.fmt) == ("branch", NAME, "mp3")


def test_a_delivery_stored_before_the_pbx_was_carried_still_links_an_unambiguous_path(tmp_path: Path) -> None:
    links = RecordLinks("https://agent.example.com", SECRET, tmp_path)
    call = _with_record_url({"call": {"externalId": "x"}, "recording": str(tmp_path / NAME)}, links.record_url)
    assert links.claim(token_of(call["recordUrl"])).relative == NAME


def upload(key: str, recording: str, pbx: str) -> Delivery:
    return Delivery(
        idempotency_key=key,
        enterprise="0367",
        crm="retailcrm",
        kind="calls_upload",
        payload={"call": {"externalId": key}, "recording": recording, "recording_pbx": pbx},
    )


async def test_an_upload_waits_for_a_recording_being_written_and_no_longer_than_the_limit(
    two_pbx: RecordLinks, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "agent.delivery.dispatch")
    old = time.time() - 60
    os.utime(tmp_path / "office" / NAME, (old, old))
    growing = tmp_path / "branch" / "2026/11/in-2.wav"
    growing.write_bytes(b"")

    async def mixmonitor() -> None:  # still writing for a second after the call ended
        for _ in range(5):
            with growing.open("ab") as f:
                f.write(b"x" * 1000)
            await asyncio.sleep(0.2)

    writer = asyncio.create_task(mixmonitor())
    dispatcher = CrmDispatcher(None, recordings=two_pbx, recording_wait=3.0)  # type: ignore[arg-type]
    deliveries = [
        upload("done", NAME, "office"),
        upload("growing", str(growing), "branch"),
        upload("missing", "2026/11/never.wav", "office"),
    ]
    started = time.monotonic()
    hook = await dispatcher._ready_recordings("retailcrm", deliveries)
    took = time.monotonic() - started
    await writer
    assert 1.0 <= took < 3.0 + 1.0  # waited for the growing file to settle, not past the limit
    assert hook is not None
    assert hook(NAME, pbx="office") is not None
    assert hook(str(growing), pbx="branch") is not None
    assert hook("2026/11/never.wav", pbx="office") is None  # not there within the limit: sent without a link
    assert "never.wav of PBX office not finished within 3 s; sent without its link" in caplog.text
    assert "in-2.wav ready; sent with its link" in caplog.text


async def test_no_wait_when_off_or_when_the_file_is_long_finished(two_pbx: RecordLinks, tmp_path: Path) -> None:
    old = time.time() - 60
    os.utime(tmp_path / "office" / NAME, (old, old))
    off = CrmDispatcher(None, recordings=two_pbx, recording_wait=0)  # type: ignore[arg-type]
    assert await off._ready_recordings("retailcrm", [upload("m", "missing.wav", "office")]) == two_pbx.record_url
    on = CrmDispatcher(None, recordings=two_pbx, recording_wait=5)  # type: ignore[arg-type]
    started = time.monotonic()
    hook = await on._ready_recordings("retailcrm", [upload("d", NAME, "office")])
    assert time.monotonic() - started < 0.5
    assert hook == two_pbx.record_url


async def test_prepare_waits_before_the_send_which_then_does_not_wait_again(
    two_pbx: RecordLinks, tmp_path: Path
) -> None:
    old = time.time() - 60
    os.utime(tmp_path / "branch" / NAME, (old, old))
    dispatcher = CrmDispatcher(None, recordings=two_pbx, recording_wait=0.5)  # type: ignore[arg-type]
    deliveries = [upload("missing", "2026/11/never.wav", "office"), upload("done", NAME, "branch")]
    await dispatcher.prepare("retailcrm", deliveries)  # what the outbox does before taking a request slot
    assert dispatcher._prepared == {"missing": False, "done": True}
    prepared = {k: dispatcher._prepared.pop(k) for k in ("missing", "done")}
    started = time.monotonic()
    hook = await dispatcher._ready_recordings("retailcrm", deliveries, prepared)
    assert time.monotonic() - started < 0.2
    assert hook is not None
    assert hook("2026/11/never.wav", pbx="office") is None
    assert hook(NAME, pbx="branch") is not None
