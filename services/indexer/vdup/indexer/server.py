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
import sqlite3
import sys
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse
from opentelemetry import trace
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from vdup import metrics
from vdup.catalog.local import CatalogCorrupt, LocalCatalog
from vdup.errors import StorageError
from vdup.features.types import DIM, INDEX_MAX_SIM
from vdup.indexer import wire
from vdup.tracing import server_span

log = logging.getLogger("vdup.indexer")

SHARD_HEADER = "X-Vdup-Shard"
#: Probes and scrapes: answered without a span, so they do not flood the trace store.
UNTRACED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class ShardSettings(BaseSettings):
    """One shard's settings, from ``VDUP_INDEXER_*`` variables and ``vdup indexer`` flags."""

    model_config = SettingsConfigDict(env_prefix="VDUP_INDEXER_", extra="ignore")

    host: str = Field("127.0.0.1", description="Address the shard binds.")
    port: int = Field(8090, ge=1, le=65535, description="Port the shard binds.")
    data_dir: Path = Field(Path("data/shard-0"), description="The shard's catalog directory.")
    shard_id: str = Field(
        "shard-0",
        min_length=1,
        max_length=128,
        description="Name in metrics and the X-Vdup-Shard header; ends in "
        "-<ordinal> (a StatefulSet pod name) so clients can check "
        "that they reach shard i at position i.",
    )
    index_factory: str = Field(
        "Flat",
        description="FAISS factory string: 'Flat' (exact) or a "
        "trained type such as 'IVF1024,PQ64'.",
    )
    nprobe: int = Field(16, ge=1, description="IVF lists visited per query row.")
    index_max_sim: float = Field(
        INDEX_MAX_SIM,
        gt=0,
        le=1,
        description="A frame this similar to one of the video already "
        "indexed is stored but not indexed (1 = index all); "
        "applies to videos added from now on.",
    )
    omp_threads: int = Field(
        1,
        ge=0,
        description="FAISS (OpenMP) threads per search; 0 = all "
        "cores. 1 by default: with more threads than "
        "free cores, OpenMP's spinning made searches "
        "5-20x slower here; shards and concurrent "
        "requests are the parallelism.",
    )
    sqlite_cache_mb: int = Field(
        128,
        ge=1,
        description="SQLite page cache, MB: holds the owner "
        "index and candidates' rows that searches "
        "read (docs/indexer.md).",
    )
    snapshot_interval_s: float = Field(
        300.0, gt=0, description="Most seconds between snapshots while rows are being added."
    )
    snapshot_rows: int = Field(
        200_000,
        ge=1,
        description="Rows added that trigger a snapshot sooner (bounds replay at restart).",
    )
    verify_on_start: bool = Field(
        False,
        description="Run SQLite's quick_check at start-up (reads the whole file: ~20 s per GB).",
    )
    max_body_mb: int = Field(64, ge=1, description="Largest request body, MiB.")
    log_level: str = Field("info", description="Python logging level.")
    otlp_endpoint: str = Field(
        "",
        validation_alias=AliasChoices("VDUP_INDEXER_OTLP_ENDPOINT", "VDUP_OTLP_ENDPOINT"),
        description="OTLP gRPC endpoint for traces; empty = none.",
    )


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


@dataclass
class ShardState:
    settings: ShardSettings
    catalog: LocalCatalog
    ready: bool = True
    stop: threading.Event = field(default_factory=threading.Event)


