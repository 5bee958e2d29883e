"""AMI in: one link per `[[pbx]]` (TCP or through SSH), the incremental framer, the per-PBX pipeline that
feeds the tracker and hands its CallEvents to a sink, the PBX locks that let one agent of many consume a
PBX, click-to-call origination and extension discovery. May import `tracking`, `config`, `store` (locks),
`web.health`/`web.metrics`; never `delivery`, `repair`, `redirect` or a CRM connector: what happens after a
reconnect beyond the tracker's own reconcile is wired in by the composition root (`agent.parts.pbx`).
"""
