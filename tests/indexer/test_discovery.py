"""Shard discovery from EndpointSlices, with the kubernetes client's own model objects (no
cluster): ordered by pod ordinal, stable DNS names, refusal of any list with fewer shards or a
gap, and growth (N -> M) taken without a restart once the new shards are ready and settled."""

from __future__ import annotations

import kubernetes.client as k
import pytest

from vdup.errors import Unavailable
from vdup.indexer.discovery import (
    GROWTH_SETTLE_S,
    KubernetesShards,
    StaticShards,
    endpoints_from_slices,
    ordered_urls,
    shard_count,
)

SVC, NS = "vdup-indexer-headless", "vdup"


def endpoint(
    ordinal: int, ip: str, ready: bool = True, hostname: bool = True, terminating: bool = False
) -> k.V1Endpoint:
    pod = f"vdup-indexer-{ordinal}"
    return k.V1Endpoint(
        addresses=[ip],
        hostname=pod if hostname else None,
        conditions=k.V1EndpointConditions(ready=ready, serving=ready, terminating=terminating),
        target_ref=k.V1ObjectReference(kind="Pod", name=pod, namespace=NS),
    )


def eps_slice(*endpoints: k.V1Endpoint, port: int = 8090, family: str = "IPv4"):
    return k.V1EndpointSlice(
        address_type=family,
        endpoints=list(endpoints),
        ports=[k.DiscoveryV1EndpointPort(name="http", port=port, protocol="TCP")],
        metadata=k.V1ObjectMeta(
            name=f"{SVC}-abcde", namespace=NS, labels={"kubernetes.io/service-name": SVC}
        ),
    )


def test_shards_are_ordered_by_pod_ordinal_across_slices_not_by_address():
    slices = [
        eps_slice(endpoint(2, "10.0.0.1"), endpoint(10, "10.0.0.2")),
        eps_slice(endpoint(0, "10.0.0.9"), endpoint(1, "10.0.0.3", ready=False)),
    ]
    eps = endpoints_from_slices(slices, SVC, NS, port=1)
    assert [e.ordinal for e in eps] == [0, 1, 2, 10]
    assert eps[0].url == f"http://vdup-indexer-0.{SVC}.{NS}.svc:8090"
    assert eps[1].ready is False  # a loading shard keeps its place (publishNotReadyAddresses)


def test_addresses_are_used_when_there_is_no_hostname():
    eps = endpoints_from_slices(
        [
            eps_slice(endpoint(0, "10.1.2.3", hostname=False), port=9000),
            eps_slice(endpoint(1, "fd00::5", hostname=False), family="IPv6"),
        ],
        SVC,
        NS,
        port=1,
    )
    assert [e.url for e in eps] == ["http://10.1.2.3:9000", "http://[fd00::5]:8090"]


def test_a_pod_listed_twice_keeps_its_ready_entry():
    slices = [
        eps_slice(endpoint(0, "10.0.0.1", ready=False, hostname=False, terminating=True)),
        eps_slice(endpoint(0, "10.0.0.7", hostname=False)),
    ]
    (ep,) = endpoints_from_slices(slices, SVC, NS, port=8090)
    assert ep.url == "http://10.0.0.7:8090" and ep.ready


def test_a_gap_or_a_short_list_is_refused():
    three = endpoints_from_slices(
        [eps_slice(*(endpoint(i, f"10.0.0.{i}") for i in (0, 1, 2)))], SVC, NS, 8090
    )
    assert len(ordered_urls(three)) == 3
    assert len(ordered_urls(three, expected=3)) == 3
    with pytest.raises(Unavailable, match=r"shards \[1\] are missing"):
        ordered_urls([three[0], three[2]])
    with pytest.raises(Unavailable, match=r"shards \[3\] are missing"):
        ordered_urls(three, expected=4)
    with pytest.raises(Unavailable, match="2 are expected"):
        ordered_urls(three, expected=2)
    with pytest.raises(Unavailable):
        ordered_urls([])


