"""``vdup up``: the whole service as local processes on 127.0.0.1, the way the cluster runs it.

Why processes and not threads: each part is exercised as it is deployed (its own interpreter,
its own port, its own data directory, stopped by a signal), so tests and load tests here meet
the same failure modes as pods: a shard killed with -9, a shard that is slow to start, a graceful
SIGTERM that snapshots. ``LocalStack`` is the reusable piece (a context manager); ``run`` is the
CLI around it.

Order: PostgreSQL (optional, ``vdup.devstack.postgres.PostgresServer`` over ``<data>/postgres``;
its URL goes to every later part as ``VDUP_DATABASE_URL``), Triton (optional,
``vdup.devstack.triton.TritonServer``), the N indexer shards (started together, each
``vdup indexer`` on ``shard_port + i`` with ``<data>/shard-<i>``), then the API (``vdup serve``)
with ``VDUP_INDEXER_URLS`` and ``VDUP_TRITON_URL`` set. Each is waited for on its readiness
endpoint. Stopping runs in reverse: SIGTERM, then SIGKILL after a grace period; PostgreSQL last.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from vdup.devstack.process import Child

if TYPE_CHECKING:
    from vdup.devstack.postgres import PostgresServer
    from vdup.devstack.triton import TritonServer

log = logging.getLogger(__name__)


class StartError(RuntimeError):
    """A part did not become ready; the message holds the end of its log."""


class ServiceProcess(Child):
    """One ``python -m vdup.cli <argv>`` child with a readiness URL (``Child`` for the rest:
    log, stop with a grace period, kill)."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        ready_url: str,
        env: dict | None = None,
        log_path: Path | None = None,
        grace_s: float = 30.0,
    ) -> None:
        super().__init__(
            name, [sys.executable, "-m", "vdup.cli", *argv], log_path=log_path, grace_s=grace_s
        )
        self.argv, self.ready_url = list(argv), ready_url
        self.extra_env = dict(env or {})

    def start(self) -> ServiceProcess:
        self.env = {**os.environ, **self.extra_env}
        super().start()
        return self

    def wait_ready(self, timeout_s: float = 60.0) -> float:
        """Block until ``ready_url`` answers 200; returns the seconds waited. StartError if the
        process exits first or ``timeout_s`` passes."""
        t0 = time.monotonic()
        with httpx.Client(timeout=2.0) as client:
            while True:
                code = self.process.poll() if self.process else -1
                if code is not None:
                    raise StartError(
                        f"{self.name} exited with status {code} before it was "
                        f"ready\n{self.log_tail()}"
                    )
                try:
                    if client.get(self.ready_url).status_code == 200:
                        return time.monotonic() - t0
                except httpx.HTTPError:
                    pass
                if time.monotonic() - t0 > timeout_s:
                    raise StartError(
                        f"{self.name} was not ready within {timeout_s:.0f} s\n{self.log_tail()}"
                    )
                time.sleep(0.05)


def shard_process(
    i: int,
    port: int,
    data_dir: Path,
    host: str = "127.0.0.1",
    index_factory: str | None = None,
    log_path: Path | None = None,
    env: dict | None = None,
    grace_s: float = 120.0,
    name: str | None = None,
) -> ServiceProcess:
    """``vdup indexer`` for shard ``i`` (shard id ``shard-<i>``). ``grace_s``: time its SIGTERM
    gets for the final snapshot (its time grows with the index; figures:
    docs/benchmarks.md#design-choices-measured) before SIGKILL, which loses no data but leaves
    the next start a longer replay."""
    argv = [
        "indexer",
        "--host",
        host,
        "--port",
        str(port),
        "--data",
        str(data_dir),
        "--shard-id",
        f"shard-{i}",
    ]
    if index_factory:
        argv += ["--index-factory", index_factory]
    return ServiceProcess(
        name or f"shard-{i}",
        argv,
        f"http://{host}:{port}/readyz",
        env=env,
        log_path=log_path,
        grace_s=grace_s,
    )


