"""The boundary types between the agent and its CRM connectors: a CRM itself (Connector, generic over its
settings and its client), what to send (Delivery), how it went (SendOutcome), what smart redirect asks a CRM
(ResponsibleLookup, answered with a Caller: the caller's name and Manager), and what a CRM's callback routes
(connectors/<crm>/routes.py) are handed by the composition root: click-to-call (ClickToCall, failing with
CallNotPlaced) and what an API token grants (Grant, or TokenRefused).

Of the project it imports only CallEvent: the agent implements these protocols (agent.parts.adapters adapts
its parts), the connectors use them."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeAlias, TypeVar

import asyncpg
import httpx

from agent.tracking.event import CallEvent

Status = Literal["success", "transient", "permanent"]

ENTERPRISE_NUMBER = re.compile(r"[A-Za-z0-9_-]{1,32}")  # an enterprise's number, as agent.toml and URLs carry it

# What a connector's own store is handed: the agent's pool (one of asyncpg's), ...
if TYPE_CHECKING:
    Pool: TypeAlias = asyncpg.Pool[asyncpg.Record]
else:
    Pool = asyncpg.Pool

# ... the NOTIFY channel on which a change of `enterprises.integrations_config` is announced (agent.store.enterprises
# sends it; a connector that writes its settings, such as refreshed OAuth tokens, sends it too) ...
CONFIG_CHANGED = "integrations_config"


class Secrets(Protocol):
    """... and the secrets at rest (agent.store.secretbox.SecretBox)."""

    def encrypt(self, plaintext: str) -> str: ...

    def decrypt(self, stored: str) -> str: ...

    def decrypted(self, crm: str, stored: Mapping[str, Any]) -> dict[str, Any]:
        """A CRM's stored settings with each secret in clear."""
        ...


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


@dataclass(frozen=True, slots=True)
class Manager:
    """What a CRM says: the responsible user, and their extension mapped through the enterprise's mapping."""

    crm: str
    user_id: str
    name: str
    extension: str | None  # None when the enterprise has no extension mapped for this user


@dataclass(frozen=True, slots=True)
class Caller:
    """What a CRM knows of a caller: their name as the CRM shows it ("" when it has none) and their
    responsible manager (None when it knows none). The name is raw CRM text: smart redirect makes it safe
    for a caller ID (agent.redirect.variables.caller_name)."""

    crm: str
    name: str = ""
    manager: Manager | None = None


class ResponsibleLookup(Protocol):
    crm: str

    async def find_responsible(self, phone_e164: str) -> Caller | Manager | None:
        """Who the caller is (Caller), or only their manager (a Manager alone: the CRM gives no caller
        name), or None when the CRM knows neither; raises when the CRM fails."""
        ...


# enterprise -> its enabled lookups (an empty list answers DISABLED); raises when settings are unreadable.
LookupSource = Callable[[str], Awaitable[list[ResponsibleLookup]]]


class CrmClient(Protocol):
    async def send(self, deliveries: Sequence[Delivery], *, record_url: RecordUrl | None = None) -> SendOutcome: ...


S = TypeVar("S")  # a CRM's validated settings (e.g. RetailCrmSettings)
C = TypeVar("C", bound=CrmClient)  # the client its settings make (e.g. RetailCrmClient)


class Connector(Protocol[S, C]):
    """One CRM, behind the small interface the outbox, planner, router and config API use."""

    name: str
    secret_fields: tuple[str, ...]
    # the API path smart redirect's lookup takes, paced in the same per-account budget as the deliveries but
    # ahead of them (agent.delivery.integrations); None: the connector paces its lookups itself
    lookup_route: str | None

    def parse_settings(self, raw: Mapping[str, Any], *, enterprise_timezone: str | None = None) -> S:
        """Validated settings; raises a ValueError with `.field` naming the bad field. `enterprise_timezone`
        stands in for a time zone the record lacks (the old system's records have none)."""
        ...

    def settings_json(self, settings: S) -> dict[str, Any]: ...

    def enabled(self, settings: S) -> bool: ...

    def plan(self, event: CallEvent, settings: S) -> list[Delivery]: ...

    def batch_limit(self, kind: str) -> int: ...

    def account(self, settings: S) -> str:
        """Names the CRM account: rate limits and circuit breakers are per account."""
        ...

    def client(self, settings: S, http: httpx.AsyncClient) -> C: ...

    def responsible_lookup(self, settings: S, client: C, enterprise: str) -> ResponsibleLookup | None:
        """Smart redirect's question to this CRM (None: the CRM cannot answer it)."""
        ...


# Every CRM in one collection (the registry, an enterprise's enabled CRMs): each has settings of its own type, which
# a dict's value type cannot name; a connector's settings only ever go back to the connector that parsed them.
AnyConnector: TypeAlias = Connector[Any, Any]


# What a CRM's callback routes are handed (agent.parts.adapters implements it, agent.app hands it in):


class CallNotPlaced(Exception):
    """Click-to-call did not start, and why: no PBX serves the enterprise (`no_pbx`), its link is down
    (`pbx_down`) or Asterisk refused the action (`refused`). The message says it for people."""

    def __init__(self, reason: Literal["no_pbx", "pbx_down", "refused"], message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ClickToCall(Protocol):
    """Ring `extension` on the enterprise's PBX, then dial `phone`, presenting `caller_id` when given
    (agent.ingest.originate). Raises CallNotPlaced, or TimeoutError when the PBX did not answer in time."""

    async def __call__(self, enterprise: str, extension: str, phone: str, caller_id: str | None) -> None: ...


class Grant(Protocol):
    """Whom a valid API token (`pbx-agent token`) speaks for (agent.web.tokens.Principal)."""

    def may_access(self, enterprise: str) -> bool: ...


class TokenRefused(Exception):
    """An API token that is not valid (forged, expired, ...); the message says why."""


def answer_id(value: Any) -> int | None:
    """An id in a CRM's answer to a write: an int, or a string of digits. Both spellings are taken where the
    answer's shape is not confirmed (amoCRM's tasks and unsorted items, crm-api.md §B7, §B8; RetailCRM's
    tasks/create and customers/create, which crm-api.md does not cover)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value > 0 else None
    if isinstance(value, str) and value.isascii() and value.isdigit() and int(value) > 0:
        return int(value)
    return None
