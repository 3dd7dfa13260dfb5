"""``vdup reshard``: move every video to the shard that owns it after the shard count changed.

Why a move and not a rebuild: placement is Jump Consistent Hash (``client.placement``), so going
from N to N+1 shards only the ~1/(N+1) of the videos that the new shard takes over change shard;
everything else stays. The procedure (docs/indexer.md, "Resharding"): start the new, empty
shard; point every API replica at the N+1 shards (new videos then go to their new homes, and
reads already look on every shard); then run this, which scans each shard page by page and, for
each video whose owner is now another shard:

1. reads it from its shard ``i`` as stored (record, rows, audio; ``GET /v1/rows/{id}``). A
   pending video (a check is still settling it, ``vdup.indexer.races``) is skipped and
   reported: its check resolves it on shard ``i``. ``pending_older_than_s`` moves those older
   than that (their check died), pending mark included;
2. adds it to its owner ``j``, which answers only once the add is durable (201), or 200 when it
   already holds exactly that video (an earlier, interrupted run), or 409; a 409 for a video of
   the same sha256 (a check stored it there meanwhile) also counts as already there;
3. deletes it from ``i``, but only ``grace_s`` after step 2.

Why the grace: a search asks every shard at about the same moment, but "about" is up to the
API's deadline of one shard call. A search that reached ``j`` just before step 2 and ``i`` just
after step 3 would miss the video, and a copy of it could be called new. While the video sits on
both shards the merge keeps it once (``merge_candidates``), so with ``grace_s`` longer than any
scatter (and than a get, which asks the owner and then the others), every check sees it. The
default is 6 x ``VDUP_INDEXER_TIMEOUT_S`` (httpx bounds each phase of a call, not the whole).

Crash safety: a video is deleted from ``i`` only after ``j`` acknowledged it durably, so killed
at any point it is on ``i``, on ``j`` or on both, never on neither. Running again finds those
still on ``i``, sees them already on ``j`` (step 2 answers 200) and finishes them: the command
is resumable and idempotent. A video deleted through the API meanwhile: ``ShardedCatalog.delete``
removes it from every shard; if that lands between steps 1 and 2, step 3 finds nothing left on
``i`` and removes the copy this run made on ``j``, so nothing deleted comes back.

Run one at a time, after every API replica sees the new shard count.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from vdup.errors import Conflict, Unavailable
from vdup.indexer.client import ShardedCatalog, placement

log = logging.getLogger(__name__)

#: Default grace between the copy and the delete, in deadlines of one shard call.
GRACE_DEADLINES = 6
_MAX_ERROR_SAMPLES = 20


@dataclass
class Summary:
    """What a run did. ``moved``: copied and deleted from the old shard; ``already_there``: the
    owner held it already (an interrupted run, or a check stored it there), deleted from the old
    shard; ``vanished``: deleted through the API during the move; ``to_move``: misplaced videos
    seen (a dry run stops there)."""

    shards: int
    dry_run: bool = False
    listed: int = 0
    to_move: int = 0
    moved: int = 0
    already_there: int = 0
    skipped_pending: int = 0
    vanished: int = 0
    errors: int = 0
    stopped_early: bool = False
    seconds: float = 0.0
    moves: dict[str, int] = field(default_factory=dict)
    error_samples: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every video is on its owner (as far as this run saw)."""
        if self.dry_run:
            return self.to_move == 0
        return not (self.errors or self.skipped_pending or self.stopped_early)

    def to_dict(self) -> dict:
        return asdict(self) | {"complete": self.complete}


@dataclass
class _Copy:
    """A video now on both shards; deleted from ``src`` once ``due`` (monotonic s) passes."""

    src: int
    dst: int
    video_id: str
    created: bool
    due: float


