"""The API's one typed settings object, read from ``VDUP_*`` environment variables at start-up.

Built by ``Settings()`` in the process entry points (CLI, app factory), never at import. A bad
value fails start-up with pydantic's message, which names the variable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from vdup.features.types import INDEX_MAX_SIM, QUERY_MAX_SIM
from vdup.matching.decide import DecisionConfig
from vdup.matching.model import default_model
from vdup.matching.model import load as load_model
from vdup.media.decode import MediaLimits, SamplingConfig


def _split(value: object) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value] if isinstance(value, list | tuple) else []


CommaList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VDUP_", extra="ignore")

    # -- service
    host: str = Field("127.0.0.1", description="Address the API binds.")
    port: int = Field(8080, description="Port the API binds.")
    data_dir: Path = Field(Path("data"), description="Embedded catalog directory.")
    log_level: str = Field("info", description="Python logging level.")
    api_keys: CommaList = Field(
        default_factory=list,
        description=(
            "Bearer keys of upload clients (the 'check' role), each 'name:key' or 'key'. With "
            "neither this nor moderator_keys set, nothing needs a key."
        ),
    )
    moderator_keys: CommaList = Field(
        default_factory=list,
        description=(
            "Bearer keys of moderators (the 'moderate' role: the review page's data, evidence, "
            "verdicts, the audit log), each 'name:key' or 'key'; the name goes in the audit log."
        ),
    )
    max_concurrency: int = Field(4, ge=1, description="Checks in flight per replica; more get 429.")
    check_deadline_s: float = Field(120.0, gt=0, description="Deadline of one check, s.")

    # -- extraction
    triton_url: str = Field("", description="Triton gRPC host:port; empty = in-process models.")
    triton_model: str = Field("ensemble_model", description="Triton model that takes the bytes.")
    triton_timeout_s: float = Field(60.0, gt=0, description="Deadline of one Triton call, s.")
    triton_http_port: int = Field(
        8000, ge=1, le=65535, description="HTTP port of the local Triton (vdup triton)."
    )
    triton_grpc_port: int = Field(
        8001, ge=1, le=65535, description="gRPC port of the local Triton (vdup triton)."
    )
    triton_metrics_port: int = Field(
        8002, ge=1, le=65535, description="Metrics port of the local Triton (vdup triton)."
    )
    model_sources: Path = Field(
        Path("model_repository"),
        description=(
            "The committed model repository (configs and model.py files) that 'vdup models "
            "install' copies; relative to the working directory (the repository root in a "
            "checkout, /opt/vdup/model_repository in the image)."
        ),
    )
    sscd_model: str = Field("sscd_distilled", description="sscd_distilled or sscd (int8 R50).")
    onnx_threads: int = Field(
        0,
        ge=0,
        description=(
            "In process: SSCD runs in parallel (one onnxruntime thread each) and the audio model's "
            "threads; in Triton's models: intra-op threads. 0 = all cores."
        ),
    )
    blas_threads: int = Field(
        1,
        ge=0,
        description=(
            "BLAS threads (numpy's OpenBLAS) in a process that decodes and describes videos: its "
            "matrix products are small, and idle OpenBLAS threads busy-wait on the cores that "
            "decoding and onnxruntime need (one thread is cheaper in CPU per check, see "
            "docs/benchmarks.md). 0 = the library's default (every core)."
        ),
    )
    frame_size: int = Field(224, ge=64, le=512, description="Side of sampled frames, px.")
    max_gap_s: float = Field(2.0, gt=0, description="Largest gap between sampled frames, s.")
    min_frames: int = Field(12, ge=1, description="Fewest frames sampled per video.")
    max_frames: int = Field(96, ge=1, description="Most frames kept per video.")
    thumbnails: int = Field(
        12,
        ge=0,
        le=32,
        description="Thumbnails kept per video for the review page (JPEG, ~3 KB each); 0 = none.",
    )

    # -- media limits
    max_duration_s: float = Field(600.0, gt=0, description="Longest accepted video, s.")
    max_width: int = Field(4096, gt=0, description="Widest accepted frame, px.")
    max_height: int = Field(4096, gt=0, description="Tallest accepted frame, px.")
    max_stream_frames: int = Field(200_000, gt=0, description="Most frames a stream may declare.")
    max_decoded_frames: int = Field(20_000, gt=0, description="Most frames decoded per video.")
    max_audio_s: float = Field(600.0, gt=0, description="Longest audio decoded, s.")

    # -- catalog
    index_factory: str = Field("Flat", description="FAISS factory string for the local index.")
    snapshot_every: int = Field(5000, ge=0, description="Rows between index snapshots.")
    index_nprobe: int = Field(16, ge=1, description="Local index: IVF lists visited per query row.")
    search_k: int = Field(32, ge=1, description="Neighbours per query row.")
    index_max_sim: float = Field(
        INDEX_MAX_SIM,
        gt=0,
        le=1,
        description="Local index: a frame this similar to one already "
        "indexed is stored, not indexed (1 = index all).",
    )
    query_max_sim: float = Field(
        QUERY_MAX_SIM,
        gt=0,
        le=1,
        description="Query rows this similar to one already sent are "
        "not searched (1 = search all).",
    )
    indexer_urls: CommaList = Field(
        default_factory=list,
        description="Indexer shard base URLs, in shard order; empty = local index. With "
        "database_url, each entry is one shard's replica URLs joined by '|'.",
    )
    database_url: str = Field(
        "",
        description="The platform's catalog truth, PostgreSQL (postgresql://...). With "
        "indexer_urls: writes and record reads go here, searches to the shard replicas that "
        "tail it; its schema is upgraded at start-up. Empty: the shards own their data.",
    )
    indexer_timeout_s: float = Field(10.0, gt=0, description="Deadline of one shard call, s.")
    indexer_discovery: str = Field(
        "", description="'kubernetes' to find shards via EndpointSlices."
    )
    indexer_service: str = Field("", description="Headless Service of the indexer StatefulSet.")
    indexer_namespace: str = Field("", description="Namespace of that Service.")
    indexer_port: int = Field(8090, description="Port of the shards.")
    indexer_shards: int = Field(
        0,
        ge=0,
        description="Shards expected from discovery (the "
        "StatefulSet's replicas); 0 = as listed. Fewer listed = 503.",
    )
    indexer_replicas: int = Field(
        1,
        ge=1,
        description="With database_url and discovery 'kubernetes': replicas of every shard, one "
        "StatefulSet each behind its own headless Service, indexer_service itself for 1, else "
        "<indexer_service>-r0 ... -r<R-1> (pod ordinal = shard; indexer_shards is required).",
    )

    # -- decision (each field is documented on DecisionConfig in vdup.matching.decide)
    decision_model: Path | None = Field(
        None,
        description=(
            "Decision model file written by 'vdup calibrate'; empty = the model that ships with "
            "vdup (vdup/matching/decision_model.json)."
        ),
    )
    decision_threshold: float | None = Field(
        None,
        gt=0,
        lt=1,
        description=(
            "Probability from which a match is a copy; empty = the model's own, chosen for "
            "precision when it was fitted."
        ),
    )
    max_candidates: int = Field(
        DecisionConfig.max_candidates, ge=1, description="Candidates aligned per query."
    )
    constant_audio: float = Field(
        DecisionConfig.constant_audio,
        ge=-1,
        le=1,
        description="Window similarity above which a track is constant.",
    )

    # -- fetching links
    fetch_allow: CommaList = Field(
        default_factory=list, description="Hosts/CIDRs allowed despite being private."
    )
    fetch_max_bytes: int = Field(200 * 1024 * 1024, gt=0, description="Largest download, bytes.")
    fetch_connect_timeout_s: float = Field(5.0, gt=0)
    fetch_read_timeout_s: float = Field(10.0, gt=0)
    fetch_total_timeout_s: float = Field(60.0, gt=0)
    fetch_max_redirects: int = Field(5, ge=0)
    fetch_user_agent: str = Field("vdup-fetch/0.1.0", description="User-Agent of downloads.")

    # -- observability
    otlp_endpoint: str = Field("", description="OTLP gRPC endpoint for traces; empty = none.")

    @field_validator("decision_model", "decision_threshold", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("api_keys", "moderator_keys", "indexer_urls", "fetch_allow", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> list[str]:
        """``VDUP_FETCH_ALLOW=127.0.0.1,10.0.0.0/8``: NoDecode hands the raw string here."""
        return _split(value)

    def sampling(self) -> SamplingConfig:
        return SamplingConfig(
            frame_size=self.frame_size,
            max_gap_s=self.max_gap_s,
            min_frames=self.min_frames,
            max_frames=self.max_frames,
        )

    def limits(self) -> MediaLimits:
        return MediaLimits(
            max_duration_s=self.max_duration_s,
            max_width=self.max_width,
            max_height=self.max_height,
            max_stream_frames=self.max_stream_frames,
            max_decoded_frames=self.max_decoded_frames,
            max_audio_s=self.max_audio_s,
        )

    def decision(self) -> DecisionConfig:
        """The decision's settings, with the model loaded (a bad file raises ModelError)."""
        model = load_model(self.decision_model) if self.decision_model else default_model()
        return DecisionConfig(
            model=model,
            threshold=self.decision_threshold,
            max_candidates=self.max_candidates,
            constant_audio=self.constant_audio,
        )
