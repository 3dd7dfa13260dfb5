"""Two copies of one new video checked at the same moment on different API replicas.

The checker's lock makes search → decide → add atomic inside one replica only. Across replicas
both checks may search before either adds, both see nothing, and both would be stored as
originals. ``settle`` closes that gap without a coordinator:

1. A check that decided "original" adds its video *pending* (a mark in the owner shard's SQLite,
   in the same transaction as the add).
2. It then searches again and decides again over what it finds, itself excluded. Let ``m`` be the
   video the new decision matches (if any) and ``key(v) = (v.created_at, v.video_id)``:
   - no match, or ``m`` is already a copy of us: we stay an original;
   - ``m`` is settled, or pending and earlier than us: we become a copy of ``m``'s root;
   - ``m`` is pending and later than us: we settle ``m`` as a copy of us (compare-and-set: only
     while it is still pending) and stay an original; if ``m`` settled itself first, look again.
3. We settle ourselves with a compare-and-set on our pending mark. If it fails, an earlier
   concurrent check already settled us as its copy: we answer what it stored.

Why two checks never both end as originals: each add completes before its own second search
starts, and every shard serialises adds and searches, so of two such checks at least one second
search sees the other's video (if A's search missed B, A's search ran before B's add finished,
so B's search, which starts after B's add, runs after A's add). The one that sees the other
either links itself (step 2, first two cases) or links the other while it is still pending; a
pending video is settled exactly once (compare-and-set), and a check answers what is stored for
it. Clocks need not agree: ``key`` only has to be one total order that both checks compute the
same way; skew only changes which of two simultaneous uploads is named the original.

Limits (docs/indexer.md): a replica that dies between its add and its settle leaves its video
pending; other checks treat it like an original (later ones link to it, earlier ones settle it as
their copy). Three or more simultaneous copies can leave a copy naming a copy as its root.
"""

from __future__ import annotations

from typing import Protocol

from vdup.catalog.types import VideoRecord
from vdup.errors import Unavailable
from vdup.features.types import VideoFeatures
from vdup.matching.decide import Candidate, DecisionConfig, decide


class SettleStore(Protocol):
    """What ``settle`` needs from a catalog (``ShardedCatalog``; ``LocalCatalog`` also has it)."""

    def search(self, features: VideoFeatures, k: int, max_candidates: int) -> list[Candidate]: ...

    def get_state(self, video_id: str) -> tuple[VideoRecord, bool] | None: ...

    def resolve(self, record: VideoRecord) -> bool: ...


def key(record: VideoRecord) -> tuple[float, str]:
    """The order that names the earlier of two simultaneous uploads: (created_at s, video_id)."""
    return (record.created_at, record.video_id)


def as_original(record: VideoRecord) -> VideoRecord:
    return _with(
        record,
        root_id=record.video_id,
        is_duplicate=False,
        duplicate_for="",
        matched_video=record.matched_video,
        score=record.score,
        path="",
    )


def as_copy(record: VideoRecord, root: str, matched: str, score: float, path: str) -> VideoRecord:
    return _with(
        record,
        root_id=root,
        is_duplicate=True,
        duplicate_for=root,
        matched_video=matched,
        score=float(score),
        path=path or "visual",
    )


def _with(record: VideoRecord, **changes) -> VideoRecord:
    d = record.to_dict()
    d.update(changes)
    return VideoRecord(**d)


def settle(
    store: SettleStore,
    record: VideoRecord,
    features: VideoFeatures,
    cfg: DecisionConfig,
    k: int,
    max_rounds: int = 4,
) -> VideoRecord:
    """Settle ``record``, just added pending as an original; returns what is stored for it.

    Raises Unavailable when a shard fails (the video stays pending, see the module docstring) or
    when concurrent checks keep changing the answer for ``max_rounds`` rounds.
    """
    me = record.video_id
    for _ in range(max_rounds):
        cands = [c for c in store.search(features, k, cfg.max_candidates) if c.video_id != me]
        d = decide(features, cands, cfg)
        if not d.is_duplicate or d.duplicate_for == me:
            target = as_original(record)
        else:
            state = store.get_state(d.matched_video)
            if state is None:
                continue  # deleted meanwhile
            other, other_pending = state
            if other.root_id == me:
                target = as_original(record)
            elif not other_pending or key(other) < key(record):
                target = as_copy(record, other.root_id, other.video_id, d.score, d.path)
            else:
                forced = as_copy(other, me, me, d.score, d.path)
                if not store.resolve(forced):
                    continue  # it settled itself meanwhile: decide again with its final state
                target = as_original(record)
        if store.resolve(target):
            return target
        state = store.get_state(me)
        if state is not None and not state[1]:
            return state[0]
    raise Unavailable(
        f"video {me} could not be settled against concurrent checks of the same "
        "content; retry with the same uuid"
    )
