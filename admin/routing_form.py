"""The routing rules (agent/redirect/rules.py) as the form a person fills in on the Routing page, and back.

Pure: no I/O. `to_form` turns a stored rules document into the form's values; `from_body` reads a posted form
into the same shape (what was typed, kept for the page after an invalid post); `validate` turns that shape
into a rules document, or gives an error per field as a key of the message catalogues (admin/i18n) with the
values the message shows. Times are forgiving (`9:00`, `9.00`, `09:00-13:00, 14:00-18:00`) and stored
normalised (`["09:00", "13:00"]`); dates may be typed as 2026-12-25 or 25.12.2026.

Form fields: `timezone`; `hours_mode` (`always` | `schedule`) and `hours.<day>`; `holidays`, `blocklist` (one
item a line); `history_days`; manager rows `mgr.<i>.extension`, `mgr.<i>.<day>`; number rows `did.<i>.number`,
`did.<i>.owner`, `did.<i>.crm` (`true`/`false`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agent.redirect.rules import DAYS, MAX_BLOCKLIST, MAX_HISTORY_DAYS, time_text

MAX_ROWS = 500
# The parts of the rules a form post may remove altogether; removing one asks for a confirmation first.
SECTIONS = ("hours", "holidays", "managers", "history_days", "blocklist", "did_rules")
# Every error key `validate` gives (tests check both catalogues have them).
ERROR_KEYS = (
    "routing.err.timezone",
    "routing.err.mode",
    "routing.err.ranges",
    "routing.err.order",
    "routing.err.date",
    "routing.err.history",
    "routing.err.number",
    "routing.err.too_many",
    "routing.err.extension",
    "routing.err.unknown_extension",
    "routing.err.twice",
    "routing.err.need_extension",
    "routing.err.need_hours",
    "routing.err.need_number",
    "routing.err.confirm",
    "routing.err.invalid",
)

_RANGE = re.compile(r"(\S+?)\s*[-–—]\s*(\S+)")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DOTTED_DATE = re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{4})")
_NUMBER = re.compile(r"\+?\d{1,20}\*?")
_EXTENSION = re.compile(r"[\w*#+-]{1,32}")
_ROW = re.compile(r"(mgr|did)\.(\d{1,4})\.")
_SPACING = str.maketrans("", "", " -()\t")


@dataclass
class Checked:
    """A validated post: the rules document, or the errors (field -> message key, and the message's values)."""

    document: dict[str, Any]
    errors: dict[str, str] = field(default_factory=dict)
    values: dict[str, dict[str, str]] = field(default_factory=dict)

    def fail(self, name: str, key: str, **values: str) -> None:
        if name not in self.errors:  # the first problem of a field is the one shown
            self.errors[name] = key
            if values:
                self.values[name] = values


# --- the stored document -> the form --------------------------------------------------------------------


def to_form(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The form's values for a stored rules document (tolerant: it shows whatever is there)."""
    hours = raw.get("hours")
    managers: Mapping[str, Any] = _mapping(raw.get("managers"))
    dids: Mapping[str, Any] = _mapping(raw.get("did_rules"))
    return {
        "timezone": raw.get("timezone") or "",
        "hours_mode": "always" if hours is None else "schedule",
        "hours": _week_texts(hours),
        "holidays": "\n".join(str(d) for d in sorted(_strings(raw.get("holidays")))),
        "history_days": str(raw.get("history_days") or 0),
        "blocklist": "\n".join(_strings(raw.get("blocklist"))),
        "managers": [
            {"extension": str(ext), "hours": _week_texts(item.get("hours") if isinstance(item, Mapping) else None)}
            for ext, item in sorted(managers.items(), key=lambda kv: _natural(kv[0]))
        ],
        "dids": [
            {
                "number": str(did),
                "owner": str(item.get("default_extension") or "") if isinstance(item, Mapping) else "",
                "crm": item.get("crm_delivery", True) is not False if isinstance(item, Mapping) else True,
            }
            for did, item in sorted(dids.items())
        ],
    }


def _week_texts(week: Any) -> dict[str, str]:
    texts = dict.fromkeys(DAYS, "")
    if isinstance(week, Mapping):
        for day in DAYS:
            ranges = week.get(day)
            if isinstance(ranges, list):
                texts[day] = ", ".join(f"{r[0]}-{r[1]}" for r in ranges if isinstance(r, list | tuple) and len(r) == 2)
    return texts


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _natural(text: str) -> tuple[int, str]:
    return (len(text), text)


# --- a posted form -> the same shape ---------------------------------------------------------------------


def from_body(body: Mapping[str, str]) -> dict[str, Any]:
    """What was typed, in `to_form`'s shape; rows left entirely empty are dropped (the page adds fresh ones)."""
    rows: dict[str, set[int]] = {"mgr": set(), "did": set()}
    for name in body:
        found = _ROW.match(name)
        if found and int(found.group(2)) < MAX_ROWS:
            rows[found.group(1)].add(int(found.group(2)))
    managers: list[dict[str, Any]] = []
    for i in sorted(rows["mgr"]):
        hours = {day: body.get(f"mgr.{i}.{day}", "").strip() for day in DAYS}
        row: dict[str, Any] = {
            "extension": body.get(f"mgr.{i}.extension", "").strip(),
            "hours": hours,
        }
        if row["extension"] or any(hours.values()):
            managers.append(row)
    dids: list[dict[str, Any]] = []
    for i in sorted(rows["did"]):
        did: dict[str, Any] = {
            "number": body.get(f"did.{i}.number", "").strip(),
            "owner": body.get(f"did.{i}.owner", "").strip(),
            "crm": body.get(f"did.{i}.crm", "true") != "false",
        }
        if did["number"] or did["owner"]:
            dids.append(did)
    return {
        "timezone": body.get("timezone", "").strip(),
        "hours_mode": body.get("hours_mode", "always"),
        "hours": {day: body.get(f"hours.{day}", "").strip() for day in DAYS},
        "holidays": body.get("holidays", "").strip(),
        "history_days": body.get("history_days", "").strip(),
        "blocklist": body.get("blocklist", "").strip(),
        "managers": managers,
        "dids": dids,
    }


# --- the form -> a rules document ------------------------------------------------------------------------


def validate(form: Mapping[str, Any], known: Iterable[str] = ()) -> Checked:
    """The rules document for a form (`from_body`), checking every field; `known` are the extensions a
    manager row or a number's owner may name (none given: any well-formed extension)."""
    out = Checked({})
    known_set = set(known)
    if form["timezone"]:
        try:
            ZoneInfo(form["timezone"])
            out.document["timezone"] = form["timezone"]
        except (ZoneInfoNotFoundError, ValueError):
            out.fail("timezone", "routing.err.timezone")
    if form["hours_mode"] != "schedule" and any(form["hours"].values()):
        out.fail("hours_mode", "routing.err.mode")
    week = _week(out, form["hours"], "hours.")
    if form["hours_mode"] == "schedule":
        out.document["hours"] = week
    holidays = _holidays(out, form["holidays"])
    if holidays:
        out.document["holidays"] = holidays
    history = form["history_days"] or "0"
    if not history.isdigit() or not 0 <= int(history) <= MAX_HISTORY_DAYS:
        out.fail("history_days", "routing.err.history", max=str(MAX_HISTORY_DAYS))
    elif int(history):
        out.document["history_days"] = int(history)
    managers = _managers(out, form["managers"], known_set)
    if managers:
        out.document["managers"] = managers
    dids = _dids(out, form["dids"], known_set)
    if dids:
        out.document["did_rules"] = dids
    blocklist = _blocklist(out, form["blocklist"])
    if blocklist:
        out.document["blocklist"] = blocklist
    return out


def wiped(stored: Mapping[str, Any], document: Mapping[str, Any]) -> list[str]:
    """The sections the stored rules have and the new document would remove altogether."""
    return [s for s in SECTIONS if _present(stored, s) and not _present(document, s)]


def _present(doc: Mapping[str, Any], section: str) -> bool:
    value = doc.get(section)
    return value is not None if section == "hours" else bool(value)


def _ranges(text: str) -> tuple[list[list[str]] | None, str | None]:
    """`09:00-13:00, 14:00-18:00` as ranges, or the error key."""
    ranges: list[list[str]] = []
    for part in re.split(r"[,;\n]", text):
        if not part.strip():
            continue
        found = _RANGE.fullmatch(part.strip())
        start, end = (time_text(found.group(1)), time_text(found.group(2))) if found else (None, None)
        if start is None or end is None:
            return None, "routing.err.ranges"
        if start >= end:
            return None, "routing.err.order"
        ranges.append([start, end])
    return sorted(ranges), None


def _week(out: Checked, texts: Mapping[str, str], prefix: str) -> dict[str, list[list[str]]]:
    week: dict[str, list[list[str]]] = {}
    for day in DAYS:
        ranges, problem = _ranges(texts.get(day, ""))
        if problem:
            out.fail(prefix + day, problem, value=texts[day])
        elif ranges:
            week[day] = ranges
    return week


def _lines(text: str) -> list[str]:
    return [line.strip() for line in re.split(r"[\n,;]", text) if line.strip()]


def _holidays(out: Checked, text: str) -> list[str]:
    days: set[date] = set()
    for line in _lines(text):
        day = _date(line)
        if day is None:
            out.fail("holidays", "routing.err.date", value=line)
        else:
            days.add(day)
    return [d.isoformat() for d in sorted(days)]


def _date(text: str) -> date | None:
    try:
        if _ISO_DATE.fullmatch(text):
            return date.fromisoformat(text)
        found = _DOTTED_DATE.fullmatch(text)
        if found:
            return date(int(found.group(3)), int(found.group(2)), int(found.group(1)))
    except ValueError:
        return None
    return None


def _blocklist(out: Checked, text: str) -> list[str]:
    items: list[str] = []
    for line in _lines(text):
        number = line.translate(_SPACING)
        if not _NUMBER.fullmatch(number):
            out.fail("blocklist", "routing.err.number", value=line)
        elif number not in items:
            items.append(number)
    if len(items) > MAX_BLOCKLIST:
        out.fail("blocklist", "routing.err.too_many", max=str(MAX_BLOCKLIST))
    return items


def _extension(out: Checked, name: str, value: str, known: set[str]) -> bool:
    if not _EXTENSION.fullmatch(value):
        out.fail(name, "routing.err.extension", value=value)
    elif known and value not in known:
        out.fail(name, "routing.err.unknown_extension", value=value)
    else:
        return True
    return False


def _managers(out: Checked, rows: list[dict[str, Any]], known: set[str]) -> dict[str, Any]:
    managers: dict[str, Any] = {}
    for i, row in enumerate(rows):
        name, ext = f"mgr.{i}.extension", row["extension"]
        week = _week(out, row["hours"], f"mgr.{i}.")
        if not ext:
            out.fail(name, "routing.err.need_extension")
        elif _extension(out, name, ext, known):
            if ext in managers:
                out.fail(name, "routing.err.twice", value=ext)
            elif not any(row["hours"].values()):
                out.fail(f"mgr.{i}.mon", "routing.err.need_hours")
            managers[ext] = {"hours": week}
    return managers


def _dids(out: Checked, rows: list[dict[str, Any]], known: set[str]) -> dict[str, Any]:
    dids: dict[str, Any] = {}
    for i, row in enumerate(rows):
        name, number = f"did.{i}.number", row["number"].translate(_SPACING)
        if row["owner"]:
            _extension(out, f"did.{i}.owner", row["owner"], known)
        if not number:
            out.fail(name, "routing.err.need_number")
        elif not _NUMBER.fullmatch(number) or number.endswith("*"):
            out.fail(name, "routing.err.number", value=row["number"])
        elif number in dids:
            out.fail(name, "routing.err.twice", value=row["number"])
        else:
            rule: dict[str, Any] = {"crm_delivery": bool(row["crm"])}
            if row["owner"]:
                rule = {"default_extension": row["owner"], **rule}
            dids[number] = rule
    return dids
