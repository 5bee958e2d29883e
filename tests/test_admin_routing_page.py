"""The Routing page: the rules as a form (admin/routing_form.py), validated field by field in the page's
language, a confirmation before a post removes a whole part of the rules, stored with NOTIFY like the API."""

from __future__ import annotations

import html
import re
from typing import Any

from admin.i18n import catalog
from admin.routing_form import ERROR_KEYS
from agent.app import Agent
from agent.store import enterprises
from agent.store import routing_rules as routing_store
from tests.admin_client import base, client, csrf

FORM = {
    "timezone": "Europe/Minsk",
    "hours_mode": "schedule",
    "hours.mon": "9:00-13:00, 14:00-18:00",
    "hours.tue": "09:00-18:00",
    "holidays": "25.12.2026\n2027-01-01",
    "history_days": "30",
    "blocklist": "+375 29 000-11-22\n+37529000*",
    "mgr.0.extension": "150",
    "mgr.0.fri": "12:00-20:00",
    "mgr.1.extension": "",
    "did.0.number": "+375173880000",
    "did.0.owner": "151",
    "did.0.crm": "false",
    "did.1.number": "",
    "did.1.crm": "true",
}
STORED = {
    "timezone": "Europe/Minsk",
    "hours": {"mon": [["09:00", "13:00"], ["14:00", "18:00"]], "tue": [["09:00", "18:00"]]},
    "holidays": ["2026-12-25", "2027-01-01"],
    "managers": {"150": {"hours": {"fri": [["12:00", "20:00"]]}}},
    "history_days": 30,
    "blocklist": ["+375290001122", "+37529000*"],
    "did_rules": {"+375173880000": {"default_extension": "151", "crm_delivery": False}},
}


async def setup(agent: Agent) -> Any:
    pool = agent.parts.pool
    assert pool is not None
    await enterprises.put(pool, "100", "Shop")
    await pool.execute(
        "INSERT INTO user_internal_phones (enterprise_number, phone_number, display_name) VALUES"
        " ('100', '150', 'Anna'), ('100', '151', 'Boris') ON CONFLICT DO NOTHING"
    )
    return pool


def field_errors(page: str) -> dict[str, str]:
    found = re.findall(r'<span class="field-error" id="error-([^"]+)">([^<]*)</span>', page)
    return {name: html.unescape(text) for name, text in found}


async def test_the_form_saves_normalised_rules_and_shows_them_back(running_agent: Agent) -> None:
    pool = await setup(running_agent)
    url = f"{base(running_agent)}/admin/100/routing"
    async with client(running_agent, "100") as http:
        token = await csrf(http, url)
        async with http.post(url, data={"csrf_token": token, **FORM}) as resp:
            page = await resp.text()
            assert resp.status == 200 and str(resp.url).endswith("/admin/100/routing?saved=1")
            assert 'id="saved"' in page
        assert await routing_store.get_raw(pool, "100") == STORED
        async with http.get(url) as resp:
            page = await resp.text()
            assert 'id="saved"' not in page
            assert 'value="09:00-13:00, 14:00-18:00"' in page  # 9:00 normalised, the two ranges on one line
            assert "2026-12-25\n2027-01-01</textarea>" in page
            assert 'value="schedule" id="hours-schedule" checked' in page
        async with http.get(url + ".json") as resp:
            data = await resp.json()
            assert data["rules"] == STORED and data["form"]["hours"]["mon"] == "09:00-13:00, 14:00-18:00"
            assert data["form"]["dids"] == [{"number": "+375173880000", "owner": "151", "crm": False}]
            assert data["default_timezone"] == "UTC" and "zones" not in data
        async with http.post(url + ".json", data={"csrf_token": token, **FORM}) as resp:  # the form, answered in JSON
            assert resp.status == 200 and (await resp.json()) == {"rules": STORED}
        # the rules as JSON (the API's contract) still go in as they are
        rules = {"blocklist": ["+37529000*"]}
        headers = {"X-CSRF-Token": token}
        async with http.post(url, json=rules, headers=headers) as resp:
            assert resp.status == 200 and (await resp.json()) == {"rules": rules}
        async with http.post(url, json={"hours": {"mon": [["18:00", "09:00"]]}}, headers=headers) as resp:
            assert resp.status == 400 and (await resp.json())["field"] == "rules"
        assert await routing_store.get_raw(pool, "100") == rules


