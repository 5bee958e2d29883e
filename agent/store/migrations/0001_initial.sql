-- The schema DESIGN.md names. Columns named there keep their names; the rest may grow.
--
-- On a database of the platform the agent replaces, enterprises, integration_logs and user_internal_phones
-- already exist and other services read them: they are adopted as they are (IF NOT EXISTS), never recreated,
-- renamed or retyped; only the columns the agent needs and they lack are added beside theirs.

CREATE TABLE IF NOT EXISTS enterprises (
    number              text PRIMARY KEY,
    name                text NOT NULL DEFAULT '',
    integrations_config jsonb NOT NULL DEFAULT '{}',
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE enterprises ADD COLUMN IF NOT EXISTS name text NOT NULL DEFAULT '';
ALTER TABLE enterprises ADD COLUMN IF NOT EXISTS integrations_config jsonb DEFAULT '{}';
ALTER TABLE enterprises ADD COLUMN IF NOT EXISTS created_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE enterprises ADD COLUMN IF NOT EXISTS updated_at timestamptz NOT NULL DEFAULT now();
-- The agent finds an enterprise by its number (ON CONFLICT, foreign keys): the platform's table may key it
-- by another column (id), so the number gets a unique index of its own unless one is there.
DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
        WHERE i.indrelid = 'enterprises'::regclass AND i.indisunique AND i.indnkeyatts = 1
          AND i.indpred IS NULL AND i.indexprs IS NULL AND a.attname = 'number'
    ) THEN
        CREATE UNIQUE INDEX enterprises_number_unique ON enterprises (number);
    END IF;
END $$;

CREATE TABLE IF NOT EXISTS integration_logs (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    enterprise_number text NOT NULL,
    integration_type  text NOT NULL,
    event_type        text NOT NULL,
    request_data      jsonb,
    response_data     jsonb,
    status            text NOT NULL CHECK (status IN ('success', 'error')),
    error_message     text,
    http_status       integer,
    duration_ms       double precision,
    delivery_id       bigint,
    created_at        timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE integration_logs ADD COLUMN IF NOT EXISTS http_status integer;
ALTER TABLE integration_logs ADD COLUMN IF NOT EXISTS duration_ms double precision;
ALTER TABLE integration_logs ADD COLUMN IF NOT EXISTS delivery_id bigint;
CREATE INDEX IF NOT EXISTS integration_logs_enterprise_created
    ON integration_logs (enterprise_number, created_at DESC, id DESC);

CREATE TABLE IF NOT EXISTS user_internal_phones (
    enterprise_number text NOT NULL,
    phone_number      text NOT NULL,
    display_name      text NOT NULL DEFAULT '',
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (enterprise_number, phone_number)
);
-- the platform's pages take the owner's name from `users` (user_id); the agent's pages show display_name
ALTER TABLE user_internal_phones ADD COLUMN IF NOT EXISTS display_name text NOT NULL DEFAULT '';
ALTER TABLE user_internal_phones ADD COLUMN IF NOT EXISTS created_at timestamptz NOT NULL DEFAULT now();

CREATE TABLE deliveries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    idempotency_key text NOT NULL UNIQUE,
    enterprise_number text NOT NULL,
    integration_type text NOT NULL,
    kind            text NOT NULL,
    payload         jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'in_progress', 'done', 'failed', 'dead', 'expired')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    locked_until    timestamptz,
    expires_at      timestamptz,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status IN ('pending', 'in_progress');
CREATE INDEX deliveries_enterprise_status ON deliveries (enterprise_number, status, id);

CREATE TABLE calls (
    call_id           text NOT NULL,
    enterprise_number text NOT NULL,
    pbx               text NOT NULL DEFAULT '',
    direction         text NOT NULL CHECK (direction IN ('in', 'out', 'internal')),
    phone             text,
    did               text,
    extensions        text[] NOT NULL DEFAULT '{}',
    answered_by       text,
    result            text NOT NULL
                      CHECK (result IN ('answered', 'no_answer', 'busy', 'failed', 'cancelled')),
    ring_seconds      double precision,
    talk_seconds      double precision,
    started_at        timestamptz,
    ended_at          timestamptz,
    recording         text,
    details           jsonb NOT NULL DEFAULT '{}',
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (enterprise_number, call_id)
);
CREATE INDEX calls_enterprise_ended ON calls (enterprise_number, ended_at DESC);
CREATE INDEX calls_phone_ended ON calls (enterprise_number, phone, ended_at DESC);
