"""The FastAGI wire format: the request Asterisk sends, and the commands we send back (pure, no I/O)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from functools import lru_cache

from agent.redirect import variables as dv
from agent.redirect.answers import Answer


class AgiRequestError(ValueError):
    pass


_LINE = r"agi_\w+:[^\n]*"
_REQUEST = re.compile(rf"(?:{_LINE}\n)*{_LINE}")
_VARIABLE = re.compile(r"^(agi_\w+):[ \t]*([^\n]*)", re.MULTILINE)


def parse_request(raw: bytes) -> dict[str, str]:
    """The request's `agi_*` variables (values as sent: strip the ones you use). Raises AgiRequestError for
    anything that is not a FastAGI request."""
    text = raw.decode("utf-8", errors="replace")
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    if not _REQUEST.fullmatch(text):
        bad = next((line for line in text.split("\n") if not re.fullmatch(_LINE, line)), "")
        raise AgiRequestError(f"not an AGI variable line: {bad[:60]!r}")
    headers = dict(_VARIABLE.findall(text))
    if "agi_network_script" not in headers and "agi_request" not in headers:
        raise AgiRequestError("no agi_network_script nor agi_request")
    return headers


def script_of(headers: Mapping[str, str]) -> str:
    script = headers.get("agi_network_script", "").strip() or None
    if script is None:  # agi://host:port/script, as a fallback
        script = headers.get("agi_request", "").split("://", 1)[-1].partition("/")[2]
    return script.strip("/").partition("?")[0]


@lru_cache(maxsize=1024)
def peer_ip(host: str) -> str | None:
    try:
        addr = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


def commands_for(answer: Answer) -> tuple[bytes, ...]:
    """The SET VARIABLE lines for an answer, last first (they are popped): REDIRECT_EXTEN goes first. The caller's
    name is rendered apart: the other lines repeat for every caller of a manager and stay memoised as few."""
    return (
        _name_line(answer.caller_name),
        *_lines(answer.status, answer.extension, answer.manager, answer.crm, answer.reason, answer.source),
    )


@lru_cache(maxsize=65_536)
def _name_line(name: str) -> bytes:
    return dv.set_variable(dv.CALLERNAME, name)


@lru_cache(maxsize=4096)
def _lines(status: str, extension: str, manager: str, crm: str, reason: str, source: str) -> tuple[bytes, ...]:
    return (
        dv.set_variable(dv.SOURCE, source),
        dv.set_variable(dv.REASON, reason),
        dv.set_variable(dv.CRM, crm),
        dv.set_variable(dv.MANAGER, manager),
        dv.set_variable(dv.STATUS, status),
        dv.set_variable(dv.EXTEN, extension),
    )


def request_end(buf: bytes) -> tuple[int, int] | None:
    """(end of the request, start of what follows), at the first empty line (LF or CRLF)."""
    lf = buf.find(b"\n\n")
    crlf = buf.find(b"\n\r\n")
    if lf < 0 and crlf < 0:
        if buf.startswith(b"\n"):
            return (0, 1)
        if buf.startswith(b"\r\n"):
            return (0, 2)
        return None
    if crlf < 0 or (0 <= lf < crlf):
        return (lf, lf + 2)
    return (crlf, crlf + 3)
