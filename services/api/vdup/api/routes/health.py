"""Liveness, readiness and Prometheus metrics: unauthenticated, outside the API keys."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from vdup import metrics

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process answers.")
async def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: extraction and catalog can serve.")
async def readyz(request: Request) -> JSONResponse:
    state = getattr(request.app.state, "vdup", None)
    if state is None:
        return JSONResponse({"status": "starting"}, 503)
    try:
        extractor_ok = await asyncio.to_thread(state.checker.extractor.ready)
        stats = await asyncio.to_thread(state.checker.catalog.stats)
    except Exception as exc:  # noqa: BLE001 - readiness reports, it never raises
        return JSONResponse({"status": "unavailable", "detail": str(exc)[:200]}, 503)
    if not extractor_ok:
        return JSONResponse({"status": "unavailable", "detail": "extractor not ready"}, 503)
    return JSONResponse({"status": "ready", "catalog": stats})


@router.get("/metrics", include_in_schema=False)
async def prometheus() -> Response:
    return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)
