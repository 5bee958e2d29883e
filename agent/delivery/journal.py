"""The planner's local journal: ended calls that could not reach the database yet, on disk until they do.

One append-only file per agent in its state directory (the state lock makes the agent its only writer), one
CallEvent per line as JSON, fsynced before `append` returns: a call the planner holds while PostgreSQL is away,
or when the agent stops, survives a restart and a crash. The planner replays the file at start and when the
database is back, and empties it once everything in it is stored. Storing twice is harmless (calls and
deliveries are keyed), so a crash between storing and emptying only replays what is already there.

Events that the database refuses for good (not a connection problem) go to a second file, `.rejected`, which
is never replayed by itself: the log names each call, and an admin can look at them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, get_type_hints

from agent.tracking.event import CallEvent

log = logging.getLogger(__name__)

_HINTS = get_type_hints(CallEvent)
_DATETIMES = frozenset(name for name, hint in _HINTS.items() if "datetime" in str(hint))
_TUPLES = frozenset(name for name, hint in _HINTS.items() if str(hint).startswith("tuple"))


def encode(event: CallEvent) -> str:
    """Every field of the event (not only those of its kind, unlike `to_json`), on one line."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(event):
        value = getattr(event, f.name)
        out[f.name] = value.isoformat() if isinstance(value, datetime) else value
    return json.dumps(out, ensure_ascii=False, separators=(",", ":"), default=list)


def decode(line: str) -> CallEvent:
    raw = json.loads(line)
    known = {f.name for f in dataclasses.fields(CallEvent)}
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in known:
            continue  # written by a later version: what this one does not know it cannot use
        if name in _DATETIMES and isinstance(value, str):
            value = datetime.fromisoformat(value)
        elif name in _TUPLES and isinstance(value, list):
            value = tuple(value)
        values[name] = value
    return CallEvent(**values)


class Journal:
    """`<state_dir>/journal.jsonl` (pending) and `<state_dir>/journal.rejected.jsonl`. Blocking file I/O: the
    planner calls it through `asyncio.to_thread`, except at stop."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "journal.jsonl"
        self.rejected_path = state_dir / "journal.rejected.jsonl"

    def append(self, events: Iterable[CallEvent]) -> int:
        return _append(self.path, events)

    def reject(self, events: Iterable[CallEvent]) -> int:
        return _append(self.rejected_path, events)

    def pending(self) -> list[CallEvent]:
        """What the file holds; a last line cut short by a crash mid-write is skipped (it was never fsynced,
        so `append` had not returned and the events it held were still in memory or lost with the process)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        events: list[CallEvent] = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                events.append(decode(line))
            except (ValueError, TypeError) as exc:
                log.warning("journal %s line %d unreadable, skipped: %s", self.path, number, exc)
        return events

    def clear(self) -> None:
        """Empty the file (after everything in it is stored)."""
        try:
            with self.path.open("r+b") as f:
                f.truncate(0)
                os.fsync(f.fileno())
        except FileNotFoundError:
            pass


def _append(path: Path, events: Iterable[CallEvent]) -> int:
    lines = [encode(e) + "\n" for e in events]
    if not lines:
        return 0
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    try:
        data = memoryview("".join(lines).encode("utf-8"))
        while data:
            data = data[os.write(fd, data) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    return len(lines)