class BadRequest(ValueError):
    pass


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
        state = ShardState(settings, cat)
        app.state.shard = state
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
    limit = settings.max_body_mb * 1024 * 1024

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

    @app.exception_handler(StorageError)
    async def storage_error(request: Request, exc: StorageError) -> JSONResponse:
        return JSONResponse({"error": exc.code, "detail": exc.message}, exc.status_code)

    def cat(request: Request) -> LocalCatalog:
        return request.app.state.shard.catalog

    @app.post("/v1/search", summary="Candidates for a batch of query rows.")
    async def search(request: Request) -> Response:
        try:
            query, k, max_candidates = wire.decode_search(await _body(request, limit))
        except wire.WireError as exc:
            raise BadRequest(str(exc)) from None
        t0 = time.perf_counter()
        cands = await asyncio.to_thread(cat(request).search_vectors, query, True, k, max_candidates)
        metrics.SHARD_SEARCH_DURATION.labels(sid).observe(time.perf_counter() - t0)
        trace.get_current_span().set_attributes(
            {"vdup.query_rows": int(query.shape[0]), "vdup.candidates": len(cands)}
        )
        body = await asyncio.to_thread(wire.encode_candidates, cands)
        return Response(body, media_type=wire.MEDIA_TYPE)

    @app.post("/v1/videos", status_code=201, summary="Add one video; 201 once it is durable.")
    async def add(request: Request) -> JSONResponse:
        try:
            record, rows, pending = wire.decode_add(await _body(request, limit))
        except (wire.WireError, ValueError) as exc:
            raise BadRequest(str(exc)) from None
        t0 = time.perf_counter()
        try:
            await asyncio.to_thread(cat(request).add_rows, record, rows, pending)
        except sqlite3.IntegrityError:
            known = await asyncio.to_thread(cat(request).get, record.video_id)
            if known is not None and known == record:
                return JSONResponse({"video_id": record.video_id, "created": False}, 200)
            return JSONResponse(
                {"error": "conflict", "detail": f"video {record.video_id!r} is already stored"}, 409
            )
        metrics.SHARD_ADD_DURATION.labels(sid).observe(time.perf_counter() - t0)
        trace.get_current_span().set_attribute(
            "vdup.rows", 0 if rows is None else int(rows.descriptors.shape[0])
        )
        return JSONResponse({"video_id": record.video_id, "created": True}, 201)

    @app.post("/v1/resolve", summary="Settle a pending video (compare-and-set on 'pending').")
    async def resolve(request: Request) -> JSONResponse:
        try:
            record = wire.record_from_dict(json.loads(await _body(request, 1 << 20)).get("record"))
        except (ValueError, AttributeError) as exc:
            raise BadRequest(f"body must be {{'record': {{...}}}}: {exc}") from None
        done = await asyncio.to_thread(cat(request).resolve, record)
        if not done:
            return JSONResponse({"error": "conflict", "detail": "the video is not pending"}, 409)
        return JSONResponse({"resolved": True})

    @app.get("/v1/videos/{video_id:path}", summary="One video and whether it is pending.")
    async def get_video(video_id: str, request: Request) -> JSONResponse:
        state = await asyncio.to_thread(cat(request).get_state, video_id)
        if state is None:
            return JSONResponse({"error": "not_found", "detail": f"no video {video_id!r}"}, 404)
        return JSONResponse({"record": state[0].to_dict(), "pending": state[1]})

    @app.get(
        "/v1/rows/{video_id:path}",
        summary="One video as stored (record, pending, rows, audio): an add frame.",
    )
    async def export_video(video_id: str, request: Request) -> Response:
        stored = await asyncio.to_thread(cat(request).stored, video_id)
        if stored is None:
            return JSONResponse({"error": "not_found", "detail": f"no video {video_id!r}"}, 404)
        record, rows, pending = stored
        body = await asyncio.to_thread(wire.encode_add, record, rows, pending)
        return Response(body, media_type=wire.MEDIA_TYPE)

    @app.get("/v1/videos", summary="By sha256 (the earliest such video), or one page by id.")
    async def list_videos(
        request: Request,
        sha256: str | None = Query(None, max_length=128),
        limit: int = Query(100, ge=1, le=10_000),
        after: str = Query("", max_length=512),
    ) -> JSONResponse:
        if sha256 is not None:
            rec = await asyncio.to_thread(cat(request).find_sha256, sha256)
            return JSONResponse({"record": rec.to_dict() if rec else None})
        recs = await asyncio.to_thread(cat(request).list, limit, after)
        return JSONResponse(
            {
                "videos": [r.to_dict() for r in recs],
                "next_after": recs[-1].video_id if len(recs) == limit else None,
            }
        )

    @app.delete("/v1/videos/{video_id:path}", status_code=204)
    async def delete_video(video_id: str, request: Request) -> Response:
        if not await asyncio.to_thread(cat(request).delete, video_id):
            return JSONResponse({"error": "not_found", "detail": f"no video {video_id!r}"}, 404)
        return Response(status_code=204)

    @app.get("/v1/stats")
    async def stats(request: Request) -> dict:
        return await asyncio.to_thread(shard_stats, request.app.state.shard)

    @app.post("/v1/snapshot", summary="Write a snapshot now; returns its duration.")
    async def snapshot(request: Request) -> dict:
        seconds = await asyncio.to_thread(cat(request).snapshot)
        metrics.SHARD_SNAPSHOT_DURATION.labels(sid).observe(seconds)
        return {"seconds": round(seconds, 3)}

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        state = getattr(request.app.state, "shard", None)
        if state is None or not state.ready:
            return JSONResponse({"status": "unavailable"}, 503)
        return JSONResponse({"status": "ready", "shard": sid})

    @app.get("/metrics", include_in_schema=False)
    async def prometheus(request: Request) -> Response:
        await asyncio.to_thread(update_gauges, request.app.state.shard)
        return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return app


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BadRequest(f"body of {declared} bytes exceeds the shard's limit of {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest(f"body exceeds the shard's limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def shard_stats(state: ShardState) -> dict:
    cat = state.catalog
    out = cat.stats()
    out.update(
        {
            "shard_id": state.settings.shard_id,
            "configured_index": cat.index_factory,
            "catalog_id": cat.catalog_id,
            "pending": cat.pending_count(),
            "unsnapshotted_rows": cat.unsnapshotted_rows,
            "last_snapshot_at": cat.last_snapshot_at,
        }
    )
    return out


def update_gauges(state: ShardState) -> None:
    sid, cat = state.settings.shard_id, state.catalog
    s = cat.stats()
    metrics.SHARD_VECTORS.labels(sid).set(s["vectors"])
    metrics.SHARD_VIDEOS.labels(sid).set(s["videos"])
    if cat.last_snapshot_at:
        metrics.SHARD_SNAPSHOT_AGE.labels(sid).set(max(0.0, time.time() - cat.last_snapshot_at))
    # What a restart must replay from SQLite: the float16 rows the last snapshot lacks.
    metrics.SHARD_WAL_BYTES.labels(sid).set(cat.unsnapshotted_rows * DIM * 2)


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
