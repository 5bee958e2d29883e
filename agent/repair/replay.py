"""`pbx-agent replay FILE.ami [--timing FILE.timing] [-c agent.toml]`: recorded AMI bytes through the live
parser and tracker, CallEvents out. No database or network.

With `-c`, the channels are classified by the `[[pbx]]` table's rules exactly as a live agent would (the one
table, or the one `--pbx` names); without it, by the defaults. A file that holds no AMI message is refused.

Arrival times come from `--timing` (`<seconds since connect>\\t<start>\\t<end>\\t<name>` per
message; the file is fed in those chunks), else from the `.timing` file beside the recording when there is
one. They are anchored without reading any clock: the
first `Newchannel` is taken to arrive at the epoch second in its Uniqueid. Without `--timing`,
times come from `Timestamp` headers when the stream has them, else they and all durations are
null.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent.config.load import load
from agent.config.sections import ConfigError
from agent.ingest.frame import AmiFrameParser
from agent.ingest.pipeline import channel_rules
from agent.tracking.channels import ChannelRules
from agent.tracking.event import CallEvent
from agent.tracking.tracker import CallTracker

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class TimingEntry:
    seconds: float
    start: int
    end: int
    name: str


class ReplayError(Exception):
    """A file that cannot be replayed; the message says why."""


def read_timing(text: str) -> list[TimingEntry]:
    entries = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        try:
            entries.append(
                TimingEntry(float(parts[0]), int(parts[1]), int(parts[2]), parts[3] if len(parts) > 3 else "")
            )
        except (IndexError, ValueError):
            raise ReplayError(f"timing line {n} is not '<seconds>\\t<start>\\t<end>\\t<name>': {line[:80]!r}") from None
    return entries


def _chunks(data: bytes, timing: list[TimingEntry]) -> Iterator[tuple[bytes, float]]:
    """The stream as it was read: consecutive messages with one arrival time form one read."""
    i = 0
    while i < len(timing):
        j = i
        while j + 1 < len(timing) and timing[j + 1].seconds == timing[i].seconds:
            j += 1
        yield data[timing[i].start : timing[j].end], timing[i].seconds
        i = j + 1
    tail = timing[-1].end if timing else 0
    if tail < len(data):
        yield data[tail:], timing[-1].seconds if timing else 0.0


def _anchor(data: bytes, timing: list[TimingEntry]) -> datetime | None:
    """Wall-clock time of second 0: the first Newchannel arrives at its Uniqueid's epoch."""
    for entry in timing:
        if entry.name != "Newchannel":
            continue
        for msg in AmiFrameParser().feed(data[entry.start : entry.end] + b"\r\n\r\n"):
            epoch = msg.get("Uniqueid", "").rsplit("-", 1)[-1].split(".", 1)[0]
            if epoch.isdigit():
                return _EPOCH + timedelta(seconds=int(epoch) - entry.seconds)
        return None
    return None


def replay(
    data: bytes, timing: list[TimingEntry] | None, tracker: CallTracker, parser: AmiFrameParser | None = None
) -> list[CallEvent]:
    """Feed the bytes through `parser` and `tracker` exactly as the live link does."""
    parser = parser or AmiFrameParser()
    events: list[CallEvent] = []
    if not timing:
        return tracker.feed_many(parser.feed(data), None)
    anchor = _anchor(data, timing)
    for chunk, secs in _chunks(data, timing):
        at = anchor + timedelta(seconds=secs) if anchor is not None else None
        events += tracker.feed_many(parser.feed(chunk), at)
    return events


def _fmt_time(value: datetime | None) -> str:
    return value.strftime("%H:%M:%S.%f")[:-3] if value is not None else "-"


