"""What the agent and the CRMs said, in the page's language: a pure reading of an error text as the agent stores
it (a delivery's `last_error`, an exchange's `error_message`, a PBX link's or a token's reason) or as a
connector raises it (`CrmError.outcome.error`), into catalogue headlines (`said.*` keys with their values) plus
the words that cannot be translated: the CRM's own (`crm`, shown quoted with lang="und") and a library's or an
exception's (`detail`, lang="en").

The texts stay English where they are made (logs, integration_logs, the JSON API); only the pages read them
here, so no stored row needs a code. A text that none of the patterns knows is shown as stored, quoted, under a
generic headline (`raw`): with an HTTP status it is the CRM's answer; without one it may be a message of the
agent's that this module does not know yet (tests/test_admin_one_language.py feeds it
every producer's messages).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass, field

Headline = tuple[str, dict[str, str]]


@dataclass(frozen=True, slots=True)
class Said:
    headlines: list[Headline] = field(default_factory=list)  # catalogue keys and values, shown joined by ": "
    crm: str | None = None  # the CRM's own words (any language)
    detail: str | None = None  # a library's or an exception's words (English)
    raw: bool = False  # not recognised: the text as stored is `crm`


S = r"(?P<seconds>\d+)"
EXCEPTION = r"(?P<exception>[A-Za-z_][\w.]*(?:Error|Exception|Timeout|Refused|Closed|Reset)\w*)"
# (pattern matched against the whole text, catalogue key); named groups: `crm` and `detail` are quoted words,
# `inner` is read again (a message wrapping another), the others are the key's values
PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(p, re.DOTALL), key)
    for p, key in (
        # connectors/http.py (transport)
        (r"timeout \(\w*\)", "said.timeout"),
        (r"bad URL \((?P<detail>.*)\)", "said.bad_url"),
        (r"connection error \((?P<detail>.*)\)", "said.connection"),
        (r"cannot reach the account: (?P<inner>.*)", "said.unreachable"),
        # RetailCRM answers (connectors/retailcrm/envelope.py, models.py, client.py)
        (r"HTTP (?P<status>\d+): HTML answer .*", "said.rc_html"),
        (r"no such RetailCRM account at this address .*", "said.rc_html_account"),
        (r"HTTP (?P<status>\d+): unreadable answer (?P<crm>.*)", "said.unreadable"),
        (r"HTTP (?P<status>\d+) without errorMsg", "said.http"),
        (r"wrong API key", "said.rc_wrong_key"),
        (r"no API key was sent", "said.rc_no_key"),
        (r"no such RetailCRM account", "said.rc_no_account"),
        (r"the API key may not call /api/credentials", "said.rc_no_credentials"),
        (r"the API key may not call (?P<methods>\S.*) \(allow .*\)", "said.rc_missing_methods"),
        (r"the account did not list the key's methods; not verified", "said.rc_unverified"),
        (r"the telephony module is not registered", "said.rc_not_registered"),
        (r"waiting to learn whether call (?P<call>.+)'s call-back task for this number was made", "said.task_waiting"),
        # amoCRM answers and tokens (connectors/amocrm/problem.py, session.py, tokens.py, oauth.py; admin/amocrm_api.py)
        (r"HTTP (?P<status>\d+) without a body", "said.http"),
        (r"HTTP (?P<status>\d+): (?P<crm>'.*'|\".*\")", "said.http"),
        (r"the amoCRM account is not paid \(402\): (?P<crm>.*)", "said.amo_unpaid"),
        (r"amoCRM account (?P<account>\S+) is blocked \(403\); paused for another " + S + " s", "said.amo_blocked"),
        (r"amoCRM account blocked \(403 to everything\): (?P<crm>.*)", "said.amo_blocked_all"),
        (r"amoCRM did not accept the token: (?P<inner>.*)", "said.amo_token_refused"),
        (r"amoCRM did not accept the authorization code: (?P<inner>.*)", "said.amo_code_refused"),
        (r"amoCRM refused the long-lived token \(401\).*", "said.amo_long_lived_refused"),
        (r"amoCRM refused the saved refresh token \((?P<inner>.*)\): a token refresh .*", "said.amo_refresh_lost"),
        (r"amoCRM refused the refresh token \((?P<inner>.*)\)\. Reconnect amoCRM\.", "said.amo_refresh_refused"),
        (r"client_id and client_secret are needed .*", "said.amo_keys_missing"),
        (r"amoCRM is not connected for this enterprise", "said.amo_not_connected"),
        (r"amoCRM tokens expired: (?P<inner>.*)", "said.amo_expired"),
        (r"amoCRM was disconnected( during a token refresh)?", "said.amo_disconnected"),
        (r"token refresh failed, will try again: (?P<inner>.*)", "said.amo_refresh_retry"),
        (r"token answer without access_token/refresh_token", "said.amo_token_answer"),
        (r"(?P<crm>.+ \((?P<status>\d{3})\)(: .*)?)", "said.crm_refused"),  # problem+json: `title (status): detail`
        # the outbox and its dispatch (agent/delivery)
        (r"(?P<crm_name>\w+) is not enabled for enterprise (?P<enterprise>\S+)", "said.crm_disabled"),
        (r"(?P<crm_name>\w+) account paused for " + S + " s after repeated failures", "said.paused"),
        (r"no complete answer within " + S + " s", "said.no_answer"),
        (r"rejected by the CRM", "said.rejected"),
        (r"temporary failure", "said.temporary"),
        # click-to-call (connectors/retailcrm/routes.py) and the PBX links (agent/ingest)
        (r"extension (?P<extension>\S+) is not mapped to a RetailCRM manager .*", "said.call_unmapped"),
        (r"the PBX is not connected; the call was not placed, try again later", "said.pbx_down"),
        (r"the PBX refused the call: (?P<detail>.*)", "said.pbx_refused"),
        (r"the PBX did not answer in time; the call may or may not start", "said.pbx_timeout"),
        (r"waiting for the PBX lock", "said.pbx_lock_wait"),
        (r"lost the PBX lock", "said.pbx_lock_lost"),
        (r"login refused: (?P<detail>.*)", "said.ami_login_refused"),
        # the admin pages' own refusals of a CRM operation (admin/retailcrm_api.py Problem, admin/views_managers.py)
        (r"no enterprise (?P<number>\S+)", "error.no_enterprise"),
        (r"retailcrm is not configured for enterprise \S+", "rc.problem.not_configured"),
        (r"(?P<crm_name>retailcrm|amocrm): (?P<inner>.*)", "said.from_crm"),
        # an exception's own text, `TypeName: message`
        (EXCEPTION + r"(?:: (?P<detail>.*))?", "said.exception"),
    )
]


# what an unknown text is, by where it was stored: a PBX link's and a catch-up's errors are the operating system's
# or a library's words (English) under the part's own headline
FALLBACK = {"pbx": "said.ami_down", "backfill": "said.backfill_failed", "component": "said.component"}


def said(text: object, http_status: int | None = None, kind: str = "crm") -> Said | None:
    """The headlines and quoted words of an error text; None when there is no text. `kind` says whose text it
    is: "crm" (an exchange, a delivery), "pbx" (an AMI link's state), "backfill" (a CDR/CEL catch-up),
    "component" (a part's health)."""
    if text is None or text == "":
        return None
    found = _read(str(text).strip(), depth=0)
    if found.raw and kind in FALLBACK:
        return Said([(FALLBACK[kind], {})], detail=found.crm)
    if found.raw and http_status:
        return Said([("said.crm_refused", {"status": str(http_status)})], crm=found.crm, raw=True)
    return found


def as_html(t: Callable[..., str], text: object, http_status: int | None = None, kind: str = "crm") -> str:
    """`said` as the pages show it (the `said` macro of admin/templates/_macros.html, and the pages outside the
    admin site): the headlines in `t`'s language, the untranslatable words quoted with their language."""
    found = said(text, http_status, kind)
    if found is None:
        return ""
    css = "said said-raw" if found.raw and not http_status else "said"
    out = [f'<span class="{css}">', html.escape(": ".join(t(key, **values) for key, values in found.headlines))]
    if found.detail:
        out.append(f' <q class="said-detail" lang="en">{html.escape(found.detail)}</q>')
    if found.crm:
        out.append(f' <q class="crm-said" lang="und">{html.escape(found.crm)}</q>')
    out.append("</span>")
    return "".join(out)


def _read(text: str, depth: int) -> Said:
    for pattern, key in PATTERNS:
        match = pattern.fullmatch(text)
        if match is None:
            continue
        groups = {k: v for k, v in match.groupdict().items() if v is not None}
        crm, detail, inner = groups.pop("crm", None), groups.pop("detail", None), groups.pop("inner", None)
        head: list[Headline] = [(key, groups)]
        if inner is not None and depth < 3:
            rest = _read(inner, depth + 1)
            return Said(head + rest.headlines, crm=rest.crm, detail=rest.detail)
        return Said(head, crm=crm, detail=detail)
    return Said([("said.other", {})], crm=text, raw=True)
