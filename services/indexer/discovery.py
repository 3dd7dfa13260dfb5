"""Where the shards are: a fixed list, or the EndpointSlices of the indexer's headless Service.

Why the order matters: a video lives on shard ``placement(video_id, N)``, so position i of the
list must always be the same shard. In Kubernetes the shards are StatefulSet pods
``<name>-0 … <name>-(N-1)``; the list is ordered by that ordinal, never by address or by the
order the API server returns. The headless Service publishes not-ready addresses, so a shard
that restarts stays listed (``ready=false``) and keeps its position; calls to it fail, and the
API answers 503 until it is back (fail closed) rather than sending its videos elsewhere.

A list with a gap (ordinal 1 missing from 0..2), fewer shards than ``expected``, or fewer than
this process has seen before is refused with ``Unavailable``: the placement of every video
would change. Changing the shard count is a maintenance procedure (docs/kubernetes.md).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Protocol

from vdup.errors import Unavailable

log = logging.getLogger(__name__)

_ORDINAL = re.compile(r"-(\d+)$")


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


def endpoints_from_slices(slices: list, service: str, namespace: str,
                          port: int, port_name: str = "http") -> list[ShardEndpoint]:
    """Shard endpoints from ``discovery.k8s.io/v1`` EndpointSlice objects (kubernetes client
    models, or anything with the same attributes), one per ordinal, ordered by ordinal.

    URL: the pod's stable DNS name ``<hostname>.<service>.<namespace>.svc`` when the slice gives a
    hostname (StatefulSet pods behind a headless Service do), else its first address. Port: the
    slice's port named ``port_name``, else ``port``. When one pod appears twice (slices being
    rewritten) the ready, non-terminating entry wins.
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
            pod = (getattr(ref, "name", None) if ref is not None else None) \
                or getattr(ep, "hostname", None) or ""
            match = _ORDINAL.search(pod)
            if not match:
                log.warning("ignoring endpoint without a pod ordinal: %r", pod)
                continue
            cond = getattr(ep, "conditions", None)
            ready = bool(getattr(cond, "ready", False)) and not bool(
                getattr(cond, "terminating", False))
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
        raise Unavailable(f"index shards {missing or list(range(max(n, 1)))} are missing from "
                          "the indexer Service's endpoints")
    if extra:
        raise Unavailable(f"index shards {extra} are listed but {n} are expected "
                          "(VDUP_INDEXER_SHARDS): resharding needs docs/kubernetes.md")
    return [e.url for e in endpoints]


class KubernetesShards:
    """Shards from the EndpointSlices of ``service`` in ``namespace`` (RBAC: list on
    ``discovery.k8s.io/endpointslices``). The list is re-read at most every ``ttl_s`` seconds;
    if a re-read fails, the last good list is kept. ``expected`` = 0 trusts the slices, but the
    count may never drop below the most this process has seen."""

    def __init__(self, service: str, namespace: str, port: int, expected: int = 0,
                 ttl_s: float = 10.0, api=None) -> None:
        if not service or not namespace:
            raise ValueError("indexer discovery 'kubernetes' needs VDUP_INDEXER_SERVICE and "
                             "VDUP_INDEXER_NAMESPACE")
        self.service, self.namespace, self.port = service, namespace, port
        self.expected, self.ttl_s = expected, ttl_s
        self._api = api
        self._urls: list[str] = []
        self._read_at = 0.0
        self._most_seen = 0
        self._lock = threading.Lock()

    def _client(self):
        if self._api is None:
            from kubernetes import client, config

            config.load_incluster_config()
            self._api = client.DiscoveryV1Api()
        return self._api

    def urls(self) -> list[str]:
        with self._lock:
            if self._urls and time.monotonic() - self._read_at < self.ttl_s:
                return self._urls
            try:
                resp = self._client().list_namespaced_endpoint_slice(
                    self.namespace, label_selector=f"kubernetes.io/service-name={self.service}",
                    _request_timeout=5)
            except Exception as exc:  # noqa: BLE001 - any API failure: keep the last good list
                if self._urls:
                    log.warning("re-reading the indexer EndpointSlices failed (%s); keeping the "
                                "last list", exc)
                    self._read_at = time.monotonic()
                    return self._urls
                raise Unavailable(f"cannot list the indexer shards: {exc}") from None
            eps = endpoints_from_slices(resp.items, self.service, self.namespace, self.port)
            urls = ordered_urls(eps, self.expected or self._most_seen)
            if urls != self._urls:
                log.info("indexer shards: %s", urls)
            self._most_seen = max(self._most_seen, len(urls))
            self._urls, self._read_at = urls, time.monotonic()
            return urls
