"""Blind and attended transfers: a `transferred` event, and the talker moves to the target."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from agent.tracking.dial import answer
from agent.tracking.event import CallEvent, TransferKind
from agent.tracking.state import Call, Env


def _from_extension(env: Env, call: Call, channel: str | None) -> str | None:
    if call.current is not None and not call.current.closed:
        return call.current.extension
    return env.rules.phone_extension(channel) or call.answered_by


def _transferred(
    env: Env, call: Call, kind: TransferKind, src: str | None, dst: str | None, at: datetime | None
) -> CallEvent:
    call.transfers += 1
    return call.event(env, "transferred", dst, at, from_extension=src, to_extension=dst, kind=kind)


def blind(env: Env, call: Call, msg: Mapping[str, str], at: datetime | None) -> list[CallEvent]:
    """The transferee goes back to the dialplan; the target's own Dial makes it answer later."""
    if msg.get("Result", "Success") != "Success":
        return []
    src = _from_extension(env, call, msg.get("TransfererChannel"))
    dst = msg.get("Extension") or None
    if call.current is not None:
        call.current.close(at)
    return [_transferred(env, call, "blind", src, dst, at)]


def attended(env: Env, call: Call, msg: Mapping[str, str], at: datetime | None) -> list[CallEvent]:
    """The consultation's target is already talking: it takes over the other party now."""
    if msg.get("Result", "Success") != "Success":
        return []
    src = _from_extension(env, call, msg.get("OrigTransfererChannel"))
    target_uid = msg.get("TransferTargetUniqueid")
    dst = (
        env.rules.phone_extension(msg.get("TransferTargetChannel"))
        or call.consult.get(msg.get("SecondTransfererUniqueid", ""))
        or call.consult.get(target_uid or "")
    )
    if call.current is not None:
        call.current.close(at)
    out = [_transferred(env, call, "attended", src, dst, at)]
    if dst is not None:
        out += answer(env, call, dst, target_uid, at)
    return out


def survivor(first: Call, second: Call) -> tuple[Call, Call]:
    """(the call that goes on, the one that ends) when an attended transfer joins two calls. The one with
    an outside party goes on (the CRMs' call); between equals, the transferer's first call (its
    `OrigTransferer` side, the older bridge)."""
    if first.direction == "internal" and second.direction not in (None, "internal"):
        return second, first
    return first, second


def merged(
    env: Env, keep: Call, gone: Call, msg: Mapping[str, str], newcomer: str | None, at: datetime | None
) -> list[CallEvent]:
    """`newcomer`, the party of `gone` that stays (the consultation's target, or the transferee when the
    transferer's first call is the one that ends), now talks in `keep`; `gone`'s conversation ends now."""
    transferer = msg.get("OrigTransfererChannel") if keep.channels.get(msg.get("OrigTransfererUniqueid", "")) else None
    src = _from_extension(env, keep, transferer or msg.get("SecondTransfererChannel"))
    chan = gone.channels.get(newcomer or "")
    dst = None
    if newcomer is not None and chan is not None:
        dst = gone.dials.get(newcomer) or gone.consult.get(newcomer) or env.rules.phone_extension(chan.name)
    for call in (keep, gone):
        if call.current is not None:
            call.current.close(at)
    out = [_transferred(env, keep, "attended", src, dst, at)]
    if dst is not None:
        out += answer(env, keep, dst, newcomer, at)
    return out
