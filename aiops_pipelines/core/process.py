"""Which process did something, and whether it is still alive.

A run that is killed (kill -9, a power cut, an OOM kill) leaves what it had started: a Dagster
run still `STARTED`, an MLflow run still `RUNNING`, notifications it claimed still `sending`.
Each is stamped with the process that started it (`Process.current()`), so the next run can
tell debris from work in progress: a process on this host that no longer exists will never
finish. A process on another host is never judged (its pid means nothing here); its leftovers
wait for the time-based fallbacks.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks since boot) from /proc, or None without /proc."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after it
    fields = text[text.rfind(")") + 2 :].split()
    return fields[0], fields[19]


@dataclass(frozen=True)
class Process:
    """A process by host, pid and start time (the start time tells a reused pid apart)."""

    host: str
    pid: int
    started: str = ""

    @classmethod
    def current(cls) -> Process:
        stat = _proc_stat(os.getpid())
        return cls(socket.gethostname(), os.getpid(), stat[1] if stat else "")

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}:{self.started}"

    @classmethod
    def parse(cls, text: str | None) -> Process | None:
        """The process `str(process)` wrote, or None for anything else (older stamps)."""
        host, _, rest = (text or "").rpartition(":")
        host, _, pid = host.rpartition(":")
        if not host or not pid.isdigit():
            return None
        return cls(host, int(pid), rest)

    def is_dead(self) -> bool:
        """True only when certain: the process ran on this host and is gone (or a zombie, or
        its pid now belongs to a process started at another time)."""
        if self.host != socket.gethostname():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass  # it exists, under another user
        stat = _proc_stat(self.pid)
        if stat is None:
            return False
        state, started = stat
        return state in ("Z", "X") or bool(self.started and started != self.started)


def claim_token() -> str:
    """A unique claim that names its claimer: `<process>/<random>`."""
    return f"{Process.current()}/{uuid.uuid4().hex}"


def claimer(claim: str | None) -> Process | None:
    """The process that took `claim` (None for a claim that names none)."""
    return Process.parse((claim or "").partition("/")[0])
