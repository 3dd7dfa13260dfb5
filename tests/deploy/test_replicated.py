"""The replicated tier in the chart: with a database (a CloudNativePG Cluster or a Secret holding
the URL of a managed one) the indexer is R StatefulSets of N read-only replicas, one headless
Service each; per-shard PodDisruptionBudgets keep a replica of every shard up; anti-affinity
keeps a shard's replicas on different nodes; a stopping replica waits for a lower one of its
shard; the schema is migrated by a hook Job; the URL only ever comes from a Secret. Without a
database the chart renders the shard tier as before."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from vdup.indexer.settings import ShardSettings

from .conftest import (
    POD_INDEX_LABEL,
    Rendered,
    helm_template,
    render_case,
    selector_matches,
)

COMPONENT = "app.kubernetes.io/component"
REPLICATED = ("replicated", "replicated-managed-static")
#: (replicas per shard, shards, Secret name, Secret key) of each replicated case.
SHAPE = {
    "replicated": (2, 2, "vdup-db-app", "uri"),
    "replicated-managed-static": (3, 3, "vdup-postgres", "url"),
}


def _render(*sets: str, values: str = "values.yaml", extra: tuple[str, ...] = ()) -> Rendered:
    result = helm_template(values, sets, *extra)
    assert result.returncode == 0, result.stderr
    return Rendered(
        "adhoc", result.stdout, tuple(o for o in yaml.safe_load_all(result.stdout) if o)
    )


def _managed(*sets: str) -> Rendered:
    return _render("database.existingSecret=vdup-postgres", *sets)


def _fails(*sets: str, values: str = "values.yaml", extra: tuple[str, ...] = ()) -> str:
    result = helm_template(values, sets, *extra)
    assert result.returncode != 0, f"--set {sets} was accepted"
    return result.stderr


def _indexer_sets(rendered: Rendered) -> list[dict[str, Any]]:
    sets = [
        s
        for s in rendered.of_kind("StatefulSet")
        if s["spec"]["template"]["metadata"]["labels"][COMPONENT] == "indexer"
    ]
    return sorted(sets, key=lambda s: s["metadata"]["name"])


def _indexer_pdbs(rendered: Rendered) -> list[dict[str, Any]]:
    return [
        p
        for p in rendered.of_kind("PodDisruptionBudget")
        if p["metadata"]["labels"][COMPONENT] == "indexer"
    ]


def _env_of(spec: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e for c in spec["containers"] for e in c.get("env", [])}


def _container(sts: dict[str, Any]) -> dict[str, Any]:
    (c,) = sts["spec"]["template"]["spec"]["containers"]
    return c


def _anti_terms(sts: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    anti = sts["spec"]["template"]["spec"].get("affinity", {}).get("podAntiAffinity", {})
    required = anti.get("requiredDuringSchedulingIgnoredDuringExecution", [])
    preferred = [
        t["podAffinityTerm"]
        for t in anti.get("preferredDuringSchedulingIgnoredDuringExecution", [])
    ]
    return required, preferred


# ---- without a database: the shard tier, unchanged ----------------------------------------------


def test_without_a_database_the_shards_own_their_data_as_before() -> None:
    rendered = render_case("default")
    assert not rendered.of_kind("Cluster") and not rendered.of_kind("Job")
    assert "VDUP_DATABASE_URL" not in rendered.text
    (sts,) = _indexer_sets(rendered)
    assert sts["metadata"]["name"] == "vdup-indexer"
    assert sts["spec"]["serviceName"] == "vdup-indexer-headless"
    assert "vdup.io/replica" not in sts["spec"]["template"]["metadata"]["labels"]
    assert "affinity" not in sts["spec"]["template"]["spec"]
    assert _container(sts)["lifecycle"]["preStop"]["exec"]["command"] == [
        "/bin/sh",
        "-c",
        "sleep 10",
    ]
    (pdb,) = _indexer_pdbs(rendered)
    assert (
        pdb["metadata"]["name"] == "vdup-indexer"
        and "matchExpressions" not in pdb["spec"]["selector"]
    )
    assert "unhealthyPodEvictionPolicy" not in pdb["spec"]
    (policy,) = [
        p
        for p in rendered.of_kind("NetworkPolicy")
        if p["metadata"]["labels"][COMPONENT] == "indexer"
    ]
    assert len(policy["spec"]["ingress"]) == 1  # the API and the scrapers only


def test_the_replication_values_are_inert_without_a_database() -> None:
    """Only a database switches the tier: every replication value left at anything renders the
    default (the API key is random per render, so compare without the Secret's data)."""

    def text(*sets: str) -> str:
        result = helm_template("values.yaml", ("api.auth.apiKeys={k}", *sets))
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert text() == text(
        "indexer.replication.replicasPerShard=5",
        "indexer.replication.antiAffinity=preferred",
        "indexer.replication.peerWaitSeconds=7",
        "database.cloudnativepg.instances=5",
        "database.migrate.enabled=false",
    )


# ---- R StatefulSets x N, one headless Service each ---------------------------------------------


@pytest.mark.parametrize("case", REPLICATED)
def test_r_statefulsets_of_n_replicas_each_behind_its_own_headless_service(case: str) -> None:
    rendered = render_case(case)
    replicas, shards, _, _ = SHAPE[case]
    sets = _indexer_sets(rendered)
    assert [s["metadata"]["name"] for s in sets] == [f"vdup-indexer-r{r}" for r in range(replicas)]
    for r, sts in enumerate(sets):
        spec = sts["spec"]
        assert spec["replicas"] == shards
        assert spec["updateStrategy"] == {"type": "RollingUpdate"}  # one pod at a time
        assert spec["podManagementPolicy"] == "Parallel"  # independent replicas start together
        assert spec["template"]["metadata"]["labels"]["vdup.io/replica"] == str(r)
        service = rendered.get("Service", spec["serviceName"])
        assert service is not None and service["metadata"]["name"] == sts["metadata"]["name"]
        assert service["spec"]["clusterIP"] == "None"
        assert service["spec"]["publishNotReadyAddresses"] is True
        assert service["spec"]["selector"]["vdup.io/replica"] == str(r)
        env = _env_of(spec["template"]["spec"])
        assert env["VDUP_INDEXER_SHARDS"]["value"] == str(shards)
        assert "VDUP_DATABASE_URL" in env
        args = _container(sts)["args"]
        assert args[args.index("--shard-id") + 1] == "$(POD_NAME)"
        for i in range(shards):  # the pod ordinal is the shard the replica serves
            pod = f"{sts['metadata']['name']}-{i}"
            assert ShardSettings(shard_id=pod, shards=shards).replica_shard() == i
    assert len(rendered.statefulset_pods()) == replicas * shards


def test_statefulset_names_fit_with_a_long_release_name() -> None:
    rendered = _managed("fullnameOverride=" + "x" * 44, "indexer.replication.replicasPerShard=10")
    for sts in _indexer_sets(rendered):
        # The pods' controller-revision-hash label is "<name>-<10 characters>", within 63.
        assert len(sts["metadata"]["name"]) <= 52, sts["metadata"]["name"]


def test_one_replica_per_shard() -> None:
    rendered = _managed("indexer.replication.replicasPerShard=1")
    (sts,) = _indexer_sets(rendered)
    assert sts["metadata"]["name"] == "vdup-indexer-r0"
    data = next(c for c in rendered.of_kind("ConfigMap") if c["metadata"]["name"] == "vdup-api")[
        "data"
    ]
    assert (data["VDUP_INDEXER_SERVICE"], data["VDUP_INDEXER_REPLICAS"]) == ("vdup-indexer-r0", "1")
    assert "affinity" not in sts["spec"]["template"]["spec"]  # nothing to keep apart
    assert _container(sts)["lifecycle"]["preStop"]["exec"]["command"][-1] == "sleep 10"
    (pdb,) = _indexer_pdbs(rendered)  # no other replica to fall back on: one shard at a time
    assert pdb["spec"]["maxUnavailable"] == 1
    assert "matchExpressions" not in pdb["spec"]["selector"]


# ---- the database URL: only ever from a Secret ------------------------------------------------


@pytest.mark.parametrize("case", REPLICATED)
def test_every_pod_reads_the_url_from_the_secret(case: str) -> None:
    rendered = render_case(case)
    _, _, name, key = SHAPE[case]
    readers = set()
    for owner, meta, spec in rendered.pods():
        env = _env_of(spec)
        if "VDUP_DATABASE_URL" in env:
            assert env["VDUP_DATABASE_URL"] == {
                "name": "VDUP_DATABASE_URL",
                "valueFrom": {"secretKeyRef": {"name": name, "key": key}},
            }, owner["metadata"]["name"]
            readers.add(meta["labels"][COMPONENT])
    assert readers == {"api", "indexer", "db-upgrade"}
    assert "postgresql://" not in rendered.text
    assert [s["metadata"]["name"] for s in rendered.of_kind("Secret")] == ["vdup-api-keys"]


@pytest.mark.parametrize(
    "override",
    [
        "database.url=postgresql://vdup:secret@db:5432/vdup",
        "database.password=secret",
        "database.cloudnativepg.password=secret",
        "database.existingSecret=Not_A_Name",
    ],
)
def test_the_schema_takes_no_url_or_password(override: str) -> None:
    assert "database" in _fails(override)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("indexer.replication.replicasPerShard=0", "replicasPerShard"),
        ("indexer.replication.replicasPerShard=11", "replicasPerShard"),  # names: "-r0".."-r9"
        ("indexer.replication.antiAffinity=sometimes", "antiAffinity"),
        ("database.cloudnativepg.instances=0", "instances"),
        ("database.migrate.unknown=1", "unknown"),
    ],
)
def test_the_schema_rejects_bad_replication_values(override: str, message: str) -> None:
    assert message in _fails(override)


