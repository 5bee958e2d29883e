"""Recording links carry their PBX (two PBXs with the same relative path each get their own file), amoCRM
gets an MP3 link, and an upload waits (bounded) for a recording that is still being written."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from agent.delivery.dispatch import CrmDispatcher
from agent.store.database import Pool
from agent.tracking.event import CallEvent
from agent.web.recording_sources import LocalSource
from agent.web.recordings import RecordLinks
from connectors.amocrm.plan import plan as amo_plan
from connectors.base import Delivery, RecordUrl, SendOutcome
from connectors.http import RateLimiter, make_client, retailcrm_route
from connectors.retailcrm import settings as rc_settings
from connectors.retailcrm.client import RetailCrmClient
from connectors.retailcrm.plan import KIND_UPLOAD
from connectors.retailcrm.plan import plan as rc_plan
from tests.amocrm_setup import ENTERPRISE, bound, configure_amocrm, connect_tokens
from tests.fakes.amocrm import FakeAmoCrm
from tests.fakes.retailcrm import FakeRetailCrm

SECRET = b"r" * 32
NAME = "2026/11/in-1.wav"
T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
KEY = "k" * 32
RC = {"api_key": KEY, "client_id": "c" * 32, "timezone": "UTC"}


def ended(pbx: str, recording: str = NAME, enterprise: str = "0367") -> CallEvent:
    return CallEvent(
        event="ended",
        call_id="1795481962.7",
        enterprise=enterprise,
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


@pytest.fixture
async def retailcrm() -> AsyncIterator[FakeRetailCrm]:
    async with FakeRetailCrm(api_key=KEY) as fake:
        yield fake


def rc_upload(fake: FakeRetailCrm, pbx: str) -> Delivery:
    (upload,) = [d for d in rc_plan(ended(pbx), rc_settings.parse({**RC, "domain": fake.url})) if d.kind == KIND_UPLOAD]
    return upload


async def uploaded(fake: FakeRetailCrm, deliveries: list[Delivery], record_url: RecordUrl) -> list[dict[str, Any]]:
    """The calls RetailCRM got from sending `deliveries` with `record_url`."""
    async with make_client() as http:
        outcome = await RetailCrmClient(rc_settings.parse({**RC, "domain": fake.url}), http).send(
            deliveries, record_url=record_url
        )
    assert outcome.status == "success", outcome.error
    return fake.uploads[-1]


async def test_retailcrm_upload_links_the_recording_of_its_own_pbx(
    two_pbx: RecordLinks, retailcrm: FakeRetailCrm
) -> None:
    assert two_pbx.record_url(NAME) is None  # relative, two PBXs: the path alone cannot say which
    for pbx in ("office", "branch"):
        upload = rc_upload(retailcrm, pbx)
        assert upload.payload["recording_pbx"] == pbx
        (call,) = await uploaded(retailcrm, [upload], two_pbx.record_url)
        claim = two_pbx.claim(token_of(call["recordUrl"]))
        assert (claim.source, claim.relative, claim.fmt) == (pbx, NAME, None)


async def test_amocrm_call_links_an_mp3_of_its_own_pbx(two_pbx: RecordLinks, pool: Pool, tmp_path: Path) -> None:
    async with FakeAmoCrm() as fake:
        fake.add_contact("+375291234567")  # a known caller: the call goes to POST /api/v4/calls
        settings = await configure_amocrm(pool, tmp_path / "state", fake)
        connector = bound(pool, tmp_path / "state")
        await connect_tokens(connector, fake)
        delivery, _task_done = amo_plan(ended("branch", enterprise=ENTERPRISE), settings)  # the call, its task_done
        assert delivery.payload["recording_pbx"] == "branch"
        async with make_client() as http:
            outcome = await connector.client(settings, http).send([delivery], record_url=two_pbx.record_url)
        assert outcome.status == "success", outcome.error
        (call,) = fake.calls
    claim = two_pbx.claim(token_of(call["link"]))
    assert (claim.source, claim.relative, claim.fmt) == ("branch", NAME, "mp3")


async def test_a_delivery_stored_before_the_pbx_was_carried_still_links_an_unambiguous_path(
    tmp_path: Path, retailcrm: FakeRetailCrm
) -> None:
    links = RecordLinks("https://agent.example.com", SECRET, tmp_path)
    planned = rc_upload(retailcrm, "office").payload
    payload = {k: v for k, v in planned.items() if k != "recording_pbx"} | {"recording": str(tmp_path / NAME)}
    (call,) = await uploaded(retailcrm, [Delivery("old", "0367", "retailcrm", KIND_UPLOAD, payload)], links.record_url)
    assert links.claim(token_of(call["recordUrl"])).relative == NAME


def upload(key: str, recording: str, pbx: str) -> Delivery:
    return Delivery(
        idempotency_key=key,
        enterprise="0367",
        crm="retailcrm",
        kind="calls_upload",
        payload={"call": {"externalId": key}, "recording": recording, "recording_pbx": pbx},
    )


class OneCrm:
    """Integrations with RetailCRM enabled for every enterprise; its client keeps the `record_url` each send
    got (the hook that links only the recordings found ready)."""

    def __init__(self) -> None:
        self.hooks: list[RecordUrl | None] = []
        self.limiter = RateLimiter(retailcrm_route)

    async def enabled(self, enterprise: str) -> dict[str, Any]:
        connector = SimpleNamespace(name="retailcrm", account=lambda settings: "shop")
        return {"retailcrm": SimpleNamespace(crm="retailcrm", connector=connector, settings=None)}

    def client(self, enabled: Any) -> OneCrm:
        return self

    async def send(self, deliveries: Sequence[Delivery], *, record_url: RecordUrl | None = None) -> SendOutcome:
        self.hooks.append(record_url)
        return SendOutcome(status="success")


def dispatcher_of(crm: OneCrm, recordings: RecordLinks, recording_wait: float) -> CrmDispatcher:
    return CrmDispatcher(crm, recordings=recordings, recording_wait=recording_wait)  # type: ignore[arg-type]


async def sent_with(dispatcher: CrmDispatcher, crm: OneCrm, deliveries: list[Delivery]) -> RecordUrl | None:
    """The record_url hook the CRM's client got for sending `deliveries`."""
    assert (await dispatcher.send("0367", "retailcrm", deliveries)).status == "success"
    return crm.hooks[-1]


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
    crm = OneCrm()
    dispatcher = dispatcher_of(crm, two_pbx, 3.0)
    deliveries = [
        upload("done", NAME, "office"),
        upload("growing", str(growing), "branch"),
        upload("missing", "2026/11/never.wav", "office"),
    ]
    started = time.monotonic()
    hook = await sent_with(dispatcher, crm, deliveries)
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
    crm = OneCrm()
    off = dispatcher_of(crm, two_pbx, 0)
    assert await sent_with(off, crm, [upload("m", "missing.wav", "office")]) == two_pbx.record_url
    on = dispatcher_of(crm, two_pbx, 5)
    started = time.monotonic()
    hook = await sent_with(on, crm, [upload("d", NAME, "office")])
    assert time.monotonic() - started < 0.5
    assert hook == two_pbx.record_url


async def test_prepare_waits_before_the_send_which_then_does_not_wait_again(
    two_pbx: RecordLinks, tmp_path: Path
) -> None:
    old = time.time() - 60
    os.utime(tmp_path / "branch" / NAME, (old, old))
    crm = OneCrm()
    dispatcher = dispatcher_of(crm, two_pbx, 0.5)
    deliveries = [upload("missing", "2026/11/never.wav", "office"), upload("done", NAME, "branch")]
    await dispatcher.prepare("retailcrm", deliveries)  # what the outbox does before taking a request slot
    started = time.monotonic()
    hook = await sent_with(dispatcher, crm, deliveries)
    assert time.monotonic() - started < 0.2  # what prepare found is used: "missing" is not waited for again
    assert hook is not None
    assert hook("2026/11/never.wav", pbx="office") is None
    assert hook(NAME, pbx="branch") is not None
