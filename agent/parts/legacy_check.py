"""`pbx-agent check-legacy`: every enterprise with its CRM records as the running agent reads them, and what
makes a record unusable (no API key, a secret that does not decrypt, ...). Read only: nothing is written.

An unusable record is skipped by the running agent (logged); this says so per enterprise, before a cut-over
and after it, instead of leaving a shop silent."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent.store.database import Pool
from agent.store.secretbox import SecretBox
from connectors.base import AnyConnector
from connectors.retailcrm import legacy as retailcrm_legacy

_ALL = (
    "SELECT e.number, e.name, e.integrations_config, (SELECT r.rules ->> 'timezone' FROM routing_rules r"
    " WHERE r.enterprise_number = e.number) AS timezone FROM enterprises e ORDER BY e.number"
)
# before `migrate` (checking the old platform's database ahead of a cut-over) there are no routing rules yet
_ALL_UNMIGRATED = "SELECT number, name, integrations_config, NULL AS timezone FROM enterprises ORDER BY number"


@dataclass(slots=True)
class Finding:
    crm: str
    usable: bool
    says: str  # one line for people: why not, or how it is read


@dataclass(slots=True)
class Enterprise:
    number: str
    name: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        return all(f.usable for f in self.findings)


async def check(pool: Pool, box: SecretBox, connectors: dict[str, AnyConnector]) -> list[Enterprise]:
    found: list[Enterprise] = []
    migrated = await pool.fetchval("SELECT to_regclass('routing_rules') IS NOT NULL")
    for row in await pool.fetch(_ALL if migrated else _ALL_UNMIGRATED):
        item = Enterprise(row["number"], row["name"] or "")
        config = row["integrations_config"]
        for crm, raw in (config if isinstance(config, dict) else {}).items():
            connector = connectors.get(crm)
            if connector is None:
                item.findings.append(Finding(crm, True, "not a CRM the agent knows: left as it is"))
            elif not isinstance(raw, dict):
                item.findings.append(Finding(crm, False, "the record is not a JSON object"))
            else:
                item.findings.append(_read(connector, box, raw, row["timezone"]))
        found.append(item)
    return found


def _read(connector: AnyConnector, box: SecretBox, raw: dict[str, Any], zone: str | None) -> Finding:
    crm = connector.name
    try:
        settings = connector.parse_settings(box.decrypted(crm, raw), enterprise_timezone=zone)
    except ValueError as exc:  # SettingsError names the field; the messages never carry the secret
        return Finding(crm, False, str(exc))
    notes = ["enabled" if connector.enabled(settings) else "disabled"]
    if crm == "retailcrm" and retailcrm_legacy.is_legacy(raw):
        notes.append("written by the old system, read as it is")
    if crm == "retailcrm" and not raw.get("timezone"):
        zone_name = getattr(settings, "timezone", "")
        notes.append(f"no time zone: {zone_name} ({'the enterprise' if zone and zone == zone_name else 'default'})")
    return Finding(crm, True, "; ".join(notes))


def lines(found: list[Enterprise]) -> list[str]:
    out: list[str] = []
    for item in found:
        out.append(f"{item.number} {item.name}".rstrip() + ("" if item.usable else "  [UNUSABLE RECORD]"))
        if not item.findings:
            out.append("  no CRM configured")
        for f in item.findings:
            out.append(f"  {f.crm}: {'ok' if f.usable else 'UNUSABLE'}: {f.says}")
    bad = sum(1 for i in found if not i.usable)
    out.append(f"{len(found)} enterprise(s), {bad} with an unusable record")
    return out
