"""Asterisk's CDR (`Master.csv` of cdr_csv) into ended CallEvents: pure, for `pbx-agent backfill`.

cdr_csv writes one row per CDR, in this order (cdr/cdr_csv.c build_csv_record): accountcode, src, dst,
dcontext, clid, channel, dstchannel, lastapp, lastdata, start, answer, end, duration, billsec,
disposition, amaflags, then `uniqueid` with `loguniqueid = yes`, `userfield` with `loguserfield = yes`,
and `peeraccount, linkedid, sequence` with `newcdrcolumns = yes`. The uniqueid is required (it is how a
row is matched to a stored call); the linkedid is what the tracker calls the call's id, so with it every
row of a call (transfers, several dial attempts) lands in one call. Without it the rows are grouped by
uniqueid (Party A's channel), which is the call id for a call that one channel started.

Times are local to the PBX unless `usegmtime = yes`; with `tz=None` the offset is read from the
uniqueids (`<epoch>.<n>`: the channel's creation, which is the CDR's start), else give the zone.

Each group of rows becomes one `ended` CallEvent, judged with the tracker's ChannelRules: the first
row's Party A says who called (an extension: out or internal; else in), the dial attempts' destination
channels say which phones rang, a row ANSWERED by a phone says who talked (an IVR answering the trunk is
not a person), and the dispositions give the result. `userfield`, when it names an audio file, is the
recording (`Set(CDR(userfield)=${MIXMONITOR_FILENAME})`).
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any

from agent.tracking.channels import ChannelRules
from agent.tracking.event import CallEvent, CallResult, Direction
from agent.tracking.state import Env

DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
_UNIQUEID = re.compile(r"^(?:.+-)?(?P<epoch>\d{9,11})\.\d+$")
_AUDIO = re.compile(r"\.(?:wav|WAV|wav49|gsm|mp3|ogg|opus)$")
# columns after amaflags (index 15), by how many there are
_TAIL: dict[int, tuple[int, int | None, int | None, int | None]] = {
    # total columns: (uniqueid, userfield, linkedid, sequence)
    17: (16, None, None, None),
    18: (16, 17, None, None),
    20: (16, None, 18, 19),
    21: (16, 17, 19, 20),
}


@dataclass(frozen=True, slots=True)
class CdrRow:
    src: str
    dst: str
    dcontext: str
    channel: str
    dstchannel: str
    lastapp: str
    start: datetime
    answer: datetime | None
    end: datetime
    duration: int
    billsec: int
    disposition: str
    uniqueid: str
    userfield: str = ""
    linkedid: str = ""
    sequence: int = 0

    @property
    def call_key(self) -> str:
        return self.linkedid or self.uniqueid


@dataclass
class Parsed:
    rows: list[CdrRow]
    skipped: int = 0  # lines that are not a CDR row with a uniqueid


def _naive(value: str) -> datetime | None:
    return datetime.strptime(value, DATE_FORMAT) if value else None


def _epoch(uniqueid: str) -> int | None:
    m = _UNIQUEID.match(uniqueid)
    return int(m.group("epoch")) if m else None


def parse(lines: Iterable[str], tz: tzinfo | None = None) -> Parsed:
    """Rows of Master.csv (already split into lines, newlines kept or not). `tz=None`: the offset is
    inferred from the uniqueids (the most common one, in quarter hours), else UTC."""
    raw: list[tuple[dict[str, Any], datetime, datetime | None, datetime]] = []
    skipped = 0
    for fields in csv.reader(lines):
        if not fields:
            continue
        tail = _TAIL.get(len(fields))
        try:
            if tail is None:
                raise ValueError(f"{len(fields)} columns")
            uid_i, user_i, linked_i, seq_i = tail
            start, end = _naive(fields[9]), _naive(fields[11])
            uniqueid = fields[uid_i].strip()
            if start is None or end is None or not uniqueid:
                raise ValueError("no start, end or uniqueid")
            row = dict(
                src=fields[1],
                dst=fields[2],
                dcontext=fields[3],
                channel=fields[5],
                dstchannel=fields[6],
                lastapp=fields[7],
                duration=int(fields[12] or 0),
                billsec=int(fields[13] or 0),
                disposition=fields[14].strip().upper(),
                uniqueid=uniqueid,
                userfield=fields[user_i] if user_i is not None else "",
                linkedid=fields[linked_i].strip() if linked_i is not None else "",
                sequence=int(fields[seq_i] or 0) if seq_i is not None else 0,
            )
            raw.append((row, start, _naive(fields[10]), end))
        except ValueError:
            skipped += 1
    zone: tzinfo = tz if tz is not None else _inferred_offset(raw)
    rows = [
        CdrRow(
            start=s.replace(tzinfo=zone).astimezone(UTC),
            answer=a.replace(tzinfo=zone).astimezone(UTC) if a is not None else None,
            end=e.replace(tzinfo=zone).astimezone(UTC),
            **r,
        )
        for r, s, a, e in raw
    ]
    return Parsed(rows, skipped)


MAX_UTC_OFFSET_S = 14 * 3600  # no zone is further from UTC (UTC-12 to UTC+14)


def _inferred_offset(raw: list[tuple[dict[str, Any], datetime, datetime | None, datetime]]) -> tzinfo:
    votes: Counter[int] = Counter()
    for row, start, _, _ in raw:
        epoch = _epoch(row["uniqueid"])
        if epoch is not None:
            local_as_utc = start.replace(tzinfo=UTC).timestamp()
            offset = round((local_as_utc - epoch) / 900) * 900
            if -MAX_UTC_OFFSET_S <= offset <= MAX_UTC_OFFSET_S:  # else the uniqueid is not from the call's time
                votes[offset] += 1
    if not votes:
        return UTC
    return timezone(timedelta(seconds=votes.most_common(1)[0][0]))


def group(rows: Iterable[CdrRow]) -> list[list[CdrRow]]:
    """The rows of each call (by linkedid, else uniqueid), each in order, calls in order of start."""
    calls: dict[str, list[CdrRow]] = {}
    for row in rows:
        calls.setdefault(row.call_key, []).append(row)
    out = [sorted(rs, key=lambda r: (r.start, r.sequence)) for rs in calls.values()]
    return sorted(out, key=lambda rs: (rs[0].start, rs[0].call_key))


_RESULTS: dict[str, CallResult] = {"BUSY": "busy", "NO ANSWER": "no_answer", "FAILED": "failed", "CONGESTION": "failed"}


def to_event(rows: list[CdrRow], rules: ChannelRules, enterprise: str, pbx: str) -> CallEvent:
    """One call's rows (see `group`) as its `ended` CallEvent, marked `backfilled`."""
    env = Env(rules, enterprise, pbx)
    first = rows[0]
    caller = env.identity(first.channel, first.src, first.dcontext)
    dials = [r for r in rows if r.dstchannel]
    rang: list[str] = []
    for r in dials:
        ext = rules.phone_extension(r.dstchannel)
        if ext is not None and ext not in rang and ext != caller:
            rang.append(ext)
    answered = [r for r in dials if r.disposition == "ANSWERED" and r.answer is not None]
    direction: Direction
    phone: str | None
    did: str | None = None
    forwarded_to: str | None = None
    if caller is None:
        direction, phone = "in", env.number(first.src)
        if first.dst and first.dst != "s" and not rules.is_internal_number(first.dst):
            did = env.number(first.dst)
        by_phone = [r for r in answered if rules.phone_extension(r.dstchannel) is not None]
        answered_by = rules.phone_extension(by_phone[-1].dstchannel) if by_phone else None
        talk_rows = by_phone
        if answered_by is None and rang:
            answered_by, forwarded_to, talk_rows = _forwarded(rows, answered, rules, env)
    else:
        outside = [
            r
            for r in rows
            if r.dst and not rules.is_internal_number(r.dst) and rules.phone_extension(r.dstchannel) is None
        ]
        if outside:
            direction, phone = "out", env.number(outside[-1].dst)
            talk_rows = [r for r in answered if rules.phone_extension(r.dstchannel) is None]
            answered_by = caller if talk_rows else None
        else:
            direction, phone = "internal", caller
            talk_rows = [r for r in answered if rules.phone_extension(r.dstchannel) is not None]
            answered_by = rules.phone_extension(talk_rows[-1].dstchannel) if talk_rows else None
    started = first.start
    ended = max(r.end for r in rows)
    result: CallResult
    if answered_by is not None:
        result = "answered"
    elif dials:
        result = _RESULTS.get(dials[-1].disposition, "cancelled")
    else:
        result = "cancelled"  # never dialled anyone (an IVR, a hang-up in the queue announcement)
    first_answer = min((r.answer for r in talk_rows if r.answer is not None), default=None)
    ring = ((first_answer if first_answer is not None else ended) - started).total_seconds()
    talk = float(sum(r.billsec for r in talk_rows))
    recording = next((r.userfield for r in reversed(rows) if _AUDIO.search(r.userfield or "")), None)
    # as agent.tracking.end.owner: a group call nobody answered belongs to none of the members that rang
    extension = caller if direction == "out" else answered_by or (rang[0] if len(rang) == 1 else None)
    uniqueids = list(dict.fromkeys(r.uniqueid for r in rows))
    return CallEvent(
        event="ended",
        call_id=first.call_key,
        enterprise=enterprise,
        direction=direction,
        phone=phone,
        did=did,
        extension=extension,
        at=ended,
        extensions=tuple(rang),
        answered_by=answered_by,
        result=result,
        ring_seconds=max(0.0, ring),
        talk_seconds=talk,
        started_at=started,
        ended_at=ended,
        recording=recording,
        pbx=pbx,
        forwarded_to=forwarded_to,
        extra={"backfilled": True, "cdr_uniqueids": uniqueids},
    )


