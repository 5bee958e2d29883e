"""`pbx-agent check-pbx`: log in to each `[[pbx]]` the way the agent does (TCP, TLS or SSH; the same Login) and
say what works, before a first start or after a change to manager.conf.

It opens one more AMI session beside a running agent's (Asterisk takes several) and touches neither the
database nor the PBX locks. Per PBX: connected or why not; the Asterisk version (`CoreSettings`); which of the
actions the agent uses the AMI user may run (`ListCommands` lists exactly the actions the user's `write`
classes allow, as manager.c filters them); the trunks and phones and the extensions the PBX names (what the
agent learns at connect). Exit 0 when every PBX logs in and may run `CoreShowChannels` (without it the agent
cannot rebuild calls after a reconnect); 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.config.sections import Config, PbxSection
from agent.ingest.discovery import discover, learn_endpoints
from agent.ingest.link import AmiLink, AmiNotConnected, why
from agent.ingest.pipeline import channel_rules
from agent.web.health import HealthRegistry

# The actions the agent sends after Login and Ping (which need no class), with what each is for.
ACTIONS: dict[str, str] = {
    "CoreShowChannels": "rebuilding calls after a reconnect (write: system or reporting)",
    "Originate": "click-to-call (write: originate)",
    "PJSIPShowEndpoints": "telling trunks from phones, finding extensions (write: system)",
    "ExtensionStateList": "finding extensions from hints (write: call or reporting)",
}
REQUIRED = ("CoreShowChannels",)
LISTED = 8  # endpoints named per kind before "…"


@dataclass
class PbxCheck:
    name: str
    address: str
    error: str | None = None
    banner: str | None = None
    version: str | None = None
    allowed: dict[str, bool] = field(default_factory=dict)  # empty when ListCommands gave nothing
    trunks: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    extensions: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None and all(self.allowed.get(action, False) for action in REQUIRED)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pbx", metavar="NAME", help="only this [[pbx]] (default: every one)")
    parser.add_argument("--within", type=float, default=15.0, metavar="S", help="give each PBX S seconds (15)")


def main(config: Config, args: argparse.Namespace) -> int:
    chosen = [p for p in config.pbx if args.pbx in (None, p.name)]
    if not chosen:
        missing = f"no [[pbx]] named {args.pbx!r} in {config.path}" if args.pbx else "no [[pbx]] configured"
        print(f"pbx-agent check-pbx: {missing}", file=sys.stderr)
        return 2
    checks = asyncio.run(check_all(chosen, config.agent.default_region, args.within))
    for found in checks:
        print(report(found))
    return 0 if all(found.ok for found in checks) else 1


async def check_all(pbxes: list[PbxSection], region: str | None, within: float) -> list[PbxCheck]:
    return list(await asyncio.gather(*(check(pbx, region, within) for pbx in pbxes)))


async def check(pbx: PbxSection, region: str | None, within: float) -> PbxCheck:
    health = HealthRegistry().register(f"pbx:{pbx.name}", critical=True)
    link = AmiLink(pbx, lambda _events, _at: None, lambda _channels, _at: None, health)
    found = PbxCheck(pbx.name, f"{pbx.host}:{pbx.port}" + (f" via {link.connector.via}" if link.connector.via else ""))
    session = asyncio.create_task(link.session())
    logged_in = asyncio.create_task(link.connected.wait())
    try:
        async with asyncio.timeout(within):
            await asyncio.wait({session, logged_in}, return_when=asyncio.FIRST_COMPLETED)
            if not link.connected.is_set():
                found.error = why(session.exception() or AmiNotConnected("the PBX closed the connection"))
                return found
            found.banner = str(health.details.get("banner") or "")
            await _ask(link, pbx, region, found)
    except TimeoutError:
        found.error = f"no answer within {within:g} s"
    except AmiNotConnected:
        found.error = "the connection dropped during the check"
    finally:
        for task in (session, logged_in):
            task.cancel()
        await asyncio.gather(session, logged_in, return_exceptions=True)
        await link.connector.close()
    return found


async def _ask(link: AmiLink, pbx: PbxSection, region: str | None, found: PbxCheck) -> None:
    settings = _first(await link.send_action({"Action": "CoreSettings"}))
    found.version = settings.get("AsteriskVersion") if settings.get("Response") == "Success" else None
    commands = _first(await link.send_action({"Action": "ListCommands"}))
    if commands.get("Response") == "Success":
        found.allowed = {action: action in commands for action in ACTIONS}
    rules = channel_rules(pbx, region)
    learned = await learn_endpoints(link, rules)
    found.trunks, found.phones = learned.endpoints.trunks(), learned.endpoints.phones()
    found.extensions = await discover(link, rules)


def _first(answer: Any) -> Mapping[str, str]:
    messages = answer if isinstance(answer, list) else [answer]
    return messages[0] if messages else {}


def report(found: PbxCheck) -> str:
    """What one PBX's check found, a few lines for a person."""
    if found.error is not None:
        return f"{found.name} ({found.address}): NOT CONNECTED: {found.error}"
    version = f", Asterisk {found.version}" if found.version else ""
    lines = [f"{found.name} ({found.address}): connected ({found.banner}{version})"]
    if not found.allowed:
        lines.append("  actions: ListCommands gave no list; the AMI user's write classes could not be checked")
    for action, purpose in ACTIONS.items():
        if found.allowed:
            state = "ok" if found.allowed[action] else "NOT ALLOWED (or its module is not loaded)"
            lines.append(f"  {action}: {state} — {purpose}")
    lines.append(f"  trunks: {_named(found.trunks)}")
    lines.append(f"  phones: {_named(found.phones)}")
    lines.append(f"  extensions: {_named(found.extensions)}")
    return "\n".join(lines)


def _named(names: list[str]) -> str:
    if not names:
        return "none found"
    shown = ", ".join(names[:LISTED])
    return f"{len(names)}: {shown}" + (", …" if len(names) > LISTED else "")
