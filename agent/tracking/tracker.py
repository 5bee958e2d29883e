"""The call tracker: AMI events in, CallEvents out. Pure: no I/O, no clock, no global state.

Calls are keyed by Asterisk's Linkedid, channels by Uniqueid. A call lives from the first
`Newchannel` of its Linkedid until its last channel hangs up; then it emits `ended` and
everything the tracker held for it is dropped.

Who is who comes from `ChannelRules` only (phone-channel patterns, the internal-number pattern,
trunk contexts), never from how Local channels happen to be paired:

- `in`: the first Dial's caller is an outside party. `phone` is the caller, `did` the number
  it dialled, `extension` the phone each event is about (on `ended`: the call's owner, agent.tracking.end.
  owner: who answered last, else the manager smart redirect named, else the one phone that rang; a group
  call nobody answered has none, and `extensions` lists every member that rang).
- `out`: an extension dials an outside number. `phone` is that number and `extension` is the
  calling manager on every event. When the remote party answers, `answered_by` is the calling
  manager too: `answered_by` always names our phone that talked with the other party, and on an
  outgoing call that is the caller (the remote party is `phone`). `extensions` holds the caller.
- `internal`: an extension dials an extension. `phone` is the caller's extension; `extension`
  is the callee, as for `in`.

One event per answering leg: `answered` when a person picks up (Dial ANSWER to a phone, queue
AgentConnect, pickup, the target of a completed attended transfer); `extra["legs"]` on `ended`
splits the talk time per extension and `talk_seconds` is their sum.

- A pickup: the picker answers; the phone it took only rang; the picker's channel, which arrived with a
  Linkedid of its own, joins the call (its own Linkedid never becomes a call).
- A conference (ConfBridge, MeetMe): the first phone in the room with an outside caller answers that caller
  (agent.tracking.conference); the room's own answer is no person's.
- A forward: an outside number that a phone forwarded the call to (`DialEnd Forward:`, or the caller
  dialling out after a phone rang: a follow-me) answers for that phone's extension, with `forwarded_to`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import datetime

from agent.tracking import dial as calldial
from agent.tracking import recording
from agent.tracking import transfer as calltransfer
from agent.tracking.channels import ChannelRules
from agent.tracking.conference import Rooms
from agent.tracking.end import ended
from agent.tracking.endpoints import Endpoints
from agent.tracking.event import CallEvent
from agent.tracking.reconcile import rebuild_call, reconcile_call
from agent.tracking.state import Call, Chan, Env, parse_timestamp

log = logging.getLogger(__name__)

Handler = Callable[["CallTracker", Mapping[str, str], datetime | None], list[CallEvent]]
_NONE: list[CallEvent] = []


class CallTracker:
    def __init__(self, rules: ChannelRules, enterprise: str, pbx: str = "") -> None:
        self.env = Env(rules, enterprise, pbx)
        self._calls: dict[str, Call] = {}
        self._chans: dict[str, Call] = {}
        self._rooms = Rooms()

    def learn(self, endpoints: Endpoints) -> None:
        """What the PBX says its trunks and phones are (agent.ingest.discovery); rules the events from now on."""
        self.env = replace(self.env, rules=replace(self.env.rules, endpoints=endpoints))

    def live_calls(self) -> int:
        return len(self._calls)

    def live_channels(self) -> int:
        return len(self._chans)

    def active_ids(self) -> set[str]:
        """The ids of the calls in progress: their linkedids and their channels' uniqueids."""
        return set(self._calls) | set(self._chans)

    def feed_many(self, msgs: Iterable[Mapping[str, str]], received_at: datetime | None = None) -> list[CallEvent]:
        """The AMI messages of one read, in order (what the live link and replay call). A message's time is
        its `Timestamp` header, else `received_at`; one the tracker cannot read is logged and skipped."""
        out: list[CallEvent] = []
        get = _HANDLERS.get
        for msg in msgs:
            handler = get(msg.get("Event", ""))
            if handler is not None:
                try:
                    events = handler(self, msg, received_at)
                except (KeyError, ValueError, TypeError):
                    log.exception("call tracker: skipped an event it could not read: %r", dict(msg))
                    continue
                if events:
                    out += events
        return out

    def reconcile(self, channels: list[Mapping[str, str]], at: datetime | None) -> list[CallEvent]:
        """Align with the `CoreShowChannel` list Asterisk gave after a (re)connect.

        Calls with no channel left are closed (one `ended`, end time unknown); channels that
        appeared meanwhile are adopted; live calls the tracker never saw are rebuilt silently
        (their `ringing`/`answered` may already have gone out before the link dropped) and
        will end normally.
        """
        live: dict[str, list[Mapping[str, str]]] = {}
        for ch in channels:
            if ch.get("Uniqueid"):
                live.setdefault(ch.get("Linkedid") or ch["Uniqueid"], []).append(ch)
        live_uids = {ch["Uniqueid"] for group in live.values() for ch in group}
        out: list[CallEvent] = []
        for call_id in sorted(self._calls):
            call = self._calls[call_id]
            group = live.pop(call_id, [])
            for uid in [u for u in call.channels if u not in live_uids]:
                self._chans.pop(uid, None)
            out += reconcile_call(self.env, call, group, at)
            for uid in call.channels:
                self._chans[uid] = call
            if not call.channels:
                out += self._finish(call, at, None, {"closed_by": "reconcile"})
        for call_id in sorted(live):
            if any(ch["Uniqueid"] in self._chans for ch in live[call_id]):
                continue
            call = rebuild_call(self.env, call_id, live[call_id], at)
            self._calls[call_id] = call
            for uid in call.channels:
                self._chans[uid] = call
        return out

    # --- helpers used by the handlers ----------------------------------------------------

    def _call_of(self, msg: Mapping[str, str], *prefixes: str) -> Call | None:
        for prefix in prefixes:
            call = self._calls.get(msg.get(prefix + "Linkedid", ""))
            if call is not None:
                return call
            call = self._chans.get(msg.get(prefix + "Uniqueid", ""))
            if call is not None:
                return call
        return None

    def _adopt(self, call: Call, uid: str, at: datetime | None) -> list[CallEvent]:
        """The channel `uid` now belongs to `call` (a pickup, an attended transfer). The call it leaves
        ends when it has no channel left; one that never reached a Dial (a picker's own dialplan leg) is
        no call at all and vanishes without an event."""
        old = self._chans.get(uid)
        if old is None or old is call:
            return _NONE
        chan = old.channels.pop(uid)
        call.channels[uid] = chan
        self._chans[uid] = call
        if old.current is not None and old.current.channel == uid:
            old.current.close(at)
        if not old.emitted():
            old.absorbed = True
        if old.channels:
            return _NONE
        return self._finish(old, at, at)

    def _finish(
        self, call: Call, at: datetime | None, ended_at: datetime | None, extra: dict[str, str] | None = None
    ) -> list[CallEvent]:
        self._calls.pop(call.call_id, None)
        for uid in call.channels:
            self._chans.pop(uid, None)
        call.channels.clear()
        if call.absorbed:
            return []
        event = ended(self.env, call, at, ended_at, extra)
        log.info("call %s ended: %s %s answered_by=%s", call.call_id, event.direction, event.result, event.answered_by)
        return [event]


