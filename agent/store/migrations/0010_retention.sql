-- Indexes for agent.retention's batch deletes ([retention]): each batch takes the oldest rows past the horizon
-- by a range scan of one of these and stops after a few thousand, instead of scanning the whole table.
-- Kept narrow: one timestamp column each; deliveries' only covers the final states the pruner may delete.
CREATE INDEX integration_logs_created ON integration_logs (created_at);
CREATE INDEX deliveries_final_updated ON deliveries (updated_at)
    WHERE status IN ('done', 'expired', 'dead', 'failed');
-- calls_days is 0 (keep) by default; the index is small beside calls' five others.
CREATE INDEX calls_listed ON calls (listed_at);
