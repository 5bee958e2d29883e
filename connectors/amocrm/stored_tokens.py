"""An enterprise's amoCRM tokens as `amocrm_tokens` holds them (`Tokens`), and why none is usable (`TokenError`).
Who owns them, refreshes them and how safely: connectors.amocrm.tokens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

Kind = Literal["oauth", "long_lived"]
TokenStatus = Literal["connected", "expired", "error"]


class TokenError(Exception):
    """No usable access token. `final`: an admin must act (reconnect); else it may pass by itself."""

    def __init__(self, message: str, *, final: bool) -> None:
        super().__init__(message)
        self.message = message
        self.final = final


@dataclass(frozen=True, slots=True)
class Tokens:
    enterprise: str
    host: str
    kind: Kind
    access_token: str
    refresh_token: str | None
    expires_at: datetime | None
    generation: int
    status: TokenStatus
    reason: str | None
    refresh_started_at: datetime | None
    account: dict[str, Any] | None
    updated_at: datetime | None = None

    def due(self, now: datetime, ahead: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at - timedelta(seconds=ahead)

    def public(self) -> dict[str, Any]:
        """For the status route: never a token."""
        return {
            "status": self.status,
            "reason": self.reason,
            "kind": self.kind,
            "host": self.host,
            "expires_at": iso(self.expires_at),
            "refreshed": self.generation - 1,
            "refresh_pending_since": iso(self.refresh_started_at),
            "updated_at": iso(self.updated_at),
        }


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None