# --- handlers, one per event family ------------------------------------------------------
# Each gets the reader's arrival time; `_time` prefers the message's own Timestamp header. The
# most frequent events (VarSet, Newexten, ...) cost one dict lookup or return before that.


def _time(msg: Mapping[str, str], received_at: datetime | None) -> datetime | None:
    stamp = msg.get("Timestamp")
    if stamp is None:
        return received_at
    return parse_timestamp(stamp) or received_at


def _newchannel(tr: CallTracker, msg: Mapping[str, str], at: datetime | None) -> list[CallEvent]:
    uid = msg.get("Uniqueid", "")
    if not uid or uid in tr._chans:
        return _NONE
    at = _time(msg, at)
    call_id = msg.get("Linkedid") or uid
    call = tr._calls.get(call_id)
    if call is None:
        call = tr._calls[call_id] = Call(call_id, at)
    chan = Chan(uid, msg.get("Channel", ""), msg.get("CallerIDNum", ""), msg.get("Context", ""), msg.get("Exten", ""))
    if call.first is None:
        call.first = chan
    call.channels[uid] = chan
    tr._chans[uid] = call
    return _NONE


def _newcallerid(tr: CallTracker, msg: Mapping[str, str], at: datetime | None) -> list[CallEvent]:
    call = tr._chans.get(msg.get("Uniqueid", ""))
    if call is not None:
        chan = call.channels.get(msg["Uniqueid"])
        if chan is not None:
            chan.cid = msg.get("CallerIDNum", chan.cid)
    return _NONE


