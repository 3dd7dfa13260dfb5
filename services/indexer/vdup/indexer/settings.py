"""One shard's typed settings, built at start-up from ``VDUP_INDEXER_*`` variables and the
``vdup indexer`` flags (``vdup.indexer.server.settings_from_args``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from vdup.features.types import INDEX_MAX_SIM


class ShardSettings(BaseSettings):
    """One shard's settings, from ``VDUP_INDEXER_*`` variables and ``vdup indexer`` flags."""

    model_config = SettingsConfigDict(env_prefix="VDUP_INDEXER_", extra="ignore")

    host: str = Field("127.0.0.1", description="Address the shard binds.")
    port: int = Field(8090, ge=1, le=65535, description="Port the shard binds.")
    data_dir: Path = Field(Path("data/shard-0"), description="The shard's catalog directory.")
    shard_id: str = Field(
        "shard-0",
        min_length=1,
        max_length=128,
        description="Name in metrics and the X-Vdup-Shard header; ends in "
        "-<ordinal> (a StatefulSet pod name) so clients can check "
        "that they reach shard i at position i.",
    )
    index_factory: str = Field(
        "Flat",
        description="FAISS factory string: 'Flat' (exact) or a "
        "trained type such as 'IVF1024,PQ64'.",
    )
    nprobe: int = Field(16, ge=1, description="IVF lists visited per query row.")
    index_max_sim: float = Field(
        INDEX_MAX_SIM,
        gt=0,
        le=1,
        description="A frame this similar to one of the video already "
        "indexed is stored but not indexed (1 = index all); "
        "applies to videos added from now on.",
    )
    omp_threads: int = Field(
        1,
        ge=0,
        description="FAISS (OpenMP) threads per search; 0 = all "
        "cores. 1 by default: with more threads than "
        "free cores, OpenMP's spinning made searches "
        "5-20x slower here; shards and concurrent "
        "requests are the parallelism.",
    )
    sqlite_cache_mb: int = Field(
        128,
        ge=1,
        description="SQLite page cache, MB: holds the owner "
        "index and candidates' rows that searches "
        "read (docs/indexer.md).",
    )
    snapshot_interval_s: float = Field(
        300.0, gt=0, description="Most seconds between snapshots while rows are being added."
    )
    snapshot_rows: int = Field(
        200_000,
        ge=1,
        description="Rows added that trigger a snapshot sooner (bounds replay at restart).",
    )
    verify_on_start: bool = Field(
        False,
        description="Run SQLite's quick_check at start-up (reads the whole file: ~20 s per GB).",
    )
    database_url: str = Field(
        "",
        validation_alias=AliasChoices("VDUP_INDEXER_DATABASE_URL", "VDUP_DATABASE_URL"),
        description="The platform's truth (PostgreSQL). Set: this process is a replica, a "
        "read-only view of shard `shard_index` of `shards` that tails the truth's change log "
        "(vdup.indexer.replica). Empty: a shard that owns its data and takes writes.",
    )
    shard_index: int = Field(
        -1, ge=-1, description="This replica's shard (-1: the ordinal at the end of shard_id)."
    )
    shards: int = Field(0, ge=0, description="Shard count of the placement (replicas only).")
    min_seq_wait_s: float = Field(
        2.0,
        ge=0,
        description="How long a search that needs a later change than this replica has "
        "applied waits before answering 409 (the caller asks another replica).",
    )
    max_body_mb: int = Field(64, ge=1, description="Largest request body, MiB.")
    log_level: str = Field("info", description="Python logging level.")
    otlp_endpoint: str = Field(
        "",
        validation_alias=AliasChoices("VDUP_INDEXER_OTLP_ENDPOINT", "VDUP_OTLP_ENDPOINT"),
        description="OTLP gRPC endpoint for traces; empty = none.",
    )

    def replica_shard(self) -> int:
        """The shard this replica serves: ``shard_index``, else the ordinal ending shard_id."""
        if self.shard_index >= 0:
            return self.shard_index
        tail = self.shard_id.rsplit("-", 1)[-1]
        if not tail.isdigit():
            raise ValueError(f"shard_id {self.shard_id!r} ends in no ordinal: set shard_index")
        return int(tail)
