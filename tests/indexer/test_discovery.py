"""Shard discovery from EndpointSlices, with the kubernetes client's own model objects (no
cluster): ordered by pod ordinal, stable DNS names, refusal of any list with fewer shards or a
gap, growth (N -> M) taken without a restart once the new shards are ready and settled, and the
replicas of each shard gathered from one headless Service per replica index."""

from __future__ import annotations

import kubernetes.client as k
import pytest

from vdup.errors import Unavailable
from vdup.indexer.discovery import (
    GROWTH_SETTLE_S,
    KubernetesReplicas,
    KubernetesShards,
    StaticShards,
    endpoints_from_slices,
    ordered_urls,
    replica_services,
    shard_count,
)

SVC, NS = "vdup-indexer-headless", "vdup"


def endpoint(
    ordinal: int,
    ip: str,
    ready: bool = True,
    hostname: bool = True,
    terminating: bool = False,
    sts: str = "vdup-indexer",
) -> k.V1Endpoint:
    """As the EndpointSlice controller lists a pod of a Service with publishNotReadyAddresses:
    ``ready`` is always true there; ``serving`` is the pod's Ready condition."""
    pod = f"{sts}-{ordinal}"
    return k.V1Endpoint(
        addresses=[ip],
        hostname=pod if hostname else None,
        conditions=k.V1EndpointConditions(ready=True, serving=ready, terminating=terminating),
        target_ref=k.V1ObjectReference(kind="Pod", name=pod, namespace=NS),
    )


