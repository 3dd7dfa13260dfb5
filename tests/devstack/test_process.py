"""The one process supervisor of the local stack: log, graceful stop, and no orphan left."""

from __future__ import annotations

import os
import signal
import sys
import time

from vdup.devstack.process import Child

# A parent that ignores SIGTERM and has started a grandchild of its own (in its group), the
# way tritonserver starts python-backend stubs: stop() must take both.
STUBBORN = """
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print("grandchild", child.pid, flush=True)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie still answers kill(pid, 0)
        return f.read().split(") ")[1][0] != "Z"


def _grandchild(child: Child) -> int:
    deadline = time.monotonic() + 20
    while "grandchild" not in child.log_tail():
        assert time.monotonic() < deadline, child.log_tail()
        time.sleep(0.05)
    return int(child.log_tail().split("grandchild")[1].split()[0])


def test_stop_kills_the_whole_group_after_the_grace_period(tmp_path):
    child = Child(
        "stubborn", [sys.executable, "-c", STUBBORN], log_path=tmp_path / "s.log", grace_s=0.5
    ).start()
    grandchild = _grandchild(child)
    assert child.running() and _alive(grandchild)
    t0 = time.monotonic()
    code = child.stop()
    assert code == -signal.SIGKILL
    assert time.monotonic() - t0 >= 0.5  # it was given its grace period first
    deadline = time.monotonic() + 5
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild)
    assert not child.running()


def test_a_graceful_child_exits_on_sigterm_with_its_own_status(tmp_path):
    script = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *a: sys.exit(3))\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    child = Child(
        "polite", [sys.executable, "-c", script], log_path=tmp_path / "p.log", grace_s=20
    ).start()
    deadline = time.monotonic() + 20
    while "ready" not in child.log_tail():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    t0 = time.monotonic()
    assert child.stop() == 3
    assert time.monotonic() - t0 < 10
    assert child.exited()


def test_kill_is_immediate_and_a_missing_binary_raises(tmp_path):
    child = Child("sleeper", ["sleep", "60"], log_path=tmp_path / "k.log").start()
    assert child.kill() == -signal.SIGKILL
    missing = Child("missing", [str(tmp_path / "no-such-binary")], log_path=tmp_path / "m.log")
    try:
        missing.start()
    except OSError:
        pass
    else:
        raise AssertionError("a missing binary must raise OSError")
    assert missing.process is None and missing.stop() is None
