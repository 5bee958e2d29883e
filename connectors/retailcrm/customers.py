"""Unknown callers become RetailCRM customers (`create_customers`), with an order too (`create_orders`), before
their call is uploaded, so that RetailCRM attaches the call to the new customer by its phone.

The contract is the official PHP client's (api-client-php src/ResourceGroup/Customers.php, Orders.php,
src/Model/Entity/Customers/Customer.php, CustomerPhone.php; crm-api.md lists `customers/create` answering 201):

- `POST /api/v5/customers/create`, form field `customer` = JSON `{firstName, phones: [{number}]}` (+ `site`)
  -> `{"success": true, "id": N}`;
- `POST /api/v5/orders/create`, form field `order` = JSON `{orderMethod, customer: {id}, phone, firstName}`
  (+ `site`) -> `{"success": true, "id": N, "order": {...}}`.

Once per number, without a table of our own: RetailCRM is asked first (`telephony/manager` with details, the
lookup the call-back tasks use), under the per-number lock the task senders share, and every try asks again
before it creates; so a retry after a lost `customers/create` answer finds the customer that answer made
instead of making a second one. The order is made only right after the customer was made by the same try: a
customer is never given two orders, and one whose order request failed after it was made stays without one.
A customer deleted in RetailCRM is made again on the number's next call (it is unknown again).

Which calls qualify is decided by the plan (connectors/retailcrm/plan.py `_unknown_caller`): incoming, from an
outside number (not an extension, not the enterprise's own numbers).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from connectors.base import Delivery, SendOutcome, answer_id
from connectors.retailcrm.tasks import Caller, Failed, Steps, digits, responsible, to_json

PAYLOAD_KEY = "new_customer"  # in a calls_upload payload: {"order_method": str | None}


async def ensure_customers(
    client: Caller, locks: dict[tuple[str, str], asyncio.Lock], deliveries: Sequence[Delivery]
) -> SendOutcome | None:
    """Make sure each unknown caller of the batch is a customer. None: go on with the upload; an outcome: a
    transient failure (the batch is tried again later: the call must not be uploaded before its customer).
    A refusal (RetailCRM answered no: a bad order method, a missing right) does not hold the call history
    back: the call is uploaded without a customer."""
    wanted: dict[str, Delivery] = {}
    for d in deliveries:
        if isinstance(d.payload.get(PAYLOAD_KEY), dict):
            wanted.setdefault(digits(d.payload["call"]["phone"]), d)
    for number, d in wanted.items():
        try:
            async with locks.setdefault((d.enterprise, number), asyncio.Lock()):
                await _ensure(client, d.payload["call"]["phone"], d.payload[PAYLOAD_KEY].get("order_method"))
        except Failed as failed:
            if failed.outcome.status == "transient" or failed.outcome.http_status is None:
                out = failed.outcome
                out.status = "transient"
                out.items = {x.idempotency_key: "transient" for x in deliveries}
                return out
    return None


async def _ensure(client: Caller, phone: str, order_method: str | None) -> int | None:
    """The id of the customer made for `phone`, None when RetailCRM already knows the number."""
    steps = Steps(client)
    manager, customer = await responsible(steps, phone)
    if manager is not None or customer is not None:
        return None
    site = {"site": client.settings.site} if client.settings.site else {}
    new: dict[str, Any] = {"firstName": phone, "phones": [{"number": phone}]}
    exchange = await steps.post("customer_create", "/customers/create", {"customer": to_json(new), **site})
    body = exchange.body if isinstance(exchange.body, dict) else {}
    made = answer_id(body.get("id"))
    if made is None:
        return None
    if order_method:
        order = {"orderMethod": order_method, "customer": {"id": made}, "phone": phone, "firstName": phone}
        await steps.post("order_create", "/orders/create", {"order": to_json(order), **site})
    return made
