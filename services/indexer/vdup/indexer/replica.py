"""A shard replica: a disposable view of shard i of n, kept up to date from the truth.

The view is an ordinary ``LocalCatalog`` in the replica's own directory (FAISS for search, a
SQLite copy of its shard's rows for the aligner), so a replica answers exactly what an embedded
catalog with the same videos answers. It never takes writes: the API writes to PostgreSQL
(``vdup.indexer.truth``), and the replica applies the change log in order:

- start: open the view (its last FAISS snapshot plus the SQLite rows after it, as any
  ``LocalCatalog`` does), read the last change it applied (``LocalCatalog.truth_seq``), then
  apply every later change of its shard;
- then keep tailing: poll ``changes`` every ``poll_s`` (one indexed range query; nothing is
  read when nothing changed);
- each batch of changes and the new applied number are one SQLite transaction, so a kill -9
  between two batches loses nothing and applies nothing twice.

A change belongs to this replica when ``placement(video_id, n) == i``; the others only move its
applied number forward. ``ready`` is True once the replica has applied the head it read after
starting: ``/readyz`` answers 503 until then, so a restarting replica receives no searches
before it has caught up.

Read your writes: a search may carry the change number the caller needs (``min_seq``);
``wait_for`` holds it until this replica has applied that far, or answers False within the
caller's deadline (the caller then asks another replica).
"""

from __future__ import annotations

import logging
import threading
import time

from vdup.catalog.local import LocalCatalog
from vdup.catalog.store import TruthChange
from vdup.errors import Unavailable
from vdup.indexer.placement import placement
from vdup.indexer.truth import Change, Truth

log = logging.getLogger(__name__)


class Replica:
    """Shard ``shard`` of ``shards``: ``catalog`` kept in step with ``truth``.

    batch: changes read per query; poll_s: seconds between polls when caught up.
    """

    def __init__(
        self,
        truth: Truth,
        catalog: LocalCatalog,
        shard: int,
        shards: int,
        batch: int = 2000,
        poll_s: float = 0.1,
    ) -> None:
        if not 0 <= shard < shards:
            raise ValueError(f"shard {shard} is not in 0..{shards - 1}")
        self.truth = truth
        self.catalog = catalog
        self.shard = shard
        self.shards = shards
        self.batch = batch
        self.poll_s = poll_s
        self.applied = catalog.truth_seq
        self.ready = False
        self.last_error = ""
        self._advanced = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- applying

    def mine(self, video_id: str) -> bool:
        return placement(video_id, self.shards) == self.shard

    def step(self) -> int:
        """Apply the next batch of changes; returns how many changes it read (0: caught up).
        Raises Unavailable when the truth cannot be read."""
        changes = self.truth.changes(self.applied, self.batch)
        if not changes:
            return 0
        last = changes[-1].seq
        ours = [c for c in changes if self.mine(c.video_id)]
        if ours:
            self.catalog.apply_truth(self._resolve(ours), last)
        elif last - self.catalog.truth_seq >= 10 * self.batch:
            # nothing of ours for a long stretch: record the progress now and then, so a
            # restart does not re-read it all
            self.catalog.apply_truth([], last)
        with self._advanced:
            self.applied = last
            self._advanced.notify_all()
        return len(changes)

    def _resolve(self, changes: list[Change]) -> list[TruthChange]:
        """The records and rows the changes need, read from the truth in one round trip.
        An add or update of a video deleted since is skipped: its delete follows in the log."""
        needed = [c.video_id for c in changes if c.op != "delete"]
        stored = self.truth.stored(needed)
        out = []
        for c in changes:
            if c.op == "delete":
                out.append(TruthChange("delete", c.video_id))
                continue
            got = stored.get(c.video_id)
            if got is None:
                continue
            record, rows = got
            out.append(TruthChange(c.op, c.video_id, record, rows if c.op == "add" else None))
        return out

    def catch_up(self, deadline_s: float = 600.0) -> int:
        """Apply changes until the head read at the start is applied; returns the head.
        Raises Unavailable when the truth does not answer, TimeoutError past the deadline."""
        head = self.truth.head()
        t_end = time.monotonic() + deadline_s
        while self.applied < head:
            if time.monotonic() > t_end:
                raise TimeoutError(f"applied {self.applied} of {head} changes in {deadline_s} s")
            if not self.step():
                break  # the head moved backwards? (a restored database): take what is there
        return head

    # ---------------------------------------------------------------- the loop

    def start(self) -> None:
        """Catch up and keep tailing in a background thread (``ready`` once caught up)."""
        self._thread = threading.Thread(target=self._run, name=f"replica-{self.shard}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        with self._advanced:
            self._advanced.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        t0 = time.perf_counter()
        start = self.applied
        while not self._stop.is_set():
            try:
                if not self.ready:
                    head = self.catch_up()
                    self.ready = True
                    log.info(
                        "shard %d/%d: caught up to change %d (%d changes in %.2f s)",
                        self.shard,
                        self.shards,
                        head,
                        self.applied - start,
                        time.perf_counter() - t0,
                    )
                if not self.step():
                    self._stop.wait(self.poll_s)
                self.last_error = ""
            except Unavailable as exc:
                if self.last_error != str(exc):
                    log.warning(
                        "shard %d: the truth is unavailable (%s); retrying", self.shard, exc
                    )
                self.last_error = str(exc)
                self._stop.wait(max(self.poll_s, 0.5))
            except Exception:
                log.exception("shard %d: applying changes failed; retrying", self.shard)
                self._stop.wait(1.0)

    def wait_for(self, seq: int, timeout_s: float) -> bool:
        """Block until change ``seq`` is applied (True) or ``timeout_s`` passes (False)."""
        t_end = time.monotonic() + timeout_s
        with self._advanced:
            while self.applied < seq:
                left = t_end - time.monotonic()
                if left <= 0 or self._stop.is_set():
                    return False
                self._advanced.wait(left)
        return True
