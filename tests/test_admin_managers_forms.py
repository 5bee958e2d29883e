"""The Managers form checks what it is sent against what exists (issue 19, item 7): unknown users and extensions
refused beside their fields, all at once, in the page's language, nothing stored or pushed to RetailCRM;
messages name managers, not ids; a visit asks RetailCRM at most one request, and none within the TTL; the account URL
is a URL."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest

from agent.app import Agent
from agent.store import enterprises
from tests.admin_client import base, client, csrf
from tests.crm_setup import API_KEY, configure_retailcrm
from tests.fakes.retailcrm import FakeRetailCrm
from tests.test_admin_crm_pages import codes, post, seed_extensions, stored


@pytest.fixture
async def fake_rc() -> AsyncIterator[FakeRetailCrm]:
    async with FakeRetailCrm(api_key=API_KEY) as fake:
        fake.add_users(3, start_id=7)
        yield fake


def reads(fake: FakeRetailCrm) -> int:
    """Requests that read users or the module (not the sync of codes, not the module's registration)."""
    return len([r for r in fake.requests if r.method == "GET" and "/api/v5/" in r.path])


async def test_unknown_extensions_and_users_are_refused_each_beside_its_field(
    running_agent: Agent, fake_rc: FakeRetailCrm
) -> None:
    await configure_retailcrm(running_agent.parts.pool, running_agent.config.agent.state_dir, fake_rc)
    await seed_extensions(running_agent)
    b = f"{base(running_agent)}/admin/100"
    before = (await stored(running_agent))["user_extensions"]
    for lang, unknown_ext, unknown_user, summary in (
        ("en", "999 is not one of", "There is no user 4242", "Nothing was saved"),
        ("ru", "999 — не внутренний номер", "В CRM нет пользователя 4242", "Ничего не сохранено"),
    ):
        async with client(running_agent, "100", headers={"Accept-Language": lang}) as http:
            token = await csrf(http, f"{b}/managers")
            form = {"csrf_token": token, "crm": "retailcrm", "user.7": "999", "user.8": "abc", "user.4242": "152"}
            async with http.post(f"{b}/managers", data=form) as resp:
                html = await resp.text()
                assert resp.status == 400, html
            assert summary in html
            errors = re.findall(r'<span class="field-error" id="(user\.\d+)-error">([^<]*)</span>', html)
            assert [f for f, _ in errors] == ["user.7", "user.8"], errors  # every field at once, in the rows shown
            assert unknown_ext in html and "abc" in html
            assert unknown_user in html  # a user the CRM does not list has no row: named in the summary's JSON
            assert '<option value="999" selected>999</option>' in html  # what was typed is kept
            status, body = await post(http, f"{b}/managers", token, crm="retailcrm", user_extensions={"7": "abc"})
            assert status == 400 and body["field"] == "user.7" and "abc" in body["error"]
            status, body = await post(http, f"{b}/managers", token, crm="retailcrm", user_extensions={"4242": "150"})
            assert status == 400 and body["field"] == "user.4242" and unknown_user in body["error"]
    assert (await stored(running_agent))["user_extensions"] == before
    assert fake_rc.requests_to("/edit") == []  # nothing pushed to RetailCRM


async def test_two_users_given_one_extension_are_both_refused_with_the_name(
    running_agent: Agent, fake_rc: FakeRetailCrm
) -> None:
    await configure_retailcrm(running_agent.parts.pool, running_agent.config.agent.state_dir, fake_rc)
    await seed_extensions(running_agent)
    b = f"{base(running_agent)}/admin/100"
    async with client(running_agent, "100") as http:
        token = await csrf(http, f"{b}/managers")
        status, body = await post(
            http, f"{b}/managers", token, crm="retailcrm", user_extensions={"7": "151", "9": "151"}
        )
        assert status == 400 and body["errors"] == {"user.9": "Extension 151 is also chosen for User7 Test."}


async def test_messages_name_the_managers_not_their_ids(running_agent: Agent, fake_rc: FakeRetailCrm) -> None:
    await configure_retailcrm(running_agent.parts.pool, running_agent.config.agent.state_dir, fake_rc)
    await seed_extensions(running_agent)
    b = f"{base(running_agent)}/admin/100"
    async with client(running_agent, "100") as http:
        token = await csrf(http, f"{b}/managers")
        form = {"csrf_token": token, "crm": "retailcrm", "user.8": "150"}
        async with http.post(f"{b}/managers", data=form) as resp:
            html = await resp.text()
            assert resp.status == 200, html
        result = html.split('id="result">', 1)[1].split("</div>", 1)[0]
        assert "extension 150 moved from User7 Test to User8 Test" in result and "#" not in result


async def test_a_visit_reads_retailcrm_once_and_a_fresh_one_not_at_all(
    running_agent: Agent, fake_rc: FakeRetailCrm
) -> None:
    await configure_retailcrm(running_agent.parts.pool, running_agent.config.agent.state_dir, fake_rc)
    await seed_extensions(running_agent)
    b = f"{base(running_agent)}/admin/100"
    async with client(running_agent, "100") as http:
        status, _ = await post(http, f"{b}/retailcrm", await csrf(http, f"{b}/retailcrm"), action="register")
        assert status == 200
        first = reads(fake_rc)
        async with http.get(f"{b}/managers") as resp:
            assert resp.status == 200
        assert reads(fake_rc) - first <= 1  # the users, once: the registration told the page the module's codes
        cold = reads(fake_rc)
        for _ in range(3):
            async with http.get(f"{b}/managers") as resp, http.get(f"{b}/managers.json") as resp2:
                assert resp.status == resp2.status == 200
        assert reads(fake_rc) == cold  # fresh: no request at all
        token = await csrf(http, f"{b}/managers")
        status, body = await post(http, f"{b}/managers", token, crm="retailcrm", user_extensions={"8": "150"})
        assert status == 200 and body["sync"]["ok"], body
        saved = reads(fake_rc)  # the sync reads the module to edit it: the save's own exchange
        async with http.get(f"{b}/managers.json") as resp:
            listing = await resp.json()
        assert reads(fake_rc) == saved  # the save updated what is kept: the page shows what was saved
        assert {m["user_id"]: m["extension"] for m in listing["managers"]}["8"] == "150"
        assert listing["differences"] == [] and codes(fake_rc)["8"] == "150"


async def test_a_cold_visit_costs_one_request_and_a_fresh_one_none(
    running_agent: Agent, fake_rc: FakeRetailCrm
) -> None:
    """Every request the fake RetailCRM receives is counted, whatever its method or path."""
    await configure_retailcrm(running_agent.parts.pool, running_agent.config.agent.state_dir, fake_rc)
    await seed_extensions(running_agent)
    fake_rc.modules["pbx-agent"] = {
        "code": "pbx-agent",
        "integrations": {
            "telephony": {"additionalCodes": [{"userId": 7, "code": "150"}, {"userId": 8, "code": "160"}]}
        },
    }
    b = f"{base(running_agent)}/admin/100"
    async with client(running_agent, "100") as http:
        async with http.get(f"{b}/managers") as resp:
            html = await resp.text()
            assert resp.status == 200, html
        assert [r.path for r in fake_rc.requests] == ["/api/v5/users"]  # the cold visit: the users, nothing else
        assert 'id="compare"' in html and "User7 Test" in html
        for _ in range(2):
            async with http.get(f"{b}/managers") as resp, http.get(f"{b}/managers.json") as resp2:
                assert resp.status == resp2.status == 200
                listing = await resp2.json()
        assert len(fake_rc.requests) == 1  # within the TTL: none
        assert listing["module_read_at"] is None and listing["differences"] == []  # not read: nothing compared
        assert not any(m["differs"] for m in listing["managers"])
        # asked for, RetailCRM's codes are read (that one request) and compared
        async with http.get(f"{b}/managers.json?compare=1") as resp:
            listing = await resp.json()
        assert [r.path for r in fake_rc.requests[1:]] == ["/api/v5/integration-modules/pbx-agent"]
        assert listing["module_read_at"]
        assert [(d["user_id"], d["local"], d["crm"], d["name"]) for d in listing["differences"]] == [
            ("8", "151", "160", "User8 Test"),
            ("9", "152", None, "User9 Test"),
        ]
        async with http.get(f"{b}/managers.json") as resp:
            assert (await resp.json())["differences"] == listing["differences"]  # kept, without asking again
        assert len(fake_rc.requests) == 2
        # a write to the module the page did not make (the API, another agent) outdates what it read
        await running_agent.parts.pool.execute(
            "INSERT INTO integration_logs (enterprise_number, integration_type, event_type, status)"
            " VALUES ('100', 'retailcrm', 'sync_codes', 'success')"
        )
        async with http.get(f"{b}/managers.json") as resp:
            listing = await resp.json()
        assert listing["module_read_at"] is None and listing["differences"] == []
        assert len(fake_rc.requests) == 2


@pytest.mark.parametrize("domain", ["not a url!", "https://shop .retailcrm.ru", "https://-x.ru", "https://a..ru"])
async def test_the_account_url_must_be_a_url(running_agent: Agent, fake_rc: FakeRetailCrm, domain: str) -> None:
    await configure_retailcrm(running_agent.parts.pool, running_agent.config.agent.state_dir, fake_rc)
    b = f"{base(running_agent)}/admin/100"
    async with client(running_agent, "100") as http:
        token = await csrf(http, f"{b}/retailcrm")
        status, body = await post(http, f"{b}/retailcrm", token, action="save", domain=domain, api_key=API_KEY)
        assert status == 400 and body.get("field", body.get("result", {}).get("field")) in ("domain", None), body
    found = await enterprises.get_integration(running_agent.parts.pool, "100", "retailcrm")
    assert found is not None and found["domain"] == fake_rc.url
