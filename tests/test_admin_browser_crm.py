"""The CRM pages in a real browser (Chromium via Playwright, as in tests/test_admin_browser.py): RetailCRM
test and register against the fake, a mapping changed with the dropdown reaching the fake's
additionalCodes, amoCRM connected through the fake's OAuth (in English and Russian, its state dot laid out by
Chromium in each state's colour and the managers' phone drawn as SVG, no emoji); no key or token in any page's HTML.
Set ADMIN_SCREENSHOTS=docs/screenshots to refresh docs/screenshots/{retailcrm,managers,amocrm}.png.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from admin.i18n import translator
from agent.app import Agent
from agent.config.sections import Config
from tests.admin_client import base, link
from tests.amocrm_setup import configure_amocrm
from tests.browser import Browser, click_through, expect, seed, shoot
from tests.crm_setup import API_KEY, configure_retailcrm
from tests.fakes.amocrm import FakeAmoCrm
from tests.fakes.retailcrm import FakeRetailCrm
from tests.rc_agent import started
from tests.test_admin_no_emoji import EMOJI


@pytest.fixture
async def fake_rc() -> AsyncIterator[FakeRetailCrm]:
    async with FakeRetailCrm(api_key=API_KEY) as fake:
        fake.add_users(3, start_id=7)
        yield fake


def codes(fake: FakeRetailCrm) -> dict[str, str]:
    module = fake.modules["pbx-agent"]
    return {str(c["userId"]): str(c["code"]) for c in module["integrations"]["telephony"]["additionalCodes"]}


async def test_retailcrm_register_test_and_map_with_the_dropdown(
    running_agent: Agent, fake_rc: FakeRetailCrm, chromium: Browser, page: Any
) -> None:
    pool = running_agent.parts.pool
    assert pool is not None
    await configure_retailcrm(pool, running_agent.config.agent.state_dir, fake_rc)
    await seed(pool)
    url = link(running_agent, "100")
    b = base(running_agent)
    pages: list[str] = []

    def steps() -> None:
        page.goto(url)
        page.goto(f"{b}/admin/100/retailcrm")
        assert page.locator("nav.sections a.active").inner_text() == "RetailCRM"
        click_through(page, "#test")
        assert page.locator("#result[data-action=test]").inner_text().startswith("Connection test: success")
        click_through(page, "#register")
        result = page.locator("#result[data-action=register]")
        assert "The module was created in RetailCRM" in result.inner_text()
        shoot(page, "retailcrm")
        pages.append(page.content())
        page.fill("input[name=domain]", "ftp://shop")
        click_through(page, "button[value=save]")
        assert page.locator("#error-domain").is_visible()
        page.goto(f"{b}/admin/100/retailcrm")
        pages.append(page.content())

        page.goto(f"{b}/admin/100/managers")
        assert page.locator("#save-mapping").is_hidden()
        row7 = page.locator("tr[data-user='7']")
        assert row7.locator(".phone-text").inner_text() == "150"
        assert page.locator("tr[data-user='9'] option[value='152']").inner_text() == "152 (User9 Test)"
        row7.locator("select").select_option("151")
        assert page.locator("tr[data-user='8'] select").input_value() == ""  # 151 left its old owner
        assert page.locator("#save-mapping").is_visible()
        click_through(page, "#save-mapping")
        assert "Saved" in page.locator("#result").inner_text()
        assert page.locator("tr[data-user='7'] .phone-text").inner_text() == "151"
        assert page.locator("tr[data-user='8'] .phone-text").inner_text() == "not assigned"
        assert page.locator("#last-synced").inner_text() != "never"
        shoot(page, "managers")
        pages.append(page.content())

    await chromium.run(steps)
    assert codes(fake_rc) == {"7": "151", "9": "152"}
    for html in pages:
        assert API_KEY not in html


def drawn(dot: Any) -> str:
    """A state's dot as Chromium lays it out: its size (not a missing glyph's box) and its colour."""
    box = dot.bounding_box()
    assert box is not None and box["width"] >= 8 and box["height"] >= 8
    colour: str = dot.evaluate("e => getComputedStyle(e).backgroundColor")
    return colour


@pytest.mark.parametrize("lang", ["en", "ru"])
async def test_amocrm_connects_through_oauth(
    db_dsn: str, make_config: Callable[..., Config], chromium: Browser, page: Any, lang: str
) -> None:
    t = translator(lang)
    async with FakeAmoCrm() as fake, started(make_config, db_dsn) as agent:
        pool = agent.parts.pool
        assert pool is not None
        fake.redirect_uri = agent.config.agent.public_url + "/amocrm/oauth/callback"
        await configure_amocrm(pool, agent.config.agent.state_dir, fake)
        await seed(pool)
        url = link(agent, "100")
        b = base(agent)
        pages: list[str] = []

        def steps() -> None:
            page.goto(url)
            page.goto(f"{b}/admin/100/amocrm?lang={lang}")
            status = page.locator("#amo-status")
            assert status.get_attribute("data-light") == "not_connected"
            expect(status).to_have_text(t("amo.light.not_connected"))
            unconnected = drawn(status.locator(".dot"))
            assert unconnected == "rgb(255, 255, 255)"  # an empty ring
            assert page.locator("#redirect-uri").input_value() == fake.redirect_uri
            page.click("#amo-connect")
            expect(page.locator("main")).to_contain_text(t("amo.cb.connected.title"))
            click_through(page, "#back")
            assert page.url == f"{b}/admin/100/amocrm"
            assert status.get_attribute("data-light") == "connected"
            expect(status).to_have_text(t("amo.light.connected"))
            assert drawn(status.locator(".dot")) == "rgb(26, 127, 55)" != unconnected  # --ok: green
            assert not EMOJI.search(page.locator("body").inner_text())
            assert page.locator("#amo-account").is_visible()
            page.locator("select[name=pipeline_id]").select_option("3001")
            page.locator("select[name=status_id]").select_option("40002")
            click_through(page, "#amocrm-settings button[value=save]")
            assert page.locator("select[name=status_id]").input_value() == "40002"
            shoot(page, "amocrm")
            pages.append(page.content())
            page.goto(f"{b}/admin/100/managers?crm=amocrm")
            icon = page.locator("span.phone svg.icon").first  # the phone drawn as inline SVG, not an emoji
            box = icon.bounding_box()
            assert box is not None and box["width"] > 0 and box["height"] > 0
            assert not EMOJI.search(page.locator("body").inner_text())
            pages.append(page.content())

        await chromium.run(steps)
        secrets = [
            fake.client_secret,
            *[str(v) for v in await pool.fetchrow("SELECT access_token, refresh_token FROM amocrm_tokens") or ()],
        ]
        for html in pages:
            for secret in secrets:
                assert secret not in html
