"""Routing rules evaluated with "now" passed in: cut-offs, holidays, DST, blocklist, DID rules, validation."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from agent.delivery.planner import for_crm
from agent.redirect.rules import RulesError, parse, time_text
from agent.tracking.event import CallEvent

BERLIN = ZoneInfo("Europe/Berlin")
OFFICE = {
    "timezone": "Europe/Berlin",
    "hours": {d: [["09:00", "13:00"], ["14:00", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri")},
    "holidays": ["2026-12-25"],
    "managers": {"151": {"hours": {"fri": [["09:00", "12:00"]]}}},
}


def berlin(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN)


def test_friday_evening_cut_off() -> None:
    rules = parse(OFFICE)
    assert rules.is_open(berlin(2026, 11, 27, 17, 59))  # Friday
    assert not rules.is_open(berlin(2026, 11, 27, 18, 0))  # the range ends at 18:00, exclusive
    assert not rules.is_open(berlin(2026, 11, 28, 10, 0))  # Saturday: not listed, closed
    assert not rules.is_open(berlin(2026, 11, 27, 13, 30))  # lunch between two ranges
    assert rules.is_open(berlin(2026, 11, 30, 9, 0))  # Monday morning
    # the same instants given in UTC
    assert rules.is_open(datetime(2026, 11, 27, 16, 59, tzinfo=UTC))
    assert not rules.is_open(datetime(2026, 11, 27, 17, 0, tzinfo=UTC))


def test_holiday_closes_the_whole_day() -> None:
    rules = parse(OFFICE)
    assert not rules.is_open(berlin(2026, 12, 25, 10, 0))  # a Friday, but a holiday
    assert rules.is_open(berlin(2026, 12, 24, 10, 0))
    # a holiday with no hours configured at all: closed that day only
    only = parse({"timezone": "Europe/Berlin", "holidays": ["2026-12-25"]})
    assert not only.is_open(datetime(2026, 12, 24, 23, 30, tzinfo=UTC))  # 00:30 on the 25th in Berlin
    assert only.is_open(datetime(2026, 12, 24, 22, 30, tzinfo=UTC))


def test_daylight_saving_change_in_berlin() -> None:
    rules = parse(OFFICE)
    # 2026-03-27 (Fri, CET, UTC+1) and 2026-03-30 (Mon, CEST, UTC+2): 09:00 local is 08:00 / 07:00 UTC.
    assert rules.is_open(datetime(2026, 3, 27, 8, 0, tzinfo=UTC))
    assert not rules.is_open(datetime(2026, 3, 27, 7, 59, tzinfo=UTC))
    assert rules.is_open(datetime(2026, 3, 30, 7, 0, tzinfo=UTC))
    assert not rules.is_open(datetime(2026, 3, 30, 6, 59, tzinfo=UTC))
    # autumn: 2026-10-26 (Mon, CET again): 17:30 UTC is 18:30 local -> closed; 16:30 UTC is open
    assert not rules.is_open(datetime(2026, 10, 26, 17, 30, tzinfo=UTC))
    assert rules.is_open(datetime(2026, 10, 26, 16, 30, tzinfo=UTC))


def test_manager_hours() -> None:
    rules = parse(OFFICE)
    assert rules.manager_on_duty("151", berlin(2026, 11, 27, 11, 59))
    assert not rules.manager_on_duty("151", berlin(2026, 11, 27, 12, 0))
    assert not rules.manager_on_duty("151", berlin(2026, 11, 30, 10, 0))  # only Fridays
    assert rules.manager_on_duty("150", berlin(2026, 11, 30, 3, 0))  # no own hours: always


def test_no_hours_is_always_open() -> None:
    assert parse({}).is_open(datetime(2026, 1, 1, 3, 0, tzinfo=UTC))
    assert parse(None).is_open(datetime(2026, 1, 1, 3, 0, tzinfo=UTC))
    assert parse({"hours": {"mon": [["00:00", "24:00"]]}}).is_open(datetime(2026, 11, 30, 23, 59, tzinfo=UTC))


def test_blocklist_numbers_and_prefixes() -> None:
    rules = parse({"blocklist": ["+375291112233", "+37544*", "80171234567"]})
    assert rules.is_blocked("+375291112233")
    assert rules.is_blocked("375291112233")
    assert rules.is_blocked("+375445550011")
    assert rules.is_blocked("+80171234567")
    assert not rules.is_blocked("+375291234567")
    assert not rules.is_blocked("")
    assert not rules.is_blocked(None)


def test_planner_filter_blocked_did_off_and_default_extension() -> None:
    rules = parse(
        {
            "blocklist": ["+37544*"],
            "did_rules": {"+375172000000": {"crm_delivery": False}, "+375173000000": {"default_extension": "152"}},
        }
    )

    def ended(phone: str, did: str, answered_by: str | None = None) -> CallEvent:
        return CallEvent(
            "ended",
            "c1",
            "100",
            "in",
            phone,
            did,
            None,
            None,
            answered_by=answered_by,
            result="answered" if answered_by else "no_answer",
        )

    assert for_crm(ended("+375445550011", "+375173000000"), rules) is None
    assert for_crm(ended("+375291234567", "+375172000000"), rules) is None
    missed = for_crm(ended("+375291234567", "+375173000000"), rules)
    assert missed is not None and missed.default_extension == "152" and missed.extra == {}
    answered = for_crm(ended("+375291234567", "+375173000000", "150"), rules)
    assert answered is not None and answered.extra == {}
    other = ended("+375291234567", "+375179999999")
    assert for_crm(other, rules) is other


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"hours": {"mon": [["18:00", "09:00"]]}}, "hours.mon[0]"),
        ({"hours": {"mon": [["9:0", "18:00"]]}}, "hours.mon[0]"),
        ({"hours": {"mon": [["09:00", "24:30"]]}}, "hours.mon[0]"),
        ({"hours": {"mon": [["9h00", "18:00"]]}}, "hours.mon[0]"),
        ({"hours": {"mon": [[900, "18:00"]]}}, "hours.mon[0]"),
        ({"hours": {"monday": []}}, "hours.monday"),
        ({"hours": []}, "hours"),
        ({"holidays": ["2026-13-01"]}, "holidays[0]"),
        ({"history_days": -1}, "history_days"),
        ({"history_days": True}, "history_days"),
        ({"blocklist": ["+375 29 abc"]}, "blocklist[0]"),
        ({"managers": {"150": {"hours": {"sun": [["25:00", "26:00"]]}}}}, "managers.150.hours.sun[0]"),
        ({"did_rules": {"+375172000000": {"crm_delivery": "no"}}}, "did_rules.+375172000000.crm_delivery"),
        ({"did_rules": {"+375172000000": {"default_extension": "1 5"}}}, "did_rules.+375172000000.default_extension"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_invalid_rules_name_the_field(raw: dict[str, object], field: str) -> None:
    with pytest.raises(RulesError) as caught:
        parse(raw)
    assert caught.value.field == field


def test_a_time_written_h_mm_is_read_and_kept_as_hh_mm() -> None:
    """One reading of a time for the JSON API and the routing form: `9:00` is `09:00`, stored so."""
    raw = {"hours": {"mon": [["9:00", "18:00"]]}, "managers": {"150": {"hours": {"fri": [["8.30", "12:00"]]}}}}
    rules = parse(raw)
    assert rules.raw["hours"] == {"mon": [["09:00", "18:00"]]}
    assert rules.raw["managers"] == {"150": {"hours": {"fri": [["08:30", "12:00"]]}}}
    assert rules == parse(rules.raw)  # the same rules either way
    assert raw["hours"] == {"mon": [["9:00", "18:00"]]}  # what was given is not changed
    assert [time_text(t) for t in ("9:00", " 09:05", "24:00", "0.00", "24:01", "9:0", "12")] == [
        "09:00",
        "09:05",
        "24:00",
        "00:00",
        None,
        None,
        None,
    ]


def test_timezone_defaults_to_the_enterprise_crm_zone_else_utc() -> None:
    assert parse({}, "Europe/Minsk").timezone == "Europe/Minsk"
    assert parse({"timezone": "Europe/Berlin"}, "Europe/Minsk").timezone == "Europe/Berlin"
    assert parse({}, "Not/AZone").timezone == "UTC"
    assert parse(None).timezone == "UTC"
