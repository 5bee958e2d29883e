"""The admin pages in a real browser: Debian's Chromium driven by Playwright (never `playwright install`).

The browser and its fixtures: tests/browser.py. Set ADMIN_SCREENSHOTS=docs/screenshots to refresh the
screenshots in the repository.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import pytest

from admin.i18n import translator
from agent.app import Agent
from agent.config.sections import Config
from agent.store.database import Pool
from tests import recordings
from tests.admin_client import add_calls, base, link
from tests.browser import Browser, click_through, expect, seed, shoot
from tests.crm_setup import API_KEY, configure_retailcrm, drained, running
from tests.fakes.ami import FakeAmi
from tests.fakes.retailcrm import FakeRetailCrm
from tests.test_ami_link import pbx_for


@pytest.mark.parametrize("lang", ["en", "ru"])
async def test_sign_in_by_link_once_and_switch_language(
    running_agent: Agent, chromium: Browser, page: Any, lang: str
) -> None:
    await seed(running_agent.parts.pool)
    url = link(running_agent, "100")
    other = "ru" if lang == "en" else "en"
    t, o = translator(lang), translator(other)

    def steps() -> None:
        page.goto(url)
        assert page.url.endswith("/admin/100/overview")
        assert page.locator("h1").inner_text().startswith("100")
        page.click(f".langs a[hreflang={lang}]")
        expect(page.locator("nav.sections a.active")).to_have_text(t("nav.overview"))
        page.click(f".langs a[hreflang={other}]")
        expect(page.locator("nav.sections a.active")).to_have_text(o("nav.overview"))
        page.locator("nav.sections").get_by_role("link", name=o("nav.calls"), exact=True).click()
        page.wait_for_url("**/admin/100/calls")
        expect(page.locator("h1")).to_have_text(o("nav.calls"))
        page.click(f".langs a[hreflang={lang}]")
        expect(page.locator("h1")).to_have_text(t("nav.calls"))
        response = page.goto(url)  # the same link again in the browser it signed in: the site opens
        assert response.status == 200 and page.url.endswith("/admin/100/overview")
        expect(page.locator("nav.sections a.active")).to_have_text(t("nav.overview"))  # in the language chosen
        page.context.clear_cookies()  # another browser (a messenger's preview): the link is spent
        response = page.goto(f"{url}&lang={lang}")
        assert response.status == 401
        expect(page.locator("main")).to_contain_text(t("error.link_used"))

    await chromium.run(steps)


async def test_a_viewer_has_no_buttons_and_its_posts_are_refused(
    running_agent: Agent, chromium: Browser, page: Any
) -> None:
    pool = running_agent.parts.pool
    assert pool is not None
    await seed(pool)
    await pool.execute(
        "INSERT INTO deliveries (idempotency_key, enterprise_number, integration_type, kind, payload,"
        " status, attempts, last_error) VALUES ('retailcrm:x:1', '100', 'retailcrm', 'calls_upload',"
        " '{}', 'failed', 1, 'Bad value')"
    )
    url = link(running_agent, "100", role="viewer")
    b = base(running_agent)

    def steps() -> None:
        page.goto(url)
        page.goto(f"{b}/admin/100/log")
        assert "Bad value" in page.content()
        assert page.locator("button.retry").count() == 0
        page.goto(f"{b}/admin/100/extensions")
        assert "Anna Petrova" in page.content()
        assert page.locator("main form").count() == 0
        token = page.locator("input[name=csrf_token]").first.get_attribute("value")
        answer = page.request.post(f"{b}/admin/100/log", form={"csrf_token": token, "delivery": "1"})
        assert answer.status == 403
        answer = page.request.post(
            f"{b}/admin/100/extensions", form={"csrf_token": token, "action": "remove", "phone_number": "150"}
        )
        assert answer.status == 403

    await chromium.run(steps)
    assert await pool.fetchval("SELECT status FROM deliveries") == "failed"
    assert await pool.fetchval("SELECT count(*) FROM user_internal_phones WHERE enterprise_number = '100'") == 3


async def test_a_forged_csrf_token_is_rejected_and_real_forms_work(
    running_agent: Agent, chromium: Browser, page: Any
) -> None:
    pool = running_agent.parts.pool
    assert pool is not None
    await seed(pool)
    url = link(running_agent, "100")
    b = base(running_agent)

    def steps() -> None:
        page.goto(url)
        page.goto(f"{b}/admin/100/extensions")
        form = page.locator("form.add-extension")
        form.locator("input[name=phone_number]").fill("160")
        form.locator("input[name=display_name]").fill("Forged")
        page.evaluate("document.querySelector('form.add-extension input[name=csrf_token]').value = '00'.repeat(32)")
        click_through(page, form.locator("button"))
        assert "CSRF" in page.content()
        page.goto(f"{b}/admin/100/extensions")
        form = page.locator("form.add-extension")
        form.locator("input[name=phone_number]").fill("16x")
        click_through(page, form.locator("button"))
        assert page.locator("#error-phone_number").is_visible()
        page.locator("form.add-extension input[name=phone_number]").fill("160")
        page.locator("form.add-extension input[name=display_name]").fill("Vera")
        click_through(page, "form.add-extension button")
        assert page.url.endswith("/admin/100/extensions")
        assert page.locator("input[value=Vera]").count() == 1
        shoot(page, "extensions")

    await chromium.run(steps)
    names = {r["display_name"] for r in await pool.fetch("SELECT display_name FROM user_internal_phones")}
    assert "Forged" not in names and "Vera" in names


async def test_another_enterprise_is_refused(running_agent: Agent, chromium: Browser, page: Any) -> None:
    await seed(running_agent.parts.pool)
    url = link(running_agent, "100")
    b = base(running_agent)

    def steps() -> None:
        page.goto(url)
        for path in ("200/overview", "200/calls", "200/log.json", "instance"):
            response = page.goto(f"{b}/admin/{path}")
            assert response.status == 403, path
        assert "another enterprise" in page.goto(f"{b}/admin/200/extensions").text()

    await chromium.run(steps)


@pytest.fixture
async def fake_crm() -> AsyncIterator[FakeRetailCrm]:
    async with FakeRetailCrm(api_key=API_KEY) as fake:
        yield fake


async def test_a_replayed_call_with_its_deliveries_and_retry(
    fake_crm: FakeRetailCrm, pool: Pool, db_dsn: str, make_config: Callable[..., Config], chromium: Browser, page: Any
) -> None:
    directory = recordings.recordings_dir()
    ami = FakeAmi(directory / "p_b_incoming_missed.ami", speed=math.inf)
    await ami.start()
    try:
        config = replace(make_config(db_dsn), pbx=(pbx_for(ami),))
        await configure_retailcrm(pool, config.agent.state_dir, fake_crm, popup_in=False, popup_hangup=False)
        await seed(pool)
        await add_calls(pool, "100", 12)
        fake_crm.fail_next(
            1,
            status=400,
            body={"success": False, "errorMsg": "Calls are not loaded", "errors": {"calls[0].result": "Bad value"}},
        )
        async with running(config) as agent:
            await ami.wait_finished(within=10)
            await drained(pool, at_least=1)
            call_id = await stored_call(pool)
            failed = await pool.fetchval("SELECT id FROM deliveries WHERE status = 'failed'")
            assert call_id and failed
            await _browse_the_call(agent, chromium, page, call_id, pool)
    finally:
        await ami.stop()
    assert len(fake_crm.calls) == 1


async def stored_call(pool: Pool) -> str:
    """The recorded call's id, once the call store has written it (it writes off the AMI path)."""
    async with asyncio.timeout(10):
        while True:
            call_id = await pool.fetchval("SELECT call_id FROM calls WHERE pbx = 'office'")
            if call_id:
                return str(call_id)
            await asyncio.sleep(0.05)


