"""One indexer shard: a ``LocalCatalog`` in its data directory, served over HTTP.

Why a process per shard: the index of a large catalog does not fit one process's memory or one
machine's disk, and a shard restarts on its own (snapshot + replay) without taking the others
down. Each shard is a complete, durable ``LocalCatalog``; the API scatters searches to all shards
and writes each video to the one shard its id hashes to (``vdup.indexer.client``).

Durability contract: ``POST /v1/videos`` answers 201 only after ``LocalCatalog.add`` returned,
i.e. after the SQLite commit was fsynced. kill -9 at any moment loses nothing acknowledged; a
clean stop (SIGTERM) finishes in-flight requests, writes a snapshot and closes. A directory that
another live shard holds (``LOCK``), or whose catalog is foreign or damaged, stops start-up with
a message and exit status 2 (see ``vdup.catalog.local`` for which files are refused and which are
rebuilt).

This module is the entry point (``vdup indexer``: settings, data-dir lock, app, snapshots);
the routes are ``vdup.indexer.routes``, the settings ``vdup.indexer.settings``.

Endpoints (binary bodies use ``vdup.indexer.wire``; the rest is JSON):

    POST   /v1/search           query rows, k, max_candidates -> candidates with their evidence
    POST   /v1/videos           add one video (record + stored rows), optionally pending
    POST   /v1/resolve          settle a pending video, only if still pending (409 otherwise)
    GET    /v1/videos/{id}      {"record", "pending"} or 404
    GET    /v1/rows/{id}        the video as stored, as an add frame (resharding copies it)
    GET    /v1/videos?sha256=   {"record": earliest video with those bytes, or null}
    GET    /v1/videos?limit=&after=   one page of records, by id
    DELETE /v1/videos/{id}      204 or 404
    GET    /v1/stats            counts, index type, snapshot state
    POST   /v1/snapshot         write a snapshot now
    GET    /healthz /readyz /metrics
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import logging
import os
import sys
import threading
import time
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from opentelemetry import trace

from vdup import metrics
from vdup.catalog.local import CatalogCorrupt, LocalCatalog
from vdup.errors import StorageError
from vdup.indexer.replica import Replica
from vdup.indexer.routes import BadRequest, ReadOnly, ShardState, router
from vdup.indexer.settings import ShardSettings
from vdup.indexer.truth import Truth
from vdup.indexer.wire import SHARD_HEADER
from vdup.tracing import server_span

log = logging.getLogger("vdup.indexer")

#: Probes and scrapes: answered without a span, so they do not flood the trace store.
UNTRACED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class DataDirInUse(RuntimeError):
    """Another live process holds this data directory."""


class DataDirLock:
    """An exclusive ``flock`` on ``<data_dir>/LOCK`` for the life of the shard. The kernel drops
    it when the process dies, even by kill -9, so a crash never leaves a stale lock."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self._f = open(data_dir / "LOCK", "a+")
        try:
            fcntl.flock(self._f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._f.seek(0)
            holder = self._f.read().strip() or "?"
            self._f.close()
            raise DataDirInUse(
                f"{data_dir} is in use by another shard (pid {holder}); "
                "one process per data directory"
            ) from None
        self._f.seek(0)
        self._f.truncate()
        self._f.write(str(os.getpid()))
        self._f.flush()

    def release(self) -> None:
        if not self._f.closed:
            fcntl.flock(self._f, fcntl.LOCK_UN)
            self._f.close()


def open_shard(settings: ShardSettings) -> tuple[LocalCatalog, DataDirLock]:
    """Lock the data directory and load the catalog; raises DataDirInUse or CatalogCorrupt."""
    lock = DataDirLock(settings.data_dir)
    try:
        catalog = LocalCatalog(
            settings.data_dir,
            index_factory=settings.index_factory,
            snapshot_every=0,
            nprobe=settings.nprobe,
            verify=settings.verify_on_start,
            threads=settings.omp_threads,
            index_max_sim=settings.index_max_sim,
            sqlite_cache_mb=settings.sqlite_cache_mb,
        )
    except BaseException:
        lock.release()
        raise
    return catalog, lock


def create_app(settings: ShardSettings, catalog: LocalCatalog | None = None) -> FastAPI:
    """The shard's app. ``catalog`` may be opened by the caller (``run`` opens it before serving,
    so a bad data dir fails before the port opens); else the lifespan opens it."""
    sid = settings.shard_id

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        _setup_tracing(settings)
        lock = None
        if catalog is None:
            cat, lock = await asyncio.to_thread(open_shard, settings)
        else:
            cat = catalog
        state = ShardState(settings, cat, replica=_replica(settings, cat))
        app.state.shard = state
        if state.replica is not None:
            state.replica.start()  # /readyz answers 503 until it has caught up
        snapshots = threading.Thread(
            target=_snapshot_loop, args=(state,), daemon=True, name=f"snapshots-{sid}"
        )
        snapshots.start()
        log.info("shard %s ready: %s", sid, cat.stats())
        try:
            yield
        finally:
            state.ready = False
            state.stop.set()
            if state.replica is not None:
                await asyncio.to_thread(state.replica.stop)
                state.replica.truth.close()
            snapshots.join(timeout=60)
            t0 = time.perf_counter()
            await asyncio.to_thread(cat.close)
            log.info(
                "shard %s closed (final snapshot and close took %.2f s)",
                sid,
                time.perf_counter() - t0,
            )
            if lock is not None:
                lock.release()

    # The shard opens its own request span (trace_request); FastAPI's native one would be a
    # second SERVER span beside it under the same caller.
    app = FastAPI(
        title=f"vdup indexer shard {sid}",
        version="1",
        lifespan=lifespan,
        telemetry={"tracing": False},
    )

    @app.middleware("http")
    async def shard_header(request: Request, call_next):
        response = await call_next(request)
        response.headers[SHARD_HEADER] = sid
        return response

    @app.middleware("http")
    async def trace_request(request: Request, call_next):
        """One SERVER span per request, continuing the API's trace (W3C ``traceparent``); named
        ``shard.<route function>`` once routing has matched, e.g. ``shard.search``."""
        if request.url.path in UNTRACED_PATHS:
            return await call_next(request)
        with server_span(
            "shard.request",
            request.headers,
            {"vdup.shard": sid, "http.request.method": request.method},
        ) as span:
            response = await call_next(request)
            route = request.scope.get("route")
            if route is not None:
                span.update_name(f"shard.{route.name}")
                span.set_attribute("http.route", route.path)
            span.set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= 500:
                span.set_status(trace.StatusCode.ERROR)
            return response

    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, exc: BadRequest) -> JSONResponse:
        return JSONResponse({"error": "bad_request", "detail": str(exc)}, 400)

    @app.exception_handler(ReadOnly)
    async def read_only(request: Request, exc: ReadOnly) -> JSONResponse:
        return JSONResponse(
            {
                "error": "read_only",
                "detail": "this shard is a replica of the truth; write to the database",
            },
            409,
        )

    @app.exception_handler(StorageError)
    async def storage_error(request: Request, exc: StorageError) -> JSONResponse:
        return JSONResponse({"error": exc.code, "detail": exc.message}, exc.status_code)

    app.include_router(router)
    return app


