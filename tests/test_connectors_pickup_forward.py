"""What the CRMs get for a picked-up call and for a call a manager's phone forwarded to his mobile."""

from __future__ import annotations

from agent.store.calls import event_from_row, row
from agent.tracking.event import CallEvent
from connectors.amocrm.plan import plan as amo_plan
from connectors.amocrm.settings import parse as amo_parse
from connectors.retailcrm.plan import plan as rc_plan
from connectors.retailcrm.settings import parse as rc_parse
from tests.recordings import NAMES, play

CUSTOMER_A = "+375291234567"
MOBILE_150 = "+375296660150"
AMO = amo_parse(
    {
        "host": "https://shop.amocrm.ru",
        "client_id": "5f2b8d9e-1c3a-4b7e-9f00-aa11bb22cc33",
        "client_secret": "Sx9kT2mQ7vW4yZ1aB8cD3eF6gH0jK5lN",
        "user_extensions": {"7": "150", "8": "151", "9": "152"},
    }
)
RC = rc_parse(
    {
        "domain": "https://shop.retailcrm.ru",
        "api_key": "k" * 32,
        "client_id": "c" * 32,
        "timezone": "Europe/Minsk",
        "user_extensions": {"17": "150", "18": "151"},
    }
)


def uploads(name: str) -> list[dict[str, object]]:
    return [d.payload["call"] for e in play(name) for d in rc_plan(e, RC) if d.kind == "calls_upload"]


def amo_calls(name: str) -> list[dict[str, object]]:
    return [d.payload for e in play(name) for d in amo_plan(e, AMO) if d.kind == "call"]


def test_retailcrm_forwarded_call_is_answered_by_the_forwarding_manager() -> None:
    [call] = uploads("p_t_forward_no_answer")
    assert (call["result"], call["code"], call["userId"], call["phone"]) == ("answered", "150", 17, CUSTOMER_A)
    assert call["duration"] == 9 and call["durationWaiting"] == 7


def test_amocrm_forwarded_call_is_answered_on_the_customers_card() -> None:
    [payload] = amo_calls("p_t_forward_no_answer")
    call = payload["call"]
    assert isinstance(call, dict)
    assert (call["call_status"], call["responsible_user_id"], call["phone"]) == (4, 7, CUSTOMER_A)
    assert call["call_result"] == f"Отвечен (150 на {MOBILE_150})"  # an amocrm.ru account: Russian by default
    assert payload["phone"] == CUSTOMER_A and "task" not in payload  # not a missed call, not the mobile's card


def test_picked_up_call_goes_to_the_picker() -> None:
    [call] = uploads("p_m_pickup")
    assert (call["result"], call["code"], call["userId"]) == ("answered", "151", 18)
    [payload] = amo_calls("p_m_pickup")
    assert payload["answered_by"] == "151" and "task" not in payload
    assert payload["extensions"] == ["150", "151"]


def test_forwarded_to_survives_the_calls_table() -> None:
    end = play("p_t_forward_no_answer")[-1]
    values = row(end)
    stored = dict(
        zip(
            (
                "call_id",
                "enterprise_number",
                "pbx",
                "direction",
                "phone",
                "did",
                "extensions",
                "answered_by",
                "result",
                "ring_seconds",
                "talk_seconds",
                "started_at",
                "ended_at",
                "recording",
                "details",
            ),
            values,
            strict=True,
        )
    )
    back: CallEvent = event_from_row(stored)
    assert back.forwarded_to == MOBILE_150 and "forwarded_to" not in back.extra
    assert back.extra == end.extra


def stored_and_back(event: CallEvent) -> CallEvent:
    columns = ("call_id", "enterprise_number", "pbx", "direction", "phone", "did", "extensions", "answered_by",
               "result", "ring_seconds", "talk_seconds", "started_at", "ended_at", "recording", "details")  # fmt: skip
    return event_from_row(dict(zip(columns, row(event), strict=True)))


def test_the_owner_of_a_stored_call_survives_the_table() -> None:
    """Redelivery and backfill plan a stored call again: whose call it is must come back as the tracker said,
    not be guessed from the phones that rang (a group call nobody answered is nobody's)."""
    ended = [e for name in NAMES for e in play(name) if e.event == "ended"]
    for event in ended:
        back = stored_and_back(event)
        assert (back.extension, back.answered_by, back.extensions) == (
            event.extension,
            event.answered_by,
            event.extensions,
        ), event.call_id
        assert "owner" not in back.extra
    missed_group = CallEvent(
        event="ended", call_id="1.1", enterprise="1", direction="in", phone=CUSTOMER_A, did=None, extension=None,
        at=None, extensions=("150", "151", "152"), result="no_answer",
    )  # fmt: skip
    assert stored_and_back(missed_group).extension is None
    assert rc_plan(stored_and_back(missed_group), RC)[-1].payload["call"].get("code") is None
