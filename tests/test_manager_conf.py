"""The README's recommended manager.conf lets through every event the agent reads, and allows every action it sends.

The events come from the code: the call tracker's handler table (a new handler is covered without touching this
test), the phone states smart redirect follows, and `Reload` (the pipeline asks about the endpoints again)."""

from __future__ import annotations

import re
from pathlib import Path

from agent.ingest.link import EVENT_CLASSES
from agent.tracking import tracker

README = Path(__file__).resolve().parent.parent / "README.md"
# what agent.tracking.extstates and agent.ingest.pipeline read besides the tracker
OTHER_EVENTS = {"ExtensionStatus", "DeviceStateChange", "Reload", "FullyBooted"}


def manager_conf() -> dict[str, str]:
    text = README.read_text(encoding="utf-8")
    block = text[text.index("### The AMI user") :]
    block = block[block.index("```ini") + len("```ini") : block.index("```", block.index("```ini") + 6)]
    section = block[block.index("[pbx-agent]") :]
    return {k.strip(): v.strip() for k, _, v in (line.partition("=") for line in section.splitlines()) if _}


def test_the_filter_lets_through_every_event_the_agent_reads() -> None:
    pattern = re.compile(manager_conf()["eventfilter"])
    wanted = set(tracker._HANDLERS) | OTHER_EVENTS
    assert "Newchannel" in wanted and "DialEnd" in wanted  # the table is the tracker's
    # Asterisk matches an eventfilter regex against the event's text, anywhere in it
    blocked = sorted(name for name in wanted if not pattern.search(f"Event: {name}\r\nPrivilege: call,all\r\n"))
    assert blocked == []


def test_the_filter_still_keeps_the_noise_out() -> None:
    pattern = re.compile(manager_conf()["eventfilter"])
    for name in ("Newexten", "RTCPSent", "DialState", "QueueMemberStatus"):
        assert not pattern.search(f"Event: {name}\r\nPrivilege: call,all\r\n"), name


def test_the_classes_cover_what_the_agent_asks_for() -> None:
    conf = manager_conf()
    read = set(conf["read"].split(","))
    assert set(EVENT_CLASSES.split(",")) <= read  # the login's Events: classes are readable
    # Originate (originate), CoreShowChannels (reporting), the endpoint listings (system: res_pjsip registers
    # PJSIPShowEndpoint(s) with EVENT_FLAG_SYSTEM only)
    assert set(conf["write"].split(",")) == {"system", "originate", "reporting"}