def _hangup(tr: CallTracker, msg: Mapping[str, str], at: datetime | None) -> list[CallEvent]:
    uid = msg.get("Uniqueid", "")
    call = tr._chans.pop(uid, None)
    if call is None:
        return _NONE
    call.channels.pop(uid, None)
    at = _time(msg, at)
    if call.current is not None and call.current.channel == uid:
        call.current.close(at)
    if call.channels:
        return _NONE
    return tr._finish(call, at, at)


# smart redirect's answer as the dialplan gets it (names as in agent.redirect.variables; tracking imports
# nothing of the project): the extension it named, and who named it (`crm`, or `history`: not a CRM's manager)
REDIRECT_EXTEN = "REDIRECT_EXTEN"
REDIRECT_SOURCE = "REDIRECT_SOURCE"


def _varset(tr: CallTracker, msg: Mapping[str, str], at: datetime | None) -> list[CallEvent]:
    name = msg.get("Variable", "")
    operator = tr.env.rules.recording_variables
    plain = recording.watched(name, operator)
    if plain is not None:
        call = tr._call_of(msg, "")
        if call is not None:
            recording.note(call, plain, msg.get("Value", "").strip(), operator)
    elif name in (REDIRECT_EXTEN, REDIRECT_SOURCE):
        call = tr._call_of(msg, "")
        if call is not None:
            value = msg.get("Value", "").strip()
            if name == REDIRECT_EXTEN:
                call.responsible = value if tr.env.rules.is_internal_number(value) else None
            elif value == "history":
                call.responsible = None
    return _NONE


def _on(family: Callable[[Env, Call, Mapping[str, str], datetime | None], list[CallEvent]], *prefixes: str) -> Handler:
    def handle(tr: CallTracker, msg: Mapping[str, str], at: datetime | None) -> list[CallEvent]:
        call = tr._call_of(msg, *prefixes)
        if call is None:
            return _NONE
        return family(tr.env, call, msg, _time(msg, at))

    return handle


def _pickup(tr: CallTracker, msg: Mapping[str, str], at: datetime | None) -> list[CallEvent]:
    """The picker's channel joins the ringing call (its own Linkedid gives way to the call's once bridged)."""
    call = tr._call_of(msg, "Target")
    if call is None:
        return _NONE
    at = _time(msg, at)
    out = calldial.pickup(tr.env, call, msg, at)
    return out + tr._adopt(call, msg.get("Uniqueid", ""), at)


def _dial_end(tr: CallTracker, msg: Mapping[str, str], at: datetime | None) -> list[CallEvent]:
    call = tr._call_of(msg, "", "Dest")
    if call is None:
        return _NONE
    at = _time(msg, at)
    out = calldial.dial_end(tr.env, call, msg, at)
    dest = msg.get("DestUniqueid", "")
    if msg.get("DialStatus") == "ANSWER" and dest in call.dials:
        out += tr._adopt(call, dest, at)  # a picker that answered in the dialled phone's place
    return out


