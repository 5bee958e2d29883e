"""What the agent did not hear: recorded AMI replayed through the live tracker, Asterisk's CDR read into
calls (backwards from the end of `Master.csv`, locally or over SFTP), the catch-up after a reconnect, and
the `backfill` and `redeliver` commands. May import every part below the composition root; is wired to
ingest by the composition root (`agent.parts.pbx`), never imported by `ingest`.
"""
