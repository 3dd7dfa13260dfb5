"""A real PostgreSQL server on 127.0.0.1 for ``vdup up`` and the tests: the catalog's truth lives
in PostgreSQL, so what runs here is the server itself, not a look-alike.

Why the server runs under ``process.Child`` and not ``pg_ctl start``: the postmaster is then our
own child in a session of its own, so ``kill()`` takes it and its backends at once with SIGKILL
(a crash, as the server sees it) and the next ``start()`` on the same data directory runs crash
recovery, the way a pod that was killed does. ``stop()`` sends SIGINT, which is exactly what
``pg_ctl -m fast stop`` sends: open transactions are rolled back, clients disconnected, a
checkpoint written.

Why a user switch: PostgreSQL refuses to run as root. As root, initdb and the server run as the
``postgres`` user (``setpriv``, which replaces itself, so the supervised pid is the postmaster's)
and the directories are chowned to it; as anyone else they run directly. Only the server changes
user; the caller keeps its own.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import psycopg
from psycopg import sql

from vdup.devstack.process import Child

#: Where Debian and Ubuntu put each major version's server binaries.
DEBIAN_BINDIRS = "/usr/lib/postgresql/*/bin"
#: The longest unix socket path the kernel accepts (sun_path is 108 bytes with its NUL).
_MAX_SOCKET_PATH = 107


def find_bindir(pattern: str = DEBIAN_BINDIRS) -> Path:
    """The directory holding ``initdb`` and ``postgres``: ``pg_config --bindir`` when that has
    them (on Debian, /usr/bin/pg_config may belong to libpq-dev alone), else the highest version
    under ``pattern``. RuntimeError naming the package to install when there is none."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        done = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if done.returncode == 0 and done.stdout.strip():
            candidates.append(Path(done.stdout.strip()))

    def version(path: str) -> tuple[int, ...]:
        name = Path(path).parent.name
        return tuple(int(p) for p in name.split(".") if p.isdigit())

    candidates += [Path(p) for p in sorted(glob.glob(pattern), key=version, reverse=True)]
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "postgres").is_file():
            return bindir
    raise RuntimeError(
        "PostgreSQL server binaries (initdb, postgres) were not found: not on pg_config --bindir, "
        f"not under {pattern}; install them with `apt-get install postgresql`"
    )


