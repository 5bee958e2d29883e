-- Sign-in links issued from the admin site (an instance admin hands one to an enterprise's admin): listed until
-- they expire, and revocable before they are used (revoking records the link as used: admin_links_used).
CREATE TABLE IF NOT EXISTS admin_links_issued (
    jti               text PRIMARY KEY,
    enterprise_number text,
    role              text NOT NULL,
    issued_at         timestamptz NOT NULL DEFAULT now(),
    expires_at        timestamptz NOT NULL,
    revoked_at        timestamptz
);
