"""Where the real Asterisk recordings are, and how to replay one through the production code.

`PBX_RECORDINGS` wins; otherwise the nearest `shared/asterisk-recordings` beside any parent of
this file (the repo is cloned next to `shared/`, whether as /work/<name> or in CI).
"""

from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path

from agent.repair.replay import TimingEntry, read_timing, replay
from agent.tracking.channels import ChannelRules
from agent.tracking.event import CallEvent
from agent.tracking.tracker import CallTracker

NAMES = (
    "a_incoming_answered",
    "b_incoming_missed",
    "c_incoming_busy",
    "d_outgoing_answered",
    "e_outgoing_noanswer",
    "f_internal_150_to_151",
    "g_blind_transfer",
    "h_attended_transfer",
    "i_queue_second_member",
    "x1_agi_down_fallback_queue",
    "x2_click_to_call",
    "x3_timestamped_incoming_answered",
    "p_a_incoming_answered",
    "p_b_incoming_missed",
    "p_c_incoming_busy",
    "p_d_outgoing_answered",
    "p_i_queue_second_member",
    "p_l_ring_group",
    "p_n_ivr_then_missed",
    "p_o_recorded_call",
    "p_m_pickup",
    "p_t_forward_no_answer",
)


@cache
def recordings_dir() -> Path:
    env = os.environ.get("PBX_RECORDINGS")
    if env:
        return Path(env)
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "asterisk-recordings"
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("no shared/asterisk-recordings beside the repo; set PBX_RECORDINGS")


def ami(name: str) -> bytes:
    return (recordings_dir() / f"{name}.ami").read_bytes()


def timing(name: str) -> list[TimingEntry]:
    return read_timing((recordings_dir() / f"{name}.timing").read_text())


def play(
    name: str, *, with_timing: bool = True, rules: ChannelRules | None = None, tracker: CallTracker | None = None
) -> list[CallEvent]:
    tracker = tracker or CallTracker(rules or ChannelRules(region="BY"), "100", "office")
    return replay(ami(name), timing(name) if with_timing else None, tracker)


_ID = re.compile(rb"\b(\d{10})\.(\d+)\b")


def rewrite_ids(data: bytes, offset: int, epoch: int = 1_700_000_000) -> bytes:
    """Every `<epoch>.<counter>` id onto one epoch with counters shifted by `offset`."""
    return _ID.sub(lambda m: b"%d.%d" % (epoch, int(m.group(2)) + offset), data)


def burst(calls: int, recording: str = "p_c_incoming_busy", epoch: int = 1_700_000_000, first: int = 0) -> bytes:
    """One AMI stream of `calls` copies of a recorded call, each with its own ids (one banner, one login);
    the ids' epoch part is `epoch` (a PBX's ids carry the time their channel was made). `first`: the copy
    to begin with (the same ids as in a longer burst: a stream that goes on after a gap)."""
    data = ami(recording)
    banner, _, body = data.partition(b"\r\n")
    copies = range(first, first + calls)
    return banner + b"\r\n" + b"".join(rewrite_ids(body, offset=i * 10, epoch=epoch) for i in copies)


def burst_call_ids(calls: int, enterprise: str, epoch: int = 1_700_000_000) -> list[str]:
    """The ids of the calls of `burst(calls, epoch=epoch)`, in order, as the tracker names them."""
    from agent.repair.replay import replay
    from agent.tracking.channels import ChannelRules
    from agent.tracking.tracker import CallTracker

    events = replay(burst(calls, epoch=epoch), None, CallTracker(ChannelRules(), enterprise, "office"))
    ids = [e.call_id for e in events if e.event == "ended"]
    assert len(ids) == calls
    return ids


def frames(data: bytes, entries: list[TimingEntry]) -> list[bytes]:
    """The recording cut into its messages (the banner is the first)."""
    return [data[e.start : e.end] for e in entries]
