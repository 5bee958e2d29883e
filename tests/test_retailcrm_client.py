"""RetailCrmClient against FakeRetailCrm over real loopback HTTP."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from agent.tracking.event import CallEvent
from connectors.base import Delivery, SendOutcome
from connectors.http import make_client
from connectors.retailcrm.client import RetailCrmClient
from connectors.retailcrm.models import ModuleUrls
from connectors.retailcrm.plan import plan
from connectors.retailcrm.settings import RetailCrmSettings, parse
from tests.fakes.retailcrm import FakeRetailCrm

KEY = "Zq8PLr2mWx7TaK4nB9vC1dE6fG3hJ5kY"
CLIENT_ID = "cid-" + "7" * 28
T0 = datetime(2026, 1, 15, 9, 30, 0, tzinfo=UTC)
URLS = ModuleUrls(
    base_url="https://pbx.example.com",
    logo="https://pbx.example.com/static/logo.svg",
    make_call="https://pbx.example.com/retailcrm/make-call",
    change_user_status="https://pbx.example.com/retailcrm/status",
    account="https://pbx.example.com/admin/retailcrm",
    activity="/retailcrm/activity",
)


@pytest.fixture
async def crm() -> AsyncIterator[FakeRetailCrm]:
    async with FakeRetailCrm(api_key=KEY) as fake:
        yield fake


def settings_for(fake: FakeRetailCrm, **over: Any) -> RetailCrmSettings:
    data: dict[str, Any] = {
        "domain": fake.url,
        "api_key": KEY,
        "client_id": CLIENT_ID,
        "timezone": "Europe/Moscow",
        "user_extensions": {"7": "101", "8": "102"},
    }
    data.update(over)
    return parse(data)


@pytest.fixture
async def client(crm: FakeRetailCrm) -> AsyncIterator[RetailCrmClient]:
    http = make_client(connect=0.5, read=0.5)
    async with http:
        yield RetailCrmClient(settings_for(crm), http)


def ringing(ext: str = "101", call_id: str = "1700000000.1") -> CallEvent:
    return CallEvent(
        event="ringing",
        call_id=call_id,
        enterprise="0367",
        direction="in",
        phone="+79161234567",
        did="+74951112233",
        extension=ext,
        at=T0,
    )


def ended(call_id: str = "1700000000.1", **kw: Any) -> CallEvent:
    fields: dict[str, Any] = dict(
        extensions=("101",),
        answered_by="101",
        result="answered",
        ring_seconds=5.0,
        talk_seconds=42.0,
        started_at=T0,
        recording=None,
    )
    fields.update(kw)
    return CallEvent(
        event="ended",
        call_id=call_id,
        enterprise="0367",
        direction="in",
        phone="+79161234567",
        did="+74951112233",
        extension=None,
        at=T0,
        **fields,
    )


def upload(call_id: str, **kw: Any) -> Delivery:
    return next(
        d
        for d in plan(
            ended(call_id, **kw),
            RetailCrmSettings(domain="https://x.retailcrm.ru", api_key=KEY, client_id=CLIENT_ID, timezone="UTC"),
        )
        if d.kind == "calls_upload"
    )


def assert_no_key(outcome: SendOutcome) -> None:
    assert KEY not in repr(outcome)
    assert CLIENT_ID not in repr(outcome)


# -- deliveries -----------------------------------------------------------------------------------


async def test_popup_is_one_form_field_holding_json(crm: FakeRetailCrm, client: RetailCrmClient) -> None:
    [d] = plan(ringing(), client.settings)
    outcome = await client.send([d])
    assert outcome.status == "success", outcome.error
    assert outcome.http_status == 200
    assert outcome.items == {d.idempotency_key: "success"}
    [req] = crm.requests
    assert (req.method, req.path) == ("POST", "/api/v5/telephony/call/event")
    assert req.content_type == "application/x-www-form-urlencoded"
    assert set(req.form) == {"event"}
    assert req.json_field("event") == d.payload["event"]
    assert req.headers["X-API-KEY"] == KEY
    assert "apiKey" not in req.query
    assert crm.events == [d.payload["event"]]
    assert_no_key(outcome)
    assert outcome.request["headers"]["X-API-KEY"] == "Zq8P…J5kY"


async def test_fake_rejects_a_json_body_and_a_missing_key(crm: FakeRetailCrm) -> None:
    async with httpx.AsyncClient(base_url=crm.url) as raw:
        r = await raw.post(
            "/api/v5/telephony/call/event", json={"event": {"phone": "1", "type": "in"}}, headers={"X-API-KEY": KEY}
        )
        assert r.status_code == 400
        assert r.json() == {"success": False, "errorMsg": "Parameter 'event' is missing"}
        r = await raw.post("/api/v5/telephony/call/event", data={"event": "{}"})
        assert (r.status_code, r.json()["errorMsg"]) == (400, '"apiKey" is missing.')
        r = await raw.get("/api/v5/telephony/manager", params={"phone": "1", "apiKey": KEY})
        assert r.status_code == 200  # the key as a query parameter is accepted too


async def test_wrong_key_is_permanent_and_never_shown(crm: FakeRetailCrm, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "Wr0ngKeyWr0ngKeyWr0ngKeyWr0ngKey"
    async with RetailCrmClient(settings_for(crm, api_key=wrong)) as c:
        outcome = await c.send(plan(ringing(), c.settings))
    assert outcome.status == "permanent"
    assert outcome.http_status == 403
    assert outcome.error == 'Wrong "apiKey" value.'
    assert wrong not in repr(outcome)
    assert wrong not in caplog.text
    assert "telephony/call/event" in caplog.text  # the exchange was logged, masked


async def test_503_and_429_with_retry_after_are_transient(crm: FakeRetailCrm, client: RetailCrmClient) -> None:
    crm.fail_next(1, status=503, retry_after=3)
    outcome = await client.send(plan(ringing(), client.settings))
    assert (outcome.status, outcome.http_status, outcome.retry_after) == ("transient", 503, 3.0)
    assert outcome.error == "Rate limit exceeded"
    crm.fail_next(1, status=429, retry_after="Wed, 21 Oct 2099 07:28:00 GMT")
    outcome = await client.send(plan(ringing(), client.settings))
    assert outcome.status == "transient"
    assert outcome.retry_after is not None and outcome.retry_after > 1e9
    crm.fail_next(1, status=502, body="<html>Bad Gateway</html>")
    outcome = await client.send(plan(ringing(), client.settings))
    assert (outcome.status, outcome.retry_after) == ("transient", None)
    assert (await client.send(plan(ringing(), client.settings))).status == "success"


async def test_success_false_string_in_a_200_is_an_error(crm: FakeRetailCrm) -> None:
    crm.telephony_enabled = False
    async with RetailCrmClient(settings_for(crm)) as c:
        outcome = await c.send(plan(ringing(), c.settings))
        assert (outcome.status, outcome.http_status) == ("permanent", 200)
        assert outcome.error == "Telephony not enabled"
        outcome = await c.send([upload("1")])
        assert outcome.status == "permanent"
        assert outcome.items == {"retailcrm:1:upload": "permanent"}


async def test_hang_gives_transient_timeout_within_the_client_timeout(
    crm: FakeRetailCrm, client: RetailCrmClient
) -> None:
    crm.hang()
    started = time.monotonic()
    outcome = await client.send(plan(ringing(), client.settings))
    assert time.monotonic() - started < 2.0
    assert outcome.status == "transient"
    assert outcome.error is not None and "timeout" in outcome.error
    assert outcome.http_status is None
    assert 400 <= outcome.duration_ms < 2000


async def test_slow_answer_within_timeout_succeeds(crm: FakeRetailCrm, client: RetailCrmClient) -> None:
    crm.slow(0.1)
    outcome = await client.send(plan(ringing(), client.settings))
    assert outcome.ok
    assert outcome.duration_ms >= 100


async def test_connection_refused_is_transient() -> None:
    fake = FakeRetailCrm(api_key=KEY)
    await fake.start()
    settings = settings_for(fake)
    await fake.stop()
    async with RetailCrmClient(settings) as c:
        outcome = await c.send(plan(ringing(), settings))
    assert outcome.status == "transient"
    assert outcome.error is not None and "connection" in outcome.error


async def test_html_page_from_a_missing_account_is_permanent() -> None:
    async with FakeRetailCrm(api_key=KEY, account_exists=False) as fake, RetailCrmClient(settings_for(fake)) as c:
        outcome = await c.send(plan(ringing(), c.settings))
        assert (outcome.status, outcome.http_status) == ("permanent", 405)
        assert outcome.error is not None and "HTML" in outcome.error
        report = await c.test_connection()
        assert not report.ok
        assert report.reason is not None and "no such RetailCRM account" in report.reason


@pytest.mark.parametrize("as_list", [False, True])
async def test_validation_errors_object_or_list_reach_the_outcome(as_list: bool) -> None:
    async with FakeRetailCrm(api_key=KEY, errors_as_list=as_list) as fake, RetailCrmClient(settings_for(fake)) as c:
        event = {"phone": "1", "type": "hangup", "codes": ["101"], "hangupStatus": "no answer"}
        bad = Delivery("retailcrm:x:event:hangup", "0367", "retailcrm", "call_event", {"event": event})
        outcome = await c.send([bad])
    assert (outcome.status, outcome.http_status) == ("permanent", 400)
    assert outcome.error == (
        "Errors in the entity format (hangupStatus: The value you selected is not a valid choice.)"
    )


async def test_batch_of_50_uploads_is_one_request(crm: FakeRetailCrm, client: RetailCrmClient) -> None:
    batch = [upload(f"1700000000.{i}") for i in range(50)]
    outcome = await client.send(batch)
    assert outcome.status == "success", outcome.error
    assert len(crm.requests) == 1
    assert len(crm.requests[0].json_field("calls")) == 50
    assert set(outcome.items) == {d.idempotency_key for d in batch}
    assert set(outcome.items.values()) == {"success"}
    assert len(crm.calls) == 50
    with pytest.raises(ValueError, match=r"1\.\.50"):
        await client.send([*batch, upload("one-too-many")])
    with pytest.raises(ValueError):
        await client.send([batch[0], *plan(ringing(), client.settings)])


async def test_fake_refuses_51_calls(crm: FakeRetailCrm) -> None:
    import json

    calls = [upload(str(i)).payload["call"] for i in range(51)]
    async with httpx.AsyncClient(base_url=crm.url) as raw:
        r = await raw.post(
            "/api/v5/telephony/calls/upload", data={"calls": json.dumps(calls)}, headers={"X-API-KEY": KEY}
        )
    assert r.status_code == 400
    assert r.json()["errorMsg"] == "Errors in the entity format"


@pytest.mark.parametrize("report", [True, False])
async def test_repeated_external_id_counts_as_success(report: bool) -> None:
    async with FakeRetailCrm(api_key=KEY, report_duplicates=report) as fake, RetailCrmClient(settings_for(fake)) as c:
        first = await c.send([upload("A")])
        again = await c.send([upload("A"), upload("B")])
    assert first.ok and first.duplicates == []
    assert again.status == "success"
    assert again.items == {"retailcrm:A:upload": "success", "retailcrm:B:upload": "success"}
    assert again.duplicates == (["retailcrm:A:upload"] if report else [])
    assert set(fake.calls) == {"A", "B"}


async def test_record_url_hook(crm: FakeRetailCrm, client: RetailCrmClient) -> None:
    with_rec = upload("R1", recording="2026/01/15/R1.wav")
    without = upload("R2")
    seen: list[str] = []

    def sign(path: str, fmt: str | None = None, *, pbx: str | None = None) -> str:
        seen.append(path)
        return f"https://pbx.example.com/rec/{path}?sig=abc"

    assert (await client.send([with_rec, without], record_url=sign)).ok
    assert seen == ["2026/01/15/R1.wav"]
    assert crm.calls["R1"]["recordUrl"] == "https://pbx.example.com/rec/2026/01/15/R1.wav?sig=abc"
    assert "recordUrl" not in crm.calls["R2"]
    assert "recording" not in crm.calls["R1"]
    assert (await client.send([upload("R3", recording="x.wav")], record_url=lambda p, fmt=None, *, pbx=None: None)).ok
    assert "recordUrl" not in crm.calls["R3"]


async def test_planned_call_end_to_end_passes_the_fake(crm: FakeRetailCrm, client: RetailCrmClient) -> None:
    for result in ("answered", "no_answer", "busy", "failed", "cancelled"):
        call_id = f"e2e-{result}"
        deliveries = plan(
            ended(call_id, result=result, answered_by=None if result != "answered" else "101"), client.settings
        )
        for d in deliveries:
            outcome = await client.send([d])
            assert outcome.ok, (result, d.kind, outcome.error)
    assert {e["hangupStatus"] for e in crm.events} == {"answered", "no answered", "busy", "failed", "cancel"}
    assert {c["result"] for c in crm.calls.values()} == {"answered", "no answer", "busy", "failed"}


async def test_fake_throttles_and_the_client_limiter_avoids_it() -> None:
    from connectors.http import RateLimiter, retailcrm_route

    async with FakeRetailCrm(api_key=KEY, rate_limit=True) as fake:
        async with RetailCrmClient(settings_for(fake)) as c:
            outcomes = await asyncio.gather(*(c.send([upload(f"burst-{i}")]) for i in range(80)))
        throttled = [o for o in outcomes if not o.ok]
        assert throttled, "80 telephony requests at once must exceed 40 rps"
        assert {(o.status, o.http_status, o.error) for o in throttled} == {("transient", 503, "Rate limit exceeded")}
    async with FakeRetailCrm(api_key=KEY, rate_limit=True) as fake:
        limiter = RateLimiter(retailcrm_route)
        async with RetailCrmClient(settings_for(fake), limiter=limiter) as c:
            paced = [await c.send([upload(f"paced-{i}")]) for i in range(45)]
        assert [o.error for o in paced if not o.ok] == []
