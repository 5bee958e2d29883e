-- RetailCRM telephony module state per enterprise, and the managers' statuses RetailCRM reports.

-- The module as we registered it: the jti of the accountUrl token in force (NULL: none; a token whose
-- jti is not this one is revoked), and what the actions.activity callback last said.
CREATE TABLE retailcrm_modules (
    enterprise_number text PRIMARY KEY,
    account_token_id  text,
    registered_at     timestamptz,
    active            boolean,
    frozen            boolean,
    system_url        text,
    activity_at       timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- changeUserStatusUrl: each manager's current status, for routing.
CREATE TABLE retailcrm_user_statuses (
    enterprise_number text NOT NULL,
    user_id           text NOT NULL,
    code              text,
    status            text NOT NULL CHECK (status IN ('free', 'busy', 'dinner', 'break')),
    changed_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (enterprise_number, user_id)
);
