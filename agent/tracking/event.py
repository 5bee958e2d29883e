"""The internal contract between the call tracker and everything downstream (DESIGN.md)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

EventKind = Literal["ringing", "answered", "transferred", "ended"]
Direction = Literal["in", "out", "internal"]
CallResult = Literal["answered", "no_answer", "busy", "failed", "cancelled"]
TransferKind = Literal["blind", "attended"]


@dataclass(frozen=True, slots=True)
class CallEvent:
    """One thing that happened to a call.

    `call_id` is the Asterisk Linkedid. Times are timezone-aware UTC datetimes, or None when the
    source had no clock (a replay without timing or Timestamp headers). Fields that belong to one
    event kind only are None on the others.
    """

    event: EventKind
    call_id: str
    enterprise: str
    direction: Direction
    phone: str | None
    did: str | None
    extension: str | None
    at: datetime | None
    # ended
    extensions: tuple[str, ...] = ()
    answered_by: str | None = None
    result: CallResult | None = None
    ring_seconds: float | None = None
    talk_seconds: float | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    recording: str | None = None
    # answered and ended: the outside number a phone forwarded the call to and that answered it (SIP 302, a
    # dialplan follow-me); `extension` / `answered_by` stay the manager whose phone forwarded it
    forwarded_to: str | None = None
    # transferred
    from_extension: str | None = None
    to_extension: str | None = None
    kind: TransferKind | None = None
    # read by the connectors: the PBX's name (the recording's source; None when the tracker was given none)
    # and, on a call nobody answered, its DID's `default_extension` (set by the planner from the routing rules)
    pbx: str | None = None
    default_extension: str | None = None
    # details beside the contract, for people and logs only: `legs` (per-leg talk time), `closed_by`,
    # `backfilled`, `cdr_uniqueids`
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """DESIGN.md's field names; times ISO-8601 UTC; only the fields of this event kind. `pbx` and
        `default_extension`, when set, go out inside `extra` (after its own keys), where they always have;
        `forwarded_to` only when set (on `answered` and `ended`), so the JSON of every other call is unchanged."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in _ENDED_ONLY and self.event != "ended":
                continue
            if f.name in _TRANSFER_ONLY and self.event != "transferred":
                continue
            if f.name in _IN_EXTRA:
                continue
            if f.name in _WHEN_SET and value is None:
                continue
            if f.name == "extra":
                value = self._extra_json()
                if not value:
                    continue
            if isinstance(value, datetime):
                value = value.isoformat().replace("+00:00", "Z")
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    def _extra_json(self) -> dict[str, Any]:
        if self.pbx is None and self.default_extension is None:
            return self.extra
        out = dict(self.extra)
        if self.pbx is not None:
            out["pbx"] = self.pbx
        if self.default_extension is not None:
            out["default_extension"] = self.default_extension
        return out


_ENDED_ONLY = frozenset(
    {"extensions", "answered_by", "result", "ring_seconds", "talk_seconds", "started_at", "ended_at", "recording"}
)
_TRANSFER_ONLY = frozenset({"from_extension", "to_extension", "kind"})
_IN_EXTRA = frozenset({"pbx", "default_extension"})
_WHEN_SET = frozenset({"forwarded_to"})
