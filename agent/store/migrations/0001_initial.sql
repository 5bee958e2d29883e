-- The schema DESIGN.md names. Columns named there keep their names; the rest may grow.

CREATE TABLE enterprises (
    number              text PRIMARY KEY,
    name                text NOT NULL DEFAULT '',
    integrations_config jsonb NOT NULL DEFAULT '{}',
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE integration_logs (
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
CREATE INDEX integration_logs_enterprise_created ON integration_logs (enterprise_number, created_at DESC, id DESC);

CREATE TABLE user_internal_phones (
    enterprise_number text NOT NULL,
    phone_number      text NOT NULL,
    display_name      text NOT NULL DEFAULT '',
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (enterprise_number, phone_number)
);

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
