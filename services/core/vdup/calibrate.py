"""``vdup calibrate``: fit the decision model from any labelled Yappy-format manifest.

Why: a platform's footage is not the benchmark's. Thresholds hand-set on 179 dev videos held on
dev and failed elsewhere; a model fitted on thousands of generated copies and look-alikes
(``tools/trainset``), or on a platform's own moderated decisions, carries over better, and
refitting it is one command.

Three steps, each usable alone:

1. ``collect``: replay the manifest in ``created`` order through the real extractor and a fresh
   embedded catalog, exactly as ``vdup eval`` does, except that every video joins the catalog
   under its *true* root. For each query it keeps the evidence of every (query view, candidate
   view) alignment the decision makes (``vdup.matching.decide.evidence_table``) and labels
   each candidate: a copy when the query is a true duplicate and the candidate's true root is
   the query's. Extracted features can be cached per video (``--cache``), so a refit after a
   change to the evidence code re-extracts nothing.
2. ``fit``: gradient-boosted trees (scikit-learn's HistGradientBoostingClassifier: shallow
   trees, monotone in the features that can only speak for a copy) on one row per candidate.
   Which view pair speaks for a candidate is learnt as multiple-instance learning: first the
   most confident pair, then, for two more rounds, the pair the previous model rates highest,
   which is what ``decide`` does when serving.
3. ``cross_validate``: out-of-fold probabilities with folds grouped by source clip (no clip on
   both sides), the operating threshold chosen on them for precision, query-level scores as
   ``vdup eval`` reports them, recall per edit family, and leave-one-family-out: each family's
   copies scored by a model trained without that family, in the same grouped folds.

scikit-learn is imported only here (the ``train`` extra), never on the serving path.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from vdup.evaluate import counts_to_scores, resolve_link
from vdup.features.extractor import Extractor
from vdup.features.types import DIM, VideoFeatures
from vdup.matching.decide import DecisionConfig, evidence_table
from vdup.matching.evidence import FEATURE_NAMES, FEATURES
from vdup.matching.model import DecisionModel, from_json

log = logging.getLogger(__name__)

TARGET_PRECISION = 0.99
MIL_ROUNDS = 3
#: HistGradientBoostingClassifier settings: shallow trees, strong leaves, no early stopping (a
#: fit must not depend on a random validation split).
TREES = {
    "max_iter": 250,
    "learning_rate": 0.05,
    "max_leaf_nodes": 12,
    "max_depth": 4,
    "min_samples_leaf": 20,
    "l2_regularization": 1.0,
}
BACKGROUND_EVERY = 8
BACKGROUND_SIZE = 512
THRESHOLDS = np.round(np.arange(0.05, 0.991, 0.01), 2)


@dataclass
class QueryInfo:
    """One manifest row: truth (is_duplicate, root), group (source clip) and edit families."""

    uuid: str
    is_duplicate: bool
    root: str
    group: str
    families: tuple[str, ...]
    kind: str


@dataclass
class Table:
    """The evidence of a replay. x: float32 [N, F] view-pair rows; bag: int32 [N] row -> bag;
    per bag [B]: query (int32 index into ``queries``), label (bool: a copy), direct (bool: the
    candidate is a root original), root (str: the candidate's true root); queries: one per
    replayed row, in replay order; background: float32 [b, 512] the set the evidence was
    measured against (b = 0: none)."""

    x: np.ndarray
    bag: np.ndarray
    query: np.ndarray
    label: np.ndarray
    direct: np.ndarray
    root: np.ndarray
    queries: list[QueryInfo]
    background: np.ndarray

    def save(self, path: str | Path) -> None:
        q = self.queries
        np.savez_compressed(
            path,
            x=self.x,
            bag=self.bag,
            query=self.query,
            label=self.label,
            direct=self.direct,
            root=self.root.astype(str),
            features=np.array(FEATURE_NAMES),
            q_uuid=np.array([i.uuid for i in q]),
            q_dup=np.array([i.is_duplicate for i in q]),
            q_root=np.array([i.root for i in q]),
            q_group=np.array([i.group for i in q]),
            q_families=np.array([";".join(i.families) for i in q]),
            q_kind=np.array([i.kind for i in q]),
            background=self.background.astype(np.float16),
        )

    @staticmethod
    def load(path: str | Path) -> Table:
        with np.load(path, allow_pickle=False) as z:
            if tuple(z["features"].tolist()) != FEATURE_NAMES:
                raise ValueError(
                    f"{path} holds other evidence features than this version "
                    "computes: collect it again"
                )
            queries = [
                QueryInfo(
                    str(u),
                    bool(d),
                    str(r),
                    str(g),
                    tuple(f for f in str(fa).split(";") if f),
                    str(k),
                )
                for u, d, r, g, fa, k in zip(
                    z["q_uuid"], z["q_dup"], z["q_root"], z["q_group"], z["q_families"], z["q_kind"]
                )
            ]
            return Table(
                z["x"],
                z["bag"],
                z["query"],
                z["label"],
                z["direct"],
                z["root"].astype(object),
                queries,
                z["background"].astype(np.float32),
            )

    def subset(self, keep: np.ndarray, bags_too: np.ndarray | None = None) -> Table:
        """The table of the queries ``keep`` (indices, ascending) and their candidates (of
        those, only the bags where ``bags_too`` [B] is True, when given)."""
        renumber = np.full(len(self.queries), -1, np.int64)
        renumber[keep] = np.arange(len(keep))
        wanted = renumber[self.query] >= 0
        bags = np.flatnonzero(wanted if bags_too is None else wanted & bags_too)
        bag_map = np.full(len(self.label), -1, np.int64)
        bag_map[bags] = np.arange(len(bags))
        rows = np.flatnonzero(bag_map[self.bag] >= 0)
        return Table(
            self.x[rows],
            bag_map[self.bag[rows]].astype(np.int32),
            renumber[self.query[bags]].astype(np.int32),
            self.label[bags],
            self.direct[bags],
            self.root[bags],
            [self.queries[i] for i in keep],
            self.background,
        )

    @staticmethod
    def concat(tables: list[Table]) -> Table:
        """One table of several collected against the same background set."""
        for t in tables[1:]:
            if not np.array_equal(t.background, tables[0].background):
                raise ValueError("tables measured against different background sets")
        xs, bags, qs, queries = [], [], [], []
        nb = nq = 0
        for t in tables:
            xs.append(t.x)
            bags.append(t.bag + nb)
            qs.append(t.query + nq)
            queries += t.queries
            nb += len(t.label)
            nq += len(t.queries)
        return Table(
            np.concatenate(xs),
            np.concatenate(bags),
            np.concatenate(qs),
            np.concatenate([t.label for t in tables]),
            np.concatenate([t.direct for t in tables]),
            np.concatenate([t.root for t in tables]),
            queries,
            tables[0].background,
        )


# -- 1. collect ---------------------------------------------------------------------------------


def read_rows(manifest: Path) -> list[tuple[QueryInfo, str]]:
    """Manifest rows with a truth, in ``created`` order, as (QueryInfo, link)."""
    with open(manifest, newline="") as f:
        raw = list(csv.DictReader(f))
    raw.sort(key=lambda r: r.get("created", ""))
    out = []
    for r in raw:
        if not (r.get("is_duplicate") or "").strip():
            continue
        dup = r["is_duplicate"].strip().lower() in ("true", "1", "yes")
        root = (r.get("duplicate_for") or "").strip() if dup else r["uuid"]
        group = (r.get("source") or "").strip() or root
        families = tuple(f for f in (r.get("families") or "").split(";") if f)
        out.append((QueryInfo(r["uuid"], dup, root, group, families, r.get("kind", "")), r["link"]))
    return out


def collect(
    manifest: Path,
    settings,
    cache: Path | None = None,
    progress=None,
    extractor=None,
    background: np.ndarray | None = None,
    skip_groups: frozenset[str] = frozenset(),
) -> Table:
    """Replays ``manifest`` (see the module docstring) and returns its evidence table; the
    extractor is built from ``settings`` unless one is given. ``background``: float32 [b, 512]
    (None: no normalisation). Rows of ``skip_groups`` join the catalog but are not queries (their
    frames make the background set, which must not hold a query's own frames)."""
    from vdup.catalog.local import LocalCatalog
    from vdup.catalog.types import VideoRecord
    from vdup.features.preprocess import sha256_of
    from vdup.runtime import build_extractor

    bg = np.zeros((0, DIM), np.float32) if background is None else background
    cfg = DecisionConfig(
        max_candidates=settings.max_candidates,  # every candidate aligned
        constant_audio=settings.constant_audio,
        settle_probability=2.0,
        background=bg,
    )
    rows = read_rows(manifest)
    xs: list[np.ndarray] = []
    bags: list[int] = []
    queries: list[QueryInfo] = []
    bag_query: list[int] = []
    bag_label: list[bool] = []
    bag_direct: list[bool] = []
    bag_root: list[str] = []
    with tempfile.TemporaryDirectory(prefix="vdup-calibrate-") as tmp:
        catalog = LocalCatalog(
            Path(tmp), index_max_sim=settings.index_max_sim, query_max_sim=settings.query_max_sim
        )
        try:
            for info, link in rows:
                data = None
                features = _cached(cache, info.uuid)
                if features is None:
                    data = Path(resolve_link(link, manifest)).read_bytes()
                    extractor = extractor or build_extractor(settings)
                    features = extractor.extract(data)
                    _store(cache, info.uuid, features)
                qi = len(queries)
                evidence = []
                if info.group not in skip_groups:
                    queries.append(info)
                    candidates = catalog.search(features, settings.search_k, cfg.max_candidates)
                    evidence = evidence_table(features, candidates, cfg)
                for cand, x in evidence:
                    if len(x) == 0:
                        continue
                    xs.append(x)
                    bags += [len(bag_label)] * len(x)
                    bag_query.append(qi)
                    bag_label.append(info.is_duplicate and cand.root_id == info.root)
                    bag_direct.append(cand.video_id == cand.root_id)
                    bag_root.append(cand.root_id)
                catalog.add(
                    VideoRecord(
                        video_id=info.uuid,
                        root_id=info.root,
                        sha256=features.sha256 or (sha256_of(data) if data else ""),
                        is_duplicate=info.is_duplicate,
                        duplicate_for=info.root if info.is_duplicate else "",
                        matched_video="",
                        score=0.0,
                        path="",
                        duration_s=float(features.duration_s),
                        frames=len(features.timestamps),
                        created_at=time.time(),
                        source=link[:500],
                    ),
                    features,
                )
                if progress is not None:
                    progress()
        finally:
            catalog.close()
    width = len(FEATURE_NAMES)
    return Table(
        np.concatenate(xs) if xs else np.zeros((0, width), np.float32),
        np.asarray(bags, np.int32),
        np.asarray(bag_query, np.int32),
        np.asarray(bag_label, bool),
        np.asarray(bag_direct, bool),
        np.asarray(bag_root, object),
        queries,
        bg,
    )


def extract_all(manifest: Path, settings, cache: Path, extractor=None, progress=None) -> None:
    """Extracts every row's features into ``cache`` (those already there are kept)."""
    from vdup.runtime import build_extractor

    extractor = extractor or build_extractor(settings)
    for info, link in read_rows(manifest):
        if not (cache / f"{info.uuid}.npz").exists():
            _store(
                cache, info.uuid, extractor.extract(Path(resolve_link(link, manifest)).read_bytes())
            )
        if progress is not None:
            progress()


def reserved_groups(manifests: list[Path], every: int = BACKGROUND_EVERY) -> frozenset[str]:
    """Source groups kept out of training to make the background set: about one in ``every``,
    chosen by a hash of the group name (stable across runs and machines)."""
    groups = {q.group for m in manifests for q, _ in read_rows(m)}
    return frozenset(
        g for g in groups if int(hashlib.sha256(g.encode()).hexdigest(), 16) % every == 0
    )


def make_background(
    manifests: list[Path],
    cache: Path,
    groups: frozenset[str],
    size: int = BACKGROUND_SIZE,
    seed: int = 0,
) -> np.ndarray:
    """float32 [<= size, 512]: whole-frame descriptors of the videos of ``groups`` (originals,
    copies and negatives alike: none of them is a query), sampled evenly at random."""
    rows = []
    for m in manifests:
        for info, _ in read_rows(m):
            if info.group in groups:
                f = _cached(cache, info.uuid)
                if f is not None:
                    rows.append(f.frames)
    if not rows:
        return np.zeros((0, DIM), np.float32)
    pool = np.concatenate(rows)
    pick = np.random.default_rng(seed).permutation(len(pool))[:size]
    return np.ascontiguousarray(pool[np.sort(pick)], np.float32)


_ARRAYS = ("timestamps", "frames", "flipped", "region", "region_flipped", "audio")


class CachedExtractor:
    """An ``Extractor`` that answers from a ``--cache`` folder of ``vdup calibrate``: the
    features stored under the uuid of the ``manifest`` row whose file has these bytes (sha256);
    any other bytes go to ``extractor``. Lets ``vdup eval --cache`` replay the decision path on
    a benchmark in seconds, with the same predictions as a full run on the same features."""

    def __init__(self, extractor: Extractor, cache: Path, manifest: Path) -> None:
        from vdup.features.preprocess import sha256_of

        self.extractor, self.cache, self._sha256_of = extractor, cache, sha256_of
        self._uuid = {
            sha256_of(Path(resolve_link(link, manifest)).read_bytes()): info.uuid
            for info, link in read_rows(manifest)
        }

    def extract(self, data: bytes) -> VideoFeatures:
        uuid = self._uuid.get(self._sha256_of(data))
        cached = _cached(self.cache, uuid) if uuid else None
        return cached if cached is not None else self.extractor.extract(data)

    def ready(self) -> bool:
        return self.extractor.ready()

    def close(self) -> None:
        self.extractor.close()


def _cached(cache: Path | None, uuid: str) -> VideoFeatures | None:
    if cache is None or not (cache / f"{uuid}.npz").exists():
        return None
    with np.load(cache / f"{uuid}.npz", allow_pickle=False) as z:
        return VideoFeatures(
            **{k: z[k] for k in _ARRAYS},
            duration_s=float(z["duration_s"]),
            sha256=str(z["sha256"]),
            width=int(z["width"]),
            height=int(z["height"]),
        )


def _store(cache: Path | None, uuid: str, f: VideoFeatures) -> None:
    if cache is None:
        return
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache / f".{uuid}.tmp.npz"
    np.savez(
        tmp,
        **{k: getattr(f, k) for k in _ARRAYS},
        duration_s=f.duration_s,
        sha256=f.sha256,
        width=f.width,
        height=f.height,
    )
    tmp.replace(cache / f"{uuid}.npz")


# -- 2. fit -------------------------------------------------------------------------------------


def _instances(t: Table, bags: np.ndarray, model: DecisionModel | None) -> np.ndarray:
    """Row index [len(bags)] of the view pair that speaks for each bag: the most confident one,
    or the one ``model`` rates highest."""
    rows = np.flatnonzero(np.isin(t.bag, bags))
    score = t.x[rows, 0] if model is None else model.probability(t.x[rows])
    order = np.lexsort((-score, t.bag[rows]))
    first = np.ones(len(order), bool)
    first[1:] = t.bag[rows][order][1:] != t.bag[rows][order][:-1]
    chosen = dict(zip(t.bag[rows][order][first].tolist(), rows[order][first].tolist()))
    return np.array([chosen[b] for b in bags.tolist()], np.int64)


def fit(
    t: Table,
    queries: np.ndarray | None = None,
    threshold: float = 0.5,
    info: dict | None = None,
    seed: int = 0,
    trees: dict | None = None,
) -> DecisionModel:
    """The model fitted on the bags of ``queries`` (indices into ``t.queries``; default all).

    One OpenMP thread: on these small tables (10^3-10^5 rows) scikit-learn's thread team costs
    far more than it saves, and on a busy machine it spins (a 1,000-row fit: 0.3 s on one
    thread, 47 s on two busy cores).
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    bags = np.arange(len(t.label)) if queries is None else np.flatnonzero(np.isin(t.query, queries))
    y = t.label[bags]
    if y.all() or not y.any():
        raise ValueError("calibration needs both copies and non-copies among the candidates")
    model: DecisionModel | None = None
    for _ in range(MIL_ROUNDS):
        x = t.x[_instances(t, bags, model)]
        clf = HistGradientBoostingClassifier(
            **(trees or TREES),
            early_stopping=False,
            monotonic_cst=[d for _, d in FEATURES],
            random_state=seed,
        )
        with threadpool_limits(1):
            clf.fit(x, y)
        model = export(clf, threshold, info or {}, t.background if len(t.background) else None)
    assert model is not None
    return model


def export(
    clf, threshold: float, info: dict, background: np.ndarray | None = None
) -> DecisionModel:
    """A fitted binary HistGradientBoostingClassifier as a ``DecisionModel``."""
    trees = []
    for (predictor,) in clf._predictors:
        nodes = predictor.nodes
        leaf = nodes["is_leaf"].astype(bool)
        trees.append(
            {
                "feature": np.where(leaf, -1, nodes["feature_idx"]).tolist(),
                "threshold": nodes["num_threshold"].tolist(),
                "left": nodes["left"].tolist(),
                "right": nodes["right"].tolist(),
                "value": np.where(leaf, nodes["value"], 0.0).tolist(),
            }
        )
    model = from_json(
        {
            "format": "vdup-decision-model/1",
            "features": list(FEATURE_NAMES),
            "threshold": threshold,
            "baseline": float(np.ravel(clf._baseline_prediction)[0]),
            "trees": trees,
            "info": info,
        }
    )
    return replace(
        model,
        background=None
        if background is None
        else np.asarray(background, np.float16).astype(np.float32),
    )


# -- 3. cross-validate ------------------------------------------------------------------------


def bag_probabilities(t: Table, model: DecisionModel, bags: np.ndarray) -> np.ndarray:
    """float64 [len(bags)]: each bag's probability, that of its best view pair."""
    return model.probability(t.x[_instances(t, bags, model)])


def query_scores(
    t: Table, p_bag: np.ndarray, threshold: float, queries: np.ndarray | None = None
) -> dict:
    """The query-level decision from bag probabilities, scored as ``vdup eval`` scores: a query
    is a duplicate when a bag reaches ``threshold``; the answer is the admissible bag of a root
    original first, then the most probable. p_bag: [B], NaN for bags not scored."""
    qs = np.arange(len(t.queries)) if queries is None else queries
    tp = fp = fn = tn = right = 0
    for qi in qs.tolist():
        info = t.queries[qi]
        mine = np.flatnonzero((t.query == qi) & (p_bag >= threshold))
        if len(mine):
            best = min(mine.tolist(), key=lambda b: (not t.direct[b], -p_bag[b]))
            if info.is_duplicate:
                tp += 1
                right += int(t.root[best] == info.root)
            else:
                fp += 1
        elif info.is_duplicate:
            fn += 1
        else:
            tn += 1
    return counts_to_scores(tp, fp, fn, tn, right, empty=1.0)


def choose_threshold(t: Table, p_bag: np.ndarray, target: float = TARGET_PRECISION) -> float:
    """Of the thresholds whose query-level precision reaches ``target``, the one with the best
    F1 (the higher on a tie); the most precise one when none does."""
    scores = [(th, query_scores(t, p_bag, th)) for th in THRESHOLDS.tolist()]
    ok = [(s["f1"], th) for th, s in scores if s["precision"] >= target]
    if ok:
        return max(ok)[1]
    return max((s["precision"], s["f1"], th) for th, s in scores)[2]


def folds(t: Table, k: int) -> list[np.ndarray]:
    """Query indices of ``k`` folds, grouped by source clip (a group never straddles folds),
    balanced greedily by size in a fixed order."""
    groups: dict[str, list[int]] = {}
    for i, q in enumerate(t.queries):
        groups.setdefault(q.group, []).append(i)
    out: list[list[int]] = [[] for _ in range(k)]
    for g in sorted(groups, key=lambda g: (-len(groups[g]), g)):
        min(out, key=len).extend(groups[g])
    return [np.array(sorted(f), np.int64) for f in out if f]


def cross_validate(
    t: Table, k: int = 5, target: float = TARGET_PRECISION, leave_family_out: bool = True
) -> dict:
    """Grouped k-fold figures (see the module docstring); keys: threshold, cv (scores), per
    family recall, lofo (family -> recall of a model trained without it), importance
    (feature -> mean drop of the out-of-fold AUC over candidates when that feature is shuffled
    among the held-out candidates)."""
    p = np.full(len(t.label), np.nan)
    fs = folds(t, k)
    held_out = []
    for test in fs:
        train = np.setdiff1d(np.arange(len(t.queries)), test)
        model = fit(t, train)
        bags = np.flatnonzero(np.isin(t.query, test))
        p[bags] = bag_probabilities(t, model, bags)
        held_out.append((model, bags))
    threshold = choose_threshold(t, p, target)
    out: dict[str, Any] = {
        "folds": len(fs),
        "threshold": threshold,
        "cv": query_scores(t, p, threshold),
        "cv_auc": round(auc(p, t.label), 4),
        "rules": rule_baseline(t),
        "importance": importance(t, held_out),
        "families": {},
        "lofo": {},
    }
    families = sorted({f for q in t.queries for f in q.families})
    for fam in families:
        having = np.array([i for i, q in enumerate(t.queries) if fam in q.families], np.int64)
        out["families"][fam] = query_scores(t, p, threshold, having)
        if not leave_family_out:
            continue
        p_lofo = np.full(len(t.label), np.nan)
        for test in fs:
            train = np.setdiff1d(np.arange(len(t.queries)), np.union1d(test, having))
            bags = np.flatnonzero(np.isin(t.query, np.intersect1d(test, having)))
            if len(bags) == 0:
                continue
            p_lofo[bags] = bag_probabilities(t, fit(t, train), bags)
        out["lofo"][fam] = query_scores(t, p_lofo, threshold, having)
    return out


def rule_baseline(t: Table) -> dict:
    """Query-level scores of the hand-set rules this model replaced, applied to the same
    evidence rows: a view pair is a copy when its motion is confirmed (>= 3 frames, energy >=
    0.12, agreement >= 0.3) at confidence >= 0.5, or when it is still at confidence >= 0.75 with
    a margin >= 0.25, or, unless its motion is contradicted, at confidence >= 0.4 with a
    soundtrack similarity >= 0.8. (An emulation on the table: the old decision also picked one
    view pair per candidate first.)"""
    x = t.x
    c = {name: x[:, i] for i, name in enumerate(FEATURE_NAMES)}
    moving = (np.expm1(c["motion_frames"]) >= 3 - 1e-3) & (c["motion_energy"] >= 0.12)
    confirmed = moving & (c["motion_agreement"] >= 0.3)
    contradicted = moving & (c["motion_agreement"] < 0.3)
    ok = (
        (confirmed & (c["confidence"] >= 0.5))
        | (~moving & (c["confidence"] >= 0.75) & (c["margin"] >= 0.25))
        | (~contradicted & (c["confidence"] >= 0.4) & (c["audio"] >= 0.8))
    )
    p_bag = np.zeros(len(t.label))
    np.maximum.at(p_bag, t.bag, ok.astype(float))
    return query_scores(t, p_bag, 0.5)


def auc(p: np.ndarray, y: np.ndarray) -> float:
    """Probability that a random copy outranks a random non-copy (ties count half)."""
    from scipy.stats import rankdata

    ranks = rankdata(p)
    pos = int(y.sum())
    neg = len(y) - pos
    if pos == 0 or neg == 0:
        return float("nan")
    return float((ranks[y].sum() - pos * (pos + 1) / 2) / (pos * neg))


def importance(
    t: Table, held_out: list[tuple[DecisionModel, np.ndarray]], seed: int = 0
) -> dict[str, float]:
    """feature -> mean over folds of the held-out AUC lost when that feature's column is
    shuffled among the held-out candidates' chosen view pairs."""
    rng = np.random.default_rng(seed)
    drops: dict[str, list[float]] = {name: [] for name in FEATURE_NAMES}
    for model, bags in held_out:
        x = t.x[_instances(t, bags, model)]
        y = t.label[bags]
        base = auc(model.probability(x), y)
        for j, name in enumerate(FEATURE_NAMES):
            shuffled = x.copy()
            shuffled[:, j] = rng.permutation(shuffled[:, j])
            drops[name].append(base - auc(model.probability(shuffled), y))
    return {name: round(float(np.nanmean(v)), 4) for name, v in drops.items() if v}


def without_groups(t: Table, prefix: str = "", groups: frozenset[str] = frozenset()) -> Table:
    """``t`` less the queries of the source groups in ``groups`` or starting with ``prefix``,
    and less every candidate whose root belongs to one of those groups."""

    def out(g: str) -> bool:
        return g in groups or bool(prefix and g.startswith(prefix))

    group_of = {q.uuid: q.group for q in t.queries}
    keep = np.array([i for i, q in enumerate(t.queries) if not out(q.group)], np.int64)
    bags = np.array([not out(group_of.get(r, "")) for r in t.root], bool)
    return t.subset(keep, bags)


def _lines(path: Path | None) -> frozenset[str]:
    if path is None:
        return frozenset()
    return frozenset(
        x.split("#")[0].strip() for x in path.read_text().splitlines() if x.split("#")[0].strip()
    )


# -- the command --------------------------------------------------------------------------------


def add_arguments(p) -> None:
    p.add_argument(
        "manifests",
        type=Path,
        nargs="*",
        help="labelled Yappy-format manifests (columns source and families are used "
        "for grouping and per-family figures when present)",
    )
    p.add_argument(
        "--tables",
        type=Path,
        nargs="*",
        default=[],
        help="evidence tables written by an earlier --save-table, used as they are",
    )
    p.add_argument(
        "--save-table",
        type=Path,
        default=None,
        help="write the evidence collected from the manifests here (.npz)",
    )
    p.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="directory of extracted features per video, reused across runs",
    )
    p.add_argument("--out", type=Path, default=None, help="write the fitted model here (.json)")
    p.add_argument("--folds", type=int, default=5, help="grouped cross-validation folds")
    p.add_argument(
        "--precision",
        type=float,
        default=TARGET_PRECISION,
        help="query-level precision the operating threshold must reach",
    )
    p.add_argument("--no-lofo", action="store_true", help="skip leave-one-family-out")
    p.add_argument(
        "--exclude-sources",
        type=Path,
        default=None,
        metavar="FILE",
        help="source groups (one a line) to leave out, as queries and as candidates: "
        "e.g. clips found to hold the same footage as another source, whose "
        "copies would otherwise be labelled as not copies of each other",
    )
    p.add_argument(
        "--exclude-groups",
        default="",
        metavar="PREFIX",
        help="leave out the queries whose source group starts with PREFIX (e.g. "
        "'dev-', to fit without any clip of the dev benchmark)",
    )
    p.add_argument(
        "--no-background",
        action="store_true",
        help="no score normalisation: collect evidence without a background set",
    )
    p.add_argument(
        "--background-size",
        type=int,
        default=BACKGROUND_SIZE,
        help="frames in the background set (made from about one source group in "
        f"{BACKGROUND_EVERY}, which then is not trained on)",
    )


def run(args) -> int:
    from tqdm import tqdm

    from vdup.settings import Settings

    settings = Settings()
    tables = [Table.load(p) for p in args.tables]
    if args.manifests:
        with tempfile.TemporaryDirectory(prefix="vdup-features-") as tmp:
            cache = args.cache or Path(tmp)
            extractor = None
            if any(
                not (cache / f"{q.uuid}.npz").exists()
                for m in args.manifests
                for q, _ in read_rows(m)
            ):
                from vdup.runtime import build_extractor

                extractor = build_extractor(settings)
            for m in args.manifests:
                with tqdm(total=len(read_rows(m)), unit="video", desc=f"extract {m.name}") as bar:
                    extract_all(m, settings, cache, extractor, bar.update)
            groups = frozenset() if args.no_background else reserved_groups(args.manifests)
            background = (
                None
                if args.no_background
                else make_background(args.manifests, cache, groups, args.background_size)
            )
            for m in args.manifests:
                with tqdm(total=len(read_rows(m)), unit="video", desc=f"replay {m.name}") as bar:
                    tables.append(
                        collect(m, settings, cache, bar.update, extractor, background, groups)
                    )
    if not tables:
        raise SystemExit("vdup calibrate: give a manifest or --tables")
    t = Table.concat(tables) if len(tables) > 1 else tables[0]
    if args.save_table and args.manifests:
        t.save(args.save_table)
    if args.exclude_groups or args.exclude_sources:
        t = without_groups(t, args.exclude_groups, _lines(args.exclude_sources))
    report = cross_validate(t, args.folds, args.precision, not args.no_lofo)
    info = {
        "trained_on": [f"{p.parent.name}/{p.name}" for p in [*args.manifests, *args.tables]],
        "excluded_sources": sorted(_lines(args.exclude_sources)),
        "excluded_groups_prefix": args.exclude_groups,
        "queries": len(t.queries),
        "candidates": int(len(t.label)),
        "background_frames": int(len(t.background)),
        "copies": int(t.label.sum()),
        **report,
    }
    model = fit(t, threshold=report["threshold"], info=info)
    if args.out:
        model.save(args.out)
    print(json.dumps(info))
    return 0
