"""Routing rules of an enterprise (working hours, holidays, managers' own hours, caller history, blocked
numbers, per-DID rules): parsed and validated from JSON, and evaluated. Pure: no I/O, no clock of its own;
"now" comes in as an argument (a timezone-aware datetime), so tests cover cut-offs and DST without sleeping.

JSON (`GET/PUT /api/enterprises/{n}/routing`; every key optional):

    {"timezone": "Europe/Berlin",
     "hours": {"mon": [["09:00", "18:00"]], "sat": [["10:00", "13:00"], ["14:00", "16:00"]]},
     "holidays": ["2026-12-25"],
     "managers": {"150": {"hours": {"mon": [["12:00", "20:00"]]}}},
     "history_days": 30,
     "blocklist": ["+375291112233", "+37529*"],
     "did_rules": {"+375172000000": {"default_extension": "150", "crm_delivery": true}}}

`timezone` absent: the enterprise's RetailCRM time zone, else UTC (`parse(raw, default_timezone)`).
`hours` absent (or null) means open around the clock; present, the enterprise is open only within the
listed ranges (a day not listed is closed). A range is `[start, end)` in local wall time, `"24:00"` allowed
as an end; a time may be written `9:00` and is kept as `09:00` (`time_text`, `normalised`). A manager's `hours`
work the same way for that extension; the enterprise's holidays apply to all.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_TIMEZONE = "UTC"
MAX_HISTORY_DAYS = 3650
MAX_BLOCKLIST = 10_000
_TIME = re.compile(r"(\d{1,2})[:.](\d{2})")  # read by time_text: 9:00, 09:00, 9.00
_NUMBER = re.compile(r"\+?\d{1,20}")
_PREFIX = re.compile(r"\+?\d{1,20}\*")
_EXTENSION = re.compile(r"[\w*#+-]{1,32}")
_KEYS = frozenset({"timezone", "hours", "holidays", "managers", "history_days", "blocklist", "did_rules"})

# A week: for each weekday (Monday = 0) the open ranges as (start minute, end minute), sorted.
Week = tuple[tuple[tuple[int, int], ...], ...]


class RulesError(ValueError):
    """Invalid rules; `field` is the dotted path of the offending value (the API's 400 names it)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class DidRule:
    default_extension: str | None = None
    crm_delivery: bool = True


@dataclass(frozen=True, slots=True)
class Rules:
    timezone: str = DEFAULT_TIMEZONE
    hours: Week | None = None  # None: open around the clock
    holidays: frozenset[date] = frozenset()
    managers: Mapping[str, Week] = field(default_factory=dict)  # extension -> its own hours
    history_days: int = 0
    blocked: frozenset[str] = frozenset()  # exact numbers, digits only ("375291234567")
    blocked_prefixes: tuple[str, ...] = ()  # digits only: "37529" for "+37529*"
    did_rules: Mapping[str, DidRule] = field(default_factory=dict)
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo(DEFAULT_TIMEZONE), compare=False)
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False)  # as stored (normalised), for GET

    # --- evaluation (now: an aware datetime) -------------------------------------------------------

    def is_blocked(self, phone: str | None) -> bool:
        """The caller is never routed and never sent to a CRM. A leading '+' is ignored on both sides."""
        if not phone or not (self.blocked or self.blocked_prefixes):
            return False
        bare = phone.lstrip("+")
        return bare in self.blocked or bare.startswith(self.blocked_prefixes)

    def is_open(self, now: datetime) -> bool:
        """Within the enterprise's hours, and not a holiday."""
        if self.hours is None and not self.holidays:
            return True
        local = now.astimezone(self.zone)
        if local.date() in self.holidays:
            return False
        return self.hours is None or _within(self.hours, local)

    def manager_on_duty(self, extension: str, now: datetime) -> bool:
        """Within the manager's own hours (always, when they have none)."""
        week = self.managers.get(extension)
        return week is None or _within(week, now.astimezone(self.zone))

    def did(self, did: str | None) -> DidRule | None:
        if not did or not self.did_rules:
            return None
        bare = did.lstrip("+")
        return self.did_rules.get(did) or self.did_rules.get(bare) or self.did_rules.get("+" + bare)

    def delivers(self, phone: str | None, did: str | None) -> bool:
        """Whether a call may reach any CRM: not a blocked caller, not a DID with crm_delivery off."""
        if self.is_blocked(phone):
            return False
        rule = self.did(did)
        return rule is None or rule.crm_delivery


