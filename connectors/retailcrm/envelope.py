"""Reading RetailCRM answers: the success/error envelope and its classification (crm-api.md §A1.1-A1.2)."""

from __future__ import annotations

from typing import Any

from connectors.base import SendOutcome, Status
from connectors.http import Exchange, classify_status

WRONG_KEY = 'Wrong "apiKey" value.'
MISSING_KEY = '"apiKey" is missing.'
ACCESS_DENIED = "Access denied."
NO_ACCOUNT = "Account does not exist."
RATE_LIMITED = "Rate limit exceeded"


def is_success(exchange: Exchange) -> bool:
    """2xx and `success` true; `false` or the string "false" is an error whatever the status."""
    body = exchange.body
    if exchange.http_status is None or not 200 <= exchange.http_status < 300:
        return False
    if not isinstance(body, dict):
        return False
    success = body.get("success")
    return success is True or (isinstance(success, str) and success.lower() == "true")


def looks_like_html(exchange: Exchange) -> bool:
    return exchange.body is None and exchange.text.lstrip().startswith("<")


def error_message(exchange: Exchange) -> str:
    """`errorMsg` plus `errors` (an object keyed by field or a list), as one readable line."""
    if exchange.transport_error:
        return exchange.transport_error
    body = exchange.body
    if looks_like_html(exchange):
        return f"HTTP {exchange.http_status}: HTML answer (no such account, or not a RetailCRM URL)"
    if not isinstance(body, dict):
        snippet = exchange.text.strip()[:200]
        return f"HTTP {exchange.http_status}: unreadable answer {snippet!r}"
    msg = str(body.get("errorMsg") or f"HTTP {exchange.http_status} without errorMsg")
    details = _errors(body.get("errors"))
    return f"{msg} ({details})" if details else msg


def _errors(errors: Any) -> str:
    if isinstance(errors, dict):
        return "; ".join(f"{k}: {v}" for k, v in errors.items())
    if isinstance(errors, list):
        return "; ".join(str(e) for e in errors)
    return ""


def classify(exchange: Exchange) -> Status:
    if exchange.transport_status is not None:
        return exchange.transport_status
    if is_success(exchange):
        return "success"
    assert exchange.http_status is not None
    by_status = classify_status(exchange.http_status)
    if by_status == "transient":
        return "transient"
    body = exchange.body
    if isinstance(body, dict) and body.get("errorMsg") == RATE_LIMITED:
        return "transient"
    if by_status == "success" and not isinstance(body, dict):
        # a 2xx whose body we cannot read (a proxy's page, a cut answer): try again later
        return "transient"
    return "permanent"


def outcome(exchange: Exchange) -> SendOutcome:
    status = classify(exchange)
    return SendOutcome(
        status=status,
        http_status=exchange.http_status,
        retry_after=exchange.retry_after if status == "transient" else None,
        error=None if status == "success" else error_message(exchange),
        request=exchange.request,
        response=exchange.response,
        duration_ms=exchange.duration_ms,
    )