def test_a_managed_database_and_cloudnativepg_together_are_refused() -> None:
    stderr = _fails("database.existingSecret=pg", "database.cloudnativepg.enabled=true")
    assert "not both" in stderr


# ---- PodDisruptionBudgets: one replica of every shard stays up ---------------------------------


@pytest.mark.parametrize("case", REPLICATED)
def test_per_shard_budgets_keep_a_replica_of_every_shard_up(case: str) -> None:
    rendered = render_case(case)
    replicas, shards, _, _ = SHAPE[case]
    pods = rendered.statefulset_pods()
    budgets = _indexer_pdbs(rendered)
    assert len(budgets) == shards
    covered: dict[str, list[str]] = {}
    for pdb in budgets:
        spec = pdb["spec"]
        assert spec["maxUnavailable"] < replicas  # so at least one of the shard's pods stays
        assert spec["unhealthyPodEvictionPolicy"] == "AlwaysAllow"  # a broken replica never blocks
        selected = [(s, i) for s, i, labels in pods if selector_matches(spec["selector"], labels)]
        assert len(selected) == replicas and len({i for _, i in selected}) == 1, selected
        for s, i in selected:
            covered.setdefault(f"{s['metadata']['name']}-{i}", []).append(pdb["metadata"]["name"])
    assert len(covered) == replicas * shards and all(len(v) == 1 for v in covered.values())

    # A drain evicts through these budgets: whatever the order, a shard keeps a replica.
    def drain(order: list[tuple[dict[str, Any], int, dict[str, str]]]) -> dict[int, int]:
        down: dict[str, int] = {}
        left = {i: replicas for i in range(shards)}
        for _, i, labels in order:
            (pdb,) = [p for p in budgets if selector_matches(p["spec"]["selector"], labels)]
            name = pdb["metadata"]["name"]
            if down.get(name, 0) < pdb["spec"]["maxUnavailable"]:  # the eviction is allowed
                down[name] = down.get(name, 0) + 1
                left[i] -= 1
        return left

    assert min(drain(pods).values()) >= 1
    assert min(drain(pods[::-1]).values()) >= 1
    # A whole replica set (e.g. every pod on one node pool) may go at once: N evictions allowed.
    first_set = [p for p in pods if p[0]["metadata"]["name"] == "vdup-indexer-r0"]
    assert sum(replicas - n for n in drain(first_set).values()) == shards


