-- Routing rules per enterprise (agent/rules.py validates them): hours, holidays, managers' hours,
-- history_days, blocklist, did_rules. A change sends NOTIFY integrations_config so every agent drops its cache.
CREATE TABLE routing_rules (
    enterprise_number text PRIMARY KEY REFERENCES enterprises (number) ON DELETE CASCADE,
    rules             jsonb NOT NULL DEFAULT '{}',
    updated_at        timestamptz NOT NULL DEFAULT now()
);
