"""amoCRM OAuth 2.0 on the wire (crm-api.md §B3): the consent URL, a signed `state`, code and refresh grants.

Pure request/answer code: where tokens are kept and who may refresh is connectors.amocrm.tokens.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit

import httpx
import jwt

from connectors.amocrm.problem import problem_text
from connectors.amocrm.settings import is_product_host
from connectors.amocrm.wire import never_sent, perform_json
from connectors.http import Exchange

STATE_PURPOSE = "amocrm-state"
STATE_AUDIENCE = "amocrm-oauth"
STATE_TTL_S = 15 * 60  # the authorization code itself lives 20 minutes (§B3.1, third-party notes)
CALLBACK_PATH = "/amocrm/oauth/callback"
DEFAULT_EXPIRES_IN = 86400

Failure = Literal["rejected", "not_sent", "failed", "unknown"]


class StateError(Exception):
    pass


class OAuthError(Exception):
    """A grant that did not give tokens. `failure` says what we know about the server's side:
    rejected (it said no: the code/refresh token is bad or used), not_sent (the request never left),
    failed (it answered an error, nothing was issued), unknown (sent, no answer: it may have rotated)."""

    def __init__(self, failure: Failure, message: str, exchange: Exchange | None = None) -> None:
        super().__init__(message)
        self.failure = failure
        self.message = message
        self.exchange = exchange


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_at: datetime


def redirect_uri(public_url: str) -> str:
    return public_url.rstrip("/") + CALLBACK_PATH


def consent_url(host: str, client_id: str, state: str) -> str:
    """The account's own consent page (the direct URL form, §B3.1): it redirects back with code, referer, state."""
    return f"{host}/oauth?" + urlencode({"client_id": client_id, "state": state, "mode": "popup"})


class StateSigner:
    """`state` = a short-lived HS256 JWT naming the enterprise, with a nonce the callback uses once."""

    def __init__(self, key: bytes) -> None:
        """`key`: derived from the state secret for STATE_PURPOSE alone (the composition root derives it)."""
        self._key = key

    def issue(self, enterprise: str, *, now: float | None = None) -> str:
        issued = int(now if now is not None else time.time())
        claims = {
            "aud": STATE_AUDIENCE,
            "iat": issued,
            "exp": issued + STATE_TTL_S,
            "ent": enterprise,
            "nonce": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._key, algorithm="HS256")

    def verify(self, state: str) -> tuple[str, str, datetime]:
        """(enterprise, nonce, expiry) of a state we issued and that has not expired; else StateError."""
        try:
            claims = jwt.decode(
                state,
                self._key,
                algorithms=["HS256"],
                audience=STATE_AUDIENCE,
                options={"require": ["exp", "iat", "ent", "nonce"]},
            )
        except jwt.ExpiredSignatureError:
            raise StateError("the connection link has expired; start again from the admin page") from None
        except jwt.InvalidTokenError:
            raise StateError("invalid state: this callback did not come from a connection we started") from None
        enterprise, nonce = claims.get("ent"), claims.get("nonce")
        if not isinstance(enterprise, str) or not isinstance(nonce, str):
            raise StateError("invalid state")
        return enterprise, nonce, datetime.fromtimestamp(int(claims["exp"]), UTC)


def host_from_referer(referer: str, configured_host: str | None) -> str:
    """The account URL to call, from the callback's `referer` (a host such as `sub.amocrm.ru`).

    It must be an amoCRM/Kommo account host, or the host configured for the enterprise (a test server):
    the code and our client secret are sent there, so an arbitrary host is refused."""
    raw = referer.strip()
    parts = urlsplit(raw if "://" in raw else "https://" + raw)
    host = (parts.hostname or "").lower()
    if configured_host is not None:
        configured = urlsplit(configured_host)
        if parts.netloc.lower() == configured.netloc.lower():
            return configured_host
    if host and is_product_host(host) and parts.port is None and not parts.path.strip("/"):
        return f"https://{host}"
    raise ValueError(f"referer {referer!r} is not an amoCRM or Kommo account host")


async def grant(
    http: httpx.AsyncClient, host: str, body: dict[str, str], *, secrets: tuple[str, ...] = ()
) -> tuple[TokenPair, Exchange]:
    """POST /oauth2/access_token; the pair, or OAuthError saying what we know about the server's side."""
    exchange = await perform_json(http, "POST", f"{host}/oauth2/access_token", body, secrets=secrets)
    if exchange.transport_error is not None:
        raise OAuthError("not_sent" if never_sent(exchange) else "unknown", exchange.transport_error, exchange)
    status = exchange.http_status or 0
    if status in (400, 401, 403):
        raise OAuthError("rejected", problem_text(exchange), exchange)
    if status != 200 or not isinstance(exchange.body, dict):
        raise OAuthError("failed", problem_text(exchange), exchange)
    return _pair(exchange.body, exchange), exchange


def _pair(body: dict[str, Any], exchange: Exchange) -> TokenPair:
    access, refresh = body.get("access_token"), body.get("refresh_token")
    if not isinstance(access, str) or not access or not isinstance(refresh, str) or not refresh:
        # the server may have rotated: we cannot know, so this counts as an unknown outcome
        raise OAuthError("unknown", "token answer without access_token/refresh_token", exchange)
    expires_in = body.get("expires_in")
    if not isinstance(expires_in, int) or isinstance(expires_in, bool) or expires_in <= 0:
        expires_in = DEFAULT_EXPIRES_IN
    return TokenPair(access, refresh, datetime.now(UTC) + timedelta(seconds=expires_in))


def code_body(client_id: str, client_secret: str, code: str, redirect: str) -> dict[str, str]:
    return {
        "client_id": client_id,
        "client_secret": client_secret,
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect,
    }


def refresh_body(client_id: str, client_secret: str, refresh_token: str, redirect: str) -> dict[str, str]:
    # redirect_uri is required on refresh too (§B3.2)
    return {
        "client_id": client_id,
        "client_secret": client_secret,
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "redirect_uri": redirect,
    }


def token_expiry(token: str) -> datetime | None:
    """The `exp` of a long-lived token (a JWT), read without verifying: only to show and to plan."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return None
    exp = claims.get("exp")
    return datetime.fromtimestamp(exp, UTC) if isinstance(exp, int | float) else None
