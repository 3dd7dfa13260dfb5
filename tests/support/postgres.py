"""Real PostgreSQL servers for tests (``vdup.devstack.postgres.PostgresServer``): one for the
whole session with a fresh database per test (the ``postgres_server`` and ``database_url``
fixtures in conftest.py), and servers of a test's own for stop, kill and restart.

Why not pytest's ``tmp_path``: as root the server runs as the ``postgres`` user, which cannot
enter pytest's root-only temporary directories; ``server_root`` makes a directory of its own
under /tmp instead, and removes it afterwards.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from vdup.devstack.postgres import PostgresServer, find_bindir


def require_postgres() -> None:
    """Skip the test when the PostgreSQL server binaries are not installed here."""
    try:
        find_bindir()
    except RuntimeError as exc:
        pytest.skip(str(exc))


@contextmanager
def server_root() -> Iterator[Path]:
    """A fresh directory under /tmp that the postgres user can enter (as ``PostgresServer``'s
    root or a parent of it); removed on exit."""
    root = Path(tempfile.mkdtemp(prefix="vdup-pg-", dir="/tmp"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def running_server(fsync: bool = False) -> Iterator[PostgresServer]:
    """A started server in a ``server_root``; stopped (or already killed) and removed on exit.
    Skips when PostgreSQL is not installed."""
    require_postgres()
    with server_root() as root:
        server = PostgresServer(root, fsync=fsync)
        try:
            yield server.start()
        finally:
            server.stop()


@contextmanager
def fresh_database(server: PostgresServer) -> Iterator[str]:
    """An empty database ``test_<uuid hex>`` on ``server``; yields its URL, and drops it WITH
    (FORCE) on exit, so connections a test left open do not keep it."""
    name = f"test_{uuid.uuid4().hex}"
    url = server.create_database(name)
    try:
        yield url
    finally:
        server.drop_database(name)


def database_names(server: PostgresServer) -> set[str]:
    with psycopg.connect(server.url) as conn:
        return {row[0] for row in conn.execute("SELECT datname FROM pg_database")}


def tcp_listen_addresses(port: int) -> set[str]:
    """The local addresses with a TCP socket in LISTEN state on ``port`` (IPv4 dotted, IPv6 as
    the kernel's hex), from /proc/net/tcp and tcp6."""
    found: set[str] = set()
    for table, v4 in (("/proc/net/tcp", True), ("/proc/net/tcp6", False)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            addr, hex_port = local.split(":")
            if state != "0A" or int(hex_port, 16) != port:
                continue
            if v4:
                found.add(".".join(str(int(addr[i : i + 2], 16)) for i in (6, 4, 2, 0)))
            else:
                found.add(addr)
    return found
