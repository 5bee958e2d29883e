-- Enterprise-wide settings that belong to no single CRM (smart redirect's behaviour).
ALTER TABLE enterprises ADD COLUMN settings jsonb NOT NULL DEFAULT '{}';
