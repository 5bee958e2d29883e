"""crm-api.md Part B, statement by statement: the fake amoCRM refuses what the contract says the real one
refuses (so the tests that use it prove something), and the client reads the answers the contract leaves
open (UNCONFIRMED) in either plausible shape."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.store.database import Pool
from connectors.amocrm.plan import plan
from connectors.amocrm.settings import parse
from connectors.http import make_client
from tests.amocrm_setup import ENTERPRISE, bound, configure_amocrm, connect_tokens
from tests.fakes import amocrm_rules as rules
from tests.fakes.amocrm import FakeAmoCrm
from tests.test_amocrm_agent import missed

CALL = {"direction": "inbound", "duration": 12, "source": "pbx-agent", "phone": "+375291234567", "request_id": "0"}
META: dict[str, Any] = {"uniq": "c1", "duration": 0, "service_code": "pbx-agent", "link": "", "from": "+375291234567"}
UNSORTED: dict[str, Any] = {
    "source_uid": "pbx-agent:c1",
    "source_name": "pbx-agent",
    "request_id": "0",
    "metadata": META,
    "_embedded": {"contacts": [{"name": "+375291234567"}], "leads": [{"name": "Call"}]},
}
TASK = {"text": "Call back", "complete_till": 1_900_000_000, "task_type_id": 1, "request_id": "0"}
LEAD = {"name": "Call", "request_id": "0", "_embedded": {"contacts": [{"name": "+375291234567"}]}}


@pytest.fixture
async def amo() -> AsyncIterator[tuple[FakeAmoCrm, httpx.AsyncClient]]:
    async with FakeAmoCrm(rate=None) as fake:
        token = fake.issue_tokens()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=fake.url, headers=headers) as http:
            fake.add_contact("+375291234567")
            yield fake, http


def paths_of(r: httpx.Response) -> list[str]:
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    return [e["path"] for entry in r.json().get("validation-errors", []) for e in entry["errors"]]


@pytest.mark.parametrize(
    ("path", "item"), [("/api/v4/calls", CALL), ("/api/v4/leads/unsorted/sip", UNSORTED), ("/api/v4/tasks", TASK)]
)
async def test_the_valid_shapes_pass(amo: tuple[FakeAmoCrm, httpx.AsyncClient], path: str, item: Any) -> None:
    _, http = amo
    r = await http.post(path, json=[item])
    assert r.status_code == 200, r.text
    r = await http.post("/api/v4/leads/complex", json=[LEAD])
    assert r.status_code == 200, r.text


async def test_a_body_that_is_not_json_typed_is_refused(amo: tuple[FakeAmoCrm, httpx.AsyncClient]) -> None:
    """§B1: bodies are JSON with Content-Type application/json: not a form, not JSON text under another type."""
    _, http = amo
    r = await http.post("/api/v4/calls", data={"direction": "inbound", "phone": "+375291234567"})
    assert r.status_code == 400 and r.headers["content-type"].startswith("application/problem+json")
    r = await http.post("/api/v4/calls", content=json.dumps([CALL]), headers={"Content-Type": "text/plain"})
    assert r.status_code == 400


@pytest.mark.parametrize(
    ("path", "limit", "status"),
    [
        ("/api/v4/contacts", "250", 200),
        ("/api/v4/contacts", "251", 400),
        ("/api/v4/users", "500", 400),
        ("/api/v4/tasks", "0", 400),
        ("/api/v4/leads/notes", "1000", 400),
    ],
)
async def test_a_list_takes_at_most_250(
    amo: tuple[FakeAmoCrm, httpx.AsyncClient], path: str, limit: str, status: int
) -> None:
    """§B1: `limit` <= 250 on every list."""
    _, http = amo
    r = await http.get(path, params={"query": "375291234567", "limit": limit})
    assert r.status_code == status, r.text
    if status == 400:
        assert paths_of(r) == ["limit"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"uniq": 1700000000}, "uniq"),  # §B5 types
        ({"created_at": "1700000000"}, "created_at"),
        ({"call_status": "4"}, "call_status"),
        ({"responsible_user_id": "7"}, "responsible_user_id"),
        ({"call_result": 4}, "call_result"),
        ({"duration": -1}, "duration"),
        ({"call_responsible": [7]}, "call_responsible"),
    ],
)
async def test_a_call_against_the_contract_is_refused(
    amo: tuple[FakeAmoCrm, httpx.AsyncClient], change: dict[str, Any], field: str
) -> None:
    _, http = amo
    assert paths_of(await http.post("/api/v4/calls", json=[{**CALL, **change}])) == [field]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"pipeline_id": "3001"}, "pipeline_id"),  # §B7 types
        ({"metadata": {**META, "duration": "5"}}, "metadata.duration"),
        ({"metadata": {**META, "called_at": "now"}}, "metadata.called_at"),
        ({"metadata": {**META, "is_call_event_needed": "true"}}, "metadata.is_call_event_needed"),
        ({"metadata": {**META, "from": 375291234567}}, "metadata.from"),
        ({"_embedded": {"contacts": [{"name": "a"}, {"name": "b"}]}}, "_embedded.contacts"),  # array(1)
    ],
)
async def test_an_unsorted_item_against_the_contract_is_refused(
    amo: tuple[FakeAmoCrm, httpx.AsyncClient], change: dict[str, Any], field: str
) -> None:
    _, http = amo
    assert paths_of(await http.post("/api/v4/leads/unsorted/sip", json=[{**UNSORTED, **change}])) == [field]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (
            {"_embedded": {"contacts": [{"name": "a"}], "companies": [{"name": "b"}, {"name": "c"}]}},
            "_embedded.companies",
        ),
        (
            {"custom_fields_values": [{"field_id": i, "values": [{"value": "x"}]} for i in range(41)]},
            "custom_fields_values",
        ),
        ({"status_id": "40002"}, "status_id"),
    ],
)
async def test_a_complex_lead_against_the_contract_is_refused(
    amo: tuple[FakeAmoCrm, httpx.AsyncClient], change: dict[str, Any], field: str
) -> None:
    """§B8: one contact and one company per lead, <= 40 custom-field values per entity."""
    _, http = amo
    assert paths_of(await http.post("/api/v4/leads/complex", json=[{**LEAD, **change}])) == [field]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"entity_type": "contacts"}, "entity_id"),  # §B8: a task on a card names both
        ({"task_type_id": "1"}, "task_type_id"),
        ({"responsible_user_id": "9"}, "responsible_user_id"),
        ({"complete_till": "2030-01-01"}, "complete_till"),
    ],
)
async def test_a_task_against_the_contract_is_refused(
    amo: tuple[FakeAmoCrm, httpx.AsyncClient], change: dict[str, Any], field: str
) -> None:
    _, http = amo
    assert paths_of(await http.post("/api/v4/tasks", json=[{**TASK, **change}])) == [field]


@pytest.mark.parametrize("grant", ["refresh_token", "authorization_code"])
async def test_a_grant_without_redirect_uri_or_as_a_form_is_refused(
    amo: tuple[FakeAmoCrm, httpx.AsyncClient], grant: str
) -> None:
    """§B3.2: redirect_uri is a field of both grants, refresh included; the body is JSON. The fake checks it
    even when no Redirect URI was registered with it."""
    fake, http = amo
    body = {"client_id": fake.client_id, "client_secret": fake.client_secret, "grant_type": grant}
    body |= {"refresh_token": fake.issue_tokens()["refresh_token"], "code": fake.issue_code()}
    r = await http.post("/oauth2/access_token", json=body)
    assert r.status_code == 400 and r.json()["type"].endswith("OAuthProblemJson"), r.text
    r = await http.post("/oauth2/access_token", data={**body, "redirect_uri": "https://pbx.example.com/cb"})
    assert r.status_code == 400, r.text
    r = await http.post("/oauth2/access_token", json={**body, "redirect_uri": "https://pbx.example.com/cb"})
    assert r.status_code == 200, r.text


# -- what the client sends keeps the rules; what it reads may be either shape ----------------------


def test_a_planned_call_keeps_the_contract() -> None:
    settings = parse({"host": "https://x.amocrm.ru", "user_extensions": {"7": "150"}})
    (delivery,) = plan(missed("c1", ("150",)), settings)
    assert rules.check_call({**delivery.payload["call"], "source": settings.source, "request_id": "0"}) == []


async def test_task_and_unsorted_ids_answered_as_strings_are_taken(
    amo: tuple[FakeAmoCrm, httpx.AsyncClient], pool: Pool, tmp_path: Path
) -> None:
    """The answers of tasks and unsorted items are UNCONFIRMED (§B7, §B8): an id spelled "123" is that id. Else
    the task's row stays pending, and the number's next missed call waits on it instead of finding it open."""
    fake, _ = amo
    fake.string_ids = True
    settings = await configure_amocrm(pool, tmp_path, fake, unknown_caller="unsorted")
    connector = bound(pool, tmp_path)
    await connect_tokens(connector, fake)
    (first,) = plan(missed("p1", ("151",), phone="+375297770000"), settings)
    (second,) = plan(missed("p2", ("151",), phone="+375297770000"), settings)
    async with make_client() as http:
        client = connector.client(settings, http)
        assert (await client.send([first])).status == "success"
        outcome = await client.send([second])
    assert outcome.status == "success", outcome.error
    (task,) = fake.tasks.values()
    assert len(fake.unsorted) == 2  # each call is recorded; the second finds the first's task open
    assert task["entity_type"] == "leads" and task["entity_id"] == fake.unsorted[0]["lead_id"]
    rows = await pool.fetch("SELECT task_id FROM amocrm_missed_tasks WHERE phone = '375297770000'")
    assert [r["task_id"] for r in rows] == [task["id"]]


@pytest.mark.parametrize(
    ("added", "pages", "links"),
    [(0, 1, True), (249, 1, True), (260, 2, True), (499, 2, True), (500, 3, True), (260, 2, False), (499, 3, False)],
)
async def test_every_user_is_read_page_by_page(
    amo: tuple[FakeAmoCrm, httpx.AsyncClient], pool: Pool, tmp_path: Path, added: int, pages: int, links: bool
) -> None:
    """§B1: a list gives at most 250 a page. An account with more users than that has managers past the first
    page: the client follows the pages (HAL `_links.next`) and asks no page past the last. Without `_links` (its
    keys are UNCONFIRMED) a full page is asked past: the one after a full last page answers 204."""
    fake, _ = amo
    fake.hal_links = links
    fake.users += [{"id": 100 + i, "name": f"Manager {i}", "rights": {"is_active": True}} for i in range(added)]
    settings = await configure_amocrm(pool, tmp_path, fake)
    connector = bound(pool, tmp_path)
    await connect_tokens(connector, fake)
    async with make_client() as http:
        users = await connector.client(settings, http).users(ENTERPRISE)
    assert [u["id"] for u in users] == [str(u["id"]) for u in fake.users]
    asked = [r for r in fake.api_requests() if r.path == "/api/v4/users"]
    assert [(r.query["page"], r.query["limit"]) for r in asked] == [(str(n), "250") for n in range(1, pages + 1)]
    asked_past_a_full_last_page = not links and len(fake.users) % 250 == 0
    assert [r.status for r in asked] == [200] * (pages - 1) + [204 if asked_past_a_full_last_page else 200]
