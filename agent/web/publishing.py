"""Whether the CRMs in the cloud can reach the agent at `[agent] public_url` at all, judged from the URL alone.

RetailCRM and amoCRM call the agent from their own servers (the module's baseUrl, makeCallUrl and activity,
amoCRM's webhooks and OAuth redirect, the recording links they play), so a loopback or private address, a
name that only a LAN resolves, or plain http (every request and recording in clear text) cannot serve them.
This says which, for the overview's warning and for refusing to register a module that would be unreachable.
"""

from __future__ import annotations

import ipaddress
from typing import Literal
from urllib.parse import urlsplit

from agent.config.sections import AgentSection

Problem = Literal["loopback", "private", "local_name", "http"]
LOCAL_SUFFIXES = (".local", ".lan", ".internal", ".localdomain", ".home", ".corp", ".localhost")


def unreachable_because(url: str) -> Problem | None:
    """The reason `url` cannot be reached from the Internet (the worst one), or None when it may be."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None:
        if address.is_loopback or address.is_unspecified:
            return "loopback"
        if address.is_private or address.is_link_local or address.is_reserved:
            return "private"
    elif host == "localhost" or "." not in host or host.endswith(LOCAL_SUFFIXES):
        return "loopback" if host == "localhost" or host.endswith(".localhost") else "local_name"
    if parts.scheme != "https":
        return "http"
    return None


EXPLAINED: dict[Problem, str] = {
    "loopback": "a loopback address only this machine can open",
    "private": "a private address the CRM's servers on the Internet cannot reach",
    "local_name": "a name only your network resolves",
    "http": "plain http, unencrypted",
}


def registration_refused(agent: AgentSection, crm: str) -> str | None:
    """Why a CRM module must not be registered at `public_url` now (None: go ahead)."""
    problem = unreachable_because(agent.public_url)
    if problem is None or agent.allow_private_public_url:
        return None
    return (
        f"[agent] public_url {agent.public_url} is {EXPLAINED[problem]}: {crm} could not call the agent. Publish it "
        "behind a reverse proxy with TLS and set public_url to that https address (README: «Publishing to the cloud "
        "CRMs»), or set [agent] allow_private_public_url = true on a test installation"
    )
