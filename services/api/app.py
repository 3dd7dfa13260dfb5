"""The HTTP API: FastAPI app factory, lifespan, error mapping and admission control.

``create_app(settings)`` builds everything from one ``Settings`` object at start-up (no import-time
side effects). Domain errors (``vdup.errors``) become HTTP answers in exactly one handler here; any
other exception becomes a generic 500 whose body names no internals.

Admission: at most ``max_concurrency`` checks run at once per replica. Past that, a request is
answered 429 with ``Retry-After`` at once rather than queued, so latency stays bounded and the
load balancer or client can go elsewhere (one uvicorn worker per pod; scale with replicas).
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from vdup import metrics
from vdup.errors import Overloaded, Unavailable, VdupError
from vdup.settings import Settings

log = logging.getLogger("vdup.api")


@dataclass
class AppState:
    settings: Settings
    checker: object
    fetcher: object
    slots: asyncio.Semaphore


def create_app(settings: Settings | None = None, checker=None, fetcher=None) -> FastAPI:
    """The API app. ``checker``/``fetcher`` may be injected (tests); else built from settings."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        from vdup.api.fetch import HttpFetcher, fetch_settings_from
        from vdup.runtime import build_checker
        from vdup.tracing import install_log_trace_ids, setup_tracing

        setup_tracing("vdup-api", settings.otlp_endpoint)
        install_log_trace_ids()

        own_checker = checker is None
        chk = checker or await asyncio.to_thread(build_checker, settings)
        fet = fetcher or HttpFetcher(fetch_settings_from(settings))
        app.state.vdup = AppState(settings, chk, fet,
                                  asyncio.Semaphore(settings.max_concurrency))
        try:
            yield
        finally:
            if fetcher is None and hasattr(fet, "aclose"):
                await fet.aclose()
            if own_checker:
                await asyncio.to_thread(chk.catalog.close)

    app = FastAPI(
        title="vdup",
        version="0.1.0",
        summary="Tells a short-video service whether an upload copies a catalog video.",
        lifespan=lifespan,
    )

    from vdup.api.routes import check, health, videos

    app.include_router(check.router)
    app.include_router(videos.router)
    app.include_router(health.router)
    _install_error_handlers(app)
    _install_metrics_middleware(app)
    return app


def _error_body(code: str, message: str) -> dict:
    return {"error": code, "detail": message}


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(VdupError)
    async def domain_error(request: Request, exc: VdupError) -> JSONResponse:
        metrics.ERRORS.labels(exc.code).inc()
        headers = {}
        if isinstance(exc, Unavailable):
            headers["Retry-After"] = str(exc.retry_after_s)
        return JSONResponse(_error_body(exc.code, exc.message), exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        metrics.ERRORS.labels("invalid_request").inc()
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            problems.append(f"{where}: {err.get('msg', 'invalid')}" if where else err.get("msg"))
        return JSONResponse(
            {"error": "invalid_request", "detail": "; ".join(problems) or "invalid request",
             "problems": jsonable(exc.errors())},
            422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(_error_body("http_error", str(exc.detail)), exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        metrics.ERRORS.labels(metrics.INTERNAL_ERROR_CAUSE).inc()
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(_error_body("internal", "internal error; it has been logged"), 500)


def jsonable(errors: list[dict]) -> list[dict]:
    """Validation errors without the raw input or exception objects (they may not serialise)."""
    return [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in errors]


def _install_metrics_middleware(app: FastAPI) -> None:
    @app.middleware("http")
    async def observe(request: Request, call_next):
        t0 = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = request.scope.get("route")
            template = getattr(route, "path", "other")
            metrics.HTTP_REQUESTS.labels(template, request.method, f"{status // 100}xx").inc()
            metrics.HTTP_REQUEST_DURATION.labels(template).observe(time.perf_counter() - t0)


@asynccontextmanager
async def admitted(state: AppState):
    """Hold one of the replica's check slots, or fail at once with 429 + Retry-After."""
    if state.slots.locked():
        raise Overloaded(
            f"this replica is busy with {state.settings.max_concurrency} checks; retry shortly",
            retry_after_s=2,
        )
    await state.slots.acquire()
    metrics.INFLIGHT_REQUESTS.inc()
    try:
        yield
    finally:
        metrics.INFLIGHT_REQUESTS.dec()
        state.slots.release()


async def run_check(state: AppState, data: bytes, video_id: str | None, source: str) -> dict:
    """Run the blocking check in a worker thread under the check deadline."""
    try:
        result = await asyncio.wait_for(
            asyncio.to_thread(state.checker.check, data, video_id, source),
            timeout=state.settings.check_deadline_s,
        )
    except TimeoutError:
        raise Unavailable(
            f"the check did not finish within {state.settings.check_deadline_s:.0f} s; retry "
            "with the same uuid to get its result", retry_after_s=10,
        ) from None
    record = result.record
    if not result.already_known:
        metrics.VIDEOS_CHECKED.inc()
        if record.is_duplicate:
            metrics.DUPLICATES.labels(record.path or "visual").inc()
        for stage, seconds in result.timings_s.items():
            if stage in metrics.STAGES:
                metrics.STAGE_DURATION.labels(stage).observe(seconds)
    return result.to_response()
