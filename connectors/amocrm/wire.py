"""One timed, masked JSON exchange with amoCRM, through connectors.http.perform (which sends forms)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import httpx

from agent.life.masking import mask_data
from connectors.http import Exchange, perform


async def perform_json(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    body: Any = None,
    *,
    headers: Mapping[str, str] | None = None,
    secrets: Iterable[str] = (),
    params: Mapping[str, str] | None = None,
) -> Exchange:
    """`perform` with a JSON body (amoCRM takes JSON, never forms); the logged request shows the body masked."""
    secret_list = tuple(secrets)
    exchange = await perform(
        _JsonBody(http, body),  # type: ignore[arg-type]
        method,
        url,
        params=params,
        headers=headers,
        secrets=secret_list,
    )
    exchange.request.pop("form", None)
    if body is not None:
        exchange.request["json"] = mask_data(body, secret_list)
    return exchange


def never_sent(exchange: Exchange) -> bool:
    """The transport failed before the request could reach the server (nothing happened there)."""
    error = exchange.transport_error or ""
    return any(name in error for name in ("ConnectError", "ConnectTimeout", "PoolTimeout", "bad URL"))


class _JsonBody:
    """Looks like httpx.AsyncClient to `perform`, sending `body` as JSON."""

    def __init__(self, http: httpx.AsyncClient, body: Any) -> None:
        self._http = http
        self._body = body

    async def request(
        self, method: str, url: str, *, params: Any = None, data: Any = None, headers: Any = None
    ) -> httpx.Response:
        return await self._http.request(method, url, params=params, headers=headers, json=self._body)
