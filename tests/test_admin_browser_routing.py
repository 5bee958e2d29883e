"""The Routing form in a real browser (tests/browser.py), in English and in Russian: an admin sets the rules with
the form alone and sees them again after a reload; a wrong time is refused beside its field in the page's
language; clearing every rule asks first. The `page` fixture fails on any script error or CSP violation."""

from __future__ import annotations

from typing import Any

import pytest

from admin.i18n import catalog
from agent.app import Agent
from agent.store import routing_rules as routing_store
from tests.admin_client import base, link
from tests.browser import Browser, click_through, seed, shoot

LANGS = pytest.mark.parametrize("lang", ["en", "ru"])
STORED = {
    "hours": {"mon": [["09:00", "13:00"], ["14:00", "18:00"]]},
    "holidays": ["2026-12-25"],
    "blocklist": ["+37529000*"],
    "did_rules": {"+375173880000": {"default_extension": "150", "crm_delivery": True}},
}


def field(name: str) -> str:
    return f"[id='f-{name}']"


def open_routing(page: Any, url: str, b: str, lang: str) -> None:
    page.goto(url)
    page.goto(f"{b}/admin/100/routing?lang={lang}")
    assert page.locator("h1").inner_text() == catalog(lang)["nav.routing"]


@LANGS
async def test_an_admin_sets_the_rules_with_the_form_alone(
    running_agent: Agent, chromium: Browser, page: Any, lang: str
) -> None:
    pool = running_agent.parts.pool
    assert pool is not None
    await seed(pool)
    url, b, messages = link(running_agent, "100"), base(running_agent), catalog(lang)

    def steps() -> None:
        open_routing(page, url, b, lang)
        assert page.locator(field("timezone")).get_attribute("placeholder") == "UTC"
        page.fill(field("hours.mon"), "9:00-13:00, 14:00-18:00")
        assert page.locator("#hours-schedule").is_checked()  # admin.js: typed hours choose the schedule
        page.check("#hours-schedule")  # and without the script the admin picks it
        page.fill(field("holidays"), "25.12.2026")
        page.fill(field("blocklist"), "+37529000*")
        page.fill(field("did.0.number"), "+375173880000")
        page.fill(field("did.0.owner"), "150")
        click_through(page, "#routing button[type=submit]")
        assert page.locator("#saved").inner_text() == messages["routing.saved"]
        page.reload()
        assert page.locator(field("hours.mon")).input_value() == "09:00-13:00, 14:00-18:00"
        assert page.locator(field("hours.tue")).input_value() == ""
        assert page.locator("#hours-schedule").is_checked()
        assert page.locator(field("holidays")).input_value() == "2026-12-25"
        assert page.locator(field("blocklist")).input_value() == "+37529000*"
        assert page.locator(field("did.0.number")).input_value() == "+375173880000"
        assert page.locator(field("did.0.owner")).input_value() == "150"
        assert page.locator(field("did.0.crm")).is_checked()
        shoot(page, f"routing-{lang}")

    await chromium.run(steps)
    assert await routing_store.get_raw(pool, "100") == STORED


@LANGS
async def test_a_wrong_time_is_refused_beside_its_field_in_the_pages_language(
    running_agent: Agent, chromium: Browser, page: Any, lang: str
) -> None:
    pool = running_agent.parts.pool
    assert pool is not None
    await seed(pool)
    await routing_store.put(pool, "100", STORED)
    url, b, messages = link(running_agent, "100"), base(running_agent), catalog(lang)

    def steps() -> None:
        open_routing(page, url, b, lang)
        page.fill(field("hours.tue"), "25:00-18:00")
        page.fill(field("did.0.owner"), "999")
        click_through(page, "#routing button[type=submit]")
        error = page.locator("[id='error-hours.tue']")
        assert error.inner_text() == messages["routing.err.ranges"].format(value="25:00-18:00")
        cell = page.locator(f"td:has({field('hours.tue')})")
        assert cell.locator("[id='error-hours.tue']").count() == 1  # next to its field
        assert page.locator(field("hours.tue")).get_attribute("aria-invalid") == "true"
        assert page.locator(field("hours.tue")).input_value() == "25:00-18:00"  # kept as typed
        owner = page.locator("[id='error-did.0.owner']").inner_text()
        assert owner == messages["routing.err.unknown_extension"].format(value="999")
        summary = page.locator("#errors").inner_text()
        assert messages["routing.errors"] in summary and messages["day.tue"] in summary
        assert page.locator("#saved").count() == 0

    await chromium.run(steps)
    assert await routing_store.get_raw(pool, "100") == STORED


@LANGS
async def test_clearing_every_rule_asks_first(running_agent: Agent, chromium: Browser, page: Any, lang: str) -> None:
    pool = running_agent.parts.pool
    assert pool is not None
    await seed(pool)
    await routing_store.put(pool, "100", STORED)
    url, b, messages = link(running_agent, "100"), base(running_agent), catalog(lang)

    def steps() -> None:
        open_routing(page, url, b, lang)
        page.check("input[name=hours_mode][value=always]")
        for name in ("hours.mon", "holidays", "blocklist", "did.0.number", "did.0.owner"):
            page.fill(field(name), "")
        click_through(page, "#routing button[type=submit]")
        confirm = page.locator("#confirm")
        assert messages["routing.confirm_intro"] in confirm.inner_text()
        assert messages["routing.section.blocklist"] in confirm.inner_text()
        assert page.locator("#saved").count() == 0
        page.check(field("confirm_wipe"))
        click_through(page, "#routing button[type=submit]")
        assert page.locator("#saved").inner_text() == messages["routing.saved"]
        assert page.locator(field("blocklist")).input_value() == ""
        assert page.locator("input[name=hours_mode][value=always]").is_checked()

    await chromium.run(steps)
    assert await routing_store.get_raw(pool, "100") == {}