def _replica(settings: ShardSettings, catalog: LocalCatalog) -> Replica | None:
    """The replica keeping ``catalog`` in step with the truth; None for a shard that owns its
    data (no ``database_url``)."""
    if not settings.database_url:
        return None
    if settings.shards < 1:
        raise ValueError("a replica needs the shard count of the placement: set shards")
    truth = Truth(settings.database_url)
    return Replica(truth, catalog, settings.replica_shard(), settings.shards)


def _snapshot_loop(state: ShardState) -> None:
    """Snapshot when ``snapshot_rows`` rows are waiting, or every ``snapshot_interval_s`` while
    any are: bounds both the replay at restart and the work lost to a crash of the snapshot."""
    s, cat = state.settings, state.catalog
    last = time.monotonic()
    while not state.stop.wait(1.0):
        waiting = cat.unsnapshotted_rows
        overdue = waiting and time.monotonic() - last >= s.snapshot_interval_s
        if waiting >= s.snapshot_rows or overdue:
            try:
                seconds = cat.snapshot()
                metrics.SHARD_SNAPSHOT_DURATION.labels(s.shard_id).observe(seconds)
                log.info("snapshot of %d waiting rows written in %.2f s", waiting, seconds)
            except OSError as exc:
                log.error("snapshot failed (%s); SQLite still holds every row", exc)
            last = time.monotonic()


def _setup_tracing(settings: ShardSettings) -> None:
    try:
        from vdup.tracing import setup_tracing
    except ImportError:
        return
    setup_tracing(f"vdup-indexer-{settings.shard_id}", settings.otlp_endpoint)


# -- vdup indexer ------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=None, help="address to bind (VDUP_INDEXER_HOST)")
    parser.add_argument("--port", type=int, default=None, help="port (VDUP_INDEXER_PORT, 8090)")
    parser.add_argument(
        "--data", type=Path, default=None, help="the shard's data directory (VDUP_INDEXER_DATA_DIR)"
    )
    parser.add_argument("--shard-id", default=None, help="shard name (VDUP_INDEXER_SHARD_ID)")
    parser.add_argument(
        "--index-factory",
        default=None,
        help="FAISS factory string (VDUP_INDEXER_INDEX_FACTORY, 'Flat')",
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        default=None,
        help="check the whole SQLite file at start-up (VDUP_INDEXER_VERIFY_ON_START)",
    )
    parser.add_argument(
        "--train",
        action="store_true",
        help="train --index-factory on the stored rows, index them, snapshot "
        "and exit (run it on a stopped shard)",
    )
    parser.add_argument(
        "--train-rows", type=int, default=200_000, help="most rows sampled for --train"
    )


def settings_from_args(args: argparse.Namespace) -> ShardSettings:
    overrides = {
        name: value
        for name, value in (
            ("host", args.host),
            ("port", args.port),
            ("data_dir", args.data),
            ("shard_id", args.shard_id),
            ("index_factory", args.index_factory),
            ("verify_on_start", getattr(args, "verify", None)),
        )
        if value is not None
    }
    return ShardSettings(**overrides)


def run(args: argparse.Namespace) -> int:
    import uvicorn
    from pydantic import ValidationError

    try:
        settings = settings_from_args(args)
    except ValidationError as exc:
        print(f"vdup indexer: bad settings: {exc}", file=sys.stderr)
        return 2
    logging.getLogger().setLevel(settings.log_level.upper())
    try:
        catalog, lock = open_shard(settings)
    except (CatalogCorrupt, DataDirInUse) as exc:
        print(f"vdup indexer: cannot start shard {settings.shard_id}: {exc}", file=sys.stderr)
        return 2
    try:
        if args.train:
            try:
                print(json.dumps(catalog.train(args.train_rows)), flush=True)
            except RuntimeError as exc:
                print(
                    f"vdup indexer: cannot train {settings.index_factory!r}: {exc}", file=sys.stderr
                )
                return 2
            finally:
                catalog.close()
            return 0
        app = create_app(settings, catalog)
        # uvicorn turns SIGTERM/SIGINT into a graceful stop: in-flight requests finish, then the
        # lifespan snapshots and closes the catalog.
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            timeout_graceful_shutdown=20,
            access_log=False,
        )
    finally:
        lock.release()
    return 0
