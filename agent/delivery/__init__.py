"""CRM out: the planner (CallEvents into outbox rows through each enabled connector's `plan`), the
durable outbox (claim with SKIP LOCKED, send, settle), the dispatcher that paces each CRM account, and the
enabled-CRM view of each enterprise (`integrations`). May import `tracking.event`, `config`, `store`, `web`
(health, metrics) and `connectors`.
"""
