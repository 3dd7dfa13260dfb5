"""Where the shards are: a fixed list, or the EndpointSlices of the indexer's headless Service.

Why the order matters: a video lives on shard ``placement(video_id, N)``, so position i of the
list must always be the same shard. In Kubernetes the shards are StatefulSet pods
``<name>-0 … <name>-(N-1)``; the list is ordered by that ordinal, never by address or by the
order the API server returns. The headless Service publishes not-ready addresses, so a shard
that restarts stays listed (``ready=false``) and keeps its position; calls to it fail, and the
API answers 503 until it is back (fail closed) rather than sending its videos elsewhere.

Why the count may grow but never shrink (``KubernetesShards``): the count a process uses
starts at ``VDUP_INDEXER_SHARDS`` (0: the first list decides) and only grows.

- Fewer shards than that, or a gap (ordinal 1 missing from 0..2): ``Unavailable``. The placement
  of every video would change and the missing shard's videos would drop out of every check.
- More (the StatefulSet grew from N to M): shards N..M-1 are *joining*. From the first list that
  shows them the process answers ``Unavailable``, until they are contiguous, all ready, and have
  been listed for ``settle_s`` (60 s); then it uses M shards, without a restart, and
  ``vdup reshard`` moves the videos (docs/indexer.md, "Resharding"). Why the wait: each API
  replica re-reads the slices on its own clock, every ``ttl_s``. A replica that stored a video on
  shard N while another still searched only 0..N-1 would let a copy of it be called new. Every
  replica stops using N shards within ``ttl_s`` of shard N appearing (plus one shard call in
  flight), so when the first one starts using M, none still uses N.
- A process that has not listed the shards yet (it is starting) takes the contiguous list it
  sees, at least ``VDUP_INDEXER_SHARDS`` long: it has no smaller count in use to retire.

Ready means the pod's Ready condition: the slice's ``serving`` condition, not its ``ready`` one,
which a Service that publishes not-ready addresses sets for every endpoint (terminating ones
too).

Replicas (``KubernetesReplicas``, platform mode with ``VDUP_DATABASE_URL``): shard i has R
read-only replicas that tail the PostgreSQL truth. Each replica index r is one StatefulSet of N
pods behind its own headless Service; a pod's ordinal is its shard, so each Service is read as
``KubernetesShards`` reads one. The shard count is fixed (``VDUP_INDEXER_SHARDS``); a shard is
usable while any of its replicas is listed, so one replica set that is missing a pod, or whose
Service cannot be listed, costs no shard.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from vdup.errors import Unavailable

log = logging.getLogger(__name__)

_ORDINAL = re.compile(r"-(\d+)$")

#: Seconds joining shards must have been listed before a running process uses them: more than
#: ``KubernetesShards.ttl_s`` (10 s) plus one shard call in flight at the default 10 s deadline
#: (httpx bounds each phase of a call, not its total).
GROWTH_SETTLE_S = 60.0


def uses_kubernetes(settings) -> bool:
    """True for ``VDUP_INDEXER_DISCOVERY=kubernetes``, False for '' or 'static' (the URL list);
    ValueError for anything else."""
    if settings.indexer_discovery == "kubernetes":
        return True
    if settings.indexer_discovery not in ("", "static"):
        raise ValueError(
            f"VDUP_INDEXER_DISCOVERY={settings.indexer_discovery!r}: use "
            "'kubernetes' or set VDUP_INDEXER_URLS"
        )
    return False


class ShardDirectory(Protocol):
    def urls(self) -> list[str]:
        """Shard base URLs, position i = shard i."""
        ...


class StaticShards:
    """``VDUP_INDEXER_URLS``: the list as given (its order is the shard order)."""

    def __init__(self, urls: list[str]) -> None:
        if not urls:
            raise ValueError("no indexer shard URLs given")
        self._urls = [u.rstrip("/") for u in urls]

    def urls(self) -> list[str]:
        return self._urls


@dataclass(frozen=True)
class ShardEndpoint:
    ordinal: int
    pod: str
    url: str
    ready: bool


def endpoints_from_slices(
    slices: list, service: str, namespace: str, port: int, port_name: str = "http"
) -> list[ShardEndpoint]:
    """Shard endpoints from ``discovery.k8s.io/v1`` EndpointSlice objects (kubernetes client
    models, or anything with the same attributes), one per ordinal, ordered by ordinal.

    URL: the pod's stable DNS name ``<hostname>.<service>.<namespace>.svc`` when the slice gives a
    hostname (StatefulSet pods behind a headless Service do), else its first address. Port: the
    slice's port named ``port_name``, else ``port``. Ready: the pod is ready (``serving``; the
    ``ready`` condition only where a cluster gives no ``serving``) and not terminating. When one
    pod appears twice (slices being rewritten) the ready entry wins.
    """
    best: dict[int, ShardEndpoint] = {}
    for sl in slices or []:
        slice_port = port
        for p in getattr(sl, "ports", None) or []:
            if getattr(p, "name", None) == port_name and getattr(p, "port", None):
                slice_port = int(p.port)
        family = getattr(sl, "address_type", "IPv4")
        for ep in getattr(sl, "endpoints", None) or []:
            ref = getattr(ep, "target_ref", None)
            pod = (
                (getattr(ref, "name", None) if ref is not None else None)
                or getattr(ep, "hostname", None)
                or ""
            )
            match = _ORDINAL.search(pod)
            if not match:
                log.warning("ignoring endpoint without a pod ordinal: %r", pod)
                continue
            cond = getattr(ep, "conditions", None)
            serving = getattr(cond, "serving", None)  # None: a cluster before 1.20
            up = bool(getattr(cond, "ready", False)) if serving is None else bool(serving)
            ready = up and not bool(getattr(cond, "terminating", False))
            hostname = getattr(ep, "hostname", None)
            addresses = getattr(ep, "addresses", None) or []
            if hostname:
                host = f"{hostname}.{service}.{namespace}.svc"
            elif addresses:
                host = f"[{addresses[0]}]" if family == "IPv6" else addresses[0]
            else:
                continue
            cand = ShardEndpoint(int(match.group(1)), pod, f"http://{host}:{slice_port}", ready)
            old = best.get(cand.ordinal)
            if old is None or (cand.ready and not old.ready):
                best[cand.ordinal] = cand
    return [best[o] for o in sorted(best)]


def ordered_urls(endpoints: list[ShardEndpoint], expected: int = 0) -> list[str]:
    """URLs by ordinal; Unavailable unless the ordinals are exactly 0..N-1 (N = ``expected``
    when it is set)."""
    ordinals = [e.ordinal for e in endpoints]
    n = expected or len(endpoints)
    missing = sorted(set(range(n)) - set(ordinals))
    extra = sorted(o for o in ordinals if o >= n)
    if missing or not endpoints:
        raise Unavailable(
            f"index shards {missing or list(range(max(n, 1)))} are missing from "
            "the indexer Service's endpoints"
        )
    if extra:
        raise Unavailable(
            f"index shards {extra} are listed but {n} are expected "
            '(VDUP_INDEXER_SHARDS): see docs/indexer.md, "Resharding"'
        )
    return [e.url for e in endpoints]


def shard_count(
    endpoints: list[ShardEndpoint],
    in_use: int,
    joined_for_s: float = math.inf,
    settle_s: float = GROWTH_SETTLE_S,
) -> int:
    """The shard count to use now (the policy of the module docstring).

    endpoints: as ``endpoints_from_slices`` returns them (sorted by ordinal).
    in_use: the count in use, or the configured one (``VDUP_INDEXER_SHARDS``) before the first
        list; 0 = none.
    joined_for_s: how long, in s, the ordinals >= ``in_use`` have been listed; ``math.inf`` for
        a process that has not listed the shards yet (it takes what it sees, ready or not).
    Raises Unavailable for fewer than ``in_use`` shards, a gap, or shards still joining (not all
    ready, or listed for less than ``settle_s``). Never returns less than ``in_use``.
    """
    ordinals = {e.ordinal for e in endpoints}
    top = max(ordinals, default=-1) + 1
    missing = sorted(set(range(max(in_use, top, 1))) - ordinals)
    if missing:
        raise Unavailable(
            f"index shards {missing} are missing from the indexer Service's "
            f"endpoints (shards 0..{max(in_use, top, 1) - 1} expected)"
        )
    if top <= in_use or math.isinf(joined_for_s):
        return max(in_use, top)
    joining = list(range(in_use, top))
    not_ready = [e.ordinal for e in endpoints if e.ordinal >= in_use and not e.ready]
    if not_ready or joined_for_s < settle_s:
        wait = (
            f"shards {not_ready} are not ready"
            if not_ready
            else f"listed for {joined_for_s:.0f} of {settle_s:g} s"
        )
        raise Unavailable(
            f"index shards {joining} are joining (shard count {in_use} -> {top}; "
            f"{wait}): no answers until every API replica has stopped using "
            f"{in_use} shards"
        )
    return top


class KubernetesShards:
    """Shards from the EndpointSlices of ``service`` in ``namespace`` (RBAC: list on
    ``discovery.k8s.io/endpointslices``). The list is re-read at most every ``ttl_s`` seconds,
    a refusal too; if a re-read fails, the last list is kept if the last read accepted it (so not
    while shards are joining).
    ``expected`` (``VDUP_INDEXER_SHARDS``) is the least count; the count grows as
    ``shard_count`` decides, after ``settle_s``, and never shrinks. ``clock``: monotonic s."""

    def __init__(
        self,
        service: str,
        namespace: str,
        port: int,
        expected: int = 0,
        ttl_s: float = 10.0,
        api=None,
        settle_s: float = GROWTH_SETTLE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not service or not namespace:
            raise ValueError(
                "indexer discovery 'kubernetes' needs VDUP_INDEXER_SERVICE and "
                "VDUP_INDEXER_NAMESPACE"
            )
        self.service, self.namespace, self.port = service, namespace, port
        self.expected, self.ttl_s, self.settle_s = expected, ttl_s, settle_s
        self._api = api
        self._clock = clock
        self._urls: list[str] = []
        self._refusal = ""
        self._read_at = -math.inf
        self._count = expected
        self._joining: tuple[int, ...] = ()
        self._joining_since = 0.0
        self._listed: list[ShardEndpoint] | None = None  # what endpoints() last read
        self._listed_at = -math.inf
        self._lock = threading.Lock()

    def _client(self):
        if self._api is None:
            from kubernetes import client, config

            config.load_incluster_config()
            self._api = client.DiscoveryV1Api()
        return self._api

    def _list(self) -> list[ShardEndpoint]:
        resp = self._client().list_namespaced_endpoint_slice(
            self.namespace,
            label_selector=f"kubernetes.io/service-name={self.service}",
            _request_timeout=5,
        )
        return endpoints_from_slices(resp.items, self.service, self.namespace, self.port)

    def endpoints(self) -> list[ShardEndpoint]:
        """The Service's endpoints as listed, by ordinal, with no shard-count policy (what
        ``KubernetesReplicas`` reads). Re-read at most every ``ttl_s``; a failed re-read keeps
        the last list; Unavailable when there is none yet."""
        with self._lock:
            now = self._clock()
            if self._listed is not None and now - self._listed_at < self.ttl_s:
                return self._listed
            try:
                listed = self._list()
            except Exception as exc:  # noqa: BLE001 - any API failure: keep the last list
                if self._listed is None:
                    raise Unavailable(
                        f"cannot list the endpoints of {self.service}: {exc}"
                    ) from None
                log.warning(
                    "re-reading the EndpointSlices of %s failed (%s); keeping the last list",
                    self.service,
                    exc,
                )
                listed = self._listed
            self._listed, self._listed_at = listed, now
            return listed

    def urls(self) -> list[str]:
        with self._lock:
            now = self._clock()
            if now - self._read_at < self.ttl_s:
                if self._refusal:
                    raise Unavailable(self._refusal)
                return self._urls
            try:
                listed = self._list()
            except Exception as exc:  # noqa: BLE001 - any API failure: keep the last good list
                if self._urls and not self._refusal:
                    log.warning(
                        "re-reading the indexer EndpointSlices failed (%s); keeping the last list",
                        exc,
                    )
                    self._read_at = now
                    return self._urls
                raise Unavailable(f"cannot list the indexer shards: {exc}") from None
            self._read_at = now
            try:
                urls = self._update(listed, now)
            except Unavailable as exc:
                self._refusal = str(exc)
                raise
            self._refusal = ""
            return urls

    def _update(self, eps: list[ShardEndpoint], now: float) -> list[str]:
        joining = tuple(e.ordinal for e in eps if e.ordinal >= self._count)
        if joining != self._joining:
            self._joining, self._joining_since = joining, now
            if joining and self._urls:
                log.warning(
                    "index shards %s joined the indexer Service: answering 503 until "
                    "they are ready and listed for %g s, then using them",
                    list(joining),
                    self.settle_s,
                )
        joined_for = now - self._joining_since if self._urls else math.inf
        count = shard_count(eps, self._count, joined_for, self.settle_s)
        urls = ordered_urls(eps, count)
        if self._urls and count > self._count:
            log.warning(
                "indexer shards grew from %d to %d: run 'vdup reshard' "
                '(docs/indexer.md, "Resharding")',
                self._count,
                count,
            )
        if urls != self._urls:
            log.info("indexer shards: %s", urls)
        self._count, self._joining, self._urls = count, (), urls
        return urls


class ReplicaDirectory(Protocol):
    def replicas(self) -> list[list[str]]:
        """Position i = shard i: that shard's replica base URLs (never empty)."""
        ...

    def urls(self) -> list[str]:
        """The first replica of each shard."""
        ...


