-- API tokens issued by `pbx-agent token`: listed and revocable one by one (before, only rotating secret.key
-- revoked a token, and with it every CRM secret and recording link). A token not in this table (issued before
-- it existed) stays valid until it expires or the key is rotated.
CREATE TABLE IF NOT EXISTS api_tokens (
    jti               text PRIMARY KEY,
    enterprise_number text,
    label             text NOT NULL DEFAULT '',
    issued_at         timestamptz NOT NULL DEFAULT now(),
    expires_at        timestamptz NOT NULL,
    revoked_at        timestamptz
);