class FakeDiscoveryApi:
    """Stands in for ``kubernetes.client.DiscoveryV1Api``: answers from ``self.slices``."""

    def __init__(self, slices):
        self.slices, self.calls, self.fail = slices, [], False

    def list_namespaced_endpoint_slice(self, namespace, label_selector, _request_timeout):
        self.calls.append((namespace, label_selector))
        if self.fail:
            raise RuntimeError("apiserver unreachable")
        return k.V1EndpointSliceList(items=self.slices)


def test_kubernetes_shards_reads_the_services_slices_and_never_shrinks():
    api = FakeDiscoveryApi([eps_slice(endpoint(1, "10.0.0.2"), endpoint(0, "10.0.0.1"))])
    shards = KubernetesShards(SVC, NS, 8090, ttl_s=0, api=api)
    urls = shards.urls()
    assert [u.split(".")[0] for u in urls] == ["http://vdup-indexer-0", "http://vdup-indexer-1"]
    assert api.calls[0] == (NS, f"kubernetes.io/service-name={SVC}")
    api.fail = True
    assert shards.urls() == urls  # the API server is down: keep the last good list
    api.fail = False
    api.slices = [eps_slice(endpoint(0, "10.0.0.1"))]  # pod 1 deleted, not yet recreated
    with pytest.raises(Unavailable, match=r"\[1\] are missing"):
        shards.urls()


def shards_of(*ordinals: int, not_ready: tuple[int, ...] = ()):
    """One slice listing pods ``vdup-indexer-<i>``, those in ``not_ready`` not ready."""
    return [
        eps_slice(*(endpoint(i, f"10.0.0.{i + 1}", ready=i not in not_ready) for i in ordinals))
    ]


