"""connectors.retailcrm.plan on hand-built CallEvents."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from agent.tracking.event import CallEvent
from connectors.retailcrm.plan import plan
from connectors.retailcrm.settings import RetailCrmSettings, parse

T0 = datetime(2026, 1, 15, 9, 30, 0, tzinfo=UTC)


def settings(**over: Any) -> RetailCrmSettings:
    data: dict[str, Any] = {
        "domain": "https://shop.retailcrm.ru",
        "api_key": "k" * 32,
        "client_id": "c" * 32,
        "timezone": "Europe/Moscow",
        "user_extensions": {"7": "101", "8": "102"},
    }
    data.update(over)
    return parse(data)


def ev(event: str, **kw: Any) -> CallEvent:
    base: dict[str, Any] = dict(
        call_id="1700000000.42",
        enterprise="0367",
        direction="in",
        phone="+79161234567",
        did="+74951112233",
        extension=None,
        at=T0,
    )
    base.update(kw)
    return CallEvent(event=event, **base)  # type: ignore[arg-type]


def ended(result: str, **kw: Any) -> CallEvent:
    fields: dict[str, Any] = dict(
        extensions=("101", "102"),
        answered_by=None,
        result=result,
        ring_seconds=12.4,
        talk_seconds=0.0,
        started_at=T0,
        at=T0,
    )
    fields.update(kw)
    return ev("ended", **fields)


def test_ringing_in_gives_one_popup_for_that_extension() -> None:
    [d] = plan(ev("ringing", extension="101"), settings())
    assert d.kind == "call_event"
    assert d.idempotency_key == "retailcrm:1700000000.42:event:ringing:101"
    assert d.expires_after == 60
    assert d.batch_key is None
    assert d.payload == {
        "event": {
            "phone": "+79161234567",
            "type": "in",
            "codes": ["101"],
            "callExternalId": "1700000000.42",
            "externalPhone": "+74951112233",
        }
    }


def test_ringing_out_is_type_out_and_honours_its_flag() -> None:
    out = ev("ringing", direction="out", extension="102", did=None)
    [d] = plan(out, settings())
    assert d.payload["event"]["type"] == "out"
    assert "externalPhone" not in d.payload["event"]
    assert plan(out, settings(popup_out=False)) == []
    assert plan(ev("ringing", extension="101"), settings(popup_in=False)) == []
    assert len(plan(out, settings(popup_in=False))) == 1


def test_site_and_external_phone_from_settings() -> None:
    s = settings(site="shop-1", external_phone="+74950000000")
    [d] = plan(ev("ringing", direction="out", extension="101", did=None), s)
    assert d.payload["event"]["site"] == "shop-1"
    assert d.payload["event"]["externalPhone"] == "+74950000000"


def test_answered_internal_anonymous_and_disabled_give_nothing() -> None:
    s = settings()
    assert plan(ev("answered", extension="101"), s) == []
    assert plan(ev("ringing", extension="101", direction="internal", phone=None), s) == []
    assert plan(ended("answered", direction="internal", answered_by="101"), s) == []
    assert plan(ev("ringing", extension="101", phone=None), s) == []
    assert plan(ev("ringing", extension="101"), settings(enabled=False)) == []


def test_transfer_pops_the_card_for_the_target() -> None:
    t = ev("transferred", extension="101", from_extension="101", to_extension="105", kind="blind")
    [d] = plan(t, settings())
    assert d.payload["event"]["codes"] == ["105"]
    assert d.idempotency_key == "retailcrm:1700000000.42:event:transferred:101:105"


def _by_kind(ds: list[Any]) -> dict[str, Any]:
    return {d.kind: d for d in ds}


def test_answered_call_gives_hangup_event_and_upload() -> None:
    e = ended("answered", answered_by="102", talk_seconds=65.6, recording="2026/01/15/1700000000.42.wav")
    ds = _by_kind(plan(e, settings()))
    hangup = ds["call_event"]
    assert hangup.idempotency_key == "retailcrm:1700000000.42:event:hangup"
    assert hangup.payload["event"]["type"] == "hangup"
    assert hangup.payload["event"]["hangupStatus"] == "answered"
    assert hangup.payload["event"]["codes"] == ["101", "102"]
    up = ds["calls_upload"]
    assert up.idempotency_key == "retailcrm:1700000000.42:upload"
    assert up.expires_after is None
    assert up.batch_key == "retailcrm:0367:calls_upload"
    assert up.payload["recording"] == "2026/01/15/1700000000.42.wav"
    assert up.payload["call"] == {
        "type": "in",
        "phone": "+79161234567",
        "result": "answered",
        "duration": 66,
        "durationWaiting": 12,
        "externalId": "1700000000.42",
        "externalPhone": "+74951112233",
        "date": "2026-01-15 12:30:00",  # Moscow is UTC+3
        "code": "102",
        "userId": 8,
    }


@pytest.mark.parametrize(
    ("result", "hangup_status", "upload_result"),
    [
        ("no_answer", "no answered", "no answer"),
        ("busy", "busy", "busy"),
        ("failed", "failed", "failed"),
        ("cancelled", "cancel", "no answer"),
    ],
)
def test_unanswered_spellings(result: str, hangup_status: str, upload_result: str) -> None:
    ds = _by_kind(plan(ended(result), settings()))
    assert ds["call_event"].payload["event"]["hangupStatus"] == hangup_status
    call = ds["calls_upload"].payload["call"]
    assert call["result"] == upload_result
    assert call["duration"] == 0
    # a group call (101 and 102 rang) nobody answered is neither member's
    assert "code" not in call and "userId" not in call
    assert ds["calls_upload"].payload["recording"] is None


@pytest.mark.parametrize(
    ("owner", "default", "code"),
    [
        ("101", None, "101"),  # the call's owner (smart redirect's manager, or the one phone that rang)
        ("101", "102", "101"),
        (None, "102", "102"),  # else the DID's default manager
        (None, None, None),  # else unassigned: never the last member that rang
    ],
)
def test_a_missed_call_belongs_to_its_owner_else_the_default_else_nobody(
    owner: str | None, default: str | None, code: str | None
) -> None:
    e = ended("no_answer", extensions=("101", "102", "103"), extension=owner, default_extension=default)
    call = _by_kind(plan(e, settings()))["calls_upload"].payload["call"]
    assert call.get("code") == code


def test_outgoing_upload_and_unknown_extension_has_no_user_id() -> None:
    e = ended("answered", direction="out", did=None, extensions=("109",), answered_by="109", talk_seconds=3)
    call = _by_kind(plan(e, settings()))["calls_upload"].payload["call"]
    assert call["type"] == "out"
    assert call["code"] == "109"
    assert "userId" not in call


def test_flags_switch_hangup_and_upload_off() -> None:
    e = ended("answered", answered_by="101")
    assert [d.kind for d in plan(e, settings(popup_hangup=False))] == ["calls_upload"]
    assert [d.kind for d in plan(e, settings(upload_history=False))] == ["call_event"]


def test_no_clock_means_no_date_and_naive_times_are_utc() -> None:
    e = ended("no_answer", started_at=None, at=None)
    assert "date" not in _by_kind(plan(e, settings()))["calls_upload"].payload["call"]
    naive = replace(ended("busy"), started_at=datetime(2026, 7, 1, 0, 0, 5))
    assert _by_kind(plan(naive, settings()))["calls_upload"].payload["call"]["date"] == "2026-07-01 03:00:05"


def test_nobody_rang_gives_upload_without_code_and_no_hangup() -> None:
    e = ended("failed", extensions=())
    [d] = plan(e, settings())
    assert d.kind == "calls_upload"
    assert "code" not in d.payload["call"]


def test_payloads_are_json_round_trippable() -> None:
    import json

    events = [
        ev("ringing", extension="101"),
        ended("answered", answered_by="101", recording="r.wav"),
        ev("transferred", from_extension="101", to_extension="102", kind="attended"),
    ]
    for e in events:
        for d in plan(e, settings()):
            assert json.loads(json.dumps(d.payload)) == d.payload
