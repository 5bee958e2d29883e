"""A FastAGI client that speaks exactly like Asterisk 22 (as the recorded `.agi` files show).

It connects, sends the request (LF line ends, an empty line at the end), answers every command line
with `200 result=1` (or a chosen reply), and once the server has closed its sending side sends one more
line, `HANGUP`, as Asterisk always does, before closing. It parses `SET VARIABLE` arguments the way
Asterisk's `parse_args()` does (double quotes group, a backslash escapes), so quoting bugs show.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.recordings import recordings_dir


@dataclass
class Exchange:
    commands: list[str] = field(default_factory=list)  # every line the server sent
    variables: dict[str, str] = field(default_factory=dict)  # SET VARIABLE name -> value
    first_command_s: float | None = None  # from connect to the first command line
    closed_s: float | None = None  # from connect to the server's EOF
    eof: bool = False  # the server closed its side cleanly (False: reset, or we stopped first)

    @property
    def status(self) -> str | None:
        return self.variables.get("REDIRECT_STATUS")

    @property
    def exten(self) -> str | None:
        return self.variables.get("REDIRECT_EXTEN")


def agi_args(line: str) -> list[str]:
    """Asterisk's res_agi.c parse_args(): words split on blanks; quotes group; backslash escapes."""
    args: list[str] = []
    cur: list[str] = []
    quoted = escaped = False
    in_word = False
    for ch in line:
        if ch == '"' and not escaped:
            quoted = not quoted
            if quoted and not in_word:
                in_word = True
            continue
        if ch in " \t" and not quoted and not escaped:
            if in_word:
                args.append("".join(cur))
                cur, in_word = [], False
            continue
        if ch == "\\" and not escaped:
            escaped = True
            continue
        in_word = True
        cur.append(ch)
        escaped = False
    if in_word:
        args.append("".join(cur))
    return args


def recorded_request(name: str) -> bytes:
    """The request part of a recorded `.agi` file (up to and including the empty line)."""
    data = (recordings_dir() / f"{name}.agi").read_bytes()
    end = data.index(b"\n\n") + 2
    return data[:end]


def agi_files() -> list[Path]:
    return sorted(recordings_dir().glob("*.agi"))


def request_with(base: bytes, **changes: str) -> bytes:
    """`base` with `agi_<key>` values replaced (or added before the empty line when absent)."""
    lines = base.rstrip(b"\n").split(b"\n")
    for key, value in changes.items():
        prefix = f"agi_{key}:".encode()
        new = f"agi_{key}: {value}".encode()
        for i, line in enumerate(lines):
            if line.startswith(prefix):
                lines[i] = new
                break
        else:
            lines.append(new)
    return b"\n".join(lines) + b"\n\n"


async def agi_call(
    port: int | None,
    request: bytes,
    *,
    host: str = "127.0.0.1",
    reply: bytes = b"200 result=1\n",
    send_hangup: bool = True,
    limit_s: float = 5.0,
) -> Exchange:
    """One FastAGI session as Asterisk runs it; returns what the server said and when. `port`: a server's
    bound port (None, before it started, fails here)."""
    assert port is not None, "the FastAGI server is not listening"
    out = Exchange()
    started = time.monotonic()
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        async with asyncio.timeout(limit_s):
            while True:
                try:
                    raw = await reader.readline()
                except ConnectionResetError:
                    break
                if not raw:
                    out.eof = True
                    out.closed_s = time.monotonic() - started
                    break
                line = raw.decode().rstrip("\n")
                if out.first_command_s is None:
                    out.first_command_s = time.monotonic() - started
                out.commands.append(line)
                args = agi_args(line)
                if len(args) >= 3 and [a.upper() for a in args[:2]] == ["SET", "VARIABLE"]:
                    out.variables[args[2]] = args[3] if len(args) > 3 else ""
                writer.write(reply)
        if send_hangup and out.eof:
            writer.write(b"HANGUP\n")
            await writer.drain()
    except (ConnectionResetError, BrokenPipeError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            await writer.wait_closed()
    return out


async def raw_session(
    port: int, data: bytes, *, close_after_send: bool = False, limit_s: float = 5.0
) -> tuple[bytes, bool]:
    """Send raw bytes; return (everything received, whether the server closed: EOF or reset)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    received = b""
    closed = False
    try:
        writer.write(data)
        if close_after_send:
            writer.write_eof()
        async with asyncio.timeout(limit_s):
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    closed = True
                    break
                received += chunk
    except (ConnectionResetError, BrokenPipeError):
        closed = True
    finally:
        writer.close()
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            await writer.wait_closed()
    return received, closed
