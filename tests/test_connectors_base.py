"""connectors.base masking and connectors.http helpers (Retry-After, classification, token bucket)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from agent.life.masking import mask, mask_data, mask_text
from connectors.base import answer_id
from connectors.http import (
    RateLimiter,
    TokenBucket,
    classify_exception,
    classify_status,
    parse_retry_after,
    retailcrm_route,
)

KEY = "NsX6ZE1W6C8vOkkcNm2NBNLzwVJxLNvl"


def test_mask_long_and_short() -> None:
    assert mask(KEY) == "NsX6…LNvl"
    assert mask("short") == "***"
    assert mask("") == "***"


def test_mask_data_masks_keys_values_urls_and_query_strings() -> None:
    data: dict[str, Any] = {
        "url": f"https://x.retailcrm.ru/api/v5/users?apiKey={KEY}&page=1",
        "headers": {"X-API-KEY": KEY, "Accept": "json"},
        "form": {"apiKey": KEY, "event": '{"phone": "1"}'},
        "nested": [f"key is {KEY}", {"token": "abc"}],
        "n": 5,
    }
    out = mask_data(data, [KEY])
    assert KEY not in repr(out)
    assert out["headers"]["X-API-KEY"] == "NsX6…LNvl"
    assert out["headers"]["Accept"] == "json"
    assert out["url"].endswith("apiKey=NsX6…LNvl&page=1")
    assert out["nested"][1]["token"] == "***"
    assert out["n"] == 5
    assert data["headers"]["X-API-KEY"] == KEY  # a copy


def test_mask_text_catches_unknown_secrets_in_key_value_pairs() -> None:
    assert mask_text("GET /x?apikey=zzzzzzzzzzzzzzzzzzzzzz&a=1") == "GET /x?apikey=zzzz…zzzz&a=1"
    assert mask_text('{"access_token": "abcdefghijklmnopqrstu"}') == '{"access_token": "abcd…rstu"}'
    assert mask_text(f"x%20{KEY}", [KEY]) == "x%20NsX6…LNvl"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, "success"),
        (201, "success"),
        (400, "permanent"),
        (403, "permanent"),
        (404, "permanent"),
        (405, "permanent"),
        (460, "permanent"),
        (429, "transient"),
        (500, "transient"),
        (502, "transient"),
        (503, "transient"),
    ],
)
def test_classify_status(status: int, expected: str) -> None:
    assert classify_status(status) == expected


def test_classify_exceptions() -> None:
    assert classify_exception(httpx.ReadTimeout("t"))[0] == "transient"
    assert classify_exception(httpx.ConnectError("refused"))[0] == "transient"
    assert classify_exception(httpx.UnsupportedProtocol("ftp"))[0] == "permanent"


def test_retry_after_seconds_date_and_garbage() -> None:
    now = datetime(2026, 1, 15, 9, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Thu, 15 Jan 2026 09:00:30 GMT", now) == 30.0
    assert parse_retry_after("Thu, 15 Jan 2026 08:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


async def test_token_bucket_paces_with_injected_clock() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        await bucket.acquire()
    assert clock.now == pytest.approx(0.4)  # first free, then one every 100 ms
    clock.now += 5  # idle: refills only up to capacity 1
    await bucket.acquire()
    await bucket.acquire()
    assert clock.now == pytest.approx(5.5)


async def test_rate_limiter_separates_accounts_and_telephony() -> None:
    clock = FakeClock()
    limiter = RateLimiter(retailcrm_route, clock=clock, sleep=clock.sleep)
    await limiter.acquire("a", "/api/v5/users")
    await limiter.acquire("b", "/api/v5/users")
    await limiter.acquire("a", "/api/v5/telephony/call/event")
    assert clock.now == 0
    await limiter.acquire("a", "/api/v5/telephony/call/event")
    assert clock.now == pytest.approx(1 / 40)
    await limiter.acquire("a", "/api/v5/users")
    assert clock.now == pytest.approx(0.1)
    assert retailcrm_route("/api/v5/telephony/manager") == ("telephony", 40.0)
    assert retailcrm_route("/api/credentials") == ("general", 10.0)


async def test_an_urgent_acquire_takes_the_token_held_back_for_it_and_the_rate_holds() -> None:
    bucket = TokenBucket(100)
    order: list[str] = []
    three_granted = asyncio.Event()

    async def take(name: str, urgent: bool = False) -> None:
        await bucket.acquire(urgent=urgent)
        order.append(name)
        if len(order) == 3:
            three_granted.set()

    began = time.monotonic()
    backlog = [asyncio.create_task(take(f"delivery-{i}")) for i in range(50)]  # half a second of backlog
    await three_granted.wait()
    asked = len(order)
    await take("lookup", urgent=True)
    waited_behind = order.index("lookup") - asked  # ordinary ones granted after the lookup asked
    await asyncio.gather(*backlog)
    assert waited_behind == 0, order  # the token held back for it: no wait at all
    assert time.monotonic() - began >= (len(order) - 1) / 100 * 0.98  # both lanes together keep to the rate


@pytest.mark.parametrize(
    ("answered", "taken"),
    [
        (123, 123),
        ("123", 123),
        (0, None),
        ("0", None),
        (True, None),
        ("²", None),
        ("12a", None),
        (None, None),
        (1.0, None),
    ],
)
def test_an_answered_id_is_an_int_or_a_string_of_digits(answered: object, taken: int | None) -> None:
    assert answer_id(answered) == taken