NO_RULES = Rules()


def _within(week: Week, local: datetime) -> bool:
    minute = local.hour * 60 + local.minute
    return any(start <= minute < end for start, end in week[local.weekday()])


# --- parsing ---------------------------------------------------------------------------------------


def parse(raw: Mapping[str, Any] | None, default_timezone: str | None = None) -> Rules:
    """Validated rules from their JSON; raises RulesError naming the field. Without a `timezone` the
    rules use `default_timezone` (the enterprise's CRM time zone) when it is a valid one, else UTC."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise RulesError("rules", "must be an object")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise RulesError(unknown[0], "unknown field")
    tz_name = raw.get("timezone") or _valid_zone(default_timezone) or DEFAULT_TIMEZONE
    if not isinstance(tz_name, str):
        raise RulesError("timezone", "must be an IANA time zone name such as Europe/Berlin")
    try:
        zone = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise RulesError("timezone", f"unknown time zone {tz_name!r}") from None
    hours = None if raw.get("hours") is None else _week(raw["hours"], "hours")
    holidays = _holidays(raw.get("holidays"))
    managers = _managers(raw.get("managers"))
    history = raw.get("history_days", 0)
    if isinstance(history, bool) or not isinstance(history, int) or not 0 <= history <= MAX_HISTORY_DAYS:
        raise RulesError("history_days", f"must be a whole number of days from 0 (off) to {MAX_HISTORY_DAYS}")
    blocked, prefixes = _blocklist(raw.get("blocklist"))
    dids = _did_rules(raw.get("did_rules"))
    return Rules(tz_name, hours, holidays, managers, history, blocked, prefixes, dids, zone, normalised(raw))


def time_text(value: str) -> str | None:
    """`9:00`, `09:00`, `9.00` or `24:00` as `HH:MM` (00:00 to 24:00), None when it is not a time of day: the one
    reading of a time, for the JSON API and the routing form (admin/routing_form.py) alike."""
    found = _TIME.fullmatch(value.strip())
    if found is None:
        return None
    hh, mm = int(found.group(1)), int(found.group(2))
    if hh > 24 or mm > 59 or (hh == 24 and mm):
        return None
    return f"{hh:02d}:{mm:02d}"


def normalised(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Rules `parse` accepted, as they are stored and shown: every time of the enterprise's and the managers'
    hours as `HH:MM` (`9:00` -> `09:00`); the rest as given."""
    out = dict(raw)
    if isinstance(raw.get("hours"), Mapping):
        out["hours"] = _week_text(raw["hours"])
    if isinstance(raw.get("managers"), Mapping):
        out["managers"] = {
            ext: {**item, "hours": _week_text(item["hours"])}
            if isinstance(item, Mapping) and isinstance(item.get("hours"), Mapping)
            else item
            for ext, item in raw["managers"].items()
        }
    return out


def _week_text(week: Mapping[str, Any]) -> dict[str, Any]:
    """A week `_week` accepted, its times as HH:MM."""
    return {day: [[time_text(t) or t for t in r] for r in ranges] for day, ranges in week.items()}


