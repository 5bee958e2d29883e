"""One running agent per state directory: an flock on <state_dir>/agent.pid, which also names its holder."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from agent.life.runas import give_to_state_owner


class StateDirBusy(Exception):
    pass


class StateLock:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "agent.pid"
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        give_to_state_owner(self.path, self.path.parent)  # root's CLI beside a service: the service must reopen it
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StateDirBusy(f"another pbx-agent (PID {holder}) is running on state_dir {self.path.parent}") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock; the file stays (harmless, rewritten next time)
            self._fd = None