def test_a_budget_that_lets_every_replica_of_a_shard_go_is_refused() -> None:
    stderr = _fails("indexer.pdb.maxUnavailable=2", values="values-replicated.yaml")
    assert "replicasPerShard" in stderr


# ---- anti-affinity: the replicas of a shard on different nodes --------------------------------


@pytest.mark.parametrize("case", REPLICATED)
def test_anti_affinity_keeps_the_replicas_of_a_shard_apart(case: str) -> None:
    rendered = render_case(case)
    pods = rendered.statefulset_pods()
    for sts in _indexer_sets(rendered):
        required, preferred = _anti_terms(sts)
        (term,) = required if case == "replicated" else preferred
        assert not (preferred if case == "replicated" else required)
        assert term["topologyKey"] == "kubernetes.io/hostname"
        assert term["matchLabelKeys"] == [POD_INDEX_LABEL]
        for _, i, labels in pods:
            if (
                labels["vdup.io/replica"]
                != sts["spec"]["template"]["metadata"]["labels"]["vdup.io/replica"]
            ):
                continue
            # matchLabelKeys: the incoming pod's pod-index joins the selector ("key In (value)").
            selector = {
                "matchLabels": {**term["labelSelector"]["matchLabels"], POD_INDEX_LABEL: str(i)}
            }
            avoided = {
                (s["metadata"]["name"], j)
                for s, j, other in pods
                if selector_matches(selector, other)
            }
            assert avoided == {(s["metadata"]["name"], i) for s in _indexer_sets(rendered)}


