"""Each extension's phone state, from AMI `ExtensionStatus` and `DeviceStateChange` events (pure: no I/O).

Feed it every event batch of a PBX (`feed(msgs)`); ask `available(ext)` when routing a call.

- `ExtensionStatus` is the hint's state (Exten `150`, Status `0` idle, `1` in use, `2` busy, `4`
  unavailable, `8` ringing, `9` in use + ringing, `16` on hold, `17` in use + on hold, `-1`/`-2` no
  such hint / hint removed). A hint combines every device of the extension, so it wins when known.
- `DeviceStateChange` is one device's state (`PJSIP/150`, `SIP/150`, `Local/150@agents` →
  extension `150`): NOT_INUSE, INUSE, BUSY, INVALID, UNAVAILABLE, RINGING, RINGINUSE, ONHOLD, UNKNOWN.
  Local channels only ever report INUSE/NOT_INUSE; PJSIP phones also RINGING. It is used for
  extensions with no hint.

A phone is *available* when idle, or when nothing is known about it (fail open: an agent that has not
yet seen an event, or a PBX with no hints, still redirects). Ringing counts as occupied, as a queue with
`ringinuse=no` would treat it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from enum import StrEnum


class PhoneState(StrEnum):
    IDLE = "idle"
    IN_USE = "in_use"  # in a call, ringing, or on hold
    UNAVAILABLE = "unavailable"  # not registered, busy signal, invalid
    UNKNOWN = "unknown"


_HINT_STATES: dict[str, PhoneState] = {
    "0": PhoneState.IDLE,
    "1": PhoneState.IN_USE,
    "2": PhoneState.UNAVAILABLE,  # busy
    "4": PhoneState.UNAVAILABLE,
    "8": PhoneState.IN_USE,  # ringing
    "9": PhoneState.IN_USE,
    "16": PhoneState.IN_USE,  # on hold
    "17": PhoneState.IN_USE,
}

_DEVICE_STATES: dict[str, PhoneState] = {
    "NOT_INUSE": PhoneState.IDLE,
    "INUSE": PhoneState.IN_USE,
    "RINGING": PhoneState.IN_USE,
    "RINGINUSE": PhoneState.IN_USE,
    "ONHOLD": PhoneState.IN_USE,
    "BUSY": PhoneState.UNAVAILABLE,
    "UNAVAILABLE": PhoneState.UNAVAILABLE,
    "INVALID": PhoneState.UNAVAILABLE,
}

# `PJSIP/150`, `SIP/150`, `IAX2/150`, `Local/150@agents`; not `Queue:operators`, not `PJSIP/150/sip:…`.
_DEVICE = re.compile(r"^[A-Za-z0-9]+/([\w*#+-]+)(?:@[\w-]+)?$")


def device_extension(device: str) -> str | None:
    m = _DEVICE.match(device)
    return m.group(1) if m else None


class ExtensionStates:
    """Last known state per extension of one PBX (or of all PBX of one enterprise)."""

    def __init__(self, hint_contexts: Iterable[str] = ()) -> None:
        """`hint_contexts`: only hints in these contexts count (default: every context)."""
        self._contexts = frozenset(hint_contexts)
        self._hints: dict[str, PhoneState] = {}
        self._devices: dict[str, PhoneState] = {}

    def feed(self, msgs: Iterable[Mapping[str, str]]) -> None:
        for msg in msgs:
            event = msg.get("Event")
            if event == "ExtensionStatus":
                self._hint(msg)
            elif event == "DeviceStateChange":
                self._device(msg)

    def _hint(self, msg: Mapping[str, str]) -> None:
        exten = msg.get("Exten")
        if not exten or (self._contexts and msg.get("Context") not in self._contexts):
            return
        state = _HINT_STATES.get(msg.get("Status", "").strip())
        if state is None:  # -1/-2: the hint is gone; fall back to the device state
            self._hints.pop(exten, None)
        else:
            self._hints[exten] = state

    def _device(self, msg: Mapping[str, str]) -> None:
        exten = device_extension(msg.get("Device", ""))
        if exten is None:
            return
        state = _DEVICE_STATES.get(msg.get("State", "").strip().upper())
        if state is None:
            self._devices.pop(exten, None)
        else:
            self._devices[exten] = state

    def state(self, extension: str) -> PhoneState:
        return self._hints.get(extension) or self._devices.get(extension) or PhoneState.UNKNOWN

    def available(self, extension: str) -> bool:
        return self.state(extension) in (PhoneState.IDLE, PhoneState.UNKNOWN)

    def clear(self) -> None:
        """Forget everything (call after an AMI reconnect: events were missed while down)."""
        self._hints.clear()
        self._devices.clear()
