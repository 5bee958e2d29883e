-- Admin site: one-time sign-in links, sessions, and the indexes its pages need at 100k calls / 1M log rows.

CREATE TABLE admin_links_used (
    jti        text PRIMARY KEY,
    used_at    timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);

CREATE TABLE admin_sessions (
    id_hash           bytea PRIMARY KEY,           -- sha256 of the cookie value; the value itself is never stored
    enterprise_number text,                        -- NULL: the whole instance
    role              text NOT NULL CHECK (role IN ('admin', 'viewer')),
    source            text NOT NULL DEFAULT 'link',
    created_at        timestamptz NOT NULL DEFAULT now(),
    expires_at        timestamptz NOT NULL
);
CREATE INDEX admin_sessions_expires ON admin_sessions (expires_at);

-- Calls are listed newest first by the time they ended (or were stored, when the end is unknown).
ALTER TABLE calls ADD COLUMN listed_at timestamptz GENERATED ALWAYS AS (coalesce(ended_at, created_at)) STORED;
CREATE INDEX calls_enterprise_listed ON calls (enterprise_number, listed_at DESC, call_id DESC);
CREATE INDEX calls_enterprise_phone_listed ON calls (enterprise_number, phone, listed_at DESC, call_id DESC);
CREATE INDEX calls_extensions ON calls USING gin (extensions);
CREATE INDEX calls_enterprise_answered_by ON calls (enterprise_number, answered_by);

-- A call's deliveries: idempotency_key LIKE '<crm>:<call_id>:%'.
CREATE INDEX deliveries_key_prefix ON deliveries (idempotency_key text_pattern_ops);

CREATE INDEX integration_logs_crm_created
    ON integration_logs (enterprise_number, integration_type, created_at DESC, id DESC);
CREATE INDEX integration_logs_errors
    ON integration_logs (enterprise_number, created_at DESC, id DESC) WHERE status = 'error';
CREATE INDEX integration_logs_crm_errors
    ON integration_logs (enterprise_number, integration_type, created_at DESC, id DESC) WHERE status = 'error';
CREATE INDEX integration_logs_delivery ON integration_logs (delivery_id) WHERE delivery_id IS NOT NULL;
