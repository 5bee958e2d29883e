"""PostgreSQL: the pool, the embedded cluster, the migrations, and one module per table family (calls,
enterprises and their integrations_config, extensions, routing rules, retention, peers) plus the secrets
at rest. May import `config` and `life`; never `admin` or `connectors` (what it must know of a CRM, such
as which settings are secret, it is handed).
"""