def _children(pid: int) -> list[int]:
    """The pids whose parent is ``pid``, from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """One PostgreSQL server on 127.0.0.1:``port`` (0: a free port, picked now) over
    ``root/data``, with its unix socket in ``root/run`` and its log in ``root/postgres.log``.

    ``fsync=False`` (tests) turns off fsync and synchronous commit: a process crash loses
    nothing, a power cut may. ``start()`` initialises the data directory once (trust
    authentication, for 127.0.0.1 and the socket only) and returns when the server accepts
    connections; ``stop()`` is a fast shutdown, ``kill()`` a SIGKILL of the server's processes;
    either may be followed by ``start()`` again. Use it as a context manager to stop it on exit.
    """

    host = "127.0.0.1"
    user = "postgres"

    def __init__(
        self,
        root: Path,
        port: int = 0,
        fsync: bool = False,
        *,
        ready_timeout_s: float = 60.0,
        stop_timeout_s: float = 60.0,
    ) -> None:
        self.root = Path(root).absolute()
        self.port = port or free_port(self.host)
        self.fsync = fsync
        self.ready_timeout_s = ready_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.data_dir = self.root / "data"
        self.socket_dir = self.root / "run"
        self.log_path = self.root / "postgres.log"
        self._child: Child | None = None

    @property
    def url(self) -> str:
        """The libpq URL of the ``postgres`` database, as the ``postgres`` superuser."""
        return self.database_url("postgres")

    def database_url(self, name: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{name}"

    @property
    def pid(self) -> int | None:
        """The postmaster's pid while it runs."""
        return self._child.pid if self._child is not None and self._child.running() else None

    def running(self) -> bool:
        return self._child is not None and self._child.running()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> PostgresServer:
        """initdb if ``root/data`` has no PG_VERSION, then the server; returns once it accepts
        connections. RuntimeError with the end of the log when it exits or times out first."""
        if self.running():
            raise RuntimeError(f"PostgreSQL on port {self.port} is already running")
        bindir = find_bindir()
        as_postgres = self._user_switch()
        socket_path = self.socket_dir / f".s.PGSQL.{self.port}"
        if len(str(socket_path)) > _MAX_SOCKET_PATH:
            raise RuntimeError(
                f"the unix socket path {socket_path} is longer than {_MAX_SOCKET_PATH} bytes; "
                "give PostgresServer a shorter root"
            )
        for d in (self.root, self.socket_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.log_path.touch()
        if as_postgres:
            self._hand_to_postgres()
        if not (self.data_dir / "PG_VERSION").is_file():
            self._initdb(bindir, as_postgres)
        cmd = [
            *as_postgres,
            str(bindir / "postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-k",
            str(self.socket_dir),
            "-c",
            f"listen_addresses={self.host}",
            "-c",
            "logging_collector=off",
        ]
        if not self.fsync:
            cmd += ["-c", "fsync=off", "-c", "synchronous_commit=off"]
        # stop() waits for the fast shutdown itself; Child's SIGTERM grace is only a last step
        self._child = Child("postgres", cmd, log_path=self.log_path, grace_s=5.0)
        self._child.start()
        self._wait_ready()
        return self

    def stop(self) -> int | None:
        """Fast shutdown (SIGINT, as ``pg_ctl -m fast stop``); SIGKILL of its processes if it has
        not exited within ``stop_timeout_s``. Returns the exit status; a no-op when stopped."""
        child = self._child
        if child is None or child.process is None:
            return None
        if child.process.returncode is None:
            try:
                os.kill(child.process.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
            if not child.exited(self.stop_timeout_s):
                return self.kill()
        code = child.stop()
        self._child = None
        return code

    def kill(self) -> int:
        """SIGKILL of the postmaster and every server process it started, as a crash would be;
        returns the postmaster's exit status. The next ``start()`` runs crash recovery from the
        WAL.

        Each backend makes itself a process group leader, so the postmaster's group is not
        enough: the postmaster is stopped first (it cannot fork while stopped), its children
        are listed and killed, then the postmaster."""
        child = self._child
        if child is None or child.process is None:
            raise RuntimeError("PostgreSQL is not running")
        if child.process.returncode is None:
            pid = child.process.pid
            try:
                os.kill(pid, signal.SIGSTOP)
            except ProcessLookupError:
                pass
            for server_process in _children(pid):
                try:
                    os.kill(server_process, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        code = child.kill()
        self._child = None
        return code

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- databases ---------------------------------------------------------------------------

    def create_database(self, name: str) -> str:
        """CREATE DATABASE ``name`` (an identifier, quoted as such); returns its URL."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.database_url(name)

    def drop_database(self, name: str) -> None:
        """DROP DATABASE IF EXISTS ``name`` WITH (FORCE): its open connections are ended."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def log_tail(self, chars: int = 4000) -> str:
        if not self.log_path.is_file():
            return ""
        return self.log_path.read_text(errors="replace")[-chars:]

    # -- internals ---------------------------------------------------------------------------

    def _user_switch(self) -> list[str]:
        """The command prefix that runs a program as ``postgres`` when we are root; [] else."""
        if os.geteuid() != 0:
            return []
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise RuntimeError(
                "running as root, and PostgreSQL refuses root: there is no 'postgres' user to "
                "run it as (`apt-get install postgresql` creates one)"
            ) from None
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            raise RuntimeError("running as root needs setpriv (util-linux) to become postgres")
        return [setpriv, "--reuid=postgres", "--regid=postgres", "--init-groups"]

    def _hand_to_postgres(self) -> None:
        """chown root, the socket dir and the log to postgres, and check that it can reach
        them (a parent such as /root or pytest's tmp dirs may be closed to it)."""
        entry = pwd.getpwnam("postgres")
        for path in (self.root, self.socket_dir, self.log_path):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        probe = subprocess.run(
            [*self._user_switch(), "test", "-w", str(self.root)], cwd="/tmp", check=False
        )
        if probe.returncode != 0:
            raise RuntimeError(
                f"the postgres user cannot write {self.root}: every parent directory must be "
                "searchable by it (root-only directories such as /root are not); put it under "
                "/tmp or another open directory"
            )

    def _initdb(self, bindir: Path, as_postgres: list[str]) -> None:
        cmd = [
            *as_postgres,
            str(bindir / "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            self.user,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        ]
        if not self.fsync:
            cmd.append("--no-sync")
        with open(self.log_path, "ab") as log:
            done = subprocess.run(
                cmd, cwd="/tmp", stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        if done.returncode != 0:
            raise RuntimeError(
                f"initdb of {self.data_dir} failed with status {done.returncode}\n{self.log_tail()}"
            )
        # trust for the socket and 127.0.0.1 only (initdb's default also trusts ::1 and
        # replication); the server listens on nothing else
        (self.data_dir / "pg_hba.conf").write_text(
            "# vdup.devstack.postgres: local development and tests only\n"
            "local all all trust\n"
            "host  all all 127.0.0.1/32 trust\n"
        )

    def _wait_ready(self) -> None:
        assert self._child is not None and self._child.process is not None
        deadline = time.monotonic() + self.ready_timeout_s
        while True:
            code = self._child.process.poll()
            if code is not None:
                self._child.stop()
                self._child = None
                raise RuntimeError(
                    f"PostgreSQL exited with status {code} before it accepted connections on "
                    f"port {self.port}\n{self.log_tail()}"
                )
            try:
                with psycopg.connect(self.url, connect_timeout=2):
                    return
            except psycopg.OperationalError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"PostgreSQL did not accept connections within {self.ready_timeout_s:.0f} s"
                    f"\n{self.log_tail()}"
                )
            time.sleep(0.05)
