"""A database as the platform pbx-agent replaces left it, written from ../shared/seeds/ (the documents show the
tables' roles and the JSON records; the columns they do not show are plausible guesses, marked `guess`).

- `enterprises`: keyed by `id` (guess), `number` unique, columns other services read (`guess`), and
  `integrations_config` jsonb, nullable (guess: a NULL must be survived);
- `integration_logs`: the columns 001 lists, `serial` id and `timestamp` without zone (guess);
- `users`, `user_internal_phones` (001: "LEFT JOIN between user_internal_phones and users" for the owners'
  names; the columns are guesses);
- records: RetailCRM in both documented layouts (003: api_url, client_id, user_mappings with numbers; 001:
  domain, user_extensions with null, last_sync, version), `enabled` as a string, no time zone, one without an
  API key; amoCRM (002/004: subdomain or domain, client id/secret, redirect URI, the OAuth tokens, the lead
  pipeline/status, sync flags). The docs show no amoCRM JSON: those field names follow 002's settings form and
  004's environment variables.
"""

from __future__ import annotations

from typing import Any

import asyncpg

RC_KEY = "NsX6ZE1W6C8vOkkcNm2NBNLzwVJxLNvl"
AMO_ACCESS = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.old-access-token-0367"
AMO_REFRESH = "def50200a1b2c3d4e5f6old-refresh-token"
AMO_SECRET = "Xy9sEcReTfRoMtHeOlDsYsTeM0123456789abcdefGHIJ"
AMO_CLIENT = "5c2e7a0e-3f7b-4c1d-9e8f-0a1b2c3d4e5f"

SCHEMA = """
CREATE TABLE enterprises (
    id                  serial PRIMARY KEY,
    number              varchar(10) NOT NULL UNIQUE,
    name                varchar(255) NOT NULL,
    bot_token           varchar(255),          -- guess: read by the main API (8000)
    chat_id             varchar(64),
    ip                  varchar(64),
    secret              varchar(255),
    host                varchar(255),
    active              boolean DEFAULT true,
    created_at          timestamp DEFAULT now(),
    integrations_config jsonb DEFAULT '{}'::jsonb
);
CREATE TABLE integration_logs (
    id                serial PRIMARY KEY,
    enterprise_number varchar(10) NOT NULL,
    integration_type  varchar(50) NOT NULL,
    event_type        varchar(100) NOT NULL,
    request_data      jsonb,
    response_data     jsonb,
    status            varchar(20) NOT NULL,
    error_message     text,
    created_at        timestamp DEFAULT now()
);
CREATE TABLE users (
    id                serial PRIMARY KEY,
    enterprise_number varchar(10) NOT NULL,
    email             varchar(255),
    first_name        varchar(100),
    last_name         varchar(100),
    patronymic        varchar(100)
);
CREATE TABLE user_internal_phones (
    id                serial PRIMARY KEY,
    user_id           integer REFERENCES users (id) ON DELETE SET NULL,
    phone_number      varchar(20) NOT NULL,
    password          varchar(100) NOT NULL,
    enterprise_number varchar(10) NOT NULL,
    created_at        timestamp DEFAULT now(),
    UNIQUE (enterprise_number, phone_number)
);
"""

RECORDS: dict[str, tuple[str, dict[str, Any] | None]] = {
    # 001's layout, the one the admin UI wrote: domain, user_extensions with null, last_sync, version, no time zone
    "0367": (
        "Джулай",
        {
            "retailcrm": {
                "domain": "https://evgenybaevski.retailcrm.ru",
                "api_key": RC_KEY,
                "enabled": True,
                "user_extensions": {"19": "150", "18": "151", "22": None},
                "last_sync": "2025-01-09T19:20:00Z",
                "version": "1.0",
            },
            "amocrm": {
                "subdomain": "julaycompany",
                "client_id": AMO_CLIENT,
                "client_secret": AMO_SECRET,
                "redirect_uri": "https://bot.vochi.by/admin/crm/callback",
                "access_token": AMO_ACCESS,
                "refresh_token": AMO_REFRESH,
                "expires_at": "2031-01-01T00:00:00Z",
                "sync_contacts": True,
                "sync_leads": True,
                "sync_tasks": False,
                "auto_create_lead": True,
                "lead_pipeline_id": 4411,
                "lead_status_id": "142",
                "enabled": "true",
            },
        },
    ),
    # 003's older layout: api_url with /api/v5, client_id the module code, user_mappings with numbers
    "0201": (
        "Магазин у дома",
        {
            "retailcrm": {
                "enabled": "true",
                "api_url": "https://example.retailcrm.ru/api/v5",
                "api_key": RC_KEY[::-1],
                "client_id": "vochi-asterisk",
                "user_mappings": {"151": 16, "152": "18"},
            }
        },
    ),
    # 003's test record, switched off, and amoCRM configured (004's env names) but never connected
    "0105": (
        "Test",
        {
            "retailcrm": {"enabled": "false", "api_url": "https://test.com", "api_key": "test123"},
            "amocrm": {"domain": "testco.amocrm.ru", "client_id": AMO_CLIENT, "enabled": False},
        },
    ),
    # no API key: cannot be used, and must be said so
    "0999": ("Broken", {"retailcrm": {"enabled": True, "domain": "https://broken.retailcrm.ru"}}),
    "0400": ("Без интеграций", {}),
    "0500": ("Null config", None),
}


