"""Every name the dialplan sees from smart-redirect, in one place (the README documents the same names).

The FastAGI script `smart-redirect` always sets all seven variables, in this order, so a dialplan never
reads a value left over from an earlier run on the same channel:

- `REDIRECT_EXTEN`   the extension to dial, or empty: the one variable the dialplan branches on;
- `REDIRECT_STATUS`  one of `Status`;
- `REDIRECT_MANAGER` the responsible manager's name as the CRM gave it, made safe (`safe_value`);
- `REDIRECT_CRM`     which CRM answered (`retailcrm`, `amocrm`) or failed, else empty;
- `REDIRECT_REASON`  with `UNAVAILABLE` for a named manager: one of `Reason`, else empty;
- `REDIRECT_SOURCE`  with `FOUND`: one of `Source` (who named the extension), else empty;
- `REDIRECT_CALLERNAME` the caller's name as a CRM knows it, made fit for a caller ID (`caller_name`), else
  empty: the dialplan sets `CALLERID(name)` from it before `Dial`.
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
CALLERNAME = "REDIRECT_CALLERNAME"

MAX_VALUE_CHARS = 64
# A caller ID name: 40 characters hold "first last" of nearly every person and the telling start of a company
# name, more than a desk phone's display shows (20-32), and keep a Cyrillic name within 80 UTF-8 bytes, what an
# ISDN/Q.SIG display element carries when the call leaves through a PRI.
MAX_CALLERNAME_CHARS = 40


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


_APOSTROPHES = re.compile("['\u2018\u2019\u02bc`\u00b4]")  # O'Brien -> OBrien: a quote, yet part of a word
_NAME_UNSAFE = re.compile(r"[^\w .@+-]")  # as _UNSAFE, and no quote at all


def caller_name(value: str) -> str:
    """A CRM's name for the caller made fit for `CALLERID(name)`: control characters, quotes, `<>` (which
    would end the name inside `"name" <number>`) and every character `safe_value` refuses become spaces,
    whitespace collapses, and it is cut to MAX_CALLERNAME_CHARS, at a word's end where one is near."""
    text = _APOSTROPHES.sub("", unicodedata.normalize("NFC", value))
    text = _SPACES.sub(" ", _NAME_UNSAFE.sub(" ", text)).strip()
    if len(text) <= MAX_CALLERNAME_CHARS:
        return text
    cut = text[: MAX_CALLERNAME_CHARS + 1].rfind(" ")
    if cut < MAX_CALLERNAME_CHARS // 2:  # one long word: cut inside it
        cut = MAX_CALLERNAME_CHARS
    return text[:cut].rstrip(" .@+-")


def set_variable(name: str, value: str) -> bytes:
    """One `SET VARIABLE` command line; the value is always quoted (`""` sets it empty)."""
    return f'SET VARIABLE {name} "{safe_value(value)}"\n'.encode()
