-- amoCRM OAuth tokens, kept apart from integrations_config so that a refresh (which rotates the
-- single-use refresh token) is one small row update owned by the token store, never a settings edit.
-- access_token / refresh_token are encrypted with the state secret (agent.secretbox).
CREATE TABLE amocrm_tokens (
    enterprise_number text PRIMARY KEY REFERENCES enterprises (number) ON DELETE CASCADE,
    host              text NOT NULL,           -- the account URL the tokens belong to
    kind              text NOT NULL CHECK (kind IN ('oauth', 'long_lived')),
    access_token      text NOT NULL,
    refresh_token     text,                     -- NULL for a long-lived token
    expires_at        timestamptz,
    generation        integer NOT NULL DEFAULT 1,  -- +1 on every saved refresh
    -- set (and committed) before a refresh request is sent, cleared with the saved answer;
    -- a marker older than the refresh lease means the outcome of that refresh is unknown
    refresh_started_at timestamptz,
    refresh_owner     text,
    status            text NOT NULL DEFAULT 'connected' CHECK (status IN ('connected', 'expired', 'error')),
    reason            text,
    account           jsonb,                    -- the last answer of /api/v4/account
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- OAuth `state` values already used by a callback: a replayed state is refused.
CREATE TABLE amocrm_oauth_states (
    nonce      text PRIMARY KEY,
    enterprise_number text NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz NOT NULL DEFAULT now()
);

-- The steps of one call delivery that amoCRM already acknowledged, so a retry does not repeat them.
CREATE TABLE amocrm_call_steps (
    idempotency_key   text PRIMARY KEY,
    enterprise_number text NOT NULL,
    steps             jsonb NOT NULL DEFAULT '{}',
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- Call-back tasks made for missed calls, per caller: a repeat missed call adds none while one is open.
CREATE TABLE amocrm_missed_tasks (
    enterprise_number text NOT NULL,
    phone             text NOT NULL,
    task_id           bigint NOT NULL,
    call_id           text NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (enterprise_number, phone, task_id)
);