class LocalStack:
    """Triton (optional) + ``shards`` indexer shards + the API, as child processes.

    ``with LocalStack(shards=2, triton=False, data_root=tmp) as stack:`` returns once every part
    is ready; ``stack.api_url``, ``stack.shard_urls``, ``stack.triton_url`` say where they are.
    ``api=False`` starts only the shards (tests of the shard tier); ``shard_ports`` overrides
    the ports ``shard_port + i`` (tests pick free ones). Logs go to
    ``<data_root>/logs/<part>.log`` unless ``log_dir`` says otherwise, or to the terminal when
    ``inherit_output`` is set (``vdup up``). ``postgres=True`` first starts a PostgreSQL server
    over ``<data_root>/postgres`` on ``postgres_port`` (0: a free one) and passes its URL to
    the shards and the API as ``VDUP_DATABASE_URL``.
    """

    def __init__(
        self,
        shards: int = 2,
        *,
        host: str = "127.0.0.1",
        shard_port: int = 8091,
        api_port: int = 8080,
        data_root: Path = Path("data"),
        triton: bool = True,
        triton_repository: Path = Path("model_repository"),
        triton_grpc_port: int = 8001,
        api: bool = True,
        index_factory: str | None = None,
        log_dir: Path | None = None,
        inherit_output: bool = False,
        api_env: dict | None = None,
        ready_timeout_s: float = 120.0,
        shard_ports: list[int] | None = None,
        postgres: bool = False,
        postgres_port: int = 0,
        replicas: int = 1,
    ) -> None:
        self.host = host
        if replicas > 1:
            postgres = True  # replicas are views of the PostgreSQL truth
        self.replicas = max(1, replicas)
        self.postgres_enabled, self.postgres_port = postgres, postgres_port
        self.postgres: PostgresServer | None = None
        self.data_root = Path(data_root)
        self.log_dir = None if inherit_output else Path(log_dir or self.data_root / "logs")
        self.ready_timeout_s = ready_timeout_s
        self.triton_enabled = triton
        self.triton_repository = Path(triton_repository)
        self.triton_grpc_port = triton_grpc_port
        self.triton: TritonServer | None = None
        count = shards * self.replicas
        ports = shard_ports or [shard_port + j for j in range(count)]
        names = [
            f"shard-{i}" + (f"-r{r}" if postgres else "")
            for i in range(shards)
            for r in range(self.replicas)
        ]
        self.shard_count = shards
        self.shards = [
            shard_process(
                j // self.replicas,
                ports[j],
                self.data_root / names[j],
                host,
                index_factory,
                self._log(names[j]),
                env={"VDUP_INDEXER_SHARDS": str(shards)} if postgres else None,
                name=names[j],
            )
            for j in range(count)
        ]
        self.api = None
        if api:
            env = {"VDUP_INDEXER_URLS": ",".join(self.shard_entries), **(api_env or {})}
            self.api = ServiceProcess(
                "api",
                [
                    "serve",
                    "--host",
                    host,
                    "--port",
                    str(api_port),
                    "--data",
                    str(self.data_root / "api"),
                ],
                f"http://{host}:{api_port}/readyz",
                env=env,
                log_path=self._log("api"),
            )

    def _log(self, name: str) -> Path | None:
        return self.log_dir / f"{name}.log" if self.log_dir else None

    @property
    def shard_urls(self) -> list[str]:
        """Every shard process's URL (replica r of shard i at i * replicas + r)."""
        return [p.ready_url.removesuffix("/readyz") for p in self.shards]

    @property
    def shard_entries(self) -> list[str]:
        """``VDUP_INDEXER_URLS`` entries: per shard, its replicas' URLs joined by '|'."""
        urls, r = self.shard_urls, self.replicas
        return ["|".join(urls[i * r : (i + 1) * r]) for i in range(self.shard_count)]

    @property
    def api_url(self) -> str | None:
        return self.api.ready_url.removesuffix("/readyz") if self.api else None

    @property
    def triton_url(self) -> str | None:
        return self.triton.grpc_url if self.triton else None

    def start(self) -> LocalStack:
        try:
            if self.postgres_enabled:
                self._start_postgres()
            if self.triton_enabled:
                self._start_triton()
            for p in self.shards:
                p.start()
            for p in self.shards:
                p.wait_ready(self.ready_timeout_s)
            if self.api is not None:
                if self.triton is not None:
                    self.api.extra_env["VDUP_TRITON_URL"] = self.triton.grpc_url
                self.api.start()
                self.api.wait_ready(self.ready_timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_postgres(self) -> None:
        from vdup.devstack.postgres import PostgresServer

        self.postgres = PostgresServer(self.data_root / "postgres", port=self.postgres_port)
        try:
            self.postgres.start()
        except RuntimeError as exc:
            raise StartError(f"postgres: {exc}") from None
        from vdup.indexer.truth import Truth

        truth = Truth(self.postgres.url, pool_size=1)
        try:
            truth.upgrade()  # before the replicas tail its change log
        finally:
            truth.close()
        for p in [*self.shards, *([self.api] if self.api else [])]:
            p.extra_env["VDUP_DATABASE_URL"] = self.postgres.url

    def _start_triton(self) -> None:
        try:
            from vdup.devstack.triton import TritonServer
        except ImportError as exc:
            raise StartError(f"Triton is not available here ({exc}); use --no-triton") from None
        self.triton = TritonServer(
            self.triton_repository,
            host=self.host,
            http_port=self.triton_grpc_port - 1,
            grpc_port=self.triton_grpc_port,
            metrics_port=self.triton_grpc_port + 1,
            log_path=self._log("triton"),
            ready_timeout_s=self.ready_timeout_s,
        )
        try:
            self.triton.start()
            self.triton.wait_ready()
        except RuntimeError as exc:  # TritonStartError
            raise StartError(f"triton: {exc}") from None

    def stop(self) -> None:
        """API first (it stops sending), then the shards (each snapshots), then Triton, then
        PostgreSQL."""
        if self.api is not None:
            self.api.stop()
        for p in self.shards:
            p.stop()
        if self.triton is not None:
            self.triton.stop()
        if self.postgres is not None:
            self.postgres.stop()

    def failed(self) -> list[str]:
        """Names of parts that have exited."""
        parts = [*self.shards, *([self.api] if self.api else [])]
        out = [p.name for p in parts if p.process is not None and p.process.poll() is not None]
        if (
            self.triton is not None
            and self.triton.process is not None
            and self.triton.process.poll() is not None
        ):
            out.append("triton")
        if self.postgres is not None and not self.postgres.running():
            out.append("postgres")
        return out

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# -- vdup up -----------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shards", type=int, default=2, help="indexer shards (default 2)")
    parser.add_argument("--host", default="127.0.0.1", help="address every part binds")
    parser.add_argument(
        "--shard-port",
        type=int,
        default=8091,
        help="port of shard 0; shard i listens on this + i (default 8091)",
    )
    parser.add_argument("--port", type=int, default=8080, help="API port (default 8080)")
    parser.add_argument(
        "--data",
        type=Path,
        default=Path("data"),
        help="data root: shard i keeps <data>/shard-<i> (default ./data)",
    )
    parser.add_argument("--index-factory", default=None, help="FAISS factory of the shards")
    parser.add_argument(
        "--no-triton",
        action="store_true",
        help="extract in the API process instead of starting Triton",
    )
    parser.add_argument("--triton-repository", type=Path, default=Path("model_repository"))
    parser.add_argument(
        "--triton-grpc-port",
        type=int,
        default=8001,
        help="Triton gRPC port; HTTP is one below, metrics one above",
    )
    parser.add_argument(
        "--logs",
        type=Path,
        default=None,
        help="write each part's log to <dir>/<part>.log (default: <data>/logs)",
    )
    parser.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="replicas of each shard (default 1); more than 1 implies --postgres",
    )
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="also run a local PostgreSQL over <data>/postgres (its log in there) and give "
        "every part its URL as VDUP_DATABASE_URL",
    )


