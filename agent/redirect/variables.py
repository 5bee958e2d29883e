"""Every name the dialplan sees from smart-redirect, in one place (the README documents the same names).

The FastAGI script `smart-redirect` always sets all six variables, in this order, so a dialplan never
reads a value left over from an earlier run on the same channel:

- `REDIRECT_EXTEN`   the extension to dial, or empty: the one variable the dialplan branches on;
- `REDIRECT_STATUS`  one of `Status`;
- `REDIRECT_MANAGER` the responsible manager's name as the CRM gave it, made safe (`safe_value`);
- `REDIRECT_CRM`     which CRM answered (`retailcrm`, `amocrm`) or failed, else empty;
- `REDIRECT_REASON`  with `UNAVAILABLE` for a named manager: one of `Reason`, else empty;
- `REDIRECT_SOURCE`  with `FOUND`: one of `Source` (who named the extension), else empty.
"""

from __future__ import annotations

import re
import unicodedata
from enum import StrEnum

SCRIPT = "smart-redirect"

EXTEN = "REDIRECT_EXTEN"
STATUS = "REDIRECT_STATUS"
MANAGER = "REDIRECT_MANAGER"
CRM = "REDIRECT_CRM"
REASON = "REDIRECT_REASON"
SOURCE = "REDIRECT_SOURCE"

MAX_VALUE_CHARS = 64


class Status(StrEnum):
    FOUND = "FOUND"  # a manager is responsible and their extension is in REDIRECT_EXTEN
    NOT_FOUND = "NOT_FOUND"  # no CRM knows a responsible manager (or the manager has no extension mapped)
    UNAVAILABLE = "UNAVAILABLE"  # the manager's phone is busy/unavailable, or the CRM could not be asked
    TIMEOUT = "TIMEOUT"  # no answer within [agi] deadline_ms; the lookup goes on to warm the cache
    DISABLED = "DISABLED"  # the enterprise has no CRM with smart redirect enabled
    ERROR = "ERROR"  # our own failure: unknown enterprise, settings unreadable, a bug
    BLOCKED = "BLOCKED"  # the caller is on the enterprise's blocklist (routing rules)
    CLOSED = "CLOSED"  # outside the enterprise's working hours, or a holiday (routing rules)


class Reason(StrEnum):
    """REDIRECT_REASON with UNAVAILABLE: why the responsible manager cannot take the call."""

    OFF_HOURS = "off_hours"  # outside the manager's own hours (routing rules)
    AWAY = "away"  # their CRM status is a break or dinner
    BUSY = "busy"  # their CRM status is busy, or their phone is in a call / ringing / unregistered


class Source(StrEnum):
    """REDIRECT_SOURCE with FOUND: who named the extension."""

    CRM = "crm"  # the responsible manager in a CRM
    HISTORY = "history"  # the extension that answered the caller's most recent call (history_days)


# Letters and digits of any script, and a few harmless marks. Everything else (quotes, backslashes,
# '$', braces, commas, '|', parentheses, control characters) could change how Asterisk parses the AGI
# command or an application argument the value is later substituted into, so it becomes a space.
_UNSAFE = re.compile(r"[^\w .@'+-]")
_SPACES = re.compile(r"\s+")


def safe_value(value: str) -> str:
    """`value` reduced to a channel-variable-safe string of at most MAX_VALUE_CHARS characters."""
    text = unicodedata.normalize("NFC", value)
    text = _UNSAFE.sub(" ", text)
    return _SPACES.sub(" ", text).strip()[:MAX_VALUE_CHARS].rstrip()


def set_variable(name: str, value: str) -> bytes:
    """One `SET VARIABLE` command line; the value is always quoted (`""` sets it empty)."""
    return f'SET VARIABLE {name} "{safe_value(value)}"\n'.encode()
