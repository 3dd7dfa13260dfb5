"""Shard discovery from EndpointSlices, with the kubernetes client's own model objects (no
cluster): ordered by pod ordinal, stable DNS names, and refusal of any list that would move
videos to other shards."""

from __future__ import annotations

import kubernetes.client as k
import pytest

from vdup.errors import Unavailable
from vdup.indexer.discovery import (
    KubernetesShards,
    StaticShards,
    endpoints_from_slices,
    ordered_urls,
)

SVC, NS = "vdup-indexer-headless", "vdup"


def endpoint(ordinal: int, ip: str, ready: bool = True, hostname: bool = True,
             terminating: bool = False) -> k.V1Endpoint:
    pod = f"vdup-indexer-{ordinal}"
    return k.V1Endpoint(
        addresses=[ip], hostname=pod if hostname else None,
        conditions=k.V1EndpointConditions(ready=ready, serving=ready, terminating=terminating),
        target_ref=k.V1ObjectReference(kind="Pod", name=pod, namespace=NS),
    )


def eps_slice(*endpoints: k.V1Endpoint, port: int = 8090, family: str = "IPv4"):
    return k.V1EndpointSlice(
        address_type=family, endpoints=list(endpoints),
        ports=[k.DiscoveryV1EndpointPort(name="http", port=port, protocol="TCP")],
        metadata=k.V1ObjectMeta(name=f"{SVC}-abcde", namespace=NS,
                                labels={"kubernetes.io/service-name": SVC}),
    )


def test_shards_are_ordered_by_pod_ordinal_across_slices_not_by_address():
    slices = [eps_slice(endpoint(2, "10.0.0.1"), endpoint(10, "10.0.0.2")),
              eps_slice(endpoint(0, "10.0.0.9"), endpoint(1, "10.0.0.3", ready=False))]
    eps = endpoints_from_slices(slices, SVC, NS, port=1)
    assert [e.ordinal for e in eps] == [0, 1, 2, 10]
    assert eps[0].url == f"http://vdup-indexer-0.{SVC}.{NS}.svc:8090"
    assert eps[1].ready is False  # a loading shard keeps its place (publishNotReadyAddresses)


def test_addresses_are_used_when_there_is_no_hostname():
    eps = endpoints_from_slices([eps_slice(endpoint(0, "10.1.2.3", hostname=False), port=9000),
                                 eps_slice(endpoint(1, "fd00::5", hostname=False),
                                           family="IPv6")], SVC, NS, port=1)
    assert [e.url for e in eps] == ["http://10.1.2.3:9000", "http://[fd00::5]:8090"]


def test_a_pod_listed_twice_keeps_its_ready_entry():
    slices = [eps_slice(endpoint(0, "10.0.0.1", ready=False, hostname=False, terminating=True)),
              eps_slice(endpoint(0, "10.0.0.7", hostname=False))]
    (ep,) = endpoints_from_slices(slices, SVC, NS, port=8090)
    assert ep.url == "http://10.0.0.7:8090" and ep.ready


def test_a_gap_or_a_short_list_is_refused():
    three = endpoints_from_slices([eps_slice(*(endpoint(i, f"10.0.0.{i}") for i in (0, 1, 2)))],
                                  SVC, NS, 8090)
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


def test_static_shards_keep_the_given_order():
    assert StaticShards(["http://b:1/", "http://a:1"]).urls() == ["http://b:1", "http://a:1"]
    with pytest.raises(ValueError):
        StaticShards([])
