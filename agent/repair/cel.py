"""Asterisk's CEL (Channel Event Logging): what it tells about a call that its CDR does not. Pure.

The CDR has one row per dial attempt and leaves the rest to be guessed: after a pickup the picker shows up
under the picked phone's row (its dialplan place swapped with the target's), after a transfer the rows
must be put in order, a call forwarded to a mobile is an ANSWERED row to a trunk, and talk time per person
is not there at all. The CEL says it outright, with the fields main/cel.c writes:
- `BRIDGE_ENTER` / `BRIDGE_EXIT` (extra `bridge_id`): who shared a bridge with whom, and when — so who
  talked with the customer, for how long each, and who talked last;
- `PICKUP` on the picked-up channel, extra `pickup_channel` (and `_uniqueid`): the picker;
- `BLINDTRANSFER` / `ATTENDEDTRANSFER`: a transfer happened;
- `FORWARD` on the calling channel, extra `forward`: the destination a dialled phone forwarded to;
- `CHAN_START`: every channel of the call, so every phone that rang.
A channel keeps its uniqueid when its linkedid changes (a picker's first events carry a linkedid of their
own), so a call's events are those of every channel that ever carried the call's linkedid.

Rows come from the CEL table beside the CDR (cel_odbc, cel_pgsql: columns `eventtype`, `eventtime`,
`channame`, `uniqueid`, `linkedid`, `peer`, `extra`, …) or from cel_custom's CSV, whose columns the admin
chose (`cel_csv_fields`; the default is the mapping in Asterisk's cel_custom.conf.sample without its
literal) or JSON lines (self-describing). Event times are only compared with each other, so their zone does
not matter: `epoch.usec` (cel.conf without `dateformat`) or a date-time.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from agent.tracking.channels import ChannelRules
from agent.tracking.event import CallEvent

# cel_custom.conf.sample's legacy mapping (the one most installations uncommented), its literal left out
SAMPLE_FIELDS: tuple[str, ...] = (
    "eventtype",
    "eventtime",
    "cid_name",
    "cid_num",
    "cid_ani",
    "cid_rdnis",
    "cid_dnid",
    "exten",
    "context",
    "channame",
    "appname",
    "appdata",
    "amaflags",
    "accountcode",
    "uniqueid",
    "linkedid",
    "peer",
    "userfield",
    "userdeftype",
    "extra",
)
# the advanced mappings' field names (cel_custom.conf.sample) as the table's column names
_ALIASES = {
    "channame": "channame",
    "cidname": "cid_name",
    "cidnum": "cid_num",
    "cidani": "cid_ani",
    "cidrdnis": "cid_rdnis",
    "ciddnid": "cid_dnid",
    "acctcode": "accountcode",
    "peeracct": "peeraccount",
    "usereventname": "userdeftype",
}
_NEEDED = ("eventtype", "eventtime", "channame", "uniqueid", "linkedid")
_DATE_FORMATS = ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S")
_NUMBER = re.compile(r"\+?\d{3,}")


@dataclass(frozen=True, slots=True)
class CelEvent:
    eventtype: str
    time: float  # seconds; only differences between a call's events mean anything
    channame: str
    uniqueid: str
    linkedid: str
    peer: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)


def field_names(names: Iterable[str]) -> tuple[str, ...]:
    """Configured CSV field names, in the table's spelling (case-insensitive, advanced-mapping names too)."""
    out = []
    for name in names:
        key = name.strip().lower()
        out.append(_ALIASES.get(key, key))
    return tuple(out)


def from_row(row: Mapping[str, Any]) -> CelEvent | None:
    """One CEL record (a table row, or a CSV/JSON line as a mapping); None when it lacks what is needed."""
    values = {_ALIASES.get(str(k).lower(), str(k).lower()): v for k, v in row.items()}
    if any(not values.get(name) for name in _NEEDED):
        return None
    time = _seconds(values["eventtime"])
    if time is None:
        return None
    extra: Any = values.get("extra") or {}
    if isinstance(extra, str):
        try:
            extra = json.loads(extra) if extra.strip().startswith("{") else {}
        except ValueError:
            extra = {}
    return CelEvent(
        eventtype=str(values["eventtype"]).strip().upper(),
        time=time,
        channame=str(values["channame"]).strip(),
        uniqueid=str(values["uniqueid"]).strip(),
        linkedid=str(values["linkedid"]).strip(),
        peer=str(values.get("peer") or "").strip(),
        extra=extra if isinstance(extra, dict) else {},
    )


def parse_lines(lines: Iterable[str], fields: Sequence[str] = SAMPLE_FIELDS) -> list[CelEvent]:
    """cel_custom output: CSV in the order of `fields`, or JSON objects (one per line); others skipped."""
    out: list[CelEvent] = []
    names = field_names(fields)
    csv_lines: list[str] = []
    for line in lines:
        if line.lstrip().startswith("{"):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            event = from_row(record) if isinstance(record, dict) else None
            if event is not None:
                out.append(event)
        else:
            csv_lines.append(line)
    for values in csv.reader(csv_lines):
        if len(values) == len(names):
            event = from_row(dict(zip(names, values, strict=True)))
            if event is not None:
                out.append(event)
    return out


def _seconds(value: Any) -> float | None:
    if isinstance(value, datetime):
        return (value if value.tzinfo is not None else value.replace(tzinfo=UTC)).timestamp()
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
    return None


