"""AMI ingest rate: our framer + call tracker against a bare asyncio StreamReader parser.

Run alone: `python bench/ami_ingest.py [--copies N] [--reps N] [--chunk BYTES]`.

The stream is every recording in shared/asterisk-recordings, copied N times with each copy's
Uniqueid/Linkedid counters shifted so the calls stay distinct (one banner in front). All methods
read the same bytes through an asyncio StreamReader that a feeder task fills in `--chunk` pieces,
the way a socket would; they run in one process, interleaved, several times; medians are
reported. Measured:

- bare:        `await reader.readuntil(b"\\r\\n\\r\\n")`, decode, split lines into a dict.
- ours:        `await reader.read(chunk)` -> AmiFrameParser.feed -> CallTracker.feed_many per read,
               with a wall-clock arrival stamp per read (as the live link will do).
- ours-parse:  the same without the tracker.
- ours-proto:  framer + tracker called from asyncio.Protocol.data_received with each read (the
               same feeder, one event-loop turn per read), no StreamReader in between.
- panoramisk:  panoramisk's own AMIProtocol.data_received framing (decode per read, split on the
               empty line) + `Message.from_line`, without its dispatch.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import sys
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.ingest.frame import AmiFrameParser
from agent.tracking.channels import ChannelRules
from agent.tracking.tracker import CallTracker
from tests.recordings import recordings_dir as shared_recordings_dir

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
_ID = re.compile(rb"\b(\d{10})\.(\d+)\b")


def recordings_dir() -> Path:
    try:
        return shared_recordings_dir()
    except FileNotFoundError as exc:
        raise SystemExit(f"{exc}") from None


def _shift(offset: int, m: re.Match[bytes]) -> bytes:
    return b"1700000000.%d" % (int(m.group(2)) + offset)


def build_stream(copies: int) -> tuple[bytes, int]:
    bodies = []
    for path in sorted(recordings_dir().glob("*.ami")):
        data = path.read_bytes()
        bodies.append(data[data.index(b"\r\n") + 2 :])  # without its banner
    out = bytearray(BANNER)
    for copy in range(copies):
        for n, body in enumerate(bodies):
            offset = (copy * len(bodies) + n) * 1000
            out += _ID.sub(partial(_shift, offset), body)
    stream = bytes(out)
    return stream, stream.count(b"\r\n\r\n")


async def _feed(reader: asyncio.StreamReader, data: bytes, chunk: int) -> None:
    for i in range(0, len(data), chunk):
        reader.feed_data(data[i : i + chunk])
        await asyncio.sleep(0)
    reader.feed_eof()


async def bare(reader: asyncio.StreamReader) -> int:
    n = 0
    while True:
        try:
            frame = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return n
        msg = {}
        for line in frame.decode("utf-8", "replace").split("\r\n"):
            key, sep, value = line.partition(": ")
            if sep:
                msg[key] = value
        n += 1


async def ours(reader: asyncio.StreamReader, chunk: int, track: bool = True) -> int:
    parser = AmiFrameParser()
    tracker = CallTracker(ChannelRules(), "1", "bench")
    n = 0
    while data := await reader.read(chunk):
        at = datetime.now(UTC)
        msgs = parser.feed(data)
        n += len(msgs)
        if track:
            tracker.feed_many(msgs, at)
    return n


class _Proto(asyncio.Protocol):
    """The live-link shape: the transport calls data_received with each read."""

    def __init__(self) -> None:
        self.parser = AmiFrameParser()
        self.tracker = CallTracker(ChannelRules(), "1", "bench")
        self.n = 0

    def data_received(self, data: bytes) -> None:
        msgs = self.parser.feed(data)
        self.n += len(msgs)
        self.tracker.feed_many(msgs, datetime.now(UTC))


async def ours_protocol(data: bytes, chunk: int) -> tuple[float, int]:
    proto = _Proto()
    start = time.perf_counter()
    for i in range(0, len(data), chunk):
        proto.data_received(data[i : i + chunk])
        await asyncio.sleep(0)
    return time.perf_counter() - start, proto.n


async def panoramisk_parse(reader: asyncio.StreamReader, chunk: int) -> int:
    from panoramisk.message import Message

    pending = ""
    n = 0
    while data := await reader.read(chunk):
        text = pending + data.decode("utf-8", "ignore")
        lines = text.split("\r\n\r\n")
        pending = lines.pop(-1)
        for line in lines:
            if Message.from_line(line.strip()) is not None:
                n += 1
    return n


async def timed(
    consume: Callable[[asyncio.StreamReader], Coroutine[Any, Any, int]], data: bytes, chunk: int
) -> tuple[float, int]:
    reader = asyncio.StreamReader(limit=1 << 20)
    start = time.perf_counter()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(_feed(reader, data, chunk))
        counted = tg.create_task(consume(reader))
    return time.perf_counter() - start, counted.result()


async def main_async(args: argparse.Namespace) -> None:
    data, frames = build_stream(args.copies)
    chunk = args.chunk
    methods: dict[str, Callable[[asyncio.StreamReader], Coroutine[Any, Any, int]]] = {
        "bare": bare,
        "ours": lambda r: ours(r, chunk),
        "ours-parse": lambda r: ours(r, chunk, track=False),
        "panoramisk": lambda r: panoramisk_parse(r, chunk),
    }
    rates: dict[str, list[float]] = {name: [] for name in [*methods, "ours-proto"]}
    for _ in range(args.reps):
        for name, consume in methods.items():
            seconds, counted = await timed(consume, data, chunk)
            rates[name].append(counted / seconds)
        seconds, counted = await ours_protocol(data, chunk)
        rates["ours-proto"].append(counted / seconds)
    med = {name: statistics.median(values) for name, values in rates.items()}
    print(
        f"stream: {len(data) / 1e6:.1f} MB, {frames} messages (+ banner), read in {chunk}-byte "
        f"chunks, {args.reps} repetitions, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
    )
    print(f"{'method':<12} {'median msg/s':>14} {'min':>12} {'max':>12} {'vs bare':>8}")
    for name, values in rates.items():
        print(
            f"{name:<12} {med[name]:>14,.0f} {min(values):>12,.0f} {max(values):>12,.0f} "
            f"{med[name] / med['bare']:>7.0%}"
        )
    target = med["ours"] / med["bare"]
    verdict = "met" if target >= 0.8 else "MISSED"
    print(f"ours (framer + tracker) / bare = {target:.0%}: target 80 % {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--copies", type=int, default=5, help="copies of the recordings (~1 MB each)")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--chunk", type=int, default=65536)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