def run(args: argparse.Namespace) -> int:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not one line per readiness poll
    stack = LocalStack(
        args.shards,
        host=args.host,
        shard_port=args.shard_port,
        api_port=args.port,
        data_root=args.data,
        triton=not args.no_triton,
        triton_repository=args.triton_repository,
        triton_grpc_port=args.triton_grpc_port,
        index_factory=args.index_factory,
        log_dir=args.logs,
        postgres=args.postgres,
        replicas=args.replicas,
    )
    stopping = False

    def _stop(signum, _frame):
        nonlocal stopping
        stopping = True

    previous = {s: signal.signal(s, _stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        stack.start()
        lines = ["vdup is up:"]
        if stack.postgres is not None:
            lines.append(
                f"  postgres pid {stack.postgres.pid}  {stack.postgres.url}   "
                f"data {stack.postgres.root}"
            )
        if stack.triton is not None:
            lines.append(f"  triton   grpc {stack.triton_url}")
        for p, url in zip(stack.shards, stack.shard_urls):
            role = "replica" if stack.postgres is not None else "shard"
            lines.append(
                f"  {p.name:<11} {role:<7} pid {p.pid}  {url}   data {stack.data_root / p.name}"
            )
        if stack.api is not None:
            lines.append(
                f"  api         api     pid {stack.api.pid}  {stack.api_url}   "
                f"(docs {stack.api_url}/docs, review {stack.api_url}/review)"
            )
        if stack.log_dir:
            lines.append(f"  logs     {stack.log_dir}/")
        lines.append("Ctrl-C stops everything.")
        print("\n".join(lines), file=sys.stderr, flush=True)
        while not stopping:
            dead = stack.failed()
            if dead:
                print(f"vdup up: {', '.join(dead)} exited; stopping the rest", file=sys.stderr)
                return 1
            time.sleep(0.5)
        return 0
    except StartError as exc:
        print(f"vdup up: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        stack.stop()
