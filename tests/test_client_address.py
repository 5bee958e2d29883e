"""The client's address behind a reverse proxy: X-Forwarded-For believed only as far as the proxies are trusted
(`[http] trusted_proxies`), so a sign-in lockout keys on the person, not on the proxy everyone comes through."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest

from admin import passwords
from agent.config.load import load
from agent.config.sections import Config, ConfigError, HttpSection
from agent.web.client_address import client_address
from tests.crm_setup import running
from tests.test_admin_password import PASSWORD, setup, sign_in

LOOPBACK = HttpSection().trusted_proxies
OFFICE = (*LOOPBACK, ipaddress.ip_network("10.0.0.0/8"))


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "client"),
    [
        ("127.0.0.1", [], LOOPBACK, "127.0.0.1"),
        ("127.0.0.1", ["203.0.113.7"], LOOPBACK, "203.0.113.7"),
        ("198.51.100.9", ["203.0.113.7"], LOOPBACK, "198.51.100.9"),  # not a proxy of ours: its header is noise
        ("127.0.0.1", ["203.0.113.7"], (), "127.0.0.1"),  # nobody trusted
        # what the client wrote itself (left of the first untrusted hop) is never read
        ("127.0.0.1", ["1.1.1.1, 203.0.113.7, 10.0.0.2"], OFFICE, "203.0.113.7"),
        ("127.0.0.1", ["1.1.1.1, 203.0.113.7", "10.0.0.2"], OFFICE, "203.0.113.7"),  # several header lines
        ("127.0.0.1", ["10.0.0.3, 10.0.0.2"], OFFICE, "10.0.0.3"),  # every hop a proxy: the farthest
        ("127.0.0.1", ["203.0.113.7, not-an-address"], LOOPBACK, "127.0.0.1"),  # garbage: the last proxy known
        ("::1", ["[2001:db8::5]:51234"], LOOPBACK, "2001:db8::5"),
        ("::1", ["203.0.113.7:51234"], LOOPBACK, "203.0.113.7"),
        ("::ffff:127.0.0.1", ["2001:db8::5"], LOOPBACK, "2001:db8::5"),  # an IPv4 peer on a dual-stack socket
    ],
)
def test_the_client_behind_the_proxies(
    peer: str, forwarded: list[str], trusted: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...], client: str
) -> None:
    assert client_address(peer, forwarded, trusted) == client


def test_trusted_proxies_in_the_config(tmp_path: Path) -> None:
    cfg = tmp_path / "agent.toml"
    cfg.write_text("[http]\n")
    assert load(cfg).http.trusted_proxies == LOOPBACK
    cfg.write_text('[http]\ntrusted_proxies = ["10.1.2.3", "192.168.0.0/16"]\n')
    assert load(cfg).http.trusted_proxies == (
        ipaddress.ip_network("10.1.2.3/32"),
        ipaddress.ip_network("192.168.0.0/16"),
    )
    cfg.write_text("[http]\ntrusted_proxies = []\n")
    assert load(cfg).http.trusted_proxies == ()
    cfg.write_text('[http]\ntrusted_proxies = ["proxy.lan"]\n')
    with pytest.raises(ConfigError, match="trusted_proxies"):
        load(cfg)


async def lock_out(agent: object, http: aiohttp.ClientSession) -> None:
    for _ in range(passwords.FAILURES_MAX):
        await sign_in(agent, http, "100", "not the password")  # type: ignore[arg-type]


def through_proxy(client: str) -> aiohttp.ClientSession:
    """A browser whose requests reach the agent through a proxy on loopback that names it in X-Forwarded-For."""
    headers = {"Accept-Language": "en", "X-Forwarded-For": client}
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), headers=headers)


async def test_behind_a_proxy_one_guesser_does_not_lock_everyone_out(
    db_dsn: str, make_config: Callable[..., Config]
) -> None:
    async with running(make_config(db_dsn)) as agent:
        await setup(agent)
        async with through_proxy("203.0.113.66") as guesser:
            await lock_out(agent, guesser)
            status, _, _ = await sign_in(agent, guesser, "100", PASSWORD)
            assert status == 429
        async with through_proxy("203.0.113.7") as manager:
            status, url, _ = await sign_in(agent, manager, "100", PASSWORD)
            assert status == 200 and url.endswith("/admin/100/overview")
        keys = await agent.parts.pool.fetch("SELECT DISTINCT client FROM admin_password_failures")
        assert [r["client"] for r in keys] == ["203.0.113.66"]


async def test_a_forwarded_for_from_an_untrusted_peer_is_ignored(
    db_dsn: str, make_config: Callable[..., Config]
) -> None:
    config = make_config(db_dsn)
    config = replace(config, http=replace(config.http, trusted_proxies=()))
    async with running(config) as agent:
        await setup(agent)
        async with through_proxy("203.0.113.66") as guesser:
            await lock_out(agent, guesser)
        async with through_proxy("203.0.113.7") as other:  # a header anyone can write: still the same client
            status, _, _ = await sign_in(agent, other, "100", PASSWORD)
            assert status == 429