class Resharder:
    """One pass over every shard (see the module docstring).

    catalog: the shards in their new count and order (``settle_races`` is not used).
    grace_s: seconds between a video's copy and its deletion from the old shard.
    workers: videos copied or deleted in parallel. page_size: videos listed per call.
    max_moves: stop after this many copies (0 = all); the rest waits for the next run.
    pending_older_than_s: move pending videos created this long ago (0 = never move them).
    """

    def __init__(
        self,
        catalog: ShardedCatalog,
        grace_s: float,
        *,
        workers: int = 4,
        page_size: int = 500,
        max_moves: int = 0,
        pending_older_than_s: float = 0.0,
        dry_run: bool = False,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.catalog = catalog
        self.grace_s = grace_s
        self.workers = workers
        self.page_size = page_size
        self.max_moves = max_moves
        self.pending_older_than_s = pending_older_than_s
        self.dry_run = dry_run
        self.progress = progress or (lambda line: print(line, file=sys.stderr, flush=True))
        self._waiting: list[_Copy] = []
        self._copies = 0

    def run(self) -> Summary:
        urls = self.catalog.shards.urls()
        n = len(urls)
        s = Summary(shards=n, dry_run=self.dry_run)
        t0 = time.monotonic()
        with ThreadPoolExecutor(self.workers, thread_name_prefix="reshard") as pool:
            try:
                for i in range(n):
                    if not self._scan(i, n, s, pool):
                        break
            except (Unavailable, RuntimeError) as exc:  # a shard down or refusing to list
                self._error(s, f"stopped: {exc}")
            finally:
                if self._waiting:
                    wait = max(0.0, max(c.due for c in self._waiting) - time.monotonic())
                    self.progress(
                        f"waiting {wait:.1f} s (grace) before the last "
                        f"{len(self._waiting)} deletions from the old shards"
                    )
                    time.sleep(wait)
                    self._finish_due(s, pool)
                s.seconds = round(time.monotonic() - t0, 2)
                self.progress(
                    f"done in {s.seconds:.1f} s: {s.listed} listed, {s.to_move} to "
                    f"move; moved {s.moved}, already there {s.already_there}, "
                    f"pending {s.skipped_pending}, vanished {s.vanished}, "
                    f"errors {s.errors}"
                )
        return s

    def _scan(self, i: int, n: int, s: Summary, pool: ThreadPoolExecutor) -> bool:
        """Shard i, page by page; False when the run must stop (limit reached, shard down)."""
        after = ""
        while True:
            page = self.catalog.list_on(i, self.page_size, after)
            if not page:
                return True
            after = page[-1].video_id
            s.listed += len(page)
            todo = [(r.video_id, j) for r in page if (j := placement(r.video_id, n)) != i]
            s.to_move += len(todo)
            for _, j in todo:
                s.moves[f"{i}->{j}"] = s.moves.get(f"{i}->{j}", 0) + 1
            go_on = True
            if todo and not self.dry_run:
                if self.max_moves and self._copies + len(todo) >= self.max_moves:
                    todo = todo[: self.max_moves - self._copies]
                    s.stopped_early, go_on = True, False
                self._copies += len(todo)
                for outcome in pool.map(lambda t: self._copy(i, t[1], t[0]), todo):
                    go_on = self._count_copy(outcome, s) and go_on
                self._finish_due(s, pool)
            self.progress(
                f"shard {i}: {s.listed} listed, {s.to_move} to move; moved {s.moved}, "
                f"already there {s.already_there}, waiting for grace {len(self._waiting)}, "
                f"pending {s.skipped_pending}, errors {s.errors}"
            )
            if not go_on or len(page) < self.page_size:
                return go_on

    def _copy(self, i: int, j: int, video_id: str) -> tuple[str, object]:
        """Steps 1 and 2 for one video: (outcome, _Copy or detail)."""
        try:
            exported = self.catalog.export_from(i, video_id)
            if exported is None:
                return "vanished", video_id
            record, rows, pending = exported
            if pending and not (
                self.pending_older_than_s
                and time.time() - record.created_at > self.pending_older_than_s
            ):
                return "pending", video_id
            try:
                created = self.catalog.add_to(j, record, rows, pending)
            except Conflict:
                there = self.catalog.get_on(j, video_id)
                if there is None or there.sha256 != record.sha256:
                    return "error", (
                        f"{video_id}: shard {j} holds another video under this id "
                        f"(sha256 {there.sha256 if there else '?'} vs "
                        f"{record.sha256}); left on shard {i}"
                    )
                created = False
        except Unavailable as exc:
            return "unavailable", f"{video_id}: {exc}"
        except Exception as exc:  # noqa: BLE001 - counted and reported; the video stays put
            return "error", f"{video_id}: {type(exc).__name__}: {exc}"
        return "copied", _Copy(i, j, video_id, created, time.monotonic() + self.grace_s)

    def _count_copy(self, outcome: tuple[str, object], s: Summary) -> bool:
        kind, detail = outcome
        if kind == "copied":
            assert isinstance(detail, _Copy)
            self._waiting.append(detail)
        elif kind == "vanished":
            s.vanished += 1
        elif kind == "pending":
            s.skipped_pending += 1
        else:
            self._error(s, str(detail))
            return kind != "unavailable"
        return True

    def _finish_due(self, s: Summary, pool: ThreadPoolExecutor) -> None:
        """Step 3 for every copy whose grace has passed."""
        now = time.monotonic()
        due = [c for c in self._waiting if c.due <= now]
        if not due:
            return
        self._waiting = [c for c in self._waiting if c.due > now]
        for c, outcome in zip(due, pool.map(self._delete_source, due)):
            if outcome == "deleted":
                if c.created:
                    s.moved += 1
                else:
                    s.already_there += 1
            elif outcome == "vanished":
                s.vanished += 1
            else:
                self._error(s, outcome)

    def _delete_source(self, c: _Copy) -> str:
        try:
            if self.catalog.delete_on(c.src, c.video_id):
                return "deleted"
            if c.created:  # deleted through the API before our copy landed: undo the copy
                self.catalog.delete_on(c.dst, c.video_id)
            return "vanished"
        except Exception as exc:  # noqa: BLE001 - on both shards still; the next run finishes it
            return f"{c.video_id}: deleting it from shard {c.src}: {type(exc).__name__}: {exc}"

    def _error(self, s: Summary, detail: str) -> None:
        s.errors += 1
        log.warning("reshard: %s", detail)
        if len(s.error_samples) < _MAX_ERROR_SAMPLES:
            s.error_samples.append(detail[:500])


# -- vdup reshard ------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--shards",
        default=None,
        help="shard base URLs in shard order, comma-separated (default: the API's "
        "VDUP_INDEXER_URLS or VDUP_INDEXER_DISCOVERY)",
    )
    parser.add_argument(
        "--grace-s",
        type=float,
        default=None,
        help="seconds between a video's copy and its deletion from the old shard;"
        f" must exceed the longest shard scatter of the API (default "
        f"{GRACE_DEADLINES} x VDUP_INDEXER_TIMEOUT_S)",
    )
    parser.add_argument("--workers", type=int, default=4, help="videos moved in parallel")
    parser.add_argument("--page-size", type=int, default=500, help="videos listed per call")
    parser.add_argument(
        "--max-moves",
        type=int,
        default=0,
        help="stop after this many copies (0 = all); run again to continue",
    )
    parser.add_argument(
        "--pending-older-than-s",
        type=float,
        default=0.0,
        help="also move pending videos created this many seconds ago (their "
        "check died before settling them); 0 = skip every pending video",
    )
    parser.add_argument(
        "--timeout-s",
        type=float,
        default=None,
        help="deadline of one shard call (default VDUP_INDEXER_TIMEOUT_S)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="only count the videos to move, per old -> new shard"
    )


