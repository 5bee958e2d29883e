"""amoCRM's OAuth result page speaks the admin site's language (its catalogue, its stylesheet): a Russian page
carries none of the English texts, and what amoCRM said comes after, escaped."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request

from admin import amocrm_api, i18n
from admin.api import error
from agent.parts.adapters import result_page

KEYS = (
    "widget",
    "no_state",
    "bad_state",
    "denied",
    "no_settings",
    "wrong_account",
    "used",
    "refused",
    "connected",
    "gone",
)


@pytest.mark.parametrize("key", KEYS)
def test_every_result_in_both_languages(key: str) -> None:
    for lang, other in (("ru", "en"), ("en", "ru")):
        request = make_mocked_request("GET", "/amocrm/oauth/callback", headers={"Accept-Language": lang})
        page = result_page(
            request, 400, key, "/admin/1/amocrm", "<b>amo</b> said", number="1", host="x.amocrm.ru", n="1"
        )
        body = page.text or ""
        assert f"<html lang='{lang}'>" in body and "/admin/static/admin.css" in body
        mine, theirs = i18n.catalog(lang), i18n.catalog(other)
        assert mine[f"amo.cb.{key}.title"] in body and mine["amo.cb.back"] in body
        assert theirs[f"amo.cb.{key}.title"] not in body or theirs[f"amo.cb.{key}.title"] == mine[f"amo.cb.{key}.title"]
        assert theirs["amo.cb.back"] not in body
        assert "&lt;b&gt;amo&lt;/b&gt; said" in body  # amoCRM's words, escaped


def test_a_refused_code_is_read_in_the_pages_language_with_amocrms_words_quoted() -> None:
    refused = error(
        400, "amoCRM did not accept the authorization code: HTTP 400: 'Authorization code has been revoked'"
    )
    for lang in i18n.LANGS:
        request = make_mocked_request("GET", "/amocrm/oauth/callback", headers={"Accept-Language": lang})
        body = result_page(request, 400, "refused", "/admin/1/amocrm", amocrm_api.refusal(refused)).text or ""
        assert i18n.catalog(lang)["said.amo_code_refused"] in body
        assert '<q class="crm-said" lang="und">&#x27;Authorization code has been revoked&#x27;</q>' in body
        assert lang == "en" or "did not accept" not in body  # the API's English sentence is not shown as it is