def replica_services(service: str, replicas: int) -> list[str]:
    """The headless Service of each replica index: ``service`` itself for one replica, else
    ``<service>-r0`` … ``<service>-r<R-1>`` (the chart's ``<fullname>-indexer-r<r>``)."""
    if replicas < 1:
        raise ValueError(f"VDUP_INDEXER_REPLICAS={replicas}: at least 1")
    return [service] if replicas == 1 else [f"{service}-r{r}" for r in range(replicas)]


class KubernetesReplicas:
    """Shard replicas from the EndpointSlices of ``services``, one headless Service per replica
    index (a StatefulSet of ``shards`` pods whose ordinal is the shard; RBAC: list on
    ``discovery.k8s.io/endpointslices``). Each Service is read by its own ``KubernetesShards``
    (``endpoints()``: re-read at most every ``ttl_s``, the last list kept when a re-read fails).

    ``replicas()[i]``: shard i's replicas in Service order, the ready ones (Ready condition, not
    terminating); when none is ready, every listed one, so the search still asks them (a replica
    that is loading answers 409 or 503 and the caller moves on; one that is terminating may still
    answer). Unavailable when a shard has no replica listed in any Service, or when no Service
    can be listed. Pods with an ordinal >= ``shards`` are not used (logged): they would belong to
    another placement.
    """

    def __init__(
        self,
        services: list[str],
        namespace: str,
        port: int,
        shards: int,
        ttl_s: float = 10.0,
        api=None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not services or not all(services):
            raise ValueError("indexer discovery 'kubernetes' needs VDUP_INDEXER_SERVICE")
        if shards < 1:
            raise ValueError(
                "replicas found through Kubernetes need the shard count: set VDUP_INDEXER_SHARDS"
            )
        self.services, self.shards = list(services), shards
        self._sets = [
            KubernetesShards(s, namespace, port, expected=shards, ttl_s=ttl_s, api=api, clock=clock)
            for s in self.services
        ]
        self._extra: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings) -> KubernetesReplicas:
        """``VDUP_INDEXER_SERVICE``/``_REPLICAS`` (see ``replica_services``), ``_NAMESPACE``,
        ``_PORT`` and ``_SHARDS``."""
        return cls(
            replica_services(settings.indexer_service, getattr(settings, "indexer_replicas", 1)),
            settings.indexer_namespace,
            settings.indexer_port,
            settings.indexer_shards,
        )

    def replicas(self) -> list[list[str]]:
        listed: list[list[ShardEndpoint]] = [[] for _ in range(self.shards)]
        errors, extra = [], []
        for directory in self._sets:
            try:
                endpoints = directory.endpoints()
            except Unavailable as exc:
                errors.append(str(exc))
                continue
            for e in endpoints:
                if e.ordinal < self.shards:
                    listed[e.ordinal].append(e)
                else:
                    extra.append(e.pod)
        if len(errors) == len(self._sets):
            raise Unavailable("cannot list the indexer replicas: " + "; ".join(errors))
        if tuple(extra) != self._extra:
            self._extra = tuple(extra)
            if extra:
                log.warning(
                    "indexer pods %s have an ordinal >= VDUP_INDEXER_SHARDS=%d: not used",
                    extra,
                    self.shards,
                )
        missing = [i for i, group in enumerate(listed) if not group]
        if missing:
            raise Unavailable(
                f"index shards {missing} have no replica listed in the indexer Services "
                f"{self.services}" + (f" ({'; '.join(errors)})" if errors else "")
            )
        return [[e.url for e in g if e.ready] or [e.url for e in g] for g in listed]

    def urls(self) -> list[str]:
        return [group[0] for group in self.replicas()]
