"""The decision model: evidence vectors in, a calibrated probability of "copy" out, in numpy.

Why a file of trees and not a pickled estimator: the serving path must not import a training
library, must never unpickle anything, and must give the same answer on every replica. A model
is a small JSON document: the feature names it was trained on (checked against
``vdup.matching.evidence.FEATURE_NAMES`` at load, so a model and the code that computes its
inputs cannot drift apart), a gradient-boosted ensemble of shallow regression trees on the
log-odds scale, the operating threshold chosen for precision, and a record of what it was
trained on and how it measured. ``vdup calibrate`` writes one (scikit-learn's
HistGradientBoostingClassifier, exported); ``VDUP_DECISION_MODEL`` points the service at it;
the default ships beside this module (``decision_model.json``). A model may carry a background
set (``vdup.matching.evidence.background_levels``): float16 [b, 512] descriptors in an ``.npy``
file beside the JSON, named and pinned by sha256 there.

    p(copy | x) = sigmoid(baseline + sum_t leaf_t(x)),   x float32 [F]

A tree node sends ``x`` left when ``x[feature] <= threshold``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from vdup.matching.evidence import FEATURE_NAMES

FORMAT = "vdup-decision-model/1"
DEFAULT_MODEL = "decision_model.json"


class ModelError(ValueError):
    """A decision-model file that cannot be used; the message says why."""


@dataclass(frozen=True)
class Tree:
    """Node arrays of one regression tree, all [nodes]: feature (int32; -1 at a leaf),
    threshold (float64), left / right (int32 child indices), value (float64 leaf output)."""

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    depth: int


@dataclass(frozen=True)
class _Forest:
    """Every tree's nodes in one set of arrays (children offset to global indices), so that
    all trees are walked at once: ``depth`` steps of a few array operations on [m, trees]."""

    roots: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    depth: int

    @staticmethod
    def of(trees: tuple[Tree, ...]) -> _Forest:
        sizes = [len(t.feature) for t in trees]
        roots = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)

        def joined(name: str) -> np.ndarray:
            return np.concatenate([getattr(t, name) for t in trees])

        def children(name: str) -> np.ndarray:
            return np.concatenate(
                [getattr(t, name).astype(np.int64) + r for t, r in zip(trees, roots)]
            )

        if not trees:
            empty = np.zeros(0, np.int64)
            return _Forest(empty, empty, np.zeros(0), empty, empty, np.zeros(0), 0)
        return _Forest(
            roots,
            joined("feature").astype(np.int64),
            joined("threshold"),
            children("left"),
            children("right"),
            joined("value"),
            max(t.depth for t in trees),
        )

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """x: float32 [m, F] -> float64 [m]: the sum of every tree's leaf value."""
        node = np.broadcast_to(self.roots, (len(x), len(self.roots))).copy()
        rows = np.arange(len(x))[:, None]
        for _ in range(self.depth):
            f = self.feature[node]
            inner = f >= 0
            go_left = x[rows, np.maximum(f, 0)] <= self.threshold[node]
            node = np.where(inner, np.where(go_left, self.left[node], self.right[node]), node)
        return self.value[node].sum(axis=1)


