"""amoCRM pure parts: settings validation, plan on real recordings, webhook bodies, OAuth helpers."""

from __future__ import annotations

import time

import pytest

from connectors.amocrm import oauth
from connectors.amocrm.plan import plan
from connectors.amocrm.settings import SettingsError, parse
from connectors.amocrm.webhooks import parse_brackets, responsible_changes
from tests import recordings

BASE = {
    "host": "https://shop.amocrm.ru",
    "client_id": "5f2b8d9e-1c3a-4b7e-9f00-aa11bb22cc33",
    "client_secret": "Sx9kT2mQ7vW4yZ1aB8cD3eF6gH0jK5lN",
    "user_extensions": {"7": "150", "8": "151", "9": "152"},
}


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"host": "http://shop.amocrm.ru"}, "host"),
        ({"host": "https://www.amocrm.ru"}, "host"),
        ({"host": "https://evil.example.com"}, "host"),
        ({"user_extensions": {"1": "150", "2": "150"}}, "user_extensions.2"),
        ({"user_extensions": {"x": "150"}}, "user_extensions.x"),
        ({"unknown_caller": "drop"}, "unknown_caller"),
        ({"status_id": 5}, "status_id"),
        ({"task_due_minutes": 0}, "task_due_minutes"),
        ({"lead_tags": ["ok", ""]}, "lead_tags.1"),
        ({"proxy": "ftp://p"}, "proxy"),
        ({"access_token": "x"}, "access_token"),
    ],
)
def test_settings_errors_name_the_field(over: dict[str, object], field: str) -> None:
    with pytest.raises(SettingsError) as info:
        parse({**BASE, **over})
    assert info.value.field == field


def test_settings_round_trip_and_kommo() -> None:
    s = parse({**BASE, "host": "mycompany.kommo.com", "pipeline_id": "3001", "status_id": 40002})
    assert s.host == "https://mycompany.kommo.com" and s.is_kommo and s.pipeline_id == 3001
    assert len(s.webhook_secret) >= 32 and parse(s.to_json()) == s
    assert s.user_for_extension("151") == 8 and s.extension_for_user(9) == "152"


def test_plan_on_recordings() -> None:
    settings = parse(BASE)
    kinds: dict[str, int] = {}
    popups: dict[str, list[int]] = {}
    for name in recordings.NAMES:
        planned = [d for e in recordings.play(name) for d in plan(e, settings)]
        deliveries = [d for d in planned if d.kind == "call"]
        popups[name] = [d.payload["add"][0]["users"][0] for d in planned if d.kind == "event"]
        kinds[name] = len(deliveries)
        for d in deliveries:
            assert d.idempotency_key.startswith("amocrm:") and d.idempotency_key.endswith(":call")
    # live pop-ups: one per ringing mapped phone, for its manager; none for outgoing/internal-only rings
    assert popups["a_incoming_answered"] == [7] and popups["p_l_ring_group"] == [7, 8, 9]
    assert popups["i_queue_second_member"] == [8, 9] and popups["f_internal_150_to_151"] == []
    assert kinds["f_internal_150_to_151"] == 0  # internal: nothing
    assert all(v == 1 for k, v in kinds.items() if k != "f_internal_150_to_151")
    (missed,) = [d for e in recordings.play("p_b_incoming_missed") for d in plan(e, settings) if d.kind == "call"]
    assert missed.payload["task"] and missed.payload["call"]["call_status"] == 6
    (queue,) = [d for e in recordings.play("i_queue_second_member") for d in plan(e, settings) if d.kind == "call"]
    assert "task" not in queue.payload and queue.payload["call"]["responsible_user_id"] == 9
    (busy,) = [d for e in recordings.play("c_incoming_busy") for d in plan(e, settings) if d.kind == "call"]
    assert busy.payload["call"]["call_status"] == 7 and "task" in busy.payload
    (out,) = [d for e in recordings.play("e_outgoing_noanswer") for d in plan(e, settings)]
    assert out.payload["call"]["direction"] == "outbound" and "task" not in out.payload
    assert plan(recordings.play("a_incoming_answered")[-1], parse({**BASE, "enabled": False})) == []


def test_webhook_brackets_and_changes() -> None:
    body = parse_brackets(
        {
            "contacts[responsible][0][id]": "5",
            "contacts[responsible][0][responsible_user_id]": "9",
            "contacts[responsible][0][custom_fields][0][code]": "PHONE",
            "contacts[responsible][0][custom_fields][0][values][0][value]": "+375291234567",
            "contacts[responsible][0][custom_fields][0][values][1][value]": "+375447654321",
            "leads[status][0][id]": "77",
            "leads[status][0][status_id]": "142",
            "leads[update][0][id]": "78",
            "leads[update][0][responsible_user_id]": "3",
            "leads[update][0][old_responsible_user_id]": "4",
            "account[subdomain]": "shop",
            "weird]key": "x",
        }
    )
    assert body["account"] == {"subdomain": "shop"} and body["weird]key"] == "x"
    changes = responsible_changes(body)
    # a lead won or lost (status) may change who its caller is routed to (route_by_deal)
    assert [(c.entity, c.id) for c in changes] == [("contacts", 5), ("leads", 78), ("leads", 77)]
    assert changes[0].phones == ("+375291234567", "+375447654321")


def test_state_is_signed_expiring_and_bound_to_the_enterprise() -> None:
    signer = oauth.StateSigner(b"k" * 32)
    enterprise, nonce, _ = signer.verify(signer.issue("100"))
    assert enterprise == "100" and len(nonce) == 32
    with pytest.raises(oauth.StateError, match="expired"):
        signer.verify(signer.issue("100", now=time.time() - oauth.STATE_TTL_S - 5))
    with pytest.raises(oauth.StateError):
        oauth.StateSigner(b"x" * 32).verify(signer.issue("100"))


def test_referer_must_be_the_account() -> None:
    assert oauth.host_from_referer("shop.amocrm.ru", None) == "https://shop.amocrm.ru"
    assert oauth.host_from_referer("127.0.0.1:9000", "http://127.0.0.1:9000") == "http://127.0.0.1:9000"
    for bad in ("evil.com", "www.amocrm.ru", "shop.amocrm.ru.evil.com", "shop.amocrm.ru:8443", "127.0.0.1:1"):
        with pytest.raises(ValueError):
            oauth.host_from_referer(bad, "https://shop.amocrm.ru")