def _details(e: CallEvent) -> str:
    if e.event == "ended":
        bits = [
            f"result={e.result}",
            f"answered_by={e.answered_by or '-'}",
            f"extensions={','.join(e.extensions) or '-'}",
            f"ring={e.ring_seconds if e.ring_seconds is not None else '-'}s",
            f"talk={e.talk_seconds if e.talk_seconds is not None else '-'}s",
        ]
        if e.forwarded_to:
            bits.append(f"forwarded_to={e.forwarded_to}")
        if e.recording:
            bits.append(f"recording={e.recording}")
        return " ".join(bits)
    if e.forwarded_to:
        return f"forwarded_to={e.forwarded_to}"
    if e.event == "transferred":
        return f"{e.kind} {e.from_extension or '?'} -> {e.to_extension or '?'}"
    return ""


def format_table(events: Iterable[CallEvent]) -> str:
    rows = [("time", "event", "call", "dir", "phone", "did", "ext", "details")]
    for e in events:
        rows.append(
            (
                _fmt_time(e.at),
                e.event,
                e.call_id,
                e.direction,
                e.phone or "-",
                e.did or "-",
                e.extension or "-",
                _details(e),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return (
        "\n".join(
            "  ".join(cell.ljust(w) for cell, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1] for r in rows
        ).rstrip()
        + "\n"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE.ami", help="raw AMI bytes as Asterisk sent them")
    parser.add_argument(
        "--timing", metavar="FILE.timing", help="arrival time of each message (default: FILE.timing beside FILE.ami)"
    )
    parser.add_argument(
        "-c", "--config", metavar="PATH", help="classify channels by this agent.toml's [[pbx]] rules, as the live agent"
    )
    parser.add_argument("--pbx", default="", help="PBX name stamped on the events (with -c: which [[pbx]])")
    parser.add_argument("--enterprise", default="", help="enterprise number stamped on the events")
    parser.add_argument("--region", default=None, help="country for E.164 normalisation, e.g. BY")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ReplayError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


_FIRST_LINE = re.compile(rb"^(?:Asterisk Call Manager/|(?:Event|Response|Action): )")


def is_ami(data: bytes) -> bool:
    """Whether the bytes are an AMI stream: Asterisk's banner or an AMI message first, and an `Event:` or a
    `Response:` message in them."""
    if _FIRST_LINE.match(data.lstrip(b"\r\n")) is None:
        return False
    return any("Event" in m or "Response" in m for m in AmiFrameParser().feed(data + b"\r\n\r\n"))


def tracker_for(args: argparse.Namespace) -> CallTracker:
    """The tracker a live agent would run for this PBX (`-c`), else one with the default rules."""
    if not args.config:
        return CallTracker(ChannelRules(region=args.region), args.enterprise, args.pbx)
    try:
        config = load(Path(args.config))
    except ConfigError as exc:
        raise ReplayError("; ".join(exc.problems)) from None
    pbxs = [p for p in config.pbx if not args.pbx or p.name == args.pbx]
    if len(pbxs) != 1:
        names = ", ".join(p.name for p in config.pbx) or "none"
        raise ReplayError(f"{args.config}: name one [[pbx]] with --pbx (tables: {names})")
    pbx = pbxs[0]
    rules = channel_rules(pbx, args.region or config.agent.default_region)
    return CallTracker(rules, args.enterprise or pbx.enterprise, pbx.name)


def run(args: argparse.Namespace) -> int:
    try:
        data = _read(args.file, "AMI file")
        if not is_ami(data):
            raise ReplayError(f"{args.file} is not an AMI stream: it holds no Event or Response message")
        timing = None
        timing_path = args.timing
        beside = Path(args.file).with_suffix(".timing")
        if not timing_path and beside != Path(args.file) and beside.is_file():
            timing_path = str(beside)
        if timing_path:
            timing = read_timing(_read(timing_path, "timing file").decode("utf-8", "replace"))
        tracker = tracker_for(args)
    except ReplayError as exc:
        print(f"pbx-agent replay: {exc}", file=sys.stderr)
        return 2
    events = replay(data, timing, tracker)
    if args.json:
        for e in events:
            sys.stdout.write(json.dumps(e.to_json(), ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(format_table(events))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pbx-agent replay", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