def _valid_zone(name: str | None) -> str | None:
    try:
        return name if name and ZoneInfo(name) else None
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _week(value: Any, where: str) -> Week:
    if not isinstance(value, Mapping):
        raise RulesError(where, 'must be an object such as {"mon": [["09:00", "18:00"]]}')
    days: list[list[tuple[int, int]]] = [[] for _ in DAYS]
    for day, ranges in value.items():
        if day not in DAYS:
            raise RulesError(f"{where}.{day}", f"unknown day; expected one of {', '.join(DAYS)}")
        if not isinstance(ranges, list):
            raise RulesError(f"{where}.{day}", 'must be a list of ["HH:MM", "HH:MM"] ranges')
        for i, item in enumerate(ranges):
            path = f"{where}.{day}[{i}]"
            if not (isinstance(item, list) and len(item) == 2):
                raise RulesError(path, 'must be a ["HH:MM", "HH:MM"] range')
            start, end = _minute(item[0], path), _minute(item[1], path)
            if start >= end:
                raise RulesError(path, "must end after it starts (a range cannot cross midnight: split it)")
            days[DAYS.index(day)].append((start, end))
    return tuple(tuple(sorted(d)) for d in days)


def _minute(value: Any, path: str) -> int:
    text = time_text(value) if isinstance(value, str) else None
    if text is None:
        raise RulesError(path, f"{value!r} is not a time H:MM or HH:MM (00:00 to 24:00)")
    hh, mm = text.split(":")
    return int(hh) * 60 + int(mm)


def _holidays(value: Any) -> frozenset[date]:
    if value is None:
        return frozenset()
    if not isinstance(value, list):
        raise RulesError("holidays", 'must be a list of dates "YYYY-MM-DD"')
    out: set[date] = set()
    for i, item in enumerate(value):
        try:
            out.add(date.fromisoformat(item))
        except (TypeError, ValueError):
            raise RulesError(f"holidays[{i}]", f"{item!r} is not a date YYYY-MM-DD") from None
    return frozenset(out)


def _managers(value: Any) -> dict[str, Week]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise RulesError("managers", 'must be an object: extension -> {"hours": {...}}')
    out: dict[str, Week] = {}
    for ext, item in value.items():
        if not _EXTENSION.fullmatch(ext):
            raise RulesError(f"managers.{ext}", "not an extension")
        if not isinstance(item, Mapping) or set(item) - {"hours"}:
            raise RulesError(f"managers.{ext}", 'must be {"hours": {...}}')
        if item.get("hours") is not None:
            out[ext] = _week(item["hours"], f"managers.{ext}.hours")
    return out


def _blocklist(value: Any) -> tuple[frozenset[str], tuple[str, ...]]:
    if value is None:
        return frozenset(), ()
    if not isinstance(value, list) or len(value) > MAX_BLOCKLIST:
        raise RulesError("blocklist", f"must be a list of at most {MAX_BLOCKLIST} numbers or prefixes (+37529*)")
    exact: set[str] = set()
    prefixes: set[str] = set()
    for i, item in enumerate(value):
        text = item.replace(" ", "").replace("-", "") if isinstance(item, str) else ""
        if _NUMBER.fullmatch(text):
            exact.add(text.lstrip("+"))
        elif _PREFIX.fullmatch(text):
            prefixes.add(text[:-1].lstrip("+"))
        else:
            raise RulesError(f"blocklist[{i}]", f"{item!r} is not a number (+375291234567) or a prefix (+37529*)")
    return frozenset(exact), tuple(sorted(prefixes))


def _did_rules(value: Any) -> dict[str, DidRule]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise RulesError("did_rules", 'must be an object: DID -> {"default_extension": …, "crm_delivery": …}')
    out: dict[str, DidRule] = {}
    for did, item in value.items():
        where = f"did_rules.{did}"
        if not _NUMBER.fullmatch(did):
            raise RulesError(where, "not a number")
        if not isinstance(item, Mapping):
            raise RulesError(where, "must be an object")
        unknown = sorted(set(item) - {"default_extension", "crm_delivery"})
        if unknown:
            raise RulesError(f"{where}.{unknown[0]}", "unknown field")
        ext = item.get("default_extension")
        if ext is not None and (not isinstance(ext, str) or not _EXTENSION.fullmatch(ext)):
            raise RulesError(f"{where}.default_extension", "must be an extension")
        crm = item.get("crm_delivery", True)
        if not isinstance(crm, bool):
            raise RulesError(f"{where}.crm_delivery", "must be true or false")
        out[did] = DidRule(ext, crm)
    return out
