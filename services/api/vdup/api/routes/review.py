"""The moderators' API: the review queue, each decision's evidence, verdicts and the audit log.

Every route here needs the ``moderate`` role (``vdup.api.routes.deps``). The data comes from
the catalog's review store (``vdup.catalog.review``: the embedded catalog's SQLite, or the
PostgreSQL truth of the platform mode); a deployment whose catalog has none (shards that own
their data) answers 501 with a message saying so, never an empty queue that looks fine.
The page that uses these routes is ``/review`` (``vdup.api.routes.pages``).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field, model_validator

from vdup.api.app import AppState, error_responses
from vdup.api.routes.deps import Moderator, State
from vdup.api.routes.videos import Video
from vdup.catalog.review import AuditEntry, QueueQuery, ReviewStore, Verdict
from vdup.errors import NotFound, VdupError

router = APIRouter(tags=["review"])

VideoId = Annotated[str, Path(min_length=1, max_length=128)]


class ReviewUnavailable(VdupError):
    status_code = 501
    code = "review_unavailable"


class VerdictIn(BaseModel):
    verdict: Literal["not_duplicate", "duplicate_of"] = Field(
        description="'not_duplicate': the video is an original; 'duplicate_of': it copies `of`."
    )
    of: str = Field("", max_length=128, description="The video it copies (duplicate_of only).")
    note: str = Field("", max_length=2000, description="Why, for the audit log.")

    @model_validator(mode="after")
    def _of_when_needed(self) -> VerdictIn:
        if self.verdict == "duplicate_of" and not self.of:
            raise ValueError("'of' names the original for a duplicate_of verdict")
        if self.verdict == "not_duplicate" and self.of:
            raise ValueError("'of' is only for a duplicate_of verdict")
        return self


class AuditOut(BaseModel):
    seq: int
    at: float = Field(description="Unix time, s.")
    who: str = Field(description="The moderator key's name.")
    video_id: str
    verdict: str
    of: str
    note: str
    before: dict = Field(description="The record before the verdict.")
    after: dict = Field(description="The record after it.")
    changed: list[str] = Field(description="Other videos the verdict re-pointed.")


class VerdictOut(BaseModel):
    video: Video
    changed: list[str]
    verdict: AuditOut


class QueueItemOut(BaseModel):
    video_id: str
    matched_video: str
    duplicate_for: str
    score: float
    path: str
    created_at: float
    query_segment_s: list[float] | None
    match_segment_s: list[float] | None
    verdict: AuditOut | None


class QueueOut(BaseModel):
    items: list[QueueItemOut]


class PairOut(BaseModel):
    query_t: float = Field(description="Time in the checked video, s.")
    match_t: float = Field(description="Time in the matched video, s.")
    query_thumb: str | None = Field(description="URL of the query frame's JPEG, if kept.")
    match_thumb: str | None = Field(
        description="URL of the matched frame's JPEG; null once that video is deleted."
    )


class EvidenceOut(BaseModel):
    video_id: str
    matched_video: str
    duplicate_for: str
    is_duplicate: bool = Field(description="The decision as made (verdicts are in `verdicts`).")
    score: float
    path: str
    query_segment_s: list[float] | None
    match_segment_s: list[float] | None
    features: dict[str, float] = Field(description="The decision model's inputs, by name.")
    pairs: list[PairOut]
    verdicts: list[AuditOut]


def _review(state: AppState) -> ReviewStore:
    review = state.checker.review
    if review is None:
        raise ReviewUnavailable(
            "this deployment's catalog keeps no evidence or verdicts: sharded shards that own "
            "their data have no review store; use the embedded catalog, or the PostgreSQL "
            "truth (VDUP_DATABASE_URL) with shard replicas"
        )
    return review


@router.get("/review/queue", response_model=QueueOut, responses=error_responses(401, 403, 422, 501))
async def queue(
    state: State,
    who: Moderator,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    sort: Literal["newest", "score"] = "newest",
    path: Literal["", "exact", "visual", "visual_audio", "verdict"] = "",
    min_score: Annotated[float, Query(ge=0, le=1)] = 0.0,
    max_score: Annotated[float, Query(ge=0, le=1)] = 1.0,
    status: Literal["open", "all"] = "open",
) -> dict:
    """Recent duplicates for review: newest first (then lowest score), or lowest score first."""
    review = _review(state)
    items = await asyncio.to_thread(
        review.review_queue, QueueQuery(limit, path, min_score, max_score, status, sort)
    )
    return {
        "items": [
            {
                "video_id": it.record.video_id,
                "matched_video": it.record.matched_video,
                "duplicate_for": it.record.duplicate_for,
                "score": it.record.score,
                "path": it.record.path,
                "created_at": it.record.created_at,
                "query_segment_s": list(it.query_segment_s) if it.query_segment_s else None,
                "match_segment_s": list(it.match_segment_s) if it.match_segment_s else None,
                "verdict": it.verdict.to_dict() if it.verdict else None,
            }
            for it in items
        ]
    }


@router.get(
    "/videos/{video_id}/evidence",
    response_model=EvidenceOut,
    responses=error_responses(401, 403, 404, 422, 501),
)
async def evidence(video_id: VideoId, state: State, who: Moderator) -> dict:
    """What decided this video: the matched video, the segments, the decision model's inputs,
    and aligned frame pairs with their thumbnails."""
    review = _review(state)
    stored = await asyncio.to_thread(review.evidence, video_id)
    if stored is None:
        raise NotFound(f"no evidence for {video_id!r}: unknown, deleted, or checked before it")
    doc = stored.document
    base = f"/videos/{video_id}/evidence"
    return {
        "video_id": video_id,
        **{k: doc[k] for k in ("matched_video", "duplicate_for", "is_duplicate", "score", "path")},
        "query_segment_s": doc["query_segment_s"],
        "match_segment_s": doc["match_segment_s"],
        "features": doc["features"],
        "pairs": [
            {
                "query_t": p["query_t"],
                "match_t": p["match_t"],
                "query_thumb": f"{base}/query/{i}.jpg" if stored.has_query[i] else None,
                "match_thumb": f"{base}/match/{i}.jpg" if stored.has_match[i] else None,
            }
            for i, p in enumerate(doc["pairs"])
        ],
        "verdicts": [v.to_dict() for v in stored.verdicts],
    }


@router.get(
    "/videos/{video_id}/evidence/{side}/{index}.jpg",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}}, "description": "The thumbnail."},
        **error_responses(401, 403, 404, 422, 501),
    },
)
async def evidence_image(
    video_id: VideoId,
    side: Literal["query", "match"],
    index: Annotated[int, Path(ge=0, le=63)],
    state: State,
    who: Moderator,
) -> Response:
    review = _review(state)
    jpeg = await asyncio.to_thread(review.evidence_image, video_id, side, index)
    if jpeg is None:
        raise NotFound(f"no {side} thumbnail {index} for {video_id!r}")
    return Response(
        jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"}
    )


@router.post(
    "/videos/{video_id}/verdict",
    response_model=VerdictOut,
    responses=error_responses(400, 401, 403, 404, 409, 422, 501, 507),
)
async def verdict(video_id: VideoId, body: VerdictIn, state: State, who: Moderator) -> dict:
    """Overturn or confirm a decision. The video, and the copies that named it, are re-pointed
    to the right root in one transaction, with an audit-log entry; a 'not_duplicate' verdict
    also puts the pair on the negative list, so later copies of this content are not matched
    to that root again."""
    review = _review(state)
    outcome = await asyncio.to_thread(
        review.apply_verdict, Verdict(video_id, body.verdict, body.of, body.note, who.name)
    )
    return {
        "video": outcome.record.to_dict(),
        "changed": list(outcome.changed),
        "verdict": outcome.entry.to_dict(),
    }


@router.get("/audit", response_model=list[AuditOut], responses=error_responses(401, 403, 422, 501))
async def audit(
    state: State,
    who: Moderator,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    video_id: Annotated[str, Query(max_length=128)] = "",
) -> list[dict]:
    """Every verdict, newest first: who, when, the record before and after."""
    review = _review(state)
    entries: list[AuditEntry] = await asyncio.to_thread(review.audit, limit, video_id)
    return [e.to_dict() for e in entries]