def test_anti_affinity_modes_versions_and_user_affinity(tmp_path: Path) -> None:
    off = _render("indexer.replication.antiAffinity=none", values="values-replicated.yaml")
    assert all(_anti_terms(s) == ([], []) for s in _indexer_sets(off))
    stderr = _fails(values="values-replicated.yaml", extra=("--kube-version", "1.30.0"))
    assert "Kubernetes >= 1.31" in stderr
    _render(
        "indexer.replication.antiAffinity=none",
        values="values-replicated.yaml",
        extra=("--kube-version", "1.30.0"),
    )
    own = {
        "labelSelector": {"matchLabels": {"app": "noisy-neighbour"}},
        "topologyKey": "kubernetes.io/hostname",
    }
    node = {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [
                {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["index"]}]}
            ]
        }
    }
    values = tmp_path / "affinity.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "indexer": {
                    "affinity": {
                        "nodeAffinity": node,
                        "podAntiAffinity": {
                            "requiredDuringSchedulingIgnoredDuringExecution": [own]
                        },
                    }
                }
            }
        )
    )
    merged = _render(values="values-replicated.yaml", extra=("-f", str(values)))
    for sts in _indexer_sets(merged):
        affinity = sts["spec"]["template"]["spec"]["affinity"]
        assert affinity["nodeAffinity"] == node
        required, _ = _anti_terms(sts)
        assert required[0] == own and required[1]["matchLabelKeys"] == [POD_INDEX_LABEL]


# ---- rolling: a stopping replica waits for a lower replica of its shard -------------------------


class _Readyz(http.server.BaseHTTPRequestHandler):
    """A stand-in lower replica: answers the next status in ``script`` (then the last one)."""

    script: list[int] = [200]
    paths: list[str] = []

    def do_GET(self) -> None:
        cls = type(self)
        cls.paths.append(self.path)
        self.send_response(cls.script[min(len(cls.paths), len(cls.script)) - 1])
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def _prestop(wait_s: int, ready_checks: int) -> tuple[dict[str, Any], dict[str, Any]]:
    rendered = _render(
        f"indexer.replication.peerWaitSeconds={wait_s}",
        f"indexer.replication.peerReadySeconds={ready_checks}",
        "indexer.preStopSleepSeconds=0",
        values="values-replicated.yaml",
    )
    r0, r1 = _indexer_sets(rendered)
    return r0, r1