def eps_slice(*endpoints: k.V1Endpoint, port: int = 8090, family: str = "IPv4", svc: str = SVC):
    return k.V1EndpointSlice(
        address_type=family,
        endpoints=list(endpoints),
        ports=[k.DiscoveryV1EndpointPort(name="http", port=port, protocol="TCP")],
        metadata=k.V1ObjectMeta(
            name=f"{svc}-abcde", namespace=NS, labels={"kubernetes.io/service-name": svc}
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


def test_ready_is_the_pods_ready_condition_not_the_slices_ready_flag():
    """A headless Service with publishNotReadyAddresses marks every endpoint ready; serving
    carries the pod's readiness. A cluster without serving falls back to ready."""
    (loading, up, stopping) = endpoints_from_slices(
        [eps_slice(endpoint(0, "10.0.0.1", ready=False), endpoint(1, "10.0.0.2"))]
        + [eps_slice(endpoint(2, "10.0.0.3", terminating=True))],
        SVC,
        NS,
        port=8090,
    )
    assert (loading.ready, up.ready, stopping.ready) == (False, True, False)
    old = k.V1Endpoint(
        addresses=["10.0.0.4"],
        conditions=k.V1EndpointConditions(ready=False),
        target_ref=k.V1ObjectReference(kind="Pod", name="vdup-indexer-3"),
    )
    assert endpoints_from_slices([eps_slice(old)], SVC, NS, port=1)[0].ready is False


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


class FakeServicesApi:
    """``DiscoveryV1Api`` for several Services: ``slices[service]`` answers that Service's label
    selector; a Service in ``failing`` cannot be listed."""

    def __init__(self, slices: dict[str, list]):
        self.slices, self.calls, self.failing = slices, [], set()

    def list_namespaced_endpoint_slice(self, namespace, label_selector, _request_timeout):
        service = label_selector.removeprefix("kubernetes.io/service-name=")
        self.calls.append(service)
        if service in self.failing:
            raise RuntimeError("apiserver unreachable")
        return k.V1EndpointSliceList(items=self.slices.get(service, []))


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


# ---- replicas: one headless Service per replica index, pod ordinal = shard ----------------------

R_SVC = "vdup-indexer"  # VDUP_INDEXER_SERVICE; the Services are vdup-indexer-r0, -r1, ...


def replica_set(r: int, *ordinals: int, not_ready: tuple[int, ...] = ()) -> list:
    """The slice of Service ``vdup-indexer-r<r>`` listing its pods ``vdup-indexer-r<r>-<i>``."""
    svc = f"{R_SVC}-r{r}"
    return [
        eps_slice(
            *(
                endpoint(i, f"10.{r}.0.{i + 1}", ready=i not in not_ready, sts=svc)
                for i in ordinals
            ),
            svc=svc,
        )
    ]


def pods(groups: list[list[str]]) -> list[list[str]]:
    """``http://vdup-indexer-r1-0.vdup-indexer-r1.vdup.svc:8090`` -> ``r1-0``."""
    return [[u.split(".")[0].removeprefix(f"http://{R_SVC}-") for u in g] for g in groups]


def replicas_of(api, shards: int = 3, replicas: int = 2, **kw) -> KubernetesReplicas:
    return KubernetesReplicas(
        replica_services(R_SVC, replicas), NS, 8090, shards=shards, ttl_s=0, api=api, **kw
    )


def test_replica_services_are_named_after_the_replica_index():
    assert replica_services("vdup-indexer", 1) == ["vdup-indexer"]
    assert replica_services("vdup-indexer", 3) == [
        "vdup-indexer-r0",
        "vdup-indexer-r1",
        "vdup-indexer-r2",
    ]
    with pytest.raises(ValueError):
        replica_services("vdup-indexer", 0)


def test_each_shard_lists_its_replicas_from_every_service_in_replica_order():
    api = FakeServicesApi(
        {f"{R_SVC}-r0": replica_set(0, 2, 0, 1), f"{R_SVC}-r1": replica_set(1, 1, 0, 2)}
    )
    directory = replicas_of(api)
    assert pods(directory.replicas()) == [["r0-0", "r1-0"], ["r0-1", "r1-1"], ["r0-2", "r1-2"]]
    assert directory.urls()[1] == f"http://{R_SVC}-r0-1.{R_SVC}-r0.{NS}.svc:8090"
    assert sorted(set(api.calls)) == [f"{R_SVC}-r0", f"{R_SVC}-r1"]


def test_searches_go_to_ready_replicas_and_to_any_listed_one_when_none_is_ready():
    api = FakeServicesApi(
        {
            f"{R_SVC}-r0": replica_set(0, 0, 1, 2, not_ready=(0, 2)),  # catching up
            f"{R_SVC}-r1": replica_set(1, 0, 1, 2, not_ready=(2,)),
        }
    )
    assert pods(replicas_of(api).replicas()) == [["r1-0"], ["r0-1", "r1-1"], ["r0-2", "r1-2"]]


def test_a_shard_is_usable_while_any_replica_of_it_is_listed():
    api = FakeServicesApi(
        {
            f"{R_SVC}-r0": replica_set(0, 0, 2),  # r0-1 deleted, not yet recreated
            f"{R_SVC}-r1": replica_set(1, 0, 1),  # r1-2 too
        }
    )
    directory = replicas_of(api)
    assert pods(directory.replicas()) == [["r0-0", "r1-0"], ["r1-1"], ["r0-2"]]
    api.slices[f"{R_SVC}-r1"] = replica_set(1, 0)  # now shard 1 has no replica at all
    with pytest.raises(Unavailable, match=r"shards \[1\] have no replica listed"):
        directory.replicas()
    with pytest.raises(Unavailable, match=r"shards \[1\]"):
        directory.urls()


def test_a_service_that_cannot_be_listed_costs_its_replicas_only():
    api = FakeServicesApi(
        {f"{R_SVC}-r0": replica_set(0, 0, 1), f"{R_SVC}-r1": replica_set(1, 0, 1)}
    )
    api.failing = {f"{R_SVC}-r1"}  # never listed
    directory = replicas_of(api, shards=2)
    assert pods(directory.replicas()) == [["r0-0"], ["r0-1"]]
    api.failing = set()
    assert pods(directory.replicas()) == [["r0-0", "r1-0"], ["r0-1", "r1-1"]]
    api.failing = {f"{R_SVC}-r0", f"{R_SVC}-r1"}  # the API server is down: the last lists
    assert pods(directory.replicas()) == [["r0-0", "r1-0"], ["r0-1", "r1-1"]]
    fresh = replicas_of(api, shards=2)  # a process that never listed anything
    with pytest.raises(Unavailable, match="cannot list the indexer replicas"):
        fresh.replicas()


def test_the_shard_count_is_fixed_and_pods_beyond_it_are_not_used():
    api = FakeServicesApi(
        {f"{R_SVC}-r0": replica_set(0, 0, 1, 2), f"{R_SVC}-r1": replica_set(1, 0, 1)}
    )
    assert pods(replicas_of(api, shards=2).replicas()) == [["r0-0", "r1-0"], ["r0-1", "r1-1"]]
    with pytest.raises(Unavailable, match=r"shards \[3\] have no replica"):
        replicas_of(api, shards=4).replicas()
    with pytest.raises(ValueError, match="VDUP_INDEXER_SHARDS"):
        replicas_of(api, shards=0)


def test_one_replica_reads_the_service_itself_and_lists_are_cached_for_the_ttl():
    clock = Clock()
    api = FakeServicesApi(
        {R_SVC: [eps_slice(endpoint(0, "10.0.0.1"), endpoint(1, "10.0.0.2"), svc=R_SVC)]}
    )
    directory = KubernetesReplicas(
        replica_services(R_SVC, 1), NS, 8090, shards=2, ttl_s=10, api=api, clock=clock
    )
    for _ in range(3):
        assert pods(directory.replicas()) == [["0"], ["1"]]
    assert api.calls == [R_SVC]  # not one API-server read per search
    clock.now += 10
    directory.urls()
    assert api.calls == [R_SVC, R_SVC]


def test_the_replicated_catalog_finds_replicas_through_kubernetes(monkeypatch):
    from vdup.indexer import replicated
    from vdup.settings import Settings

    class NoTruth:
        def __init__(self, url: str) -> None:
            self.url = url

        def close(self) -> None:
            pass

    monkeypatch.setattr(replicated, "Truth", NoTruth)
    settings = Settings(
        database_url="postgresql://vdup@db/vdup",
        indexer_discovery="kubernetes",
        indexer_service=R_SVC,
        indexer_namespace=NS,
        indexer_replicas=2,
        indexer_shards=3,
    )
    catalog = replicated.ReplicatedCatalog.from_settings(settings)
    try:
        assert isinstance(catalog.replicas, KubernetesReplicas)
        assert catalog.replicas.services == [f"{R_SVC}-r0", f"{R_SVC}-r1"]
        assert catalog.replicas.shards == 3
    finally:
        catalog.close()
    static = replicated.ReplicatedCatalog.from_settings(
        Settings(database_url="postgresql://vdup@db/vdup", indexer_urls="http://a:1|http://b:1")
    )
    try:
        assert static.replicas.replicas() == [["http://a:1", "http://b:1"]]
    finally:
        static.close()
