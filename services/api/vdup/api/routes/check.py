"""POST /check-video-duplicate (the Yappy contract) and POST /videos (upload the bytes)."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile
from pydantic import BaseModel, ConfigDict, Field, model_validator

from vdup import metrics
from vdup.api.app import admitted, error_responses, run_check
from vdup.api.ids import id_from_link, valid_id
from vdup.api.routes.deps import Checker, State
from vdup.errors import BadMedia, MediaTooLarge
from vdup.tracing import tracer

router = APIRouter(tags=["check"], dependencies=[Checker])


class CheckRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    link: str | None = Field(None, description="http(s) URL of the video.", max_length=4096)
    url: str | None = Field(
        None, description="Alias of link, sent by older clients.", max_length=4096
    )
    uuid: str | None = Field(
        None, description="The video's id; default: the link's file stem.", max_length=128
    )

    @model_validator(mode="after")
    def one_link(self) -> CheckRequest:
        if not (self.link or self.url):
            raise ValueError("give the video's URL as 'link' (or 'url')")
        if self.link and self.url and self.link != self.url:
            raise ValueError("'link' and 'url' disagree; send one of them")
        if self.uuid is not None and not valid_id(self.uuid):
            raise ValueError("uuid must be 1-128 characters of letters, digits, '.', '_', ':', '-'")
        return self

    @property
    def target(self) -> str:
        return self.link or self.url or ""


class Segments(BaseModel):
    query_s: list[float] = Field(description="Matched span of the checked video, s.")
    match_s: list[float] = Field(description="Matched span of the catalog video, s.")


class CheckResponse(BaseModel):
    is_duplicate: bool
    duplicate_for: str = Field(description="Root original's uuid, or '' when not a duplicate.")
    uuid: str = Field(description="The checked video's id in the catalog.")
    score: float = Field(
        description="Probability (0..1) that the best match is a copy, from the "
        "decision model; 1.0 for byte-identical re-uploads."
    )
    path: str = Field(description="'exact', 'visual', 'visual_audio' or ''.")
    matched_video: str = Field(description="The catalog video that matched best (may be a copy).")
    already_known: bool = Field(description="True when this uuid was checked before.")
    segments: Segments | None = None


@router.post(
    "/check-video-duplicate",
    response_model=CheckResponse,
    summary="Check a video by link; it joins the catalog.",
    responses=error_responses(400, 401, 413, 422, 429, 502, 503, 504, 507),
)
async def check_video(body: CheckRequest, state: State) -> dict:
    async with admitted(state):
        with tracer.start_as_current_span("check"):
            t0 = time.perf_counter()
            with tracer.start_as_current_span("download") as span:
                data = await state.fetcher.fetch(body.target)
                span.set_attribute("vdup.bytes", len(data))
            metrics.STAGE_DURATION.labels("download").observe(time.perf_counter() - t0)
            metrics.DOWNLOAD_BYTES.inc(len(data))
            video_id = body.uuid or id_from_link(body.target)
            return await run_check(state, data, video_id, body.target)


@router.post(
    "/videos",
    response_model=CheckResponse,
    status_code=200,
    summary="Check an uploaded video file; it joins the catalog.",
    responses=error_responses(400, 401, 413, 422, 429, 503, 507),
)
async def upload_video(
    state: State,
    file: Annotated[UploadFile, File(description="The video file.")],
    uuid: Annotated[str | None, Form(max_length=128)] = None,
) -> dict:
    if uuid is not None and not valid_id(uuid):
        raise BadMedia("uuid must be 1-128 characters of letters, digits, '.', '_', ':', '-'")
    limit = state.settings.fetch_max_bytes
    async with admitted(state):
        data = await file.read(limit + 1)
        if len(data) > limit:
            raise MediaTooLarge(f"the upload exceeds the limit of {limit} bytes")
        video_id = uuid or id_from_link(file.filename or "")
        with tracer.start_as_current_span("upload"):
            return await run_check(state, data, video_id, file.filename or "upload")
