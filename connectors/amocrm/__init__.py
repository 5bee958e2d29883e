"""amoCRM / Kommo v4 (crm-api.md Part B): OAuth tokens, call logging, unknown callers, call-back tasks;
the OAuth and webhook routes amoCRM calls (`routes`)."""
