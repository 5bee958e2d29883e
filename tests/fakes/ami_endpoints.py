"""The endpoint listings of a fake PBX, for FakeAmi's `responders`, in the shape Asterisk documents them.

- `PJSIPShowEndpoints`: a list ack, one `EndpointList` event per endpoint (ObjectType, ObjectName, Transport,
  Aor, Auths, OutboundAuths, Contacts, DeviceState, ActiveChannels), then `EndpointListComplete` with
  `EventList: Complete` and `ListItems` (docs.asterisk.org, AMI_Actions/PJSIPShowEndpoints, AMI_Events/
  EndpointList, EndpointListComplete).
- `PJSIPShowEndpoint`: `EndpointDetail` (Context, Auth, OutboundAuth, FromDomain, …), one `IdentifyDetail`
  (Endpoint, Match) per identify, then `EndpointDetailComplete` (AMI_Actions/PJSIPShowEndpoint).
- `PJSIPShowRegistrationsOutbound`: `OutboundRegistrationDetail` (ObjectName, Endpoint, ServerUri, ClientUri,
  Status), then `OutboundRegistrationDetailComplete` (AMI_Actions/PJSIPShowRegistrationsOutbound,
  AMI_Events/OutboundRegistrationDetail).
- `SIPpeers` / `IAXpeerlist`: `PeerEntry` events (Channeltype, ObjectName, ChanObjectType, IPaddress, Dynamic,
  and for IAX2 Trunk), then `PeerlistComplete`.

An action whose module the PBX lacks is simply left out: the fake answers "Invalid/unknown command" then, as
Asterisk does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from tests.fakes.ami import ActionResponder


@dataclass(frozen=True)
class Pjsip:
    name: str
    context: str = "from-internal"
    auths: str = ""
    outbound_auths: str = ""
    from_domain: str = ""
    identify: str = ""  # an identify's `match`, e.g. "203.0.113.5"


@dataclass(frozen=True)
class Peer:
    name: str
    dynamic: bool = True
    trunk: bool = False


def _message(head: Iterable[tuple[str, str]]) -> str:
    return "".join(f"{k}: {v}\r\n" for k, v in head) + "\r\n"


def _list(aid: str, message: str, items: list[list[tuple[str, str]]], complete: str, **extra: str) -> bytes:
    out = _message([("Response", "Success"), ("ActionID", aid), ("EventList", "start"), ("Message", message)])
    for item in items:
        out += _message([(item[0][0], item[0][1]), ("ActionID", aid), *item[1:]])
    tail = [("Event", complete), ("ActionID", aid), ("EventList", "Complete"), ("ListItems", str(len(items)))]
    out += _message(tail + list(extra.items()))
    return out.encode()


def responders(
    pjsip: Iterable[Pjsip] = (),
    registrations: Mapping[str, str] | None = None,
    sip: Iterable[Peer] | None = None,
    iax: Iterable[Peer] | None = None,
) -> dict[str, ActionResponder]:
    """`registrations`: outbound registration name → the endpoint it names. `sip`/`iax` None: module not loaded."""
    endpoints = {e.name: e for e in pjsip}

    def show_endpoints(fields: dict[str, str]) -> bytes:
        items = [
            [
                ("Event", "EndpointList"),
                ("ObjectType", "endpoint"),
                ("ObjectName", e.name),
                ("Transport", "transport-udp"),
                ("Aor", e.name),
                ("Auths", e.auths),
                ("OutboundAuths", e.outbound_auths),
                ("Contacts", ""),
                ("DeviceState", "Not in use"),
                ("ActiveChannels", ""),
            ]
            for e in endpoints.values()
        ]
        message = "A listing of Endpoints follows, presented as EndpointList events"
        return _list(fields.get("ActionID", ""), message, items, "EndpointListComplete")

    def show_endpoint(fields: dict[str, str]) -> bytes | str:
        aid = fields.get("ActionID", "")
        e = endpoints.get(fields.get("Endpoint", ""))
        if e is None:
            error = [("Response", "Error"), ("ActionID", aid), ("Message", "Unable to retrieve endpoint")]
            return _message(error).encode()
        items = [
            [
                ("Event", "EndpointDetail"),
                ("ObjectType", "endpoint"),
                ("ObjectName", e.name),
                ("Context", e.context),
                ("Auth", e.auths),
                ("OutboundAuth", e.outbound_auths),
                ("Aors", e.name),
                ("FromDomain", e.from_domain),
                ("DeviceState", "Not in use"),
            ]
        ]
        if e.identify:
            items.append(
                [
                    ("Event", "IdentifyDetail"),
                    ("ObjectType", "identify"),
                    ("ObjectName", e.name),
                    ("Endpoint", e.name),
                    ("Match", e.identify),
                ]
            )
        message = "Following are Events for each object associated with the Endpoint"
        return _list(aid, message, items, "EndpointDetailComplete")

    def show_registrations(fields: dict[str, str]) -> bytes:
        items = [
            [
                ("Event", "OutboundRegistrationDetail"),
                ("ObjectType", "registration"),
                ("ObjectName", name),
                ("ServerUri", "sip:sip.example.net"),
                ("ClientUri", "sip:375173880000@sip.example.net"),
                ("Endpoint", endpoint),
                ("Status", "Registered"),
            ]
            for name, endpoint in (registrations or {}).items()
        ]
        n = str(len(items))
        message = "Following are Events for each Outbound registration"
        return _list(
            fields.get("ActionID", ""),
            message,
            items,
            "OutboundRegistrationDetailComplete",
            Registered=n,
            NotRegistered="0",
        )

    def peers(channeltype: str, listed: list[Peer]) -> ActionResponder:
        def answer(fields: dict[str, str]) -> bytes:
            items = [
                [
                    ("Event", "PeerEntry"),
                    ("Channeltype", channeltype),
                    ("ObjectName", p.name),
                    ("ChanObjectType", "peer"),
                    ("IPaddress", "-none-" if p.dynamic else "203.0.113.7"),
                    ("Dynamic", "yes" if p.dynamic else "no"),
                ]
                + ([("Trunk", "yes" if p.trunk else "no")] if channeltype == "IAX" else [])
                for p in listed
            ]
            return _list(fields.get("ActionID", ""), "Peer status list will follow", items, "PeerlistComplete")

        return answer

    out: dict[str, ActionResponder] = {
        "PJSIPShowEndpoints": show_endpoints,
        "PJSIPShowEndpoint": show_endpoint,
        "PJSIPShowRegistrationsOutbound": show_registrations,
    }
    if sip is not None:
        out["SIPpeers"] = peers("SIP", list(sip))
    if iax is not None:
        out["IAXpeerlist"] = peers("IAX", list(iax))
    return out