def test_a_stopping_replica_waits_until_a_lower_replica_of_its_shard_is_ready() -> None:
    r0, r1 = _prestop(wait_s=6, ready_checks=2)
    assert _container(r0)["lifecycle"]["preStop"]["exec"]["command"][-1] == "sleep 0"  # r0: none
    base = r0["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert r1["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == base + 6
    _, r1_short = _prestop(wait_s=2, ready_checks=2)
    peer = "http://vdup-indexer-r0-${i}.vdup-indexer-r0.vdup.svc:8090/readyz"
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Readyz)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def stop(sts: dict[str, Any], pod: str, script: list[int]) -> float:
        shell, flag, text = _container(sts)["lifecycle"]["preStop"]["exec"]["command"]
        assert (shell, flag) == ("/bin/sh", "-c") and peer in text
        local = text.replace(
            peer, f"http://127.0.0.1:{server.server_address[1]}/shard-${{i}}/readyz"
        ).replace("python3 ", f"{sys.executable} ")
        _Readyz.script, _Readyz.paths = script, []
        t0 = time.monotonic()
        subprocess.run(["/bin/sh", "-c", local], env={"POD_NAME": pod}, check=True, timeout=30)
        return time.monotonic() - t0

    try:
        # r0-1 ready: two checks in a row, then r1-1 stops; it asks its own shard's replica.
        assert stop(r1, "vdup-indexer-r1-1", [200]) < 4
        assert _Readyz.paths == ["/shard-1/readyz"] * 2
        # r0-0 is itself stopping (answers during its preStop sleep, then not) and comes back:
        # the streak starts again, r1-0 stops only after two passes in a row.
        stop(r1, "vdup-indexer-r1-0", [200, 503, 200, 200])
        assert _Readyz.paths == ["/shard-0/readyz"] * 4
        # r0-0 never ready: r1-0 serves on until peerWaitSeconds, then stops anyway.
        assert 1 <= stop(r1_short, "vdup-indexer-r1-0", [503]) < 5
        assert len(_Readyz.paths) >= 1
    finally:
        server.shutdown()
        server.server_close()
    off = _render("indexer.replication.peerWaitSeconds=0", values="values-replicated.yaml")
    assert _container(_indexer_sets(off)[1])["lifecycle"]["preStop"]["exec"]["command"] == [
        "/bin/sh",
        "-c",
        "sleep 10",
    ]
    assert all(
        len(p["spec"]["ingress"]) == 1
        for p in off.of_kind("NetworkPolicy")
        if p["metadata"]["labels"][COMPONENT] == "indexer"
    )
    # A streak no longer than the peer's own preStop sleep would miss a peer that is stopping.
    assert "peerReadySeconds" in _fails(
        "indexer.replication.peerReadySeconds=10", values="values-replicated.yaml"
    )


# ---- the schema migration hook -----------------------------------------------------------------


@pytest.mark.parametrize("case", REPLICATED)
def test_the_schema_is_migrated_by_a_hook_job(case: str) -> None:
    rendered = render_case(case)
    (job,) = rendered.of_kind("Job")
    annotations = job["metadata"]["annotations"]
    # CloudNativePG's Cluster is created with the release, so the first migration runs after it.
    hook = "post-install,pre-upgrade" if case == "replicated" else "pre-install,pre-upgrade"
    assert annotations["helm.sh/hook"] == hook
    assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
    spec = job["spec"]["template"]["spec"]
    assert spec["restartPolicy"] == "Never" and job["spec"]["backoffLimit"] >= 1
    assert job["spec"]["activeDeadlineSeconds"] > 0
    (c,) = spec["containers"]
    assert c["command"] == ["vdup", "db", "upgrade"]
    assert not _render("database.existingSecret=pg", "database.migrate.enabled=false").of_kind(
        "Job"
    )


