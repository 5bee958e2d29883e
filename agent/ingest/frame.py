"""Incremental AMI framer: raw bytes in, one dict per AMI message out.

Frames are cut on the empty line at the byte level, before any decoding, so a UTF-8 caller name
split across two TCP reads is whole by the time it is decoded (panoramisk decodes each read
first and fails there). CRLF and LF-only line ends are both accepted.

Bad input never stops the stream: a line without a colon, undecodable bytes, a frame over
`max_frame` bytes or a runaway line with no terminator are counted in `malformed`, logged, and
skipped; the next good frame parses normally.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

log = logging.getLogger(__name__)

BANNER_PREFIX = "Asterisk Call Manager/"
_BANNER_PREFIX_B = BANNER_PREFIX.encode()
BANNER_KEY = "Banner"
DEFAULT_MAX_FRAME = 256 * 1024
_EMPTY: dict[str, list[str]] = {}


class AmiMessage(dict[str, str]):
    """One AMI message: a plain `str -> str` mapping (first value wins for a repeated key).

    Every value of a key that occurred more than once (`Variable`, `ChanVariable`, ...) is in
    `getall(key)`. A banner line surfaces as a message holding only the key `Banner`.
    """

    # Shared, never mutated; replaced per instance only when a key repeats.
    repeated: dict[str, list[str]] = _EMPTY

    def getall(self, key: str) -> list[str]:
        """Every value of `key`, in stream order ([] when absent)."""
        values = self.repeated.get(key)
        if values is not None:
            return list(values)
        value = self.get(key)
        return [] if value is None else [value]

    @property
    def is_banner(self) -> bool:
        return BANNER_KEY in self


class AmiFrameParser:
    """Feed it bytes as they arrive; it returns the complete messages they finish.

    `banner` is the last banner seen and `banners` how many were seen: more than one without a
    `reset()` in between means Asterisk restarted behind an open stream. Banner messages are
    also returned in stream order, so a consumer can act on them where they happened.
    """

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame = max_frame
        self.banner: str | None = None
        self.banners = 0
        self.malformed = 0
        self._buf = b""  # bytes (CRLF line ends) of the frame in progress
        self._cr = False  # the last raw byte was a CR whose LF may come in the next read
        self._skipping = False  # inside an oversized frame: drop until the next empty line

    def reset(self) -> None:
        """Forget a frame cut by a disconnect; call before reading a new connection."""
        if self._buf.strip():
            log.warning("AMI: dropped an incomplete frame of %d bytes at reset", len(self._buf))
            self.malformed += 1
        self._buf = b""
        self._cr = False
        self._skipping = False
        self.banners = 0

    def feed(self, data: bytes) -> list[AmiMessage]:
        if self._cr:
            data = b"\r" + data
            self._cr = False
        if data.endswith(b"\r"):
            self._cr = True
            data = data[:-1]
        # CRLF is canonical; a read with any bare LF (or bare CR) is rewritten first. Counting
        # single bytes is much cheaper than rewriting every read.
        if data.count(b"\n") != data.count(b"\r"):
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"").replace(b"\n", b"\r\n")
        if self._skipping:
            rest = self._skip(data)
            if rest is None:
                return []
            data = rest
        buf = self._buf + data if self._buf else data
        if not self._buf and buf.startswith(b"\r\n"):
            buf = buf.lstrip(b"\r\n")
        out: list[AmiMessage] = []
        if buf.startswith(_BANNER_PREFIX_B):
            nl = buf.find(b"\r\n")
            if nl >= 0:
                self._banner(buf[:nl].decode("utf-8", "replace"), out)
                buf = buf[nl + 2 :]
        end = buf.rfind(b"\r\n\r\n")
        if end < 0:
            self._buf = buf
            if len(buf) > self.max_frame:
                self._overflow()
            return out
        self._buf = buf[end + 4 :]
        if len(self._buf) > self.max_frame:
            self._overflow()
        self._parse_block(buf[:end], out)
        return out

    # --- internals -----------------------------------------------------------------------

    def _skip(self, data: bytes) -> bytes | None:
        """Drop bytes up to the next empty line; None when it is not in `data`."""
        data = self._buf + data  # at most the CRLF that may start the empty line
        end = data.find(b"\r\n\r\n")
        if end < 0:
            self._buf = b"\r\n" if data.endswith(b"\r\n") else b""
            return None
        self._skipping = False
        self._buf = b""
        return data[end + 4 :]

    def _overflow(self) -> None:
        log.warning("AMI: frame over %d bytes without an end, skipped", self.max_frame)
        self.malformed += 1
        self._skipping = True
        self._buf = b"\r\n" if self._buf.endswith(b"\r\n") else b""

    def _banner(self, text: str, out: list[AmiMessage]) -> None:
        self.banners += 1
        if self.banners > 1:
            log.warning("AMI: new banner %r inside the stream: Asterisk restarted", text)
        self.banner = text
        out.append(AmiMessage({BANNER_KEY: text}))

    def _parse_block(self, block: bytes, out: list[AmiMessage]) -> None:
        try:
            frames: Iterable[str] = block.decode("utf-8").split("\r\n\r\n")
        except UnicodeDecodeError:
            frames = [self._decode(raw) for raw in block.split(b"\r\n\r\n")]
        max_frame = self.max_frame
        append = out.append
        for frame in frames:
            lines = frame.split("\r\n")
            try:
                msg = AmiMessage([line.split(": ", 1) for line in lines])
            except ValueError:
                self._parse_slow(lines, out)
                continue
            if len(msg) != len(lines):
                self._parse_slow(lines, out)
            elif len(frame) > max_frame:
                self._too_big(len(frame))
            else:
                append(msg)

    def _decode(self, raw: bytes) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self.malformed += 1
            log.warning("AMI: frame is not UTF-8, undecodable bytes replaced: %r", raw[:80])
            return raw.decode("utf-8", "replace")

    def _too_big(self, size: int) -> None:
        self.malformed += 1
        log.warning("AMI: frame of %d bytes over the %d-byte cap, skipped", size, self.max_frame)

    def _parse_slow(self, lines: list[str], out: list[AmiMessage]) -> None:
        """Repeated keys, `Key:` without a space, junk lines, empty lines, a glued banner."""
        if sum(len(line) + 2 for line in lines) > self.max_frame:
            self._too_big(sum(len(line) + 2 for line in lines))
            return
        msg = AmiMessage()
        repeated: dict[str, list[str]] = {}
        bad = 0
        for line in lines:
            if not line:
                continue
            key, sep, value = line.partition(":")
            if not sep or not key or key != key.strip():
                if line.startswith(BANNER_PREFIX) and not msg:
                    self._banner(line, out)
                else:
                    bad += 1
                continue
            if value.startswith(" "):
                value = value[1:]
            if key in msg:
                repeated.setdefault(key, [msg[key]]).append(value)
            else:
                msg[key] = value
        if bad:
            self.malformed += 1
            log.warning("AMI: %d line(s) without 'Key: value' dropped from a frame", bad)
        if repeated:
            msg.repeated = repeated
        if msg:
            out.append(msg)
