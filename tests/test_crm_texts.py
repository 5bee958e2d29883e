"""What the agent writes into the CRMs for people to read is in the enterprise's language (Russian or English)
with times in its zone, the zone named (connectors.texts). Pure: the plans of recorded calls."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.amocrm.plan import plan as amo_plan
from connectors.amocrm.settings import SettingsError as AmoSettingsError
from connectors.amocrm.settings import parse as amo_parse
from connectors.retailcrm.plan import plan as rc_plan
from connectors.retailcrm.settings import SettingsError as RcSettingsError
from connectors.retailcrm.settings import parse as rc_parse
from connectors.texts import CATALOGUE
from tests.recordings import play

AMO: dict[str, Any] = {
    "host": "https://shop.amocrm.ru",
    "client_id": "5f2b8d9e-1c3a-4b7e-9f00-aa11bb22cc33",
    "client_secret": "Sx9kT2mQ7vW4yZ1aB8cD3eF6gH0jK5lN",
    "user_extensions": {"7": "150", "8": "151", "9": "152"},
}
RC: dict[str, Any] = {
    "domain": "https://shop.retailcrm.ru",
    "api_key": "k" * 32,
    "client_id": "c" * 32,
    "timezone": "Europe/Minsk",
    "user_extensions": {"17": "150", "18": "151"},
    "missed_call_tasks": True,
}


def amo_payloads(name: str, **over: Any) -> list[dict[str, Any]]:
    settings = amo_parse({**AMO, **over})
    return [d.payload for e in play(name) for d in amo_plan(e, settings) if d.kind == "call"]


def test_amocrm_in_russian_for_a_ru_account_with_local_times() -> None:
    (missed,) = amo_payloads("p_b_incoming_missed", timezone="Europe/Minsk")
    assert missed["call"]["call_result"] in {CATALOGUE["ru"]["result.no_answer"], CATALOGUE["ru"]["result.cancelled"]}
    assert missed["lead_name"] == "Звонок от +375291234567"
    text = missed["task"]["text"]
    assert text.startswith("Перезвонить +375291234567: пропущенный звонок ") and text.endswith("(Europe/Minsk)")
    (answered,) = amo_payloads("p_a_incoming_answered")
    assert answered["call"]["call_result"] == "Отвечен (150)"


def test_amocrm_in_english_when_chosen_or_for_an_international_account() -> None:
    (missed,) = amo_payloads("p_b_incoming_missed", language="en")
    assert missed["lead_name"] == "Call from +375291234567" and missed["task"]["text"].startswith("Call back ")
    assert missed["task"]["text"].endswith("(UTC)")  # no zone anywhere: UTC, and it says so
    (com,) = amo_payloads("p_a_incoming_answered", host="https://shop.amocrm.com")
    assert com["call"]["call_result"] == "Answered (150)"
    with pytest.raises(AmoSettingsError, match="language"):
        amo_parse({**AMO, "language": "de"})
    with pytest.raises(AmoSettingsError, match="timezone"):
        amo_parse({**AMO, "timezone": "Mars/Olympus"})


def test_the_minsk_time_is_three_hours_after_utc() -> None:
    (utc,) = amo_payloads("p_b_incoming_missed", language="en")
    (minsk,) = amo_payloads("p_b_incoming_missed", language="en", timezone="Europe/Minsk")
    hour = int(utc["task"]["text"].split(" ")[-2].split(":")[0])
    assert int(minsk["task"]["text"].split(" ")[-2].split(":")[0]) == (hour + 3) % 24


def rc_task_text(**over: Any) -> str:
    settings = rc_parse({**RC, **over})
    (task,) = [d.payload for e in play("p_b_incoming_missed") for d in rc_plan(e, settings) if d.kind == "task"]
    return str(task["text"])


def test_retailcrm_tasks_in_russian_by_default_and_english_when_chosen() -> None:
    assert rc_task_text().startswith("Перезвонить +375291234567: пропущенный звонок ")
    assert rc_task_text().endswith("(Europe/Minsk)")
    assert rc_task_text(language="en").startswith("Call back +375291234567: missed call at ")
    with pytest.raises(RcSettingsError, match="language"):
        rc_parse({**RC, "language": "fr"})
