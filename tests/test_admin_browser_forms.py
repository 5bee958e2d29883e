"""Issue 19, items 7 and 8 in a real browser (tests/browser.py), in English and in Russian: the Managers form
refuses an extension that is no longer listed beside its field and names managers in its messages; the Instance
page renames and removes an enterprise (confirmed by typing its number); the Extensions page's discovery button;
the calls filter finds a number typed the national way. The `page` fixture fails on any script error or CSP
violation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from admin.i18n import catalog
from agent.app import Agent
from tests.admin_client import add_calls, base, link
from tests.browser import Browser, click_through, seed
from tests.crm_setup import API_KEY, configure_retailcrm
from tests.fakes.retailcrm import FakeRetailCrm

LANGS = pytest.mark.parametrize("lang", ["en", "ru"])


@pytest.fixture
async def fake_rc() -> AsyncIterator[FakeRetailCrm]:
    async with FakeRetailCrm(api_key=API_KEY) as fake:
        fake.add_users(3, start_id=7)
        yield fake


@LANGS
async def test_managers_refuse_an_extension_no_longer_listed(
    running_agent: Agent, fake_rc: FakeRetailCrm, chromium: Browser, page: Any, lang: str
) -> None:
    pool = running_agent.parts.pool
    await configure_retailcrm(pool, running_agent.config.agent.state_dir, fake_rc)
    await seed(pool)
    messages = catalog(lang)
    url, managers = link(running_agent, "100"), f"{base(running_agent)}/admin/100/managers?lang={lang}"

    def choose_152() -> None:
        page.goto(url)
        page.goto(managers)
        page.locator("tr[data-user='8'] select").select_option("152")

    def save_refused() -> None:
        click_through(page, "#save-mapping")
        error = page.locator("[id='user.8-error']")
        assert error.inner_text() == messages["mgr.error.unknown_extension"].format(extension="152")
        assert page.locator("tr[data-user='8'] select").input_value() == "152"  # what was chosen is kept
        assert page.locator("#result").inner_text().startswith(messages["mgr.error.summary"].split("{")[0].strip())

    def move_150() -> None:
        page.goto(managers)
        page.locator("tr[data-user='8'] select").select_option("150")
        click_through(page, "#save-mapping")
        moved = messages["mgr.moved"].format(extension="150", from_user="User7 Test", to_user="User8 Test")
        assert moved in page.locator("#result").inner_text()

    await chromium.run(choose_152)
    await pool.execute("DELETE FROM user_internal_phones WHERE enterprise_number = '100' AND phone_number = '152'")
    await chromium.run(save_refused)
    assert fake_rc.requests_to("/edit") == []
    await chromium.run(move_150)


@LANGS
async def test_instance_renames_and_removes_an_enterprise(
    running_agent: Agent, chromium: Browser, page: Any, lang: str
) -> None:
    pool = running_agent.parts.pool
    await seed(pool)
    messages = catalog(lang)
    url, instance = link(running_agent), f"{base(running_agent)}/admin/instance?lang={lang}"

    def steps() -> None:
        page.goto(url)
        page.goto(instance)
        assert page.locator("#enterprise-100").is_visible() and page.locator("#enterprise-200").is_visible()
        row = page.locator("#enterprise-200")
        row.locator("input[name=name]").fill("Other shop")
        click_through(page, row.locator("button", has_text=messages["instance.rename"]))
        assert page.locator("#enterprise-200 input[name=name]").input_value() == "Other shop"
        assert "Other shop" in page.locator("form.switcher").inner_text()
        page.locator("#enterprise-200 summary").click()
        page.locator("#enterprise-200 input[name=confirm]").fill("2")
        click_through(page, "#enterprise-200 button.danger")
        assert page.locator("#error-confirm").inner_text() == messages["instance.error.confirm"]
        page.locator("#enterprise-200 input[name=confirm]").fill("200")
        click_through(page, "#enterprise-200 button.danger")
        assert page.locator("#enterprise-200").count() == 0
        assert "200" not in page.locator("form.switcher").inner_text()

    await chromium.run(steps)
    assert await pool.fetchval("SELECT name FROM enterprises WHERE number = '200'") == "Other shop"  # data kept


@LANGS
async def test_the_discovery_button_says_why_nothing_was_asked(
    running_agent: Agent, chromium: Browser, page: Any, lang: str
) -> None:
    await seed(running_agent.parts.pool)
    messages = catalog(lang)
    url, extensions = link(running_agent, "100"), f"{base(running_agent)}/admin/100/extensions?lang={lang}"

    def steps() -> None:
        page.goto(url)
        page.goto(extensions)
        click_through(page, "#discover button")
        assert page.locator("#error-discover").inner_text() == messages["ext.error.no_pbx"]

    await chromium.run(steps)


@LANGS
async def test_the_calls_filter_finds_a_number_typed_the_national_way(
    running_agent: Agent, chromium: Browser, page: Any, lang: str
) -> None:
    await seed(running_agent.parts.pool)
    await add_calls(running_agent.parts.pool, "100", 12)
    url, calls = link(running_agent, "100"), f"{base(running_agent)}/admin/100/calls?lang={lang}"

    def steps() -> None:
        page.goto(url)
        page.goto(calls)
        for typed in ("8 029 000-00-07", "0000007"):
            page.fill("input[name=number]", typed)
            click_through(page, "form.filters button[type=submit]")
            rows = page.locator("table.calls tbody tr")
            assert rows.count() == 1 and "+375290000007" in rows.first.inner_text(), typed

    await chromium.run(steps)
