"""A process stamp tells debris of a dead run from work in progress, and never guesses."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

from aiops_pipelines.core.process import Process, claim_token, claimer


def test_a_living_process_is_not_dead_and_a_killed_one_is() -> None:
    me = Process.current()
    assert Process.parse(str(me)) == me
    assert not me.is_dead()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    stamp = replace(me, pid=child.pid, started="")
    assert not stamp.is_dead()
    child.kill()
    child.wait()
    assert stamp.is_dead()


def test_a_reused_pid_or_another_host_is_judged_right() -> None:
    me = Process.current()
    if me.started:  # /proc tells the start time: the same pid started later is someone else
        assert replace(me, started="1").is_dead()
    assert not replace(me, host=me.host + "-elsewhere", pid=2**22 + 1).is_dead()


def test_a_claim_names_its_claimer_and_an_old_claim_names_none() -> None:
    token = claim_token()
    assert claimer(token) == Process.current()
    assert token != claim_token()
    assert claimer("0f3a9c2e4b1d4e5f8a7b6c5d4e3f2a1b") is None
    assert claimer(None) is None
