"""crm-api.md Part A, statement by statement: the fake RetailCRM refuses what the contract says the real one
refuses (so the tests that use it prove something), and what the client plans passes those same rules."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from agent.tracking.event import CallEvent
from connectors.retailcrm.models import ModuleUrls, module_object
from connectors.retailcrm.plan import plan
from connectors.retailcrm.settings import parse
from tests.fakes import retailcrm_rules as rules
from tests.fakes.retailcrm import FakeRetailCrm

KEY = "Zq8PLr2mWx7TaK4nB9vC1dE6fG3hJ5kY"
T0 = datetime(2026, 1, 15, 9, 30, 0, tzinfo=UTC)
EVENT = {"phone": "+79161234567", "type": "in", "codes": ["101"]}
CALL = {"date": "2026-01-15 12:30:00", "type": "in", "phone": "+79161234567", "result": "answered", "externalId": "c1"}
MODULE = {
    "code": "pbx-agent",
    "active": True,
    "name": "PBX agent",
    "clientId": "cid-" + "7" * 28,
    "baseUrl": "https://pbx.example.com",
    "logo": "https://pbx.example.com/logo.svg",
}


@pytest.fixture
async def raw() -> AsyncIterator[httpx.AsyncClient]:
    async with FakeRetailCrm(api_key=KEY) as fake, httpx.AsyncClient(base_url=fake.url) as http:
        fake.known_codes.add("101")
        yield http


async def refused(http: httpx.AsyncClient, path: str, field: str, value: Any) -> dict[str, Any]:
    r = await http.post(path, data={field: json.dumps(value)}, headers={"X-API-KEY": KEY})
    assert r.status_code == 400, r.text
    body: dict[str, Any] = r.json()
    assert body["success"] is False and body["errorMsg"] == "Errors in the entity format"
    errors: dict[str, Any] = body["errors"]
    return errors


async def test_the_valid_shapes_pass(raw: httpx.AsyncClient) -> None:
    """The baseline each refusal below changes one thing of."""
    headers = {"X-API-KEY": KEY}
    r = await raw.post("/api/v5/telephony/call/event", data={"event": json.dumps(EVENT)}, headers=headers)
    assert r.json() == {"success": True}
    r = await raw.post("/api/v5/telephony/calls/upload", data={"calls": json.dumps([CALL])}, headers=headers)
    assert r.json()["success"] is True
    r = await raw.post(
        "/api/v5/integration-modules/pbx-agent/edit", data={"integrationModule": json.dumps(MODULE)}, headers=headers
    )
    assert r.status_code == 201


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"type": "hangup"}, "hangupStatus"),  # §A4: hangupStatus is required on hangup
        ({"type": "hangup", "hangupStatus": "no answer"}, "hangupStatus"),  # §0.1 trap 2: events say "no answered"
        ({"callExternalId": 1700000000}, "callExternalId"),  # §A4 types
        ({"site": 1}, "site"),
        ({"externalPhone": 74951112233}, "externalPhone"),
    ],
)
async def test_an_event_against_the_contract_is_refused(
    raw: httpx.AsyncClient, change: dict[str, Any], field: str
) -> None:
    errors = await refused(raw, "/api/v5/telephony/call/event", "event", {**EVENT, **change})
    assert field in errors


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"code": 101}, "calls[0].code"),  # §A5: the extension is a string
        ({"source": "google"}, "calls[0].source"),  # §A5: an object {source, medium, ...}
        ({"externalPhone": 74951112233}, "calls[0].externalPhone"),
        ({"clientId": 42}, "calls[0].clientId"),
        ({"result": "no answered"}, "calls[0].result"),  # §0.1 trap 2: uploads say "no answer"
    ],
)
async def test_an_upload_against_the_contract_is_refused(
    raw: httpx.AsyncClient, change: dict[str, Any], field: str
) -> None:
    errors = await refused(raw, "/api/v5/telephony/calls/upload", "calls", [{**CALL, **change}])
    assert field in errors


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"code": None}, "code"),  # §A3: `code` is the module's code, the one in the path
        ({"code": "other"}, "code"),
        ({"name": 7}, "name"),
        ({"accountUrl": "settings"}, "accountUrl"),
        ({"availableCountries": "RU"}, "availableCountries"),
    ],
)
async def test_a_module_against_the_contract_is_refused(
    raw: httpx.AsyncClient, change: dict[str, Any], field: str
) -> None:
    module = {k: v for k, v in {**MODULE, **change}.items() if v is not None}
    errors = await refused(raw, "/api/v5/integration-modules/pbx-agent/edit", "integrationModule", module)
    assert field in errors


@pytest.mark.parametrize(("limit", "status"), [("100", 200), ("20", 200), ("500", 400), ("10", 400), ("x", 400)])
async def test_a_tasks_page_takes_the_paged_limits_only(raw: httpx.AsyncClient, limit: str, status: int) -> None:
    """§A1.4: 20, 50, 100 or 250 per page."""
    r = await raw.get("/api/v5/tasks", params={"limit": limit}, headers={"X-API-KEY": KEY})
    assert r.status_code == status, r.text
    assert r.json()["success"] is (status == 200)


# -- what the client plans passes the same rules -------------------------------------------------


def ended(result: str | None, answered_by: str | None, **kw: Any) -> CallEvent:
    return CallEvent(
        event="ended",
        call_id="1700000000.1",
        enterprise="0367",
        direction=kw.pop("direction", "in"),
        phone="+79161234567",
        did="+74951112233",
        extension=kw.pop("extension", None),
        at=T0,
        extensions=("101", "102"),
        answered_by=answered_by,
        result=result,  # type: ignore[arg-type]
        ring_seconds=5.0,
        talk_seconds=42.4 if answered_by else 0.0,
        started_at=T0,
        **kw,
    )


@pytest.mark.parametrize(
    "event",
    [
        ended("answered", "101"),
        ended("no_answer", None),
        ended("cancelled", None),
        ended("busy", None, direction="out", extension="102"),
        ended("failed", None, direction="out", extension="102"),
        ended(None, None),
    ],
)
def test_every_planned_event_and_upload_keeps_the_contract(event: CallEvent) -> None:
    settings = parse(
        {
            "domain": "https://x.retailcrm.ru",
            "api_key": KEY,
            "client_id": "cid-" + "7" * 28,
            "timezone": "Europe/Moscow",
            "user_extensions": {"7": "101", "8": "102"},
            "site": "shop",
            "external_phone": "+74951112233",
            "missed_call_tasks": True,
        }
    )
    deliveries = plan(event, settings)
    assert any(d.kind == "calls_upload" for d in deliveries)
    for d in deliveries:
        if d.kind == "call_event":
            assert rules.check_event(d.payload["event"]) == {}
        elif d.kind == "calls_upload":
            assert rules.check_calls([d.payload["call"]]) == {}
    urls = ModuleUrls("https://pbx.example.com", "https://pbx.example.com/logo.svg", "https://pbx.example.com/call")
    assert rules.check_module(settings.code, module_object(settings, urls, name="PBX", active=True)) == {}