_DIALLED_NUMBER = re.compile(r"^(?:Local|PJSIP|SIP|IAX2|DAHDI)/(?P<number>\+?\d{5,})(?:[@/-]|$)")


def _forwarded(
    rows: list[CdrRow], answered: list[CdrRow], rules: ChannelRules, env: Env
) -> tuple[str | None, str | None, list[CdrRow]]:
    """An incoming call no phone answered, though a phone rang and then an outside leg answered: the phone
    forwarded it (SIP 302, a follow-me), and the call is that phone's, on the number it reached. Returns
    (the phone's extension, the number, the outside leg's rows), or nobody's."""
    outside = [r for r in answered if rules.phone_extension(r.dstchannel) is None]
    if not outside:
        return None, None, []
    leg = outside[0]
    before = [r for r in rows if r.dstchannel and r.start <= leg.start and r is not leg]
    phones = [ext for r in before if (ext := rules.phone_extension(r.dstchannel)) is not None]
    if not phones:
        return None, None, []
    dialled = _DIALLED_NUMBER.match(leg.dstchannel)
    numbers = [dialled.group("number")] if dialled else []
    numbers += [r.dst for r in rows if r.dst and r.dst != rows[0].dst and not rules.is_internal_number(r.dst)]
    return phones[-1], env.number(numbers[0]) if numbers else None, [leg]


def ids_of(rows: list[CdrRow]) -> set[str]:
    """Every id a stored call of these rows could have (the tracker stores the linkedid)."""
    return {r.uniqueid for r in rows} | {r.linkedid for r in rows if r.linkedid}
