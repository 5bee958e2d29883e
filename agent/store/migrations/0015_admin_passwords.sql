-- A password per enterprise for its admin sign-in form (/admin/login), for a customer who has only a CRM and no
-- one to hand them a link: `pbx-agent admin-password --enterprise N`. Only the argon2id hash is stored.
CREATE TABLE IF NOT EXISTS admin_passwords (
    enterprise_number text PRIMARY KEY,
    role              text NOT NULL CHECK (role IN ('admin', 'viewer')),
    hash              text NOT NULL,
    set_at            timestamptz NOT NULL DEFAULT now()
);

-- Failed sign-ins by enterprise and client address: enough of them in a window locks that pair out for a while.
CREATE TABLE IF NOT EXISTS admin_password_failures (
    enterprise_number text NOT NULL,
    client            text NOT NULL,
    failed_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS admin_password_failures_key
    ON admin_password_failures (enterprise_number, client, failed_at);