def run(args: argparse.Namespace) -> int:
    """Exit status: 0 every video is on its owner; 3 finished without errors but some videos
    wait for another run (pending, ``--max-moves``; for ``--dry-run``: some are misplaced);
    1 errors (run again); 2 bad arguments or settings."""
    from pydantic import ValidationError

    from vdup.settings import Settings

    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"vdup reshard: bad settings: {exc}", file=sys.stderr)
        return 2
    timeout_s = args.timeout_s or settings.indexer_timeout_s
    grace_s = args.grace_s if args.grace_s is not None else GRACE_DEADLINES * timeout_s
    try:
        if args.shards:
            urls = [u.strip() for u in args.shards.split(",") if u.strip()]
        elif settings.indexer_urls or settings.indexer_discovery:
            # The list is fixed for the whole run: a count that changed midway would move
            # videos to the wrong shards.
            found = ShardedCatalog.from_settings(settings)
            try:
                urls = found.shards.urls()
            finally:
                found.close()
        else:
            print(
                "vdup reshard: give --shards, or set VDUP_INDEXER_URLS or VDUP_INDEXER_DISCOVERY",
                file=sys.stderr,
            )
            return 2
        catalog = ShardedCatalog(
            urls, timeout_s=timeout_s, settle_races=False, workers=max(1, args.workers)
        )
    except (ValueError, Unavailable) as exc:
        print(f"vdup reshard: {exc}", file=sys.stderr)
        return 2
    print(
        f"vdup reshard: {len(urls)} shards, grace {grace_s:g} s"
        f"{' (dry run)' if args.dry_run else ''}: {', '.join(urls)}",
        file=sys.stderr,
        flush=True,
    )
    try:
        summary = Resharder(
            catalog,
            grace_s,
            workers=max(1, args.workers),
            page_size=args.page_size,
            max_moves=args.max_moves,
            pending_older_than_s=args.pending_older_than_s,
            dry_run=args.dry_run,
        ).run()
    finally:
        catalog.close()
    print(json.dumps(summary.to_dict()), flush=True)
    if summary.errors:
        return 1
    return 0 if summary.complete else 3
