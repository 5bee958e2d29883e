"""Reading amoCRM answers: success, 204, problem+json errors, throttling and blocks (crm-api.md §B1-B2)."""

from __future__ import annotations

from typing import Any

from connectors.base import SendOutcome, Status
from connectors.http import Exchange

DEFAULT_429_WAIT = 2.0
PAYMENT_WAIT = 1800.0


def is_block(exchange: Exchange) -> bool:
    """403 for everything, usually an nginx HTML page: the account or our IP is blocked (§B2).
    A JSON problem 403 is "no rights for this method" instead."""
    return exchange.http_status == 403 and not isinstance(exchange.body, dict)


def problem_text(exchange: Exchange) -> str:
    """`title (status): detail` plus every `validation-errors` entry, as one readable line."""
    if exchange.transport_error:
        return exchange.transport_error
    body = exchange.body
    status = exchange.http_status
    if not isinstance(body, dict):
        snippet = " ".join(exchange.text.split())[:200]
        return f"HTTP {status}: {snippet!r}" if snippet else f"HTTP {status} without a body"
    title = body.get("title") or f"HTTP {status}"
    text = f"{title} ({body.get('status', status)})"
    detail = body.get("detail")
    if detail:
        text += f": {detail}"
    if body.get("hint"):
        text += f" [{body['hint']}]"
    details = validation_errors(body.get("validation-errors"))
    return f"{text}; {details}" if details else text


def validation_errors(value: Any) -> str:
    if not isinstance(value, list):
        return ""
    parts: list[str] = []
    for entry in value:
        if not isinstance(entry, dict):
            parts.append(str(entry))
            continue
        rid = entry.get("request_id")
        for err in entry.get("errors") or []:
            if isinstance(err, dict):
                where = err.get("path") or "?"
                parts.append(f"item {rid}: {where}: {err.get('detail') or err.get('code')} ({err.get('code')})")
            else:
                parts.append(f"item {rid}: {err}")
    return "; ".join(parts)


def classify(exchange: Exchange) -> Status:
    if exchange.transport_status is not None:
        return exchange.transport_status
    status = exchange.http_status
    assert status is not None
    if 200 <= status < 300:
        if status != 204 and exchange.text and exchange.body is None:
            return "transient"  # a 2xx we cannot read (a proxy's page, a cut answer)
        return "success"
    if status in (402, 408, 425, 429) or status >= 500:
        return "transient"
    if is_block(exchange):
        return "transient"  # the account breaker holds everything back; the row waits
    return "permanent"


def outcome(exchange: Exchange) -> SendOutcome:
    status = classify(exchange)
    retry_after: float | None = None
    if status == "transient":
        retry_after = exchange.retry_after
        if exchange.http_status == 429 and retry_after is None:
            retry_after = DEFAULT_429_WAIT
        if exchange.http_status == 402:
            retry_after = PAYMENT_WAIT
    error = None
    if status != "success":
        error = problem_text(exchange)
        if exchange.http_status == 402:
            error = "the amoCRM account is not paid (402): " + error
    return SendOutcome(
        status=status,
        http_status=exchange.http_status,
        retry_after=retry_after,
        error=error,
        request=exchange.request,
        response=exchange.response,
        duration_ms=exchange.duration_ms,
    )
