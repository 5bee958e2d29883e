"""amoCRM v4 for one enterprise's settings: deliveries, the responsible-manager lookup, setup reads."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from connectors.amocrm.calls import CallSender
from connectors.amocrm.contacts import find_contact
from connectors.amocrm.deals import open_deal_owner
from connectors.amocrm.plan import CRM, KIND_CALL, KIND_EVENT, KIND_TASK_DONE
from connectors.amocrm.session import AccountGuard, Session, StepFailed
from connectors.amocrm.settings import AmoCrmSettings
from connectors.amocrm.task_done import complete_tasks
from connectors.amocrm.tokens import TokenStore
from connectors.amocrm.users import UserNames
from connectors.base import Caller, CrmError, Delivery, Manager, RecordUrl, SendOutcome

USER_PAGE = 250  # §B1: a list's `limit` is at most 250
USER_PAGES = 40  # 10,000 users: far past any account, and a bound on a list that never ends


class AmoCrmClient:
    """Shares the connector's token store, account guard (pacing, blocks), per-phone task locks and the
    accounts' user names."""

    def __init__(
        self,
        settings: AmoCrmSettings,
        http: httpx.AsyncClient,
        tokens: TokenStore,
        guard: AccountGuard,
        phone_locks: dict[tuple[str, str], asyncio.Lock] | None = None,
        log_exchanges: Callable[[str, str, SendOutcome], Any] | None = None,
        names: UserNames | None = None,
    ) -> None:
        self.settings = settings
        self.http = http
        self.tokens = tokens
        self.guard = guard
        self.phone_locks = phone_locks if phone_locks is not None else {}
        self.log_exchanges = log_exchanges
        self.names = names if names is not None else UserNames()

    def session(self, enterprise: str, *, urgent: bool = False) -> Session:
        return Session(enterprise, self.settings, self.http, self.tokens, self.guard, urgent=urgent)

    async def send(self, deliveries: Sequence[Delivery], *, record_url: RecordUrl | None = None) -> SendOutcome:
        if len(deliveries) != 1 or deliveries[0].kind not in (KIND_CALL, KIND_EVENT, KIND_TASK_DONE):
            raise ValueError("amoCRM deliveries are `call`s, `event`s and `task_done`s, one per send")
        delivery = deliveries[0]
        if delivery.kind == KIND_EVENT:
            outcome = await self._popup(delivery)
        elif delivery.kind == KIND_TASK_DONE:
            session = self.session(delivery.enterprise)
            outcome = await complete_tasks(session, self.tokens.pool, delivery, self.phone_locks)
        else:
            outcome = await CallSender(self.session(delivery.enterprise), delivery, record_url, self.phone_locks).send()
        outcome.items = {delivery.idempotency_key: outcome.status}
        return outcome

    async def _popup(self, delivery: Delivery) -> SendOutcome:
        session = self.session(delivery.enterprise)
        try:
            exchange = await session.checked("POST", "/api/v2/events", body=delivery.payload)
        except StepFailed as failed:
            return failed.outcome
        return session.outcome("success", None, exchange)

    # -- lookups (each raises CrmError when amoCRM cannot answer) ------------------------------------

    async def _run(self, enterprise: str, name: str, fn: Callable[[Session], Any], *, urgent: bool = False) -> Any:
        session = self.session(enterprise, urgent=urgent)
        try:
            result = await fn(session)
        except StepFailed as failed:
            await self._log(enterprise, name, session, failed.outcome)
            raise CrmError(failed.outcome) from None
        await self._log(enterprise, name, session, None)
        return result

    async def _log(self, enterprise: str, name: str, session: Session, failed: SendOutcome | None) -> None:
        if self.log_exchanges is None or not session.exchanges:
            return
        last = session.exchanges[-1]
        outcome = session.outcome(failed.status if failed else "success", failed.error if failed else None, last)
        await self.log_exchanges(enterprise, name, outcome)

    async def find_responsible(self, enterprise: str, phone: str) -> Caller | None:
        """contacts by phone -> the caller's name (the contact's) and the responsible user: of the contact's newest
        open lead when `route_by_deal` (connectors.amocrm.deals), else the contact's -> the extension through
        `user_extensions`, the name through the account's users (connectors.amocrm.users: cached; when they must
        be read, that read goes beside the contact search and adds no wait)."""

        async def lookup(session: Session) -> tuple[str, int | None] | None:
            contact = await find_contact(session, phone)
            if contact is None:
                return None
            uid = contact.responsible_user_id
            if self.settings.route_by_deal and contact.lead_ids:
                uid = await open_deal_owner(session, contact.lead_ids) or uid
            return contact.name, uid

        account = self.settings.account_netloc
        names = self.names.cached(account)
        reading = None
        if names is None:
            reading = asyncio.create_task(self.names.of(account, lambda: self.users(enterprise, urgent=True)))
        try:
            found: tuple[str, int | None] | None = await self._run(enterprise, "find_responsible", lookup, urgent=True)
            if reading is not None:
                names = await reading
        finally:
            if reading is not None and not reading.done():  # the lookup failed: so does the read beside it
                reading.cancel()
                await asyncio.wait([reading])
        if found is None:
            return None
        name, uid = found
        if uid is None:
            return Caller(CRM, name)
        manager = Manager(CRM, str(uid), (names or {}).get(str(uid), ""), self.settings.extension_for_user(uid))
        return Caller(CRM, name, manager)

    async def account(self, enterprise: str) -> dict[str, Any]:
        async def get(session: Session) -> dict[str, Any]:
            exchange = await session.checked("GET", "/api/v4/account")
            return exchange.body if isinstance(exchange.body, dict) else {}

        result: dict[str, Any] = await self._run(enterprise, "account", get)
        return result

    async def users(self, enterprise: str, *, urgent: bool = False) -> list[dict[str, Any]]:
        """The account's users: id, name, email, active. `urgent`: a caller waits for it.

        Page by page (at most 250 each, §B1) while a page is full and does not say it is the last: HAL's
        `_links.next` is followed where it is given, and a full page without `_links` is asked past (its keys
        are UNCONFIRMED); an empty page or a 204 ends the list."""

        async def get(session: Session) -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = []
            for page in range(1, USER_PAGES + 1):
                exchange = await session.checked("GET", f"/api/v4/users?limit={USER_PAGE}&page={page}")
                body = exchange.body if isinstance(exchange.body, dict) else {}
                listed = [u for u in (body.get("_embedded") or {}).get("users") or [] if isinstance(u, dict)]
                found += [
                    {
                        "id": str(u.get("id")),
                        "name": u.get("name") or "",
                        "email": u.get("email") or "",
                        "active": bool((u.get("rights") or {}).get("is_active", True)),
                    }
                    for u in listed
                    if u.get("id") is not None
                ]
                links = body.get("_links")
                if len(listed) < USER_PAGE or (isinstance(links, dict) and "next" not in links):
                    break
            return found

        result: list[dict[str, Any]] = await self._run(enterprise, "users", get, urgent=urgent)
        return result

    async def pipelines(self, enterprise: str) -> list[dict[str, Any]]:
        async def get(session: Session) -> list[dict[str, Any]]:
            exchange = await session.checked("GET", "/api/v4/leads/pipelines")
            body = exchange.body if isinstance(exchange.body, dict) else {}
            out = []
            for p in (body.get("_embedded") or {}).get("pipelines") or []:
                statuses = [
                    {"id": s.get("id"), "name": s.get("name")} for s in (p.get("_embedded") or {}).get("statuses") or []
                ]
                out.append(
                    {
                        "id": p.get("id"),
                        "name": p.get("name"),
                        "is_main": p.get("is_main", False),
                        "is_archive": p.get("is_archive", False),
                        "statuses": statuses,
                    }
                )
            return out

        result: list[dict[str, Any]] = await self._run(enterprise, "pipelines", get)
        return result

    async def contact_phones(self, enterprise: str, entity: str, entity_id: int) -> list[str]:
        """Phones of a contact, or of every contact of a lead (webhooks that carry none)."""
        from connectors.amocrm.contacts import parse_contact

        async def get(session: Session) -> list[str]:
            if entity == "contacts":
                exchange = await session.checked("GET", f"/api/v4/contacts/{entity_id}")
                contact = parse_contact(exchange.body) if isinstance(exchange.body, dict) else None
                return list(contact.phones) if contact else []
            exchange = await session.checked("GET", f"/api/v4/leads/{entity_id}", params={"with": "contacts"})
            body = exchange.body if isinstance(exchange.body, dict) else {}
            phones: list[str] = []
            for ref in ((body.get("_embedded") or {}).get("contacts") or [])[:10]:
                ex = await session.checked("GET", f"/api/v4/contacts/{ref.get('id')}")
                contact = parse_contact(ex.body) if isinstance(ex.body, dict) else None
                phones += contact.phones if contact else ()
            return phones

        result: list[str] = await self._run(enterprise, f"{entity}_phones", get)
        return result


class Lookup:
    """agent.redirect.router's ResponsibleLookup for one enterprise: `crm` and `find_responsible(phone)`."""

    crm = CRM

    def __init__(self, client: AmoCrmClient, enterprise: str) -> None:
        self.client = client
        self.enterprise = enterprise

    async def find_responsible(self, phone_e164: str) -> Caller | None:
        return await self.client.find_responsible(self.enterprise, phone_e164)
