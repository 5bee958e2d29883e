"""The composition root's parts: each builds one part of the agent from what it is handed, starts it, and
takes it down again; `agent.app` enters them in order, so they stop in reverse.

- `store`: the state directory (its lock, the state secret) and the database (embedded or external, migrated);
- `web`: the recording links, and the HTTP site with every route (admin, API, callbacks, recordings);
- `delivery`: the CRMs' integrations (amoCRM bound to the database), the outbox, the planner, the agent count;
- `redirect`: smart redirect's router and its FastAGI server;
- `pbx`: the PBX links, each call event handed to the metrics, the router and the planner.

Only `agent.app` imports this package (pyproject [tool.importlinter]); it may import every other part.
"""
