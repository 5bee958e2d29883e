"""Logs go to stdout, one line per record, as text or JSON; known secrets are masked on the way out."""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from datetime import UTC, datetime
from typing import Any

from agent.life.masking import mask

_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_pattern: re.Pattern[str] | None = None
# Credentials that travel in URLs or headers even when we did not register the value.
_INLINE = re.compile(r"(?i)(apikey=|api_key=|secret[=:]\s*|authorization:\s*bearer\s+|password=)([^\s&\"',]+)")


def register_secret(value: str) -> None:
    """From now on, `value` never reaches a log line in clear."""
    global _pattern
    if len(value) < 4:
        return
    with _secrets_lock:
        if value in _secrets:
            return
        _secrets.add(value)
        ordered = sorted(_secrets, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(s) for s in ordered))


def redact(text: str) -> str:
    pattern = _pattern
    if pattern is not None:
        text = pattern.sub(lambda m: mask(m.group(0)), text)
    return _INLINE.sub(lambda m: m.group(1) + mask(m.group(2)), text)


class _RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class TextFormatter(_RedactingFormatter):
    def __init__(self, journal: bool = False) -> None:
        super().__init__(
            "%(levelname)s %(name)s: %(message)s" if journal else "%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        self.journal = journal

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record).replace("\n", "\n  ")
        if self.journal:
            return f"<{_syslog_priority(record.levelno)}>{line}"
        return line


class JsonFormatter(_RedactingFormatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return redact(json.dumps(out, ensure_ascii=False))


def _syslog_priority(levelno: int) -> int:
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


NOISY = ("asyncio", "aiohttp.access", "httpx", "httpcore")  # kept at WARNING or above whatever the level


def setup(level: str = "info", fmt: str = "text", journal: bool = False) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter(journal=journal))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