async def _browse_the_call(agent: Agent, chromium: Browser, page: Any, call_id: str, pool: Pool) -> None:
    url = link(agent, None)
    token = url.split("token=")[1]
    b = base(agent)
    pages: list[str] = []

    def open_call() -> None:
        page.goto(url)
        assert page.url.endswith("/admin/instance")
        shoot(page, "instance")
        page.goto(f"{b}/admin/100/overview")
        shoot(page, "overview")
        pages.append(page.content())
        page.goto(f"{b}/admin/100/calls?number=" + "+375291112233")  # a filter that finds nothing
        page.goto(f"{b}/admin/100/calls")
        shoot(page, "calls")
        pages.append(page.content())
        click_through(page, f"a[href='calls/{call_id}']")
        assert page.url.endswith(f"/admin/100/calls/{call_id}")
        section = page.locator(".delivery", has_text="calls_upload")
        assert "Bad value" in section.inner_text()
        pages.append(page.content())
        click_through(page, section.locator("button.retry"))
        assert page.url.endswith(f"/admin/100/calls/{call_id}")

    def after_retry() -> None:
        page.reload()
        section = page.locator(".delivery", has_text="calls_upload")
        assert section.locator(".badge-done").count() == 1
        assert section.locator("button.retry").count() == 0
        page.locator(".delivery details summary").first.click()
        shoot(page, "call")
        pages.append(page.content())
        page.goto(f"{b}/admin/100/log")
        shoot(page, "log")
        pages.append(page.content())
        page.goto(f"{b}/admin/100/log.json")
        pages.append(page.content())
        cookie = next(c["value"] for c in page.context.cookies() if c["name"] == "pbx_admin")
        for html in pages:
            assert API_KEY not in html and token not in html and cookie not in html

    await chromium.run(open_call)
    await drained(pool, at_least=1)
    await chromium.run(after_retry)