@dataclass(frozen=True)
class DecisionModel:
    """features: names, in the order of the evidence vector; threshold: probability at or above
    which a match is a copy; baseline: log-odds before the trees; info: provenance and the
    figures measured when it was fitted (JSON-serialisable); background: float32 [b, 512]
    L2-normalised frames of unrelated videos, or None."""

    features: tuple[str, ...]
    threshold: float
    baseline: float
    trees: tuple[Tree, ...]
    info: dict = field(default_factory=dict, compare=False)
    background: np.ndarray | None = field(default=None, compare=False, repr=False)
    _forest: _Forest = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_forest", _Forest.of(self.trees))

    def probability(self, x: np.ndarray) -> np.ndarray:
        """x: float32 [m, F] evidence rows -> float64 [m] probabilities of "copy" (0..1)."""
        x = np.asarray(x, np.float32)
        if x.ndim != 2 or x.shape[1] != len(self.features):
            raise ValueError(f"evidence of shape {x.shape}, model takes [m, {len(self.features)}]")
        raw = self.baseline + self._forest(x)
        return 1.0 / (1.0 + np.exp(-raw))

    def to_json(self, background_file: str = "") -> dict:
        doc = {
            "format": FORMAT,
            "features": list(self.features),
            "threshold": self.threshold,
            "baseline": self.baseline,
            "trees": [
                {
                    "feature": t.feature.tolist(),
                    "threshold": t.threshold.tolist(),
                    "left": t.left.tolist(),
                    "right": t.right.tolist(),
                    "value": t.value.tolist(),
                }
                for t in self.trees
            ],
            "info": self.info,
        }
        if self.background is not None and background_file:
            doc["background"] = {
                "file": background_file,
                "sha256": _digest(self.background.astype(np.float16)),
            }
        return doc

    def save(self, path: str | Path) -> None:
        """Atomically (write, fsync, rename) as JSON, and the background set beside it as
        ``<name>.background.npy`` (float16)."""
        path = Path(path)
        name = ""
        if self.background is not None:
            name = path.stem + ".background.npy"
            with open(path.with_name(name + ".tmp"), "wb") as f:
                np.save(f, self.background.astype(np.float16), allow_pickle=False)
                f.flush()
                os.fsync(f.fileno())
            path.with_name(name + ".tmp").replace(path.with_name(name))
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w") as f:
            json.dump(self.to_json(name), f, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)


def _digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def from_json(doc: dict, background: np.ndarray | None = None) -> DecisionModel:
    """Checks the format and that the features are the ones this code computes; ``background``
    is the set the document names (read by ``load``), checked against its sha256."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ModelError(f"not a {FORMAT} document")
    features = tuple(doc.get("features", ()))
    if features != FEATURE_NAMES:
        raise ModelError(
            f"model features {list(features)} are not the evidence this version "
            f"computes {list(FEATURE_NAMES)}: refit it with 'vdup calibrate'"
        )
    threshold = float(doc["threshold"])
    if not 0.0 < threshold < 1.0:
        raise ModelError(f"threshold {threshold} is not a probability strictly inside (0, 1)")
    trees = []
    for t in doc["trees"]:
        feature = np.asarray(t["feature"], np.int32)
        n = len(feature)
        left, right = np.asarray(t["left"], np.int32), np.asarray(t["right"], np.int32)
        inner = feature >= 0
        if (feature >= len(features)).any() or (
            inner & ((left < 0) | (left >= n) | (right < 0) | (right >= n))
        ).any():
            raise ModelError("a tree refers to a feature or node that does not exist")
        trees.append(
            Tree(
                feature,
                np.asarray(t["threshold"], np.float64),
                left,
                right,
                np.asarray(t["value"], np.float64),
                depth=_depth(feature, left, right),
            )
        )
    named = doc.get("background")
    if named and background is None:
        raise ModelError(f"the model needs its background set {named.get('file')}")
    if named:
        assert background is not None
        if background.ndim != 2 or _digest(background.astype(np.float16)) != named["sha256"]:
            raise ModelError(
                f"background set {named['file']} is not the one the model was "
                "fitted with (sha256 differs)"
            )
        background = background.astype(np.float32)
    return DecisionModel(
        features,
        threshold,
        float(doc["baseline"]),
        tuple(trees),
        dict(doc.get("info", {})),
        background if named else None,
    )


def _depth(feature: np.ndarray, left: np.ndarray, right: np.ndarray) -> int:
    """Longest root-to-leaf path in edges (a tree is acyclic: children follow their parent)."""
    depth = np.zeros(len(feature), np.int64)
    for i in range(len(feature)):
        if feature[i] >= 0:
            for c in (left[i], right[i]):
                if c <= i:
                    raise ModelError("a tree's child comes before its parent")
                depth[c] = depth[i] + 1
    return int(depth.max()) if len(depth) else 0


def load(path: str | Path) -> DecisionModel:
    """A model file and the background set it names (beside it)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
        named = doc.get("background") if isinstance(doc, dict) else None
        background = (
            np.load(path.with_name(Path(named["file"]).name), allow_pickle=False) if named else None
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"cannot read decision model {path}: {exc}") from exc
    return from_json(doc, background)


@lru_cache(maxsize=1)
def default_model() -> DecisionModel:
    """The model that ships with vdup (fitted by ``vdup calibrate``; see docs/benchmarks.md)."""
    with resources.as_file(resources.files("vdup.matching").joinpath(DEFAULT_MODEL)) as path:
        return load(path)