def test_plain_manifests_leave_the_migration_to_the_api() -> None:
    k8s = Path(__file__).parents[2] / "k8s" / "replicated"
    assert not list(k8s.rglob("*job*.yaml"))  # no hooks there; the API upgrades at start-up
    assert (k8s / "database" / "cluster.yaml").is_file()


# ---- CloudNativePG ------------------------------------------------------------------------------


def test_the_cloudnativepg_cluster_and_its_secret() -> None:
    (cluster,) = render_case("replicated").of_kind("Cluster")
    assert cluster["apiVersion"] == "postgresql.cnpg.io/v1"
    assert cluster["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    spec = cluster["spec"]
    assert spec["instances"] == 3 and spec["storage"] == {"size": "20Gi"}
    assert spec["bootstrap"] == {"initdb": {"database": "vdup", "owner": "vdup"}}
    assert spec["resources"]["requests"] and spec["affinity"]["enablePodAntiAffinity"] is True
    custom = _render(
        "database.cloudnativepg.enabled=true",
        "database.cloudnativepg.name=catalog",
        "database.cloudnativepg.instances=1",
        "database.cloudnativepg.imageName=ghcr.io/cloudnative-pg/postgresql:17.2",
        "database.cloudnativepg.storage.storageClass=fast",
        "database.cloudnativepg.keepOnUninstall=false",
        extra=("--set-string", "database.cloudnativepg.parameters.max_connections=300"),
    )
    (cluster,) = custom.of_kind("Cluster")
    assert cluster["metadata"]["name"] == "catalog" and "annotations" not in cluster["metadata"]
    assert cluster["spec"]["instances"] == 1
    assert cluster["spec"]["imageName"] == "ghcr.io/cloudnative-pg/postgresql:17.2"
    assert cluster["spec"]["storage"]["storageClass"] == "fast"
    assert cluster["spec"]["postgresql"] == {"parameters": {"max_connections": "300"}}
    (api,) = [d for d in custom.of_kind("Deployment") if d["metadata"]["name"] == "vdup-api"]
    ref = _env_of(api["spec"]["template"]["spec"])["VDUP_DATABASE_URL"]["valueFrom"]
    assert ref == {"secretKeyRef": {"name": "catalog-app", "key": "uri"}}  # the operator's Secret


def test_only_the_release_and_the_operator_reach_postgresql() -> None:
    rendered = render_case("replicated")
    (policy,) = [
        p
        for p in rendered.of_kind("NetworkPolicy")
        if p["metadata"]["labels"][COMPONENT] == "database"
    ]
    assert policy["spec"]["podSelector"] == {"matchLabels": {"cnpg.io/cluster": "vdup-db"}}
    clients, instances, operator, metrics = policy["spec"]["ingress"]
    assert clients["ports"] == [{"port": 5432, "protocol": "TCP"}]
    reach = {
        meta["labels"][COMPONENT]
        for _, meta, _ in rendered.pods()
        if any(selector_matches(p["podSelector"], meta["labels"]) for p in clients["from"])
    }
    assert reach == {"api", "indexer", "db-upgrade"}  # not Triton, not the helm test
    assert instances == {"from": [{"podSelector": {"matchLabels": {"cnpg.io/cluster": "vdup-db"}}}]}
    (peer,) = operator["from"]
    assert peer["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "cnpg-system"
    }
    assert peer["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "cloudnative-pg"}
    assert {p["port"] for p in operator["ports"]} == {8000, 5432}
    assert all("namespaceSelector" in p for p in metrics["from"])
    assert metrics["ports"] == [{"port": 9187, "protocol": "TCP"}]
    # A managed database is outside the cluster: no policy (egress is not restricted).
    managed = render_case("replicated-managed-static")
    assert not [
        p
        for p in managed.of_kind("NetworkPolicy")
        if p["metadata"]["labels"][COMPONENT] == "database"
    ]
