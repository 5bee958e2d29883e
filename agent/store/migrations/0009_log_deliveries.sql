-- One exchange may carry several deliveries (RetailCRM calls/upload batches up to 50): integration_logs
-- records all of them in delivery_ids; delivery_id stays the first one, for readers that know only it.
-- Rows written before this migration keep delivery_ids NULL (no backfill: it would rewrite the whole table
-- at start-up); readers match `delivery_ids && ids OR delivery_id = ANY(ids)`.
ALTER TABLE integration_logs ADD COLUMN delivery_ids bigint[];
CREATE INDEX integration_logs_deliveries ON integration_logs USING gin (delivery_ids)
    WHERE delivery_ids IS NOT NULL;
