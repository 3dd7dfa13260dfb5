"""Builds the checker's parts from settings: the one place that picks implementations.

In process or Triton for extraction (``VDUP_TRITON_URL``); a local catalog or indexer shards for
search (``VDUP_INDEXER_URLS`` / ``VDUP_INDEXER_DISCOVERY``), over the PostgreSQL truth when
``VDUP_DATABASE_URL`` is set (shard replicas).
"""

from __future__ import annotations

from vdup.catalog.local import LocalCatalog
from vdup.catalog.review import ReviewStore
from vdup.catalog.types import Catalog
from vdup.checker import DuplicateChecker
from vdup.features.extractor import EmbeddedExtractor, Extractor, limit_blas_threads
from vdup.settings import Settings


def build_extractor(settings: Settings) -> Extractor:
    if settings.triton_url:
        from vdup.triton.client import TritonExtractor

        return TritonExtractor(
            settings.triton_url, model=settings.triton_model, timeout_s=settings.triton_timeout_s
        )
    return EmbeddedExtractor(
        settings.sampling(),
        settings.limits(),
        settings.sscd_model,
        threads=settings.onnx_threads,
        thumbnails=settings.thumbnails,
    )


def build_catalog(settings: Settings) -> Catalog:
    if settings.database_url:
        from vdup.indexer.replicated import ReplicatedCatalog

        catalog = ReplicatedCatalog.from_settings(settings)
        catalog.truth.upgrade()
        return catalog
    if settings.indexer_urls or settings.indexer_discovery:
        from vdup.indexer.client import ShardedCatalog

        return ShardedCatalog.from_settings(settings)
    return LocalCatalog(
        settings.data_dir,
        index_factory=settings.index_factory,
        snapshot_every=settings.snapshot_every,
        nprobe=settings.index_nprobe,
        index_max_sim=settings.index_max_sim,
        query_max_sim=settings.query_max_sim,
    )


def build_checker(
    settings: Settings, extractor: Extractor | None = None, catalog: Catalog | None = None
) -> DuplicateChecker:
    """The checker; also caps this process's BLAS threads (``settings.blas_threads``)."""
    limit_blas_threads(settings.blas_threads)
    catalog = catalog or build_catalog(settings)
    return DuplicateChecker(
        extractor or build_extractor(settings),
        catalog,
        settings.decision(),
        search_k=settings.search_k,
        review=_review_store(catalog),
    )


def _review_store(catalog: Catalog) -> ReviewStore | None:
    """The catalog itself where it keeps a review store: the embedded catalog, and the platform
    mode's (in the PostgreSQL truth); None for shards that own their data."""
    if isinstance(catalog, LocalCatalog):
        return catalog
    from vdup.indexer.replicated import ReplicatedCatalog

    return catalog if isinstance(catalog, ReplicatedCatalog) else None
