"""Issue 19, items 2 and 5 in a real browser (tests/browser.py), in English and in Russian: the Overview warns
while `[agent] public_url` cannot be reached from the CRMs' servers and is silent at a public https address;
«Save and register» on the RetailCRM page is refused at such an address, saying why in the page's language;
a stored call shows at the enterprise's local time on the calls page and the call page, the zone named at
the foot of the page. Texts are the catalogue's for the language the page is in."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from admin.i18n import translator
from agent.app import Agent
from agent.config.sections import Config
from tests.admin_client import base, link
from tests.browser import Browser, expect, seed
from tests.crm_setup import API_KEY, configure_retailcrm, running
from tests.fakes.retailcrm import FakeRetailCrm

LANGS = pytest.mark.parametrize("lang", ["en", "ru"])


@pytest.fixture
async def fake_rc() -> AsyncIterator[FakeRetailCrm]:
    async with FakeRetailCrm(api_key=API_KEY) as fake:
        yield fake


@LANGS
async def test_the_overview_warns_while_public_url_is_loopback(
    running_agent: Agent, chromium: Browser, page: Any, lang: str
) -> None:
    t = translator(lang)
    await seed(running_agent.parts.pool)
    public = running_agent.config.agent.public_url
    assert public.startswith("http://127.0.0.1")  # the default

    def steps() -> None:
        page.goto(link(running_agent, "100"))
        page.click(f".langs a[hreflang={lang}]")
        warning = page.locator("#public-url-warning")
        expect(warning).to_have_attribute("data-problem", "loopback")
        expect(warning).to_be_visible()
        for text in (t("publish.title", url=public), t("publish.loopback"), t("publish.how")):
            expect(warning).to_contain_text(text)

    await chromium.run(steps)


@LANGS
async def test_registering_at_a_loopback_public_url_is_refused_in_the_pages_language(
    db_dsn: str, make_config: Callable[..., Config], fake_rc: FakeRetailCrm, chromium: Browser, page: Any, lang: str
) -> None:
    t = translator(lang)
    config = make_config(db_dsn, allow_private_public_url=False)  # as installed: no test exemption
    async with running(config) as agent:
        await configure_retailcrm(agent.parts.pool, config.agent.state_dir, fake_rc)
        await seed(agent.parts.pool)

        def steps() -> None:
            page.goto(link(agent, "100"))
            page.goto(f"{base(agent)}/admin/100/retailcrm?lang={lang}")
            page.get_by_role("button", name=t("rc.register")).click()  # «Save and register»
            result = page.locator("#result[data-action=register]")
            expect(result.locator("h2")).to_have_text(f"{t('rc.result.register')}: {t('rc.failed')}")
            refusal = t("rc.problem.unpublished", url=config.agent.public_url)
            expect(result.locator("#result-error")).to_contain_text(refusal)

        await chromium.run(steps)
    assert not [r for r in fake_rc.requests if "integration-modules" in r.path]  # RetailCRM was never asked


@LANGS
async def test_no_warning_at_a_public_https_url(
    db_dsn: str, make_config: Callable[..., Config], chromium: Browser, page: Any, lang: str
) -> None:
    t = translator(lang)
    config = make_config(db_dsn, allow_private_public_url=False, public_url="https://pbx.example.com")
    async with running(config) as agent:
        await seed(agent.parts.pool)

        def steps() -> None:
            page.goto(link(agent, "100"))
            page.click(f".langs a[hreflang={lang}]")
            expect(page.locator("nav.sections a.active")).to_have_text(t("nav.overview"))
            expect(page.locator("h2").first).to_have_text(t("overview.today"))  # the page is drawn, in its language
            expect(page.locator("#public-url-warning")).to_have_count(0)

        await chromium.run(steps)


@LANGS
async def test_a_call_shows_at_local_time_with_the_zone_named(
    running_agent: Agent, chromium: Browser, page: Any, lang: str
) -> None:
    t = translator(lang)
    pool = running_agent.parts.pool
    await seed(pool)
    ended = datetime(2026, 11, 23, 17, 42, 5, tzinfo=UTC)  # 20:42:05 in Minsk, the zone of the agent's region BY
    await pool.execute(
        "INSERT INTO calls (call_id, enterprise_number, direction, phone, extensions, answered_by, result,"
        " started_at, ended_at) VALUES ('t1', '100', 'in', '+375291112233', '{150}', '150', 'answered', $1, $2)",
        ended.replace(minute=40),
        ended,
    )
    assert running_agent.config.agent.default_region == "BY"
    zone = t("footer.zone", zone="Europe/Minsk")

    def steps() -> None:
        page.goto(link(running_agent, "100"))
        page.goto(f"{base(running_agent)}/admin/100/calls?date=2026-11-23&lang={lang}")
        expect(page.locator("h1")).to_have_text(t("nav.calls"))
        expect(page.locator("#page-zone")).to_have_text(zone)
        listed = page.locator("table.calls tbody tr a")
        expect(listed).to_have_text("2026-11-23 20:42:05")
        listed.click()
        page.wait_for_url("**/admin/100/calls/t1")
        for label, shown in (("call.started_at", "2026-11-23 20:40:05"), ("call.ended_at", "2026-11-23 20:42:05")):
            term = page.locator("main dl.fields dt", has_text=t(label))
            expect(term.locator("xpath=following-sibling::dd[1]")).to_have_text(shown)
        assert "17:4" not in page.locator("main").inner_text()  # never the stored UTC
        expect(page.locator("#page-zone")).to_have_text(zone)

    await chromium.run(steps)
