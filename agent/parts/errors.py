"""What a part raises when it cannot start; `pbx-agent run` maps these to its exit codes (agent.cli)."""

from __future__ import annotations


class StartupError(Exception):
    """A part could not start; the message says which and why."""


class ConflictError(StartupError):
    """Something else already holds what the agent needs (its state_dir, a port): exit code 2."""


def why(exc: OSError) -> str:
    return exc.strerror or str(exc)
