-- Deliveries with the same batch_key may go out in one request (RetailCRM calls/upload takes 50).
ALTER TABLE deliveries ADD COLUMN batch_key text;
