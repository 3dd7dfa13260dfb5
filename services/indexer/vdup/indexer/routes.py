"""The shard's HTTP routes (an ``APIRouter``, as the API's are): each reads the shard's
``ShardState`` from ``app.state.shard``, which ``vdup.indexer.server.create_app``'s lifespan sets.
The endpoints are listed in ``vdup.indexer.server``'s docstring; binary bodies use
``vdup.indexer.wire``, the rest is JSON.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from opentelemetry import trace
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from vdup import metrics
from vdup.catalog.local import LocalCatalog
from vdup.features.types import DIM
from vdup.indexer import wire
from vdup.indexer.replica import Replica
from vdup.indexer.settings import ShardSettings

router = APIRouter()


#: A search's header naming the change of the truth it needs applied (read your writes).
MIN_SEQ_HEADER = "X-Vdup-Min-Seq"
#: The answer's header with the change this replica has applied.
APPLIED_HEADER = "X-Vdup-Applied-Seq"


@dataclass
class ShardState:
    """replica: set when the shard is a view of the truth (``vdup.indexer.replica``); then it
    takes no writes, and is ready only once caught up."""

    settings: ShardSettings
    catalog: LocalCatalog
    ready: bool = True
    stop: threading.Event = field(default_factory=threading.Event)
    replica: Replica | None = None

    @property
    def serving(self) -> bool:
        return self.ready and (self.replica is None or self.replica.ready)


class ReadOnly(Exception):
    """A write sent to a replica: the truth takes writes."""


class BadRequest(ValueError):
    pass


def _state(request: Request) -> ShardState:
    state: ShardState = request.app.state.shard
    return state


def _catalog(request: Request) -> LocalCatalog:
    return _state(request).catalog


def _shard_id(request: Request) -> str:
    return _state(request).settings.shard_id


def _max_body(request: Request) -> int:
    """The largest request body, bytes (``max_body_mb``)."""
    return _state(request).settings.max_body_mb * 1024 * 1024


@router.post("/v1/search", summary="Candidates for a batch of query rows.")
async def search(request: Request) -> Response:
    try:
        query, k, max_candidates = wire.decode_search(await _body(request, _max_body(request)))
    except wire.WireError as exc:
        raise BadRequest(str(exc)) from None
    state = _state(request)
    headers = {}
    if state.replica is not None:
        need = _min_seq(request)
        if need > state.replica.applied:
            wait = state.settings.min_seq_wait_s
            if not await asyncio.to_thread(state.replica.wait_for, need, wait):
                return JSONResponse(
                    {
                        "error": "behind",
                        "detail": f"applied change {state.replica.applied}, the search needs "
                        f"{need}; ask another replica",
                        "applied": state.replica.applied,
                    },
                    409,
                    headers={APPLIED_HEADER: str(state.replica.applied)},
                )
        headers[APPLIED_HEADER] = str(state.replica.applied)
    t0 = time.perf_counter()
    cands = await asyncio.to_thread(
        _catalog(request).search_vectors, query, True, k, max_candidates
    )
    metrics.SHARD_SEARCH_DURATION.labels(_shard_id(request)).observe(time.perf_counter() - t0)
    trace.get_current_span().set_attributes(
        {"vdup.query_rows": int(query.shape[0]), "vdup.candidates": len(cands)}
    )
    body = await asyncio.to_thread(wire.encode_candidates, cands)
    return Response(body, media_type=wire.MEDIA_TYPE, headers=headers)


def _min_seq(request: Request) -> int:
    raw = request.headers.get(MIN_SEQ_HEADER, "0")
    try:
        return max(0, int(raw))
    except ValueError:
        raise BadRequest(f"{MIN_SEQ_HEADER} must be an integer, got {raw[:40]!r}") from None


def _writable(request: Request) -> None:
    if _state(request).replica is not None:
        raise ReadOnly()


@router.post("/v1/videos", status_code=201, summary="Add one video; 201 once it is durable.")
async def add(request: Request) -> JSONResponse:
    _writable(request)
    try:
        record, rows, pending = wire.decode_add(await _body(request, _max_body(request)))
    except (wire.WireError, ValueError) as exc:
        raise BadRequest(str(exc)) from None
    t0 = time.perf_counter()
    try:
        await asyncio.to_thread(_catalog(request).add_rows, record, rows, pending)
    except sqlite3.IntegrityError:
        known = await asyncio.to_thread(_catalog(request).get, record.video_id)
        if known is not None and known == record:
            return JSONResponse({"video_id": record.video_id, "created": False}, 200)
        return JSONResponse(
            {"error": "conflict", "detail": f"video {record.video_id!r} is already stored"}, 409
        )
    metrics.SHARD_ADD_DURATION.labels(_shard_id(request)).observe(time.perf_counter() - t0)
    trace.get_current_span().set_attribute(
        "vdup.rows", 0 if rows is None else int(rows.descriptors.shape[0])
    )
    return JSONResponse({"video_id": record.video_id, "created": True}, 201)


@router.post("/v1/resolve", summary="Settle a pending video (compare-and-set on 'pending').")
async def resolve(request: Request) -> JSONResponse:
    _writable(request)
    try:
        record = wire.record_from_dict(json.loads(await _body(request, 1 << 20)).get("record"))
    except (ValueError, AttributeError) as exc:
        raise BadRequest(f"body must be {{'record': {{...}}}}: {exc}") from None
    done = await asyncio.to_thread(_catalog(request).resolve, record)
    if not done:
        return JSONResponse({"error": "conflict", "detail": "the video is not pending"}, 409)
    return JSONResponse({"resolved": True})


@router.get("/v1/videos/{video_id:path}", summary="One video and whether it is pending.")
async def get_video(video_id: str, request: Request) -> JSONResponse:
    state = await asyncio.to_thread(_catalog(request).get_state, video_id)
    if state is None:
        return JSONResponse({"error": "not_found", "detail": f"no video {video_id!r}"}, 404)
    return JSONResponse({"record": state[0].to_dict(), "pending": state[1]})


@router.get(
    "/v1/rows/{video_id:path}",
    summary="One video as stored (record, pending, rows, audio): an add frame.",
)
async def export_video(video_id: str, request: Request) -> Response:
    stored = await asyncio.to_thread(_catalog(request).stored, video_id)
    if stored is None:
        return JSONResponse({"error": "not_found", "detail": f"no video {video_id!r}"}, 404)
    record, rows, pending = stored
    body = await asyncio.to_thread(wire.encode_add, record, rows, pending)
    return Response(body, media_type=wire.MEDIA_TYPE)


@router.get("/v1/videos", summary="By sha256 (the earliest such video), or one page by id.")
async def list_videos(
    request: Request,
    sha256: str | None = Query(None, max_length=128),
    limit: int = Query(100, ge=1, le=10_000),
    after: str = Query("", max_length=512),
) -> JSONResponse:
    if sha256 is not None:
        rec = await asyncio.to_thread(_catalog(request).find_sha256, sha256)
        return JSONResponse({"record": rec.to_dict() if rec else None})
    recs = await asyncio.to_thread(_catalog(request).list, limit, after)
    return JSONResponse(
        {
            "videos": [r.to_dict() for r in recs],
            "next_after": recs[-1].video_id if len(recs) == limit else None,
        }
    )


@router.delete("/v1/videos/{video_id:path}", status_code=204)
async def delete_video(video_id: str, request: Request) -> Response:
    _writable(request)
    if not await asyncio.to_thread(_catalog(request).delete, video_id):
        return JSONResponse({"error": "not_found", "detail": f"no video {video_id!r}"}, 404)
    return Response(status_code=204)


@router.get("/v1/stats")
async def stats(request: Request) -> dict:
    return await asyncio.to_thread(shard_stats, request.app.state.shard)


@router.post("/v1/snapshot", summary="Write a snapshot now; returns its duration.")
async def snapshot(request: Request) -> dict:
    seconds = await asyncio.to_thread(_catalog(request).snapshot)
    metrics.SHARD_SNAPSHOT_DURATION.labels(_shard_id(request)).observe(seconds)
    return {"seconds": round(seconds, 3)}


@router.get("/healthz")
async def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    state = getattr(request.app.state, "shard", None)
    if state is None or not state.serving:
        body: dict = {"status": "unavailable"}
        if state is not None and state.replica is not None:
            body |= {"applied": state.replica.applied, "catching_up": True}
        return JSONResponse(body, 503)
    body = {"status": "ready", "shard": state.settings.shard_id}
    if state.replica is not None:
        body["applied"] = state.replica.applied
    return JSONResponse(body)


@router.get("/metrics", include_in_schema=False)
async def prometheus(request: Request) -> Response:
    await asyncio.to_thread(update_gauges, request.app.state.shard)
    return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)


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
