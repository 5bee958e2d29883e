"""A fake CRM "who is responsible for this phone" endpoint over real HTTP, and a lookup that asks it.

`FakeResponsibleCrm` is an aiohttp server on loopback: `GET /manager?phone=+375…` answers
`{"manager": {"id": "7", "name": "…"}}` or `{"manager": null}`. It counts the requests it really
received (single flight is counted here, not in a mock), and can be slow (`delay`) or failing (`fail`).
`HttpLookup` is a `ResponsibleLookup` over it that maps the CRM user to an extension the way the
enterprise's `user_extensions` mapping does.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from aiohttp import web

from connectors.base import Manager


class FakeResponsibleCrm:
    def __init__(self) -> None:
        self.responsible: dict[str, tuple[str, str]] = {}  # phone -> (user id, user name)
        self.requests = 0
        self.phones: list[str] = []
        self.delay = 0.0
        self.fail = False
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _manager(self, request: web.Request) -> web.Response:
        self.requests += 1
        phone = request.query.get("phone", "")
        self.phones.append(phone)
        who, fail = self.responsible.get(phone), self.fail  # the answer as of the request's arrival
        if self.delay:
            await asyncio.sleep(self.delay)
        if fail:
            return web.json_response({"success": False, "errorMsg": "maintenance"}, status=503)
        manager: dict[str, Any] | None = None if who is None else {"id": who[0], "name": who[1]}
        return web.json_response({"success": True, "manager": manager})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/manager", self._manager)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class HttpLookup:
    def __init__(self, crm: str, url: str, session: aiohttp.ClientSession, extensions: dict[str, str]) -> None:
        self.crm = crm
        self.url = url
        self.session = session
        self.extensions = extensions  # CRM user id -> extension (the enterprise's user_extensions)

    async def find_responsible(self, phone_e164: str) -> Manager | None:
        async with self.session.get(f"{self.url}/manager", params={"phone": phone_e164}) as resp:
            resp.raise_for_status()
            body = await resp.json()
        found = body.get("manager")
        if not found:
            return None
        user_id = str(found["id"])
        return Manager(self.crm, user_id, str(found["name"]), self.extensions.get(user_id))
