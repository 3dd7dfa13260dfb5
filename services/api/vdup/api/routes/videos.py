"""Read and delete catalog entries."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from vdup.api.app import error_responses
from vdup.api.routes.deps import Authorized, State
from vdup.errors import NotFound

router = APIRouter(tags=["videos"], dependencies=[Authorized])


class Video(BaseModel):
    video_id: str
    root_id: str
    sha256: str
    is_duplicate: bool
    duplicate_for: str
    matched_video: str
    score: float
    path: str
    duration_s: float
    frames: int
    created_at: float
    source: str


class VideoPage(BaseModel):
    videos: list[Video]
    next_after: str | None


@router.get(
    "/videos/{video_id}", response_model=Video, responses=error_responses(401, 404, 422, 503)
)
async def get_video(video_id: str, state: State) -> dict:
    record = await asyncio.to_thread(state.checker.catalog.get, video_id)
    if record is None:
        raise NotFound(f"no video {video_id!r} in the catalog")
    return record.to_dict()


@router.get("/videos", response_model=VideoPage, responses=error_responses(401, 422, 503))
async def list_videos(
    state: State,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: Annotated[str, Query(max_length=128)] = "",
) -> dict:
    records = await asyncio.to_thread(state.checker.catalog.list, limit, after)
    return {
        "videos": [r.to_dict() for r in records],
        "next_after": records[-1].video_id if len(records) == limit else None,
    }


@router.delete(
    "/videos/{video_id}", status_code=204, responses=error_responses(401, 404, 422, 503, 507)
)
async def delete_video(video_id: str, state: State) -> None:
    if not await asyncio.to_thread(state.checker.catalog.delete, video_id):
        raise NotFound(f"no video {video_id!r} in the catalog")
