"""The one file that knows FAISS's types: which index a factory string makes, whether it can
remove rows, and how its search breadth is set. The catalog asks these questions and never
downcasts an index itself (the way ThreatExchange's HMA keeps FAISS behind one module)."""

from __future__ import annotations

import faiss
import numpy as np

from vdup.features.types import DIM


def needs_training(factory: str) -> bool:
    return not new_index(factory).is_trained


def removes(index: faiss.Index) -> bool:
    """Whether rows are removed from ``index`` on delete. Not from HNSW graphs, which cannot,
    nor from fast-scan IVF lists ('PQ128x4fs'), which can, but in FAISS 1.15 the codes of rows
    added after a removal come out wrong (a copy's original scored 0.24 instead of 0.83 in a
    1M-video shard; tests/core/catalog/test_local.py pins it). Other IVF types remove, whatever
    their coarse quantizer ('IVF4096_HNSW32,PQ64' removes). Rows not removed stay in the index
    until the next rebuild, and search skips them: it maps every hit through ``rows_owner``,
    where deleted rows no longer exist."""
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        return not isinstance(faiss.downcast_index(ivf), faiss.IndexIVFFastScan)
    return not hasattr(unwrap(index), "hnsw")


def unwrap(index: faiss.Index) -> faiss.Index:
    """The index proper inside id maps (``new_index``) and vector transforms ('OPQ64,...')."""
    index = faiss.downcast_index(index)
    while isinstance(index, (faiss.IndexIDMap, faiss.IndexPreTransform)):
        index = faiss.downcast_index(index.index)
    return index


def new_index(factory: str) -> faiss.Index:
    """An empty inner-product index for ``factory`` that takes row ids: IVF types keep ids in
    their lists (8 B a row), others get an id map (Flat: IDMap2, so rows can be reconstructed)."""
    base = faiss.index_factory(DIM, factory, faiss.METRIC_INNER_PRODUCT)
    if factory == "Flat":
        return faiss.IndexIDMap2(base)
    return base if faiss.try_extract_index_ivf(base) is not None else faiss.IndexIDMap(base)


def remove(index: faiss.Index, row_ids: list[int]) -> None:
    """Remove rows from ``index`` where ``removes`` allows it."""
    if removes(index):
        # faiss's SWIG wrapper takes an id array as well as an IDSelector; its stub knows only that
        index.remove_ids(np.array(row_ids, np.int64))  # type: ignore[arg-type]


def set_search_params(index: faiss.Index, nprobe: int, ef_search: int | None = None) -> None:
    """IVF: visit ``nprobe`` lists per query row (an HNSW coarse quantizer searches with
    efSearch >= 2 * nprobe); HNSW: efSearch = ``ef_search`` (default 4 * nprobe, at least 16)."""
    inner = unwrap(index)
    ivf = faiss.try_extract_index_ivf(inner)
    if ivf is not None:
        ivf.nprobe = nprobe
        quantizer = faiss.downcast_index(ivf.quantizer)
        if hasattr(quantizer, "hnsw"):
            quantizer.hnsw.efSearch = max(quantizer.hnsw.efSearch, 2 * nprobe)
        return
    if hasattr(inner, "hnsw"):
        inner.hnsw.efSearch = ef_search or max(16, 4 * nprobe)