async def build(conn: asyncpg.Connection[Any]) -> None:
    await conn.execute(SCHEMA)
    for number, (name, config) in RECORDS.items():
        await conn.execute(
            "INSERT INTO enterprises (number, name, bot_token, ip, integrations_config)"
            " VALUES ($1, $2, $3, $5, $4::text::jsonb)",
            number,
            name,
            f"bot-{number}",
            None if config is None else _json(config),
            f"10.0.0.{int(number) % 250}",
        )
    users = [("0367", "Джулай", "Джуновый"), ("0367", "Анна", "Петрова"), ("0201", "Иван", "Иванов")]
    for enterprise, first, last in users:
        await conn.execute(
            "INSERT INTO users (enterprise_number, first_name, last_name) VALUES ($1, $2, $3)", enterprise, first, last
        )
    phones = [(1, "150", "0367"), (2, "151", "0367"), (None, "152", "0367"), (3, "151", "0201")]
    for user_id, phone, enterprise in phones:
        await conn.execute(
            "INSERT INTO user_internal_phones (user_id, phone_number, password, enterprise_number)"
            " VALUES ($1, $2, $4, $3)",
            user_id,
            phone,
            enterprise,
            f"sip-pass-{phone}",
        )
    logs = [
        ("0367", "retailcrm", "register_module", "success", None),
        ("0367", "retailcrm", "register_module", "error", "logo: Logo image must be svg"),
        ("0201", "amocrm", "sync_contacts", "success", None),
    ]
    for enterprise, crm, event, status, err in logs:
        await conn.execute(
            "INSERT INTO integration_logs (enterprise_number, integration_type, event_type, request_data,"
            " response_data, status, error_message) VALUES ($1, $2, $3, $4::text::jsonb, $5::text::jsonb, $6, $7)",
            enterprise,
            crm,
            event,
            '{"code": "vochi-telephony"}',
            '{"success": false}' if err else '{"success": true}',
            status,
            err,
        )


def _json(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False)


OLD_TABLES = ("enterprises", "integration_logs", "users", "user_internal_phones")


async def dump(conn: asyncpg.Connection[Any], columns: dict[str, list[tuple[Any, ...]]]) -> dict[str, list[str]]:
    """Every row of the old tables, old columns only (as `old_columns` found them), as text."""
    out: dict[str, list[str]] = {}
    for table, cols in columns.items():
        select = ", ".join(f'"{c[0]}"' for c in cols)
        rows = await conn.fetch(f"SELECT row({select})::text AS r FROM {table} ORDER BY id")
        out[table] = [r["r"] for r in rows]
    return out


async def old_columns(
    conn: asyncpg.Connection[Any], only: dict[str, list[tuple[Any, ...]]] | None = None
) -> dict[str, list[tuple[Any, ...]]]:
    """Each old table's columns with their types, defaults and nullability (`only`: those columns)."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    for table in OLD_TABLES:
        rows = await conn.fetch(
            "SELECT column_name, data_type, character_maximum_length, column_default, is_nullable"
            " FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1"
            " ORDER BY ordinal_position",
            table,
        )
        names = {c[0] for c in only[table]} if only is not None else None
        out[table] = [tuple(r.values()) for r in rows if names is None or r["column_name"] in names]
    return out


OLD_MODULE_CODE = "vochi-telephony"


def old_module(number: str, codes: dict[str, str], code: str = OLD_MODULE_CODE) -> dict[str, Any]:
    """The telephony module the old service registered in the account (seed 001 «Vochi-CRM»; the old service's
    code: clientId the enterprise number, accountUrl with its own token, makeCallUrl on /retailcrm/make-call)."""
    return {
        "code": code,
        "active": True,
        "name": "Vochi-CRM",
        "logo": "https://bot.vochi.by/static/img/vochi_logo.svg",
        "baseUrl": "https://bot.vochi.by",
        "clientId": number,
        "accountUrl": f"https://bot.vochi.by/retailcrm-admin/?enterprise_number={number}&token=old.jwt.token",
        "integrations": {
            "telephony": {
                "makeCallUrl": "https://bot.vochi.by/retailcrm/make-call",
                "changeUserStatusUrl": "https://bot.vochi.by/retailcrm/status",
                "allowEdit": False,
                "inputEventSupported": True,
                "outputEventSupported": True,
                "hangupEventSupported": True,
                "additionalCodes": [{"userId": int(u), "code": c} for u, c in codes.items()],
                "externalPhones": [],
            }
        },
    }