def test_shard_count_grows_only_to_a_settled_ready_contiguous_set():
    def eps(*ordinals, not_ready=()):
        return endpoints_from_slices(shards_of(*ordinals, not_ready=not_ready), SVC, NS, 8090)

    assert shard_count(eps(0, 1), in_use=2, joined_for_s=0) == 2
    assert shard_count(eps(0, 1, 2), in_use=0) == 3  # nothing in use yet: the list as it is
    assert shard_count(eps(0, 1, 2, not_ready=(2,)), in_use=2) == 3  # starting: at least 2
    assert shard_count(eps(0, 1, 2), in_use=2, joined_for_s=GROWTH_SETTLE_S) == 3
    assert shard_count(eps(0, 1, 2, 3), in_use=2, joined_for_s=60, settle_s=60) == 4
    with pytest.raises(Unavailable, match=r"\[2\] are joining .*listed for 59 of 60 s"):
        shard_count(eps(0, 1, 2), in_use=2, joined_for_s=59, settle_s=60)
    with pytest.raises(Unavailable, match=r"\[2, 3\] are joining .*shards \[3\] are not ready"):
        shard_count(eps(0, 1, 2, 3, not_ready=(3,)), in_use=2, joined_for_s=600)
    with pytest.raises(Unavailable, match=r"shards \[2\] are missing"):  # a gap never settles
        shard_count(eps(0, 1, 3), in_use=2, joined_for_s=600)
    with pytest.raises(Unavailable, match=r"shards \[2\] are missing"):  # never shrinks
        shard_count(eps(0, 1), in_use=3, joined_for_s=600)
    with pytest.raises(Unavailable, match=r"shards \[1\] are missing"):
        shard_count(eps(0, 2), in_use=0)
    with pytest.raises(Unavailable, match=r"shards \[0\] are missing"):
        shard_count([], in_use=0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_kubernetes_shards_grow_from_2_to_3_without_a_restart():
    api, clock = FakeDiscoveryApi(shards_of(0, 1)), Clock()
    shards = KubernetesShards(SVC, NS, 8090, expected=2, ttl_s=0, settle_s=60, api=api, clock=clock)
    assert len(shards.urls()) == 2
    api.slices = shards_of(0, 1, 2, not_ready=(2,))  # the StatefulSet made vdup-indexer-2
    with pytest.raises(Unavailable, match=r"\[2\] are joining .*shards \[2\] are not ready"):
        shards.urls()
    clock.now += 20
    api.slices = shards_of(0, 1, 2)  # loaded: ready, but other replicas may still use 2 shards
    with pytest.raises(Unavailable, match=r"\[2\] are joining .*listed for 20 of 60 s"):
        shards.urls()
    api.fail = True  # while joining, a failed re-read does not bring the 2-shard list back
    with pytest.raises(Unavailable, match="cannot list"):
        shards.urls()
    api.fail = False
    clock.now += 40
    urls = shards.urls()
    assert [u.split(".")[0] for u in urls] == [f"http://vdup-indexer-{i}" for i in range(3)]
    api.slices = shards_of(0, 1, 2, not_ready=(1, 2))  # restarts keep their places
    assert shards.urls() == urls
    api.slices = shards_of(0, 1)  # scaled back down: fail closed, never 2 shards again
    with pytest.raises(Unavailable, match=r"shards \[2\] are missing"):
        shards.urls()
    clock.now += 600
    with pytest.raises(Unavailable, match=r"shards \[2\] are missing"):
        shards.urls()


def test_a_missing_ordinal_still_fails_closed_while_shards_join():
    api, clock = FakeDiscoveryApi(shards_of(0, 1)), Clock()
    shards = KubernetesShards(SVC, NS, 8090, ttl_s=0, settle_s=60, api=api, clock=clock)
    assert len(shards.urls()) == 2
    api.slices = shards_of(0, 2)  # pod 1 recreated, pod 2 new: both would move videos
    with pytest.raises(Unavailable, match=r"shards \[1\] are missing"):
        shards.urls()
    api.slices = shards_of(0, 1, 3)  # a gap among the new ones never settles
    clock.now += 600
    with pytest.raises(Unavailable, match=r"shards \[2\] are missing"):
        shards.urls()
    api.slices = shards_of(0, 1)  # the new pods went away: back to the 2 shards in use
    assert len(shards.urls()) == 2
    api.slices = shards_of(0, 1, 2)  # and the wait starts again when one appears
    with pytest.raises(Unavailable, match="listed for 0 of 60 s"):
        shards.urls()
    clock.now += 60
    assert len(shards.urls()) == 3


def test_the_configured_count_is_the_least_a_process_accepts():
    api = FakeDiscoveryApi(shards_of(0, 1))
    with pytest.raises(Unavailable, match=r"shards \[2\] are missing"):
        KubernetesShards(SVC, NS, 8090, expected=3, ttl_s=0, api=api).urls()
    api.slices = shards_of(0, 1, 2, not_ready=(2,))  # starting: takes what it sees
    assert len(KubernetesShards(SVC, NS, 8090, expected=2, ttl_s=0, api=api).urls()) == 3


def test_a_refusal_is_kept_for_the_ttl_like_a_list():
    api, clock = FakeDiscoveryApi(shards_of(0, 2)), Clock()
    shards = KubernetesShards(SVC, NS, 8090, ttl_s=10, api=api, clock=clock)
    for _ in range(3):
        with pytest.raises(Unavailable, match=r"\[1\] are missing"):
            shards.urls()
    assert len(api.calls) == 1  # not one API-server read per request
    api.slices = shards_of(0, 1, 2)
    clock.now += 10
    assert len(shards.urls()) == 3 and len(api.calls) == 2


def test_static_shards_keep_the_given_order():
    assert StaticShards(["http://b:1/", "http://a:1"]).urls() == ["http://b:1", "http://a:1"]
    with pytest.raises(ValueError):
        StaticShards([])
