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
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from vdup import metrics
from vdup.errors import Overloaded, Unavailable, VdupError
from vdup.settings import Settings

if TYPE_CHECKING:
    from vdup.api.fetch import Fetcher
    from vdup.checker import DuplicateChecker

log = logging.getLogger("vdup.api")


@dataclass
class AppState:
    settings: Settings
    checker: DuplicateChecker
    fetcher: Fetcher
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
        app.state.vdup = AppState(settings, chk, fet, asyncio.Semaphore(settings.max_concurrency))
        try:
            yield
        finally:
            if fetcher is None and hasattr(fet, "aclose"):
                await fet.aclose()
            if own_checker:
                await asyncio.to_thread(chk.catalog.close)
                await asyncio.to_thread(chk.extractor.close)

    app = FastAPI(
        title="vdup",
        version="0.1.0",
        summary="Tells a short-video service whether an upload copies a catalog video.",
        lifespan=lifespan,
        docs_url=None,  # served by routes/pages.py from local files, not a CDN
        redoc_url=None,
    )

    from vdup.api.routes import check, health, pages, review, videos

    app.include_router(check.router)
    app.include_router(videos.router)
    app.include_router(review.router)
    app.include_router(health.router)
    app.include_router(pages.router)
    pages.mount_static(app)
    _install_error_handlers(app)
    app.add_middleware(BodyLimit, settings=settings)
    _install_metrics_middleware(app)
    return app


class Problem(BaseModel):
    loc: list[str | int] = Field(description="Where in the request: e.g. ['body', 'link'].")
    msg: str
    type: str


class ErrorBody(BaseModel):
    """Every error answer: a stable machine code and a message for people."""

    error: str = Field(description="Machine-readable code, e.g. 'bad_media', 'unavailable'.")
    detail: str = Field(description="What was wrong, for a person; never a stack trace.")
    problems: list[Problem] | None = Field(
        None, description="Each invalid field (only with error 'invalid_request')."
    )


_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "integer"},
    }
}
_ERRORS = {
    400: "The body is malformed (e.g. broken multipart), or the link may not be fetched "
    "(scheme, address or policy).",
    401: "A valid API key is required (when keys are configured).",
    403: "The API key is valid but lacks the role this needs (check or moderate).",
    404: "No such video in the catalog.",
    409: "The verdict conflicts with the catalog (e.g. it would make a video a copy of its own "
    "copy).",
    413: "The video or its download exceeds a limit.",
    422: "The request is invalid, or the bytes are not a decodable video.",
    429: "This replica is at its concurrency limit; retry after Retry-After seconds.",
    502: "The server behind the link failed.",
    503: "A dependency (feature extraction, an index shard) is unavailable; retry after "
    "Retry-After seconds.",
    504: "The server behind the link was too slow.",
    501: "This deployment's catalog has no review store (the sharded catalog).",
    507: "The catalog could not durably store the video; nothing was added.",
}


def error_responses(*codes: int) -> dict[int | str, dict]:
    """OpenAPI ``responses`` for the error statuses a route can answer, all with ``ErrorBody``."""
    out: dict[int | str, dict] = {}
    for code in codes:
        out[code] = {"model": ErrorBody, "description": _ERRORS[code]}
        if code in (429, 503):
            out[code]["headers"] = _RETRY_AFTER
    return out


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
            {
                "error": "invalid_request",
                "detail": "; ".join(problems) or "invalid request",
                "problems": jsonable(list(exc.errors())),
            },
            422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = "request_too_large" if exc.status_code == 413 else "http_error"
        if exc.status_code == 413:
            metrics.ERRORS.labels(code).inc()
        return JSONResponse(
            _error_body(code, str(exc.detail)),
            exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        metrics.ERRORS.labels(metrics.INTERNAL_ERROR_CAUSE).inc()
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(_error_body("internal", "internal error; it has been logged"), 500)


def jsonable(errors: list[dict]) -> list[dict]:
    """Validation errors without the raw input or exception objects (they may not serialise)."""
    return [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in errors
    ]


#: Room for multipart framing and form fields around an upload of ``fetch_max_bytes``, bytes.
BODY_SLACK = 1024 * 1024


class BodyLimit:
    """Refuse request bodies over ``fetch_max_bytes`` + ``BODY_SLACK`` with 413, while they
    arrive: before any byte is read when Content-Length says so, else as soon as the count
    passes the limit.

    Why here and not in the upload route: Starlette parses a multipart body, spooling files to
    /tmp, before the route runs, and nothing else bounds it (uvicorn has no body limit), so an
    endless upload would fill the pod's /tmp and get the pod evicted.
    """

    def __init__(self, app, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.settings.fetch_max_bytes + BODY_SLACK
        declared = dict(scope.get("headers") or ()).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            metrics.ERRORS.labels("request_too_large").inc()
            response = JSONResponse(
                _error_body("request_too_large", _too_large(limit)),
                413,
                headers={"Connection": "close"},
            )
            await response(scope, receive, send)
            return
        received = 0

        async def counted():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise StarletteHTTPException(413, _too_large(limit))
            return message

        await self.app(scope, counted, send)


def _too_large(limit: int) -> str:
    return f"the request body exceeds the limit of {limit} bytes"


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
            "with the same uuid to get its result",
            retry_after_s=10,
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
