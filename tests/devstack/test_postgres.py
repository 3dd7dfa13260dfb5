"""The local PostgreSQL server: it keeps what was committed across a clean stop and across a
SIGKILL (crash recovery on the same data directory), says why it failed to start, listens on
127.0.0.1 only with trust authentication, the per-test databases are isolated, and ``vdup up
--postgres`` runs it before the other parts."""

from __future__ import annotations

import signal
import socket
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

from support.postgres import (
    database_names,
    fresh_database,
    require_postgres,
    running_server,
    server_root,
    tcp_listen_addresses,
)
from support.shards import free_port
from vdup.devstack import postgres as pg
from vdup.devstack.postgres import PostgresServer
from vdup.devstack.stack import LocalStack


def _rows(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute("SELECT note FROM notes ORDER BY id")]


@pytest.mark.slow  # initdb and a server of its own
def test_committed_rows_survive_a_stop_and_start_and_a_busy_port_fails_with_the_log():
    with running_server() as server:
        with psycopg.connect(server.url) as conn:
            conn.execute("CREATE TABLE notes (id serial PRIMARY KEY, note text NOT NULL)")
            conn.execute("INSERT INTO notes (note) VALUES ('before stop')")
        first_pid = server.pid
        assert server.stop() == 0
        assert server.stop() is None and not server.running()  # idempotent

        with socket.socket() as squatter:  # the port taken: start must fail, and say why
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT
            squatter.bind((server.host, server.port))
            squatter.listen()
            with pytest.raises(RuntimeError, match="could not bind") as failed:
                server.start()
            assert "before it accepted connections" in str(failed.value)
            assert not server.running()

        server.start()
        assert server.pid != first_pid
        assert _rows(server.url) == ["before stop"]


@pytest.mark.slow  # initdb and a server of its own
def test_a_killed_server_recovers_every_committed_row_on_the_same_data_dir():
    with running_server(fsync=True) as server:
        conn = psycopg.connect(server.url)
        conn.execute("CREATE TABLE notes (id serial PRIMARY KEY, note text NOT NULL)")
        conn.execute("INSERT INTO notes (note) VALUES ('committed')")
        conn.commit()
        conn.execute("INSERT INTO notes (note) VALUES ('in flight')")
        assert server.kill() == -signal.SIGKILL
        with pytest.raises(psycopg.OperationalError):  # its backend went down with the server
            conn.commit()
        conn.close()
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(server.url, connect_timeout=2).close()

        server.start()
        assert _rows(server.url) == ["committed"]
        assert "was interrupted" in server.log_tail(20_000)  # it went through crash recovery


def test_the_server_trusts_loopback_and_the_socket_and_listens_on_127_0_0_1_only(
    postgres_server: PostgresServer,
):
    with psycopg.connect(postgres_server.url) as conn:  # no password asked
        assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
        assert conn.execute("SELECT current_user").fetchone() == ("postgres",)
    socket_dir = postgres_server.socket_dir
    with psycopg.connect(host=str(socket_dir), port=postgres_server.port, user="postgres") as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert tcp_listen_addresses(postgres_server.port) == {"127.0.0.1"}


def test_each_test_database_is_fresh_isolated_and_dropped_even_with_a_connection_open(
    postgres_server: PostgresServer, database_url: str
):
    with psycopg.connect(database_url) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', "
            "'information_schema')"
        ).fetchone()
        assert tables == (0,)
        conn.execute("CREATE TABLE mine (x int)")
        conn.execute("INSERT INTO mine VALUES (1)")

    with fresh_database(postgres_server) as other_url:
        other_name = other_url.rsplit("/", 1)[1]
        assert other_name.startswith("test_") and other_url != database_url
        left_open = psycopg.connect(other_url)
        with pytest.raises(psycopg.errors.UndefinedTable):
            left_open.execute("SELECT * FROM mine")
        left_open.rollback()
    assert other_name not in database_names(postgres_server)
    with pytest.raises(psycopg.OperationalError):
        left_open.execute("SELECT 1")  # FORCE ended it
    left_open.close()


def test_missing_binaries_name_the_package_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(pg.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="apt-get install postgresql"):
        pg.find_bindir(str(tmp_path / "*" / "bin"))


def test_the_highest_installed_version_is_chosen(monkeypatch, tmp_path):
    monkeypatch.setattr(pg.shutil, "which", lambda name: None)
    for version in ("9.6", "15", "16", "100"):
        (tmp_path / version / "bin").mkdir(parents=True)
        for exe in ("initdb", "postgres"):
            (tmp_path / version / "bin" / exe).touch()
    (tmp_path / "200" / "bin").mkdir(parents=True)  # client tools only
    assert pg.find_bindir(str(tmp_path / "*" / "bin")) == tmp_path / "100" / "bin"


def test_create_database_quotes_the_name(postgres_server: PostgresServer):
    name = f'odd "name" {uuid.uuid4().hex[:8]}'
    postgres_server.create_database(name)
    try:
        assert name in database_names(postgres_server)
    finally:
        postgres_server.drop_database(name)
    assert name not in database_names(postgres_server)


@pytest.mark.slow  # a server of its own
def test_the_local_stack_starts_postgres_first_hands_its_url_on_and_stops_it_last(monkeypatch):
    require_postgres()
    with server_root() as root:
        stack = LocalStack(
            1, triton=False, api=False, data_root=root, shard_ports=[free_port()], postgres=True
        )
        # a stand-in for the shard: what is checked is the wiring, not the indexer
        shard = stack.shards[0]
        shard.cmd = [sys.executable, "-c", "import time; time.sleep(60)"]
        monkeypatch.setattr(shard, "wait_ready", lambda timeout_s: 0.0)
        with stack:
            assert stack.postgres is not None and stack.postgres.root == root / "postgres"
            environ = Path(f"/proc/{shard.pid}/environ").read_bytes().split(b"\0")
            assert f"VDUP_DATABASE_URL={stack.postgres.url}".encode() in environ
            with psycopg.connect(stack.postgres.url) as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)
            assert stack.failed() == []
            stack.postgres.kill()
            assert stack.failed() == ["postgres"]
            stack.postgres.start()
        assert not stack.postgres.running() and not shard.running()
