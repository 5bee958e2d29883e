"""What the call tracker remembers about one live call, and how it turns that into CallEvents."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from agent.tracking.channels import ChannelRules
from agent.tracking.event import CallEvent, Direction, EventKind
from agent.tracking.phones import normalise

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NO_NUMBER = frozenset({"", "<unknown>", "unknown", "anonymous", "<anonymous>"})


def parse_timestamp(value: str) -> datetime | None:
    """AMI `Timestamp: <unix>.<microseconds>` to an exact UTC datetime (no float rounding)."""
    sec, _, frac = value.partition(".")
    if not sec.isdigit() or (frac and not frac.isdigit()):
        return None
    micros = int((frac + "000000")[:6]) if frac else 0
    return _EPOCH + timedelta(seconds=int(sec), microseconds=micros)


def seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round(max((end - start).total_seconds(), 0.0), 3)


@dataclass(frozen=True, slots=True)
class Env:
    """Who the tracker works for: the PBX's rules and the names stamped on every event."""

    rules: ChannelRules
    enterprise: str
    pbx: str

    def number(self, raw: str | None) -> str | None:
        if raw is None or raw.strip().lower() in NO_NUMBER:
            return None
        return normalise(raw, self.rules.region)

    def identity(self, channel: str, cid: str | None, context: str | None) -> str | None:
        """The extension behind a *calling* channel, or None for an external party (`ChannelRules.identity`)."""
        return self.rules.identity(channel, cid, context)


@dataclass(slots=True)
class Chan:
    uniqueid: str
    name: str
    cid: str
    context: str
    exten: str


@dataclass(slots=True)
class Leg:
    """An extension connected with the other party, from `start` to `end` (None: unknown)."""

    extension: str
    channel: str | None
    start: datetime | None
    end: datetime | None = None
    closed: bool = False
    forwarded_to: str | None = None  # the outside number the extension's phone forwarded the call to

    def close(self, at: datetime | None) -> None:
        if not self.closed:
            self.end = at
            self.closed = True


@dataclass(slots=True)
class Call:
    call_id: str
    started_at: datetime | None
    channels: dict[str, Chan] = field(default_factory=dict)
    first: Chan | None = None
    direction: Direction | None = None
    caller_uid: str | None = None
    caller_ext: str | None = None
    phone: str | None = None
    did: str | None = None
    extensions: list[str] = field(default_factory=list)
    dials: dict[str, str | None] = field(default_factory=dict)  # dest uid -> extension (None: external)
    dials_done: set[str] = field(default_factory=set)
    consult: dict[str, str | None] = field(default_factory=dict)  # consultation channel uid -> ext
    origin: dict[str, str] = field(default_factory=dict)  # Originate's own dial: dest uid -> ext
    origin_status: str | None = None
    pickups: dict[str, str] = field(default_factory=dict)  # picked-up or picker's channel uid -> picker ext
    forward: tuple[str, str | None] | None = None  # a phone forwarded (DialEnd Forward): (ext, number)
    forwards: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # dest uid -> (ext, number)
    last_status: str | None = None
    last_ext: str | None = None
    responsible: str | None = None  # the manager smart redirect named from a CRM (VarSet REDIRECT_EXTEN)
    answered_by: str | None = None
    first_answer_at: datetime | None = None
    legs: list[Leg] = field(default_factory=list)
    current: Leg | None = None
    recording: str | None = None
    recording_guessed: bool = False  # `recording` was put together from FreePBX's variables (MixMonitor's wins)
    rec_vars: dict[str, str] = field(default_factory=dict)  # agent.tracking.recording
    transfers: int = 0
    absorbed: bool = False  # a picker's own dialplan leg whose channel joined another call: never a call

    def emitted(self) -> bool:
        """Whether any event of this call can have gone out (events start with its first real Dial)."""
        return self.direction is not None or bool(self.legs)

    def add_extension(self, ext: str) -> None:
        if ext not in self.extensions:
            self.extensions.append(ext)

    def event(self, env: Env, name: EventKind, extension: str | None, at: datetime | None, **more: Any) -> CallEvent:
        return CallEvent(
            event=name,
            call_id=self.call_id,
            enterprise=env.enterprise,
            direction=self.direction or "in",
            phone=self.phone,
            did=self.did,
            extension=extension,
            at=at,
            pbx=env.pbx or None,
            **more,
        )