def _attended(tr: CallTracker, msg: Mapping[str, str], at: datetime | None) -> list[CallEvent]:
    """One call when the consultation ran inside it (a Local-channel feature); two when the transferer's
    phone placed the consultation as a call of its own: the calls' remaining parties then talk in the call
    that goes on, and the consultation ends here."""
    first = tr._call_of(msg, "OrigTransferer", "Transferee")
    second = tr._call_of(msg, "SecondTransferer", "TransferTarget")
    at = _time(msg, at)
    if first is None or second is None or first is second:
        call = first or second
        return calltransfer.attended(tr.env, call, msg, at) if call is not None else _NONE
    if msg.get("Result", "Success") != "Success":
        return _NONE
    keep, gone = calltransfer.survivor(first, second)
    newcomer = next(
        (msg[k] for k in ("TransferTargetUniqueid", "TransfereeUniqueid") if msg.get(k) in gone.channels), None
    )
    out = calltransfer.merged(tr.env, keep, gone, msg, newcomer, at)
    if newcomer is not None:
        out += tr._adopt(keep, newcomer, at)
    return out


def _unparked(tr: CallTracker, msg: Mapping[str, str], at: datetime | None) -> list[CallEvent]:
    """Someone took a parked call from its slot (`ParkedCall()`): the retriever answers it. Its channel came
    with a Linkedid of its own, which never dialled: it joins the call and is no call of its own. (A call
    parked too long goes back to the parker through an ordinary Dial; one whose caller hangs up while parked
    keeps the parker as the one who answered: neither needs an event of its own.)"""
    call = tr._call_of(msg, "Parkee")
    if call is None:
        return _NONE
    at = _time(msg, at)
    uid = msg.get("RetrieverUniqueid", "")
    ext = tr.env.identity(msg.get("RetrieverChannel", ""), msg.get("RetrieverCallerIDNum"), msg.get("RetrieverContext"))
    out = calldial.answer(tr.env, call, ext, uid, at) if ext is not None else []
    return out + tr._adopt(call, uid, at)


def _room_join(tr: CallTracker, msg: Mapping[str, str], at: datetime | None) -> list[CallEvent]:
    call = tr._call_of(msg, "")
    return tr._rooms.join(tr.env, call, msg, _time(msg, at)) if call is not None else _NONE


def _room_leave(tr: CallTracker, msg: Mapping[str, str], at: datetime | None) -> list[CallEvent]:
    tr._rooms.leave(msg, _time(msg, at))
    return _NONE


def _room_end(tr: CallTracker, msg: Mapping[str, str], at: datetime | None) -> list[CallEvent]:
    tr._rooms.end(msg)
    return _NONE


_HANDLERS: dict[str, Handler] = {
    "Newchannel": _newchannel,
    "NewCallerid": _newcallerid,
    "Hangup": _hangup,
    "VarSet": _varset,
    "DialBegin": _on(calldial.dial_begin, "", "Dest"),
    "DialEnd": _dial_end,
    "AgentConnect": _on(calldial.agent_connect, "", "Dest"),
    "Pickup": _pickup,
    "BlindTransfer": _on(calltransfer.blind, "Transferee", "Transferer"),
    "AttendedTransfer": _attended,
    "UnParkedCall": _unparked,
    "ConfbridgeJoin": _room_join,
    "ConfbridgeLeave": _room_leave,
    "ConfbridgeEnd": _room_end,
    "MeetmeJoin": _room_join,
    "MeetmeLeave": _room_leave,
    "MeetmeEnd": _room_end,
}


def handled_events() -> frozenset[str]:
    """The AMI event names the tracker reads (the README's manager.conf event filter must let each through)."""
    return frozenset(_HANDLERS)
