"""One child process under supervision: the piece that ``vdup up``, ``vdup triton`` and the load
test runner share.

Why a class of its own: a local stack is only as trustworthy as its shutdown. Every child runs
in its own session (so a Ctrl-C in the terminal reaches us, not it, and we decide the order),
writes to its own log, and is stopped the same way: SIGTERM, a grace period, then SIGKILL of
its whole process group, which also takes the helpers it started (Triton's python-backend
stubs, uvicorn's workers). The child is reaped only after its group was signalled, so the
group id cannot have been reused by another process by then.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)


class Child:
    """``cmd`` as a child process in a session of its own.

    Output goes to ``log_path`` (appended; inherited from this process when None), stdout to a
    pipe instead when ``pipe_stdout`` (a child that prints its address). ``stop()`` sends
    SIGTERM, waits ``grace_s`` and then SIGKILLs the group; ``kill()`` is kill -9 at once, as a
    crash would be.
    """

    def __init__(
        self,
        name: str,
        cmd: list[str],
        *,
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
        grace_s: float = 30.0,
        pipe_stdout: bool = False,
    ) -> None:
        self.name, self.cmd = name, list(cmd)
        self.env = env
        self.log_path = log_path
        self.grace_s = grace_s
        self.pipe_stdout = pipe_stdout
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> Child:
        """Start it; OSError when ``cmd`` cannot be executed (the log is closed again)."""
        if self.running():
            raise RuntimeError(f"{self.name} is already running")
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_path, "ab")
        stdout = subprocess.PIPE if self.pipe_stdout else self._log
        stderr = subprocess.STDOUT if self._log is not None and not self.pipe_stdout else self._log
        try:
            self.process = subprocess.Popen(
                self.cmd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )
        except OSError:
            self._close()
            raise
        return self

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def exited(self, timeout_s: float = 0.0) -> bool:
        """Whether the child has exited, waiting up to ``timeout_s`` s, without reaping it."""
        if self.process is None:
            return True
        if self.process.returncode is not None:
            return True
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if (
                    os.waitid(os.P_PID, self.process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
                    is not None
                ):
                    return True
            except ChildProcessError:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def wait(self, timeout_s: float | None = None) -> int:
        assert self.process is not None, f"{self.name} was never started"
        return self.process.wait(timeout_s)

    def stop(self) -> int | None:
        """SIGTERM, up to ``grace_s`` s for it to exit, then SIGKILL of what is left of its
        group; returns the exit status (None if it never started)."""
        proc = self.process
        if proc is None:
            return None
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            if not self.exited(self.grace_s):
                log.warning("%s did not stop within %.0f s; killing it", self.name, self.grace_s)
            self._kill_group()
        code = proc.wait()
        self._close()
        return code

    def kill(self) -> int:
        """kill -9 of the child and its group, at once; returns the exit status."""
        assert self.process is not None, f"{self.name} was never started"
        self._kill_group()
        code = self.process.wait()
        self._close()
        return code

    def log_tail(self, chars: int = 4000) -> str:
        """The last ``chars`` characters of the log ('' when output is not logged)."""
        if self.log_path is None or not self.log_path.is_file():
            return ""
        if self._log is not None:
            self._log.flush()
        return self.log_path.read_text(errors="replace")[-chars:]

    def _kill_group(self) -> None:
        assert self.process is not None
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)

    def _close(self) -> None:
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None