def by_call(events: Iterable[CelEvent]) -> dict[str, list[CelEvent]]:
    """Each linkedid's events, with every event of the channels that carried it at some time, in order of
    time, then of the log (events of one instant keep the order Asterisk wrote them in)."""
    channels: dict[str, list[tuple[int, CelEvent]]] = {}
    linked: dict[str, dict[str, None]] = {}
    for n, event in enumerate(events):
        channels.setdefault(event.uniqueid, []).append((n, event))
        linked.setdefault(event.linkedid, {})[event.uniqueid] = None
    out: dict[str, list[CelEvent]] = {}
    for linkedid, uniqueids in linked.items():
        merged = sorted((item for u in uniqueids for item in channels[u]), key=lambda item: (item[1].time, item[0]))
        out[linkedid] = [event for _, event in merged]
    return out


@dataclass
class CelAccount:
    """One incoming call as its CEL tells it."""

    rang: list[str] = field(default_factory=list)  # phones whose channel the call created, in order
    legs: dict[str, float] = field(default_factory=dict)  # extension -> seconds with the customer, in order
    last_talker: str | None = None
    pickers: list[str] = field(default_factory=list)
    transfers: int = 0
    forwarded_by: str | None = None  # the phone that forwarded the call
    forwarded_to: str | None = None  # the number it forwarded to, when an outside party then talked
    outside_talk: float = 0.0  # seconds the customer was bridged with another non-phone (a forward's target)


def account(events: Sequence[CelEvent], rules: ChannelRules) -> CelAccount:
    """Walk a call's events (see by_call): who shared a bridge with the customer's channel, and when."""
    got = CelAccount()
    bridges: dict[str, set[str]] = {}
    since: dict[str, float] = {}  # party (an extension, or "" for an outside party) -> talking since
    forward: str | None = None
    latest_phone: str | None = None
    for event in events:
        ext = rules.phone_extension(event.channame)
        kind = event.eventtype
        if kind == "CHAN_START" and ext is not None:
            latest_phone = ext
            if ext not in got.rang:
                got.rang.append(ext)
        elif kind in ("BRIDGE_ENTER", "BRIDGE_EXIT"):
            members = bridges.setdefault(str(event.extra.get("bridge_id") or event.peer), set())
            (members.add if kind == "BRIDGE_ENTER" else members.discard)(event.channame)
            _talk(got, bridges, since, event.time, rules)
        elif kind == "PICKUP":
            picker = rules.phone_extension(str(event.extra.get("pickup_channel") or ""))
            if picker is not None and picker not in got.pickers:
                got.pickers.append(picker)
        elif kind in ("BLINDTRANSFER", "ATTENDEDTRANSFER"):
            got.transfers += 1
        elif kind == "FORWARD" and ext is None:
            forward = str(event.extra.get("forward") or "")
            got.forwarded_by = latest_phone
    end = events[-1].time if events else 0.0
    for party in list(since):
        _close(got, since, party, end)
    if forward and got.outside_talk > 0 and got.forwarded_by is not None:
        number = _NUMBER.search(forward.split("/", 1)[-1])
        got.forwarded_to = number.group(0) if number else forward
    return got


def _talk(
    got: CelAccount, bridges: dict[str, set[str]], since: dict[str, float], at: float, rules: ChannelRules
) -> None:
    """Who is in a bridge with an outside channel now; opens and closes their talk."""
    now: set[str] = set()
    for members in bridges.values():
        outside = [m for m in members if rules.phone_extension(m) is None]
        if not outside:
            continue
        phones = {rules.phone_extension(m) for m in members} - {None}
        now |= {p for p in phones if p is not None}
        if len(outside) > 1:
            now.add("")  # the customer with another outside party: a forward's target, an outside transfer
    for party in list(since):
        if party not in now:
            _close(got, since, party, at)
    for party in now:
        if party not in since:
            since[party] = at
            if party:
                got.last_talker = party


def _close(got: CelAccount, since: dict[str, float], party: str, at: float) -> None:
    seconds = max(0.0, at - since.pop(party))
    if party:
        got.legs[party] = got.legs.get(party, 0.0) + seconds
    else:
        got.outside_talk += seconds


def refine(event: CallEvent, events: Sequence[CelEvent] | None, rules: ChannelRules) -> CallEvent:
    """An incoming call built from the CDR, with who answered, who rang and each one's talk from the CEL."""
    if not events or event.direction != "in":
        return event
    got = account(events, rules)
    extensions = list(dict.fromkeys([*got.rang, *got.pickers, *got.legs]))
    extra = dict(event.extra or {})
    extra["cel"] = True
    answered_by, forwarded_to = got.last_talker, None
    talk = sum(got.legs.values())
    if got.forwarded_to is not None and answered_by is None:
        answered_by, forwarded_to, talk = got.forwarded_by, got.forwarded_to, got.outside_talk
    if answered_by is None:
        return replace(event, extensions=tuple(extensions) or event.extensions, extra=extra)
    if len(got.legs) > 1 or got.transfers:
        extra["legs"] = [{"extension": ext, "talk_seconds": round(s, 3)} for ext, s in got.legs.items()]
    if got.transfers:
        extra["transfers"] = got.transfers
    return replace(
        event,
        answered_by=answered_by,
        extension=answered_by,
        extensions=tuple(extensions),
        result="answered",
        talk_seconds=round(talk, 3) if talk else event.talk_seconds,
        forwarded_to=forwarded_to,
        extra=extra,
    )
