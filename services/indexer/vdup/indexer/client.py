"""The API's view of the indexer shards: a ``Catalog`` that scatters and gathers over HTTP.

Placement: a video lives on shard ``placement(video_id, N)``: Jump Consistent Hash of the first
8 bytes of SHA-1(id) (stable across processes and Python versions, unlike ``hash()``). Growing
N -> N+1 moves only the ~1/(N+1) of the videos that the new shard takes over
(``vdup.indexer.reshard`` moves them). Writes go to that one shard; reads by id ask it first and
then the others (a video may sit on its old shard until the move reaches it); deletes, sha256
lookups, listings and searches ask every shard in parallel and merge (``merge_candidates``, like
FAISS contrib's ``ResultHeap``: one merge, one deterministic order).

Fail closed: a shard that is down, slow (``timeout_s``) or answers 5xx raises
``Unavailable("index shard <url> is unavailable: ...")`` and the API answers 503. A partial
search never becomes a "not a duplicate" answer, and nothing is added as an original from one.

Races across API replicas: a video decided original is added pending and then settled
(``vdup.indexer.races``), so two simultaneous copies never both come back as originals.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import logging
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar
from urllib.parse import quote

import httpx
import numpy as np

from vdup import metrics
from vdup.catalog.types import StoredRows, VideoRecord
from vdup.errors import Conflict, Unavailable
from vdup.features.types import QUERY_MAX_SIM, VideoFeatures
from vdup.indexer import wire
from vdup.indexer.discovery import (
    KubernetesShards,
    ShardDirectory,
    StaticShards,
    uses_kubernetes,
)
from vdup.indexer.placement import jump_hash as jump_hash
from vdup.indexer.placement import placement as placement
from vdup.indexer.races import settle
from vdup.indexer.wire import SHARD_HEADER
from vdup.matching.decide import Candidate, DecisionConfig
from vdup.matching.explain import Evidence

log = logging.getLogger(__name__)

T = TypeVar("T")
_ORDINAL = re.compile(r"-(\d+)$")


def merge_candidates(per_shard: list[list[Candidate]], max_candidates: int) -> list[Candidate]:
    """The best ``max_candidates`` over every shard's candidates: retrieval score descending,
    then video id ascending, so equal scores come out in the same order whatever the shard
    count or answer order. A video listed by two shards (only while data moves between shards)
    is kept once, with its best score."""
    everything = [c for cands in per_shard for c in cands]
    everything.sort(key=lambda c: (-c.retrieval, c.video_id))
    out: list[Candidate] = []
    seen: set[str] = set()
    for c in everything:
        if c.video_id in seen:
            continue
        seen.add(c.video_id)
        out.append(c)
        if len(out) == max_candidates:
            break
    return out


class ShardedCatalog:
    """``Catalog`` over indexer shards (see the module docstring).

    shards: where the shards are (``StaticShards`` / ``KubernetesShards``).
    timeout_s: deadline of one call to one shard, s.
    decision, search_k: what the race settlement decides with (the checker's own values).
    """

    def __init__(
        self,
        shards: ShardDirectory | list[str],
        timeout_s: float = 10.0,
        decision: DecisionConfig | None = None,
        search_k: int = 32,
        settle_races: bool = True,
        workers: int = 16,
        query_max_sim: float = QUERY_MAX_SIM,
    ) -> None:
        self.shards = StaticShards(shards) if isinstance(shards, list) else shards
        self.query_max_sim = query_max_sim
        self.timeout_s = timeout_s
        self.decision = decision or DecisionConfig()
        self.search_k = search_k
        self.settle_races = settle_races
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=4 * workers, max_keepalive_connections=2 * workers),
        )
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="shards")

    @classmethod
    def from_settings(cls, settings) -> ShardedCatalog:
        shards: ShardDirectory = (
            KubernetesShards(
                settings.indexer_service,
                settings.indexer_namespace,
                settings.indexer_port,
                expected=getattr(settings, "indexer_shards", 0),
            )
            if uses_kubernetes(settings)
            else StaticShards(settings.indexer_urls)
        )
        return cls(
            shards,
            timeout_s=settings.indexer_timeout_s,
            decision=settings.decision(),
            search_k=settings.search_k,
            query_max_sim=settings.query_max_sim,
        )

    # ---------------------------------------------------------------- transport

    def _call(self, i: int, url: str, op: str, method: str, path: str, **kw) -> httpx.Response:
        """One request to shard ``i``; Unavailable on transport errors, timeouts, 5xx, an answer
        without the shard header, or a shard that is not shard ``i``. 4xx answers are returned
        for the caller to read."""
        t0 = time.perf_counter()
        with _span(op, i, url):
            headers = {**kw.pop("headers", {}), **_trace_headers()}
            try:
                resp = self._http.request(method, url + path, headers=headers, **kw)
            except httpx.HTTPError as exc:
                metrics.BACKEND_FAILURES.labels("indexer", op).inc()
                raise Unavailable(
                    f"index shard {url} is unavailable: {type(exc).__name__}: {exc}"
                ) from None
            finally:
                metrics.BACKEND_REQUEST_DURATION.labels("indexer", op).observe(
                    time.perf_counter() - t0
                )
        if resp.status_code >= 500:
            metrics.BACKEND_FAILURES.labels("indexer", op).inc()
            raise Unavailable(
                f"index shard {url} is unavailable: HTTP {resp.status_code} {_detail(resp)}"
            )
        sid = resp.headers.get(SHARD_HEADER, "")
        m = _ORDINAL.search(sid)
        if not sid:
            metrics.BACKEND_FAILURES.labels("indexer", op).inc()
            raise Unavailable(
                f"index shard {url} is unavailable: HTTP {resp.status_code} from "
                "something that is not a vdup indexer shard"
            )
        if m and int(m.group(1)) != i:
            metrics.BACKEND_FAILURES.labels("indexer", op).inc()
            raise Unavailable(
                f"index shard {url} is unavailable: it is shard {sid!r} but sits "
                f"at position {i} of the shard list; fix the list's order"
            )
        return resp

    def _each(
        self,
        fn: Callable[[int, str], T],
        urls: list[str] | None = None,
        only: list[int] | None = None,
    ) -> list[T]:
        """fn(i, url) for every shard (or those in ``only``) in parallel; results in shard
        order. Every call finishes before the first failure is raised."""
        urls = urls if urls is not None else self.shards.urls()
        idx = only if only is not None else list(range(len(urls)))
        ctx = _context()
        futures = [self._pool.submit(_in_context, ctx, fn, i, urls[i]) for i in idx]
        results, first_error = [], None
        for f in futures:
            try:
                results.append(f.result())
            except Exception as exc:  # noqa: BLE001 - re-raised below, after all finished
                first_error = first_error or exc
        if first_error is not None:
            raise first_error
        return results

    def _bad(self, url: str, resp: httpx.Response) -> RuntimeError:
        return RuntimeError(
            f"index shard {url} refused a request: HTTP {resp.status_code} {_detail(resp)}"
        )

    # ---------------------------------------------------------------- reads

    def get_state(self, video_id: str) -> tuple[VideoRecord, bool] | None:
        """(record, pending) from the owner shard, else from any other shard."""
        urls = self.shards.urls()
        owner = placement(video_id, len(urls))
        path = f"/v1/videos/{quote(video_id, safe='')}"

        def one(i: int, url: str):
            resp = self._call(i, url, "get", "GET", path)
            if resp.status_code == 404:
                return None
            if resp.status_code != 200:
                raise self._bad(url, resp)
            body = resp.json()
            return wire.record_from_dict(body["record"]), bool(body["pending"])

        found = one(owner, urls[owner])
        if found is not None or len(urls) == 1:
            return found
        others = [i for i in range(len(urls)) if i != owner]
        return next((s for s in self._each(one, urls, others) if s is not None), None)

    def get(self, video_id: str) -> VideoRecord | None:
        state = self.get_state(video_id)
        return state[0] if state else None

    def find_sha256(self, sha256: str) -> VideoRecord | None:
        """The earliest video with these bytes on any shard (created_at, then id)."""

        def one(i: int, url: str):
            resp = self._call(i, url, "find_sha256", "GET", "/v1/videos", params={"sha256": sha256})
            if resp.status_code != 200:
                raise self._bad(url, resp)
            rec = resp.json()["record"]
            return wire.record_from_dict(rec) if rec else None

        found = [r for r in self._each(one) if r is not None]
        return min(found, key=lambda r: (r.created_at, r.video_id)) if found else None

    def list(self, limit: int = 100, after: str = "") -> list[VideoRecord]:
        """One page by id across shards: each shard's first ``limit`` after ``after``, merged."""

        def one(i: int, url: str):
            resp = self._call(
                i, url, "list", "GET", "/v1/videos", params={"limit": limit, "after": after}
            )
            if resp.status_code != 200:
                raise self._bad(url, resp)
            return [wire.record_from_dict(r) for r in resp.json()["videos"]]

        merged = sorted((r for page in self._each(one) for r in page), key=lambda r: r.video_id)
        return merged[:limit]

    def search(
        self, features: VideoFeatures, k: int, max_candidates: int
    ) -> builtins.list[Candidate]:
        return self.search_vectors(features.search_rows(self.query_max_sim), k, max_candidates)

    def search_vectors(
        self, query: np.ndarray, k: int, max_candidates: int
    ) -> builtins.list[Candidate]:
        """query: float32 [q, 512]; every shard's candidates, merged (``merge_candidates``)."""
        body = wire.encode_search(query, k, max_candidates)

        def one(i: int, url: str) -> builtins.list[Candidate]:
            resp = self._call(
                i,
                url,
                "search",
                "POST",
                "/v1/search",
                content=body,
                headers={"Content-Type": wire.MEDIA_TYPE},
            )
            if resp.status_code != 200:
                raise self._bad(url, resp)
            try:
                return wire.decode_candidates(resp.content)
            except wire.WireError as exc:
                raise Unavailable(f"index shard {url} is unavailable: bad answer: {exc}") from None

        return merge_candidates(self._each(one), max_candidates)

    def stats(self) -> dict:
        def one(i: int, url: str) -> dict:
            resp = self._call(i, url, "stats", "GET", "/v1/stats")
            if resp.status_code != 200:
                raise self._bad(url, resp)
            return resp.json() | {"url": url}

        per = self._each(one)
        return {
            "videos": sum(s["videos"] for s in per),
            "vectors": sum(s["vectors"] for s in per),
            "index": ",".join(sorted({s["index"] for s in per})),
            "shards": per,
        }

    # ---------------------------------------------------------------- writes

    def add(
        self,
        record: VideoRecord,
        features: VideoFeatures | None,
        *,
        evidence: Evidence | None = None,
    ) -> VideoRecord:
        """Durably add ``record`` on its owner shard; returns what is stored. ``evidence`` is
        not kept: shards that own their data have no review store (the PostgreSQL truth has,
        ``vdup.indexer.replicated``; docs/architecture.md, "Review").

        An original (not a duplicate, with features) is added pending and settled against
        concurrent checks of the same content (``vdup.indexer.races``); if that turns it into a
        copy, the returned record says so (``record`` itself is not changed): answer from it.
        Raises Unavailable (shard down: nothing acknowledged, or the video stays pending) and
        Conflict (the id is already stored with other content).
        """
        rows = StoredRows.from_features(features) if features is not None else None
        pending = self.settle_races and rows is not None and not record.is_duplicate
        self._add(record, rows, pending)
        if not pending:
            return record
        assert features is not None  # pending implies rows, which come from features
        return settle(self, record, features, self.decision, self.search_k)

    def _add(self, record: VideoRecord, rows: StoredRows | None, pending: bool) -> None:
        urls = self.shards.urls()
        i = placement(record.video_id, len(urls))
        resp = self._call(
            i,
            urls[i],
            "add",
            "POST",
            "/v1/videos",
            content=wire.encode_add(record, rows, pending),
            headers={"Content-Type": wire.MEDIA_TYPE},
        )
        if resp.status_code == 409:
            raise Conflict(f"video {record.video_id!r} is already in the catalog")
        if resp.status_code not in (200, 201):
            raise self._bad(urls[i], resp)

    def resolve(self, record: VideoRecord) -> bool:
        """Settle a pending video on the shard that holds it; False if it was not pending."""
        urls = self.shards.urls()
        i = placement(record.video_id, len(urls))
        body = json.dumps({"record": record.to_dict()}).encode()
        resp = self._call(
            i,
            urls[i],
            "resolve",
            "POST",
            "/v1/resolve",
            content=body,
            headers={"Content-Type": "application/json"},
        )
        if resp.status_code == 409:
            return False
        if resp.status_code != 200:
            raise self._bad(urls[i], resp)
        return True

    def delete(self, video_id: str) -> bool:
        """Remove the video from every shard: while a reshard moves it, it may briefly be on its
        old shard and its new one, and a copy left behind would be moved back later."""
        path = f"/v1/videos/{quote(video_id, safe='')}"

        def one(i: int, url: str) -> bool:
            resp = self._call(i, url, "delete", "DELETE", path)
            if resp.status_code not in (204, 404):
                raise self._bad(url, resp)
            return resp.status_code == 204

        return any(self._each(one))

    def snapshot(self) -> builtins.list[float]:
        """Ask every shard to write a snapshot now; their durations, s."""

        def one(i: int, url: str) -> float:
            resp = self._call(i, url, "snapshot", "POST", "/v1/snapshot")
            if resp.status_code != 200:
                raise self._bad(url, resp)
            return float(resp.json()["seconds"])

        return self._each(one)

    # ---------------------------------------------------------------- one shard (resharding)

    def list_on(self, i: int, limit: int = 500, after: str = "") -> builtins.list[VideoRecord]:
        """One page of shard ``i``'s own videos, by id after ``after``."""
        url = self.shards.urls()[i]
        resp = self._call(
            i, url, "list", "GET", "/v1/videos", params={"limit": limit, "after": after}
        )
        if resp.status_code != 200:
            raise self._bad(url, resp)
        return [wire.record_from_dict(r) for r in resp.json()["videos"]]

    def export_from(
        self, i: int, video_id: str
    ) -> tuple[VideoRecord, StoredRows | None, bool] | None:
        """(record, stored rows, pending) of a video as shard ``i`` stores it; None if it has
        no such video."""
        url = self.shards.urls()[i]
        resp = self._call(i, url, "export", "GET", f"/v1/rows/{quote(video_id, safe='')}")
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise self._bad(url, resp)
        try:
            return wire.decode_add(resp.content)
        except (wire.WireError, ValueError) as exc:
            raise Unavailable(f"index shard {url} is unavailable: bad answer: {exc}") from None

    def add_to(
        self, i: int, record: VideoRecord, rows: StoredRows | None, pending: bool = False
    ) -> bool:
        """Durably add a video to shard ``i`` as it is (no race settlement): True once stored,
        False if the shard already held exactly this record. Conflict: it holds another video
        under this id."""
        url = self.shards.urls()[i]
        resp = self._call(
            i,
            url,
            "add",
            "POST",
            "/v1/videos",
            content=wire.encode_add(record, rows, pending),
            headers={"Content-Type": wire.MEDIA_TYPE},
        )
        if resp.status_code == 409:
            raise Conflict(f"shard {i} holds another video under the id {record.video_id!r}")
        if resp.status_code not in (200, 201):
            raise self._bad(url, resp)
        return resp.status_code == 201

    def get_on(self, i: int, video_id: str) -> VideoRecord | None:
        url = self.shards.urls()[i]
        resp = self._call(i, url, "get", "GET", f"/v1/videos/{quote(video_id, safe='')}")
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise self._bad(url, resp)
        return wire.record_from_dict(resp.json()["record"])

    def delete_on(self, i: int, video_id: str) -> bool:
        """Delete a video from shard ``i`` only; False if it did not hold it."""
        url = self.shards.urls()[i]
        resp = self._call(i, url, "delete", "DELETE", f"/v1/videos/{quote(video_id, safe='')}")
        if resp.status_code not in (204, 404):
            raise self._bad(url, resp)
        return resp.status_code == 204

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._http.close()


def _detail(resp: httpx.Response) -> str:
    try:
        return str(resp.json().get("detail", ""))[:300]
    except (ValueError, AttributeError):
        return resp.text[:300]


# -- trace context across the worker threads (spans per shard call live in the API's trace) --


def _context():
    try:
        from opentelemetry import context

        return context.get_current()
    except ImportError:
        return None


def _in_context(ctx, fn, *args):
    if ctx is None:
        return fn(*args)
    from opentelemetry import context

    token = context.attach(ctx)
    try:
        return fn(*args)
    finally:
        context.detach(token)


def _span(op: str, i: int, url: str):
    try:
        from vdup.tracing import tracer
    except ImportError:
        return contextlib.nullcontext()
    return tracer.start_as_current_span(f"indexer {op}", attributes={"shard": i, "url": url})


def _trace_headers() -> dict[str, str]:
    try:
        from opentelemetry.propagate import inject
    except ImportError:
        return {}
    headers: dict[str, str] = {}
    inject(headers)
    return headers
