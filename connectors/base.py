"""Types every CRM connector shares: what to send (Delivery), how it went (SendOutcome), masking."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from urllib.parse import quote, quote_plus

Status = Literal["success", "transient", "permanent"]

# Keys whose values are secrets wherever they appear (headers, query strings, form fields, JSON).
SECRET_KEYS = frozenset(
    {
        "apikey",
        "api_key",
        "x-api-key",
        "authorization",
        "access_token",
        "refresh_token",
        "client_secret",
        "token",
        "password",
        "secret",
    }
)
MASK_ALL = "***"
_SHORTEST_PARTLY_SHOWN = 16
_KEY_VALUE = re.compile(
    r"(?P<key>(?:" + "|".join(re.escape(k) for k in sorted(SECRET_KEYS, key=len, reverse=True)) + r"))"
    r"(?P<sep>\"?\s*[=:]\s*\"?)(?P<value>[^&\s\"',;}]+)",
    re.IGNORECASE,
)


class RecordUrl(Protocol):
    """The send-time hook that turns a delivery's `recording` (a path on the PBX named by its
    `recording_pbx`) into a URL the CRM can fetch, or None (agent.web.recordings.RecordLinks.record_url)."""

    def __call__(self, path: str, fmt: str | None = None, *, pbx: str | None = None) -> str | None: ...


def recording_of(payload: Mapping[str, Any]) -> tuple[str, str | None] | None:
    """A delivery payload's recording, as (path, PBX name or None), or None. Connectors that carry one put
    it in `payload["recording"]` and the PBX that recorded it in `payload["recording_pbx"]`."""
    path = payload.get("recording")
    if not isinstance(path, str) or not path:
        return None
    pbx = payload.get("recording_pbx")
    return path, pbx if isinstance(pbx, str) and pbx else None


@dataclass(frozen=True, slots=True)
class Delivery:
    """One request a connector's plan wants sent, stored by the outbox as-is (payload is jsonb).

    `idempotency_key` is unique across all deliveries (e.g. `retailcrm:<call_id>:upload`);
    `expires_after` is seconds from creation after which sending is pointless (None: the outbox's
    maximum age); deliveries with equal `batch_key` may go out together in one request.
    """

    idempotency_key: str
    enterprise: str
    crm: str
    kind: str
    payload: dict[str, Any]
    expires_after: float | None = None
    batch_key: str | None = None


@dataclass(slots=True)
class SendOutcome:
    """How one HTTP exchange went, in the terms the outbox needs, plus what integration_logs stores.

    `items` maps each delivery's idempotency key to its own status when a batch was sent;
    `duplicates` lists keys the CRM reported as already known (counted as success).
    `request`/`response` are already masked.
    """

    status: Status
    http_status: int | None = None
    retry_after: float | None = None
    error: str | None = None
    request: dict[str, Any] = field(default_factory=dict)
    response: dict[str, Any] = field(default_factory=dict)
    duration_ms: float = 0.0
    items: dict[str, Status] = field(default_factory=dict)
    duplicates: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "success"


class CrmError(Exception):
    """A CRM call that is not a Delivery (lookups, setup) failed; `outcome` says how."""

    def __init__(self, outcome: SendOutcome) -> None:
        super().__init__(outcome.error or outcome.status)
        self.outcome = outcome


def mask(secret: str) -> str:
    """`abcd…wxyz` for long secrets; short ones are hidden entirely (four plus four would be most of it)."""
    if len(secret) < _SHORTEST_PARTLY_SHOWN:
        return MASK_ALL
    return f"{secret[:4]}…{secret[-4:]}"


def mask_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask known secret values (raw and URL-encoded) and `apiKey=…`-style pairs in free text."""
    for secret in secrets:
        if not secret:
            continue
        for form in {secret, quote(secret, safe=""), quote_plus(secret)}:
            text = text.replace(form, mask(secret))
    return _KEY_VALUE.sub(_mask_pair, text)


def _mask_pair(m: re.Match[str]) -> str:
    value = m.group("value")
    if value == MASK_ALL or "…" in value:
        return m.group(0)
    return f"{m.group('key')}{m.group('sep')}{mask(value)}"


def mask_data(value: Any, secrets: Iterable[str] = ()) -> Any:
    """A copy of a JSON-like value (dicts, lists, strings; URLs and query strings inside) with secrets masked.

    Values under a secret-sounding key are masked whatever they are; known secret values are masked
    wherever they occur.
    """
    known = tuple(s for s in secrets if s)
    return _mask(value, known)


def _mask(value: Any, secrets: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        return mask_text(value, secrets)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            key = str(k)
            if key.lower() in SECRET_KEYS and isinstance(v, str | int):
                out[key] = mask(str(v))
            else:
                out[key] = _mask(v, secrets)
        return out
    if isinstance(value, list | tuple):
        return [_mask(v, secrets) for v in value]
    return value
