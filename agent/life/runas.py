"""Root working on a service's state directory: what it makes stays the service user's.

On a host where the service runs as `pbx-agent` (systemd's StateDirectory= owns /var/lib/pbx-agent to it),
an admin types `pbx-agent redeliver -c /etc/pbx-agent/agent.toml` as root. Root must not hand the embedded
cluster to Debian's `postgres` user, nor leave a root-owned secret.key: the service could not start again.
So root runs the cluster as the state directory's owner and gives new state files to it. `run` itself as
root on such a directory is refused: the agent would write its own files there as root.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path


class StateOwnedByService(Exception):
    """`pbx-agent run` as root on a state directory that belongs to another user."""


def state_owner(state_dir: Path) -> tuple[int, int] | None:
    """(uid, gid) of an existing `state_dir` that belongs to someone other than this process, else None."""
    try:
        st = state_dir.stat()
    except FileNotFoundError:
        return None
    if st.st_uid == os.geteuid():
        return None
    return st.st_uid, st.st_gid


def give_to_state_owner(path: Path, state_dir: Path) -> None:
    """As root, a file just made in `state_dir` goes to the directory's owner."""
    owner = state_owner(state_dir) if os.geteuid() == 0 else None
    if owner is not None:
        os.chown(path, *owner)


def refuse_root_run(state_dir: Path) -> None:
    if os.geteuid() != 0:
        return
    owner = state_owner(state_dir)
    if owner is not None:
        try:
            name = pwd.getpwuid(owner[0]).pw_name
        except KeyError:
            name = f"UID {owner[0]}"
        raise StateOwnedByService(
            f"{state_dir} belongs to {name}: run the agent as that user (systemctl start pbx-agent, "
            f"or runuser -u {name} -- pbx-agent run ...), not as root"
        )
