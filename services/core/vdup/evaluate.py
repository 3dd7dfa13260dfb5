"""Replay a Yappy-format manifest through the checker and score the predictions.

The protocol (shared/bench/README.md): rows in ``created`` order; each video is judged against
all earlier ones and then joins the catalog whatever the decision. F1 is on ``is_duplicate``;
``duplicate_for_accuracy`` is the share of true duplicates, flagged as duplicates, whose
``duplicate_for`` names the right root original.
"""

from __future__ import annotations

import csv
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Row:
    uuid: str
    link: str
    created: str
    is_duplicate: bool | None
    duplicate_for: str
    kind: str


def read_manifest(path: str | Path) -> list[Row]:
    with open(path, newline="") as f:
        rows = [
            Row(
                uuid=r["uuid"],
                link=r["link"],
                created=r.get("created", ""),
                is_duplicate=_bool(r["is_duplicate"]) if r.get("is_duplicate") else None,
                duplicate_for=(r.get("duplicate_for") or "").strip(),
                kind=r.get("kind", ""),
            )
            for r in csv.DictReader(f)
        ]
    return sorted(rows, key=lambda r: r.created)  # stable: ties keep file order


def _bool(v: str) -> bool:
    return v.strip().lower() in ("true", "1", "yes")


def resolve_link(link: str, manifest: Path) -> str:
    if link.startswith(("http://", "https://")):
        return link
    p = Path(link)
    return str(p if p.is_absolute() else (manifest.parent / p))


@dataclass
class Prediction:
    uuid: str
    is_duplicate: bool
    duplicate_for: str
    ms: float
    score: float = 0.0
    path: str = ""
    matched_video: str = ""


def counts_to_scores(tp: int, fp: int, fn: int, tn: int, right: int, empty: float = 0.0) -> dict:
    """F1, precision, recall and duplicate_for accuracy (``right`` of the ``tp`` name the true
    root), rounded to 4 places, with the counts. ``empty``: precision and recall when nothing
    was predicted or nothing was there to find."""
    precision = tp / (tp + fp) if tp + fp else empty
    recall = tp / (tp + fn) if tp + fn else empty
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "f1": round(f1, 4),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "duplicate_for_accuracy": round(right / tp, 4) if tp else 0.0,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
    }


def score(rows: list[Row], preds: dict[str, Prediction]) -> dict:
    """Scores on the rows that carry a truth; see the module docstring."""
    tp = fp = fn = tn = right = 0
    for r in rows:
        p = preds.get(r.uuid)
        if p is None or r.is_duplicate is None:
            continue
        if p.is_duplicate and r.is_duplicate:
            tp += 1
            right += int(p.duplicate_for == r.duplicate_for)
        elif p.is_duplicate:
            fp += 1
        elif r.is_duplicate:
            fn += 1
        else:
            tn += 1
    ms = np.array([p.ms for p in preds.values()]) if preds else np.zeros(1)
    return {
        "videos": len(preds),
        **counts_to_scores(tp, fp, fn, tn, right),
        "ms_per_video_p50": round(float(np.percentile(ms, 50)), 1),
        "ms_per_video_p95": round(float(np.percentile(ms, 95)), 1),
    }


def per_kind(rows: list[Row], preds: dict[str, Prediction]) -> list[tuple[str, int, int, float]]:
    """(kind, rows, correct, share correct) per ``kind``; correct means the right is_duplicate
    and, for duplicates, the right root."""
    total: dict[str, int] = defaultdict(int)
    good: dict[str, int] = defaultdict(int)
    for r in rows:
        p = preds.get(r.uuid)
        if p is None or r.is_duplicate is None or not r.kind:
            continue
        total[r.kind] += 1
        ok = p.is_duplicate == r.is_duplicate and (
            not r.is_duplicate or p.duplicate_for == r.duplicate_for
        )
        good[r.kind] += int(ok)
    return [(k, total[k], good[k], good[k] / total[k]) for k in sorted(total)]


def run(checker, rows: list[Row], manifest: Path, load, progress=None) -> dict[str, Prediction]:
    """Check every row in order; ``load(link) -> bytes``. Returns predictions by uuid."""
    preds: dict[str, Prediction] = {}
    for r in rows:
        data = load(resolve_link(r.link, manifest))
        t0 = time.perf_counter()
        result = checker.check(data, r.uuid, source=r.link)
        ms = (time.perf_counter() - t0) * 1000
        rec = result.record
        preds[r.uuid] = Prediction(
            r.uuid, rec.is_duplicate, rec.duplicate_for, ms, rec.score, rec.path, rec.matched_video
        )
        if progress is not None:
            progress()
    return preds


def write_predictions(path: str | Path, rows: list[Row], preds: dict[str, Prediction]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            ["uuid", "is_duplicate", "duplicate_for", "ms", "score", "path", "matched_video"]
        )
        for r in rows:
            p = preds.get(r.uuid)
            if p is not None:
                w.writerow(
                    [
                        p.uuid,
                        p.is_duplicate,
                        p.duplicate_for,
                        round(p.ms, 1),
                        round(p.score, 4),
                        p.path,
                        p.matched_video,
                    ]
                )