async def test_every_field_error_at_once_in_the_pages_language(running_agent: Agent) -> None:
    pool = await setup(running_agent)
    await routing_store.put(pool, "100", STORED)
    url = f"{base(running_agent)}/admin/100/routing"
    bad = {
        **FORM,
        "timezone": "Europe/Nowhere",
        "hours.mon": "9:00-13:00, 25:00-26:00",
        "hours.wed": "18:00-09:00",
        "holidays": "2026-12-25\n31.02.2026",
        "history_days": "-1",
        "blocklist": "+375290001122\nnot a number",
        "mgr.0.extension": "999",
        "did.0.number": "12ab",
    }
    for lang in ("ru", "en"):
        messages = catalog(lang)
        other = catalog("en" if lang == "ru" else "ru")
        async with client(running_agent, "100", headers={"Accept-Language": lang}) as http:
            token = await csrf(http, url)
            async with http.post(url, data={"csrf_token": token, **bad}) as resp:
                page = await resp.text()
                assert resp.status == 400
        errors = field_errors(page)
        assert errors == {
            "timezone": messages["routing.err.timezone"],
            "hours.mon": messages["routing.err.ranges"].format(value="9:00-13:00, 25:00-26:00"),
            "hours.wed": messages["routing.err.order"].format(value="18:00-09:00"),
            "holidays": messages["routing.err.date"].format(value="31.02.2026"),
            "history_days": messages["routing.err.history"].format(max=3650),
            "blocklist": messages["routing.err.number"].format(value="not a number"),
            "mgr.0.extension": messages["routing.err.unknown_extension"].format(value="999"),
            "did.0.number": messages["routing.err.number"].format(value="12ab"),
        }
        assert messages["routing.errors"] in page and messages["day.wed"] in page  # the summary names the field
        for key in ERROR_KEYS:  # not one message of the other language
            longest = max(re.split(r"\{\w+\}", other[key]), key=len)
            assert longest not in html.unescape(page), (lang, key)
        assert 'value="9:00-13:00, 25:00-26:00"' in page and "31.02.2026" in page  # what was typed is kept
        assert await routing_store.get_raw(pool, "100") == STORED


def test_every_error_key_is_in_both_catalogues() -> None:
    for lang in ("ru", "en"):
        missing = [k for k in ERROR_KEYS if k not in catalog(lang)]
        assert not missing, (lang, missing)


async def test_removing_a_whole_part_of_the_rules_asks_first(running_agent: Agent) -> None:
    pool = await setup(running_agent)
    await routing_store.put(pool, "100", STORED)
    url = f"{base(running_agent)}/admin/100/routing"
    empty = {"hours_mode": "always", "timezone": "Europe/Minsk"}
    async with client(running_agent, "100") as http:
        token = await csrf(http, url)
        async with http.post(url, data={"csrf_token": token, **empty}) as resp:
            page = html.unescape(await resp.text())
            assert resp.status == 400 and 'id="confirm"' in page
            assert field_errors(page) == {"confirm_wipe": catalog("en")["routing.err.confirm"]}
            for section in ("hours", "holidays", "managers", "history_days", "blocklist", "did_rules"):
                assert catalog("en")[f"routing.section.{section}"] in page
        assert await routing_store.get_raw(pool, "100") == STORED  # nothing removed yet
        # removing one holiday of two is no wipe; removing the blocklist is
        one_less = {**FORM, "holidays": "2027-01-01", "blocklist": ""}
        async with http.post(url, data={"csrf_token": token, **one_less}) as resp:
            asked = html.unescape((await resp.text()).split('id="confirm"')[1].split("</div>")[0])
            assert resp.status == 400 and catalog("en")["routing.section.blocklist"] in asked
            assert catalog("en")["routing.section.holidays"] not in asked
        async with http.post(url, data={"csrf_token": token, **empty, "confirm_wipe": "yes"}) as resp:
            assert resp.status == 200 and str(resp.url).endswith("?saved=1")
        assert await routing_store.get_raw(pool, "100") == {"timezone": "Europe/Minsk"}
        # with nothing left to remove, an empty form saves without asking
        async with http.post(url, data={"csrf_token": token, "hours_mode": "always"}) as resp:
            assert resp.status == 200
        assert await routing_store.get_raw(pool, "100") == {}


async def test_a_viewer_sees_the_rules_but_no_form(running_agent: Agent) -> None:
    pool = await setup(running_agent)
    await routing_store.put(pool, "100", STORED)
    url = f"{base(running_agent)}/admin/100/routing"
    async with client(running_agent, "100", role="viewer") as http:
        async with http.get(url) as resp:
            page = await resp.text()
        assert "<form" not in page.split("<main>")[1] and "+37529000*" in page
        assert 'value="09:00-13:00, 14:00-18:00"' in page and '<fieldset class="plain" disabled>' in page
        token = await csrf(http, url)
        async with http.post(url, data={"csrf_token": token, "hours_mode": "always", "confirm_wipe": "yes"}) as resp:
            assert resp.status == 403
        async with http.post(url, json={}, headers={"X-CSRF-Token": token}) as resp:
            assert resp.status == 403
    assert await routing_store.get_raw(pool, "100") == STORED
