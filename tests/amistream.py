"""AMI streams built by hand, in the shape Asterisk documents its events, for calls no recording shows.

Every message carries a `Timestamp:` header (manager.conf `timestampevents = yes`, as in the recording
`x3_…`), so a replay has times without a `.timing` file. A channel's fields are Asterisk's channel snapshot
(`Channel`, `ChannelState`, …, `Uniqueid`, `Linkedid`), which an event repeats under a prefix for each
further channel it names (`Dest…`, `Target…`, `Transferee…`, `Parkee…`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from agent.repair.replay import replay
from agent.tracking.channels import ChannelRules
from agent.tracking.event import CallEvent
from agent.tracking.tracker import CallTracker

EPOCH = 1_700_000_000
BANNER = b"Asterisk Call Manager/11.0.0\r\n"
_STATES = {"0": "Down", "4": "Ring", "5": "Ringing", "6": "Up"}


@dataclass(frozen=True)
class Chan:
    name: str
    uniqueid: str
    linkedid: str
    cid: str
    context: str = "from-internal"
    exten: str = "s"
    state: str = "6"

    def fields(self, prefix: str = "") -> dict[str, str]:
        return {
            f"{prefix}Channel": self.name,
            f"{prefix}ChannelState": self.state,
            f"{prefix}ChannelStateDesc": _STATES.get(self.state, "Unknown"),
            f"{prefix}CallerIDNum": self.cid,
            f"{prefix}CallerIDName": "<unknown>",
            f"{prefix}ConnectedLineNum": "<unknown>",
            f"{prefix}ConnectedLineName": "<unknown>",
            f"{prefix}Language": "en",
            f"{prefix}AccountCode": "",
            f"{prefix}Context": self.context,
            f"{prefix}Exten": self.exten,
            f"{prefix}Priority": "1",
            f"{prefix}Uniqueid": self.uniqueid,
            f"{prefix}Linkedid": self.linkedid,
        }

    def linked(self, linkedid: str) -> Chan:
        """The same channel after a bridge gave it another call's (older) Linkedid."""
        return replace(self, linkedid=linkedid)


class Stream:
    """Messages in order, each at `EPOCH + seconds`."""

    def __init__(self) -> None:
        self.messages: list[tuple[float, dict[str, str]]] = []

    def add(self, at: float, event: str, *parts: dict[str, str], **more: str) -> Stream:
        msg = {"Event": event, "Privilege": "call,all"}
        for part in parts:
            msg.update(part)
        msg.update(more)
        self.messages.append((at, msg))
        return self

    def newchannel(self, at: float, chan: Chan) -> Stream:
        return self.add(at, "Newchannel", chan.fields())

    def dial(self, at: float, caller: Chan, dest: Chan, dial_string: str) -> Stream:
        return self.add(at, "DialBegin", caller.fields(), dest.fields("Dest"), DialString=dial_string)

    def dial_end(self, at: float, caller: Chan, dest: Chan, status: str) -> Stream:
        return self.add(at, "DialEnd", caller.fields(), dest.fields("Dest"), DialStatus=status)

    def hangup(self, at: float, chan: Chan, cause: str = "16") -> Stream:
        return self.add(at, "Hangup", chan.fields(), Cause=cause, **{"Cause-txt": "Normal Clearing"})

    def bytes(self) -> bytes:
        out = bytearray(BANNER)
        for at, msg in self.messages:
            lines = []
            for key, value in msg.items():
                lines.append(f"{key}: {value}")
                if key == "Privilege":
                    lines.append(f"Timestamp: {EPOCH + at:.6f}")
            out += ("\r\n".join(lines) + "\r\n\r\n").encode()
        return bytes(out)

    def play(self, tracker: CallTracker | None = None) -> list[CallEvent]:
        return replay(self.bytes(), None, tracker or CallTracker(ChannelRules(region="BY"), "100", "office"))


def uid(n: int, at: float = 0) -> str:
    return f"{EPOCH + int(at)}.{n}"
