"""Assertions on the rendered objects: probes, security contexts, volumes, PVC templates, HPA
targets, selectors against pod labels, Services against pods and ports, NetworkPolicies, RBAC,
ServiceMonitors, checksum annotations, and the settings that wire the API to its backends.
The replicated tier's own objects (database, hook Job, per-shard budgets, anti-affinity) are in
test_replicated.py."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import yaml

from vdup.indexer.discovery import replica_services

from .conftest import (
    CHART,
    NAMESPACE,
    POD_NAME_LABEL,
    Rendered,
    helm_template,
    render_case,
    selector_matches,
)

COMPONENT = "app.kubernetes.io/component"
MAIN_CONTAINERS = {"api", "indexer", "triton"}
PROBE_PATHS = {
    "api": ("/healthz", "/readyz"),
    "indexer": ("/healthz", "/readyz"),
    "triton": ("/v2/health/live", "/v2/health/ready"),
}


def _containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def _pods_of(
    rendered: Rendered, selector: dict[str, Any]
) -> list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]:
    return [p for p in rendered.pods() if selector_matches(selector, p[1].get("labels", {}))]


def _workload(rendered: Rendered, component: str) -> dict[str, Any] | None:
    return next(
        (
            w
            for w in rendered.workloads()
            if w["spec"]["template"]["metadata"]["labels"].get(COMPONENT) == component
        ),
        None,
    )


def _indexer_sets(rendered: Rendered) -> list[dict[str, Any]]:
    """The indexer StatefulSets: one, or one per replica index (vdup.io/replica) in order."""
    sets = [
        w
        for w in rendered.workloads()
        if w["spec"]["template"]["metadata"]["labels"].get(COMPONENT) == "indexer"
    ]
    return sorted(sets, key=lambda w: int(w["metadata"]["labels"].get("vdup.io/replica", 0)))


def _replicated(rendered: Rendered) -> bool:
    return any("vdup.io/replica" in w["metadata"]["labels"] for w in _indexer_sets(rendered))


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e for e in container.get("env", [])}


def _configmap_data(rendered: Rendered) -> dict[str, str]:
    api = _workload(rendered, "api")
    assert api is not None
    (ref,) = [
        s["configMapRef"]["name"]
        for s in api["spec"]["template"]["spec"]["containers"][0]["envFrom"]
    ]
    configmap = rendered.get("ConfigMap", ref)
    assert configmap is not None, f"API envFrom names ConfigMap {ref}, which is not rendered"
    return configmap["data"]


# ---- every object ------------------------------------------------------------------------------


def test_labels_and_namespace(rendered: Rendered) -> None:
    for obj in rendered.objects:
        labels = obj["metadata"].get("labels", {})
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        for key in (
            "app.kubernetes.io/name",
            "app.kubernetes.io/instance",
            COMPONENT,
            "app.kubernetes.io/managed-by",
        ):
            assert key in labels, f"{where} lacks label {key}"
        assert obj["metadata"].get("namespace") == NAMESPACE, f"{where} has no namespace"


# ---- pods ----------------------------------------------------------------------------------------


def test_workload_selectors_match_their_pod_labels(rendered: Rendered) -> None:
    for w in rendered.workloads():
        selector = w["spec"]["selector"]
        labels = w["spec"]["template"]["metadata"]["labels"]
        assert selector_matches(selector, labels), (
            f"{w['metadata']['name']}: selector does not match its pods"
        )
        others = [
            o
            for o in rendered.workloads()
            if o is not w
            and selector_matches(selector, o["spec"]["template"]["metadata"]["labels"])
        ]
        assert not others, (
            f"{w['metadata']['name']}: selector also matches {[o['metadata']['name'] for o in others]}"
        )


def test_spread_and_anti_affinity_select_their_own_pods(rendered: Rendered) -> None:
    for owner, meta, spec in rendered.pods():
        selectors = [c["labelSelector"] for c in spec.get("topologySpreadConstraints", [])]
        anti = spec.get("affinity", {}).get("podAntiAffinity", {})
        selectors += [
            t["podAffinityTerm"]["labelSelector"]
            for t in anti.get("preferredDuringSchedulingIgnoredDuringExecution", [])
        ]
        selectors += [
            t["labelSelector"]
            for t in anti.get("requiredDuringSchedulingIgnoredDuringExecution", [])
        ]
        for selector in selectors:
            assert selector_matches(selector, meta["labels"]), (
                f"{owner['metadata']['name']}: {selector} misses its own pods"
            )


def test_probes(rendered: Rendered) -> None:
    for owner, _, spec in rendered.pods():
        for c in spec["containers"]:
            if c["name"] not in MAIN_CONTAINERS:
                continue
            live, ready = PROBE_PATHS[c["name"]]
            ports = {p["name"] for p in c["ports"]}
            for kind, path in (
                ("livenessProbe", live),
                ("readinessProbe", ready),
                ("startupProbe", None),
            ):
                probe = c.get(kind)
                assert probe, f"{owner['metadata']['name']}/{c['name']} has no {kind}"
                assert probe["httpGet"]["port"] in ports
                if path:
                    assert probe["httpGet"]["path"] == path, f"{c['name']} {kind} path"
            assert c["lifecycle"]["preStop"], f"{c['name']} has no preStop"


def test_security_contexts(rendered: Rendered) -> None:
    for owner, _, spec in rendered.pods():
        where = owner["metadata"]["name"]
        pod_sc = spec["securityContext"]
        assert pod_sc["runAsNonRoot"] is True, where
        assert pod_sc["seccompProfile"]["type"] == "RuntimeDefault", where
        assert pod_sc.get("runAsUser", 0) != 0, where
        for c in _containers(spec):
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, f"{where}/{c['name']}"
            assert sc["allowPrivilegeEscalation"] is False, f"{where}/{c['name']}"
            assert sc["runAsNonRoot"] is True, f"{where}/{c['name']}"
            assert sc.get("runAsUser", pod_sc.get("runAsUser")) != 0, f"{where}/{c['name']}"
            assert "ALL" in sc["capabilities"]["drop"], f"{where}/{c['name']}"
            assert not sc["capabilities"].get("add"), f"{where}/{c['name']}"
            assert sc["seccompProfile"]["type"] == "RuntimeDefault", f"{where}/{c['name']}"
            assert c.get("resources"), f"{where}/{c['name']} has no resources"


def test_volume_mounts_have_volumes_and_tmp_is_writable(rendered: Rendered) -> None:
    for owner, _, spec in rendered.pods():
        volumes = {v["name"] for v in spec.get("volumes", [])}
        volumes |= {
            t["metadata"]["name"] for t in owner.get("spec", {}).get("volumeClaimTemplates", [])
        }
        for c in _containers(spec):
            mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
            for _path, name in mounts.items():
                assert name in volumes, (
                    f"{owner['metadata']['name']}/{c['name']} mounts unknown volume {name}"
                )
            if c["name"] in MAIN_CONTAINERS | {"install-models"}:
                assert "/tmp" in mounts, (
                    f"{c['name']}: read-only root filesystem but no /tmp volume"
                )


def test_only_the_api_mounts_a_service_account_token(rendered: Rendered) -> None:
    for owner, meta, spec in rendered.pods():
        component = meta["labels"][COMPONENT]
        if component != "api":
            assert spec["automountServiceAccountToken"] is False, owner["metadata"]["name"]


def test_images_are_pinned(rendered: Rendered) -> None:
    for _, _, spec in rendered.pods():
        for c in _containers(spec):
            image = c["image"]
            assert "@sha256:" in image or (
                ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest")
            ), image


# ---- API -----------------------------------------------------------------------------------------


def test_api_checksum_annotations_follow_the_config() -> None:
    rendered = render_case("default")
    api = _workload(rendered, "api")
    assert api is not None
    annotations = api["spec"]["template"]["metadata"]["annotations"]
    for key in ("checksum/config", "checksum/secret"):
        assert re.fullmatch(r"[0-9a-f]{64}", annotations[key]), f"{key} is not a sha256"
    changed = helm_template("values.yaml", ("api.maxConcurrency=7",))
    assert changed.returncode == 0, changed.stderr
    api2 = next(
        o
        for o in yaml.safe_load_all(changed.stdout)
        if o and o["kind"] == "Deployment" and o["metadata"]["name"] == api["metadata"]["name"]
    )
    assert (
        api2["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        != annotations["checksum/config"]
    ), "checksum/config did not change with the ConfigMap: pods would not roll"


def test_api_settings_point_at_rendered_backends(rendered: Rendered) -> None:
    data = _configmap_data(rendered)
    if _workload(rendered, "triton"):
        host, port = data["VDUP_TRITON_URL"].rsplit(":", 1)
        name, ns = host.split(".")[:2]
        service = rendered.get("Service", name)
        assert service is not None and ns == NAMESPACE, data["VDUP_TRITON_URL"]
        assert int(port) in [p["port"] for p in service["spec"]["ports"] if p["name"] == "grpc"]
        assert selector_matches(
            {"matchLabels": service["spec"]["selector"]},
            _workload(rendered, "triton")["spec"]["template"]["metadata"]["labels"],
        )
    else:
        assert "VDUP_TRITON_URL" not in data
        assert not [
            s for s in rendered.of_kind("Service") if s["metadata"]["labels"][COMPONENT] == "triton"
        ]
    sets = _indexer_sets(rendered)
    assert sets
    sts = sets[0]
    assert all(s["spec"]["replicas"] == sts["spec"]["replicas"] for s in sets)
    if data.get("VDUP_INDEXER_DISCOVERY") == "kubernetes":
        # The Services the API will read, as the API itself derives them from its settings.
        if _replicated(rendered):
            services = replica_services(
                data["VDUP_INDEXER_SERVICE"], int(data["VDUP_INDEXER_REPLICAS"])
            )
        else:
            assert "VDUP_INDEXER_REPLICAS" not in data
            services = [data["VDUP_INDEXER_SERVICE"]]
        assert services == [s["spec"]["serviceName"] for s in sets]
        for name, owner in zip(services, sets, strict=True):
            headless = rendered.get("Service", name)
            assert headless is not None, name
            assert headless["spec"]["clusterIP"] == "None"
            assert int(data["VDUP_INDEXER_PORT"]) in [p["port"] for p in headless["spec"]["ports"]]
            selected = [
                w
                for w in sets
                if selector_matches(
                    {"matchLabels": headless["spec"]["selector"]},
                    w["spec"]["template"]["metadata"]["labels"],
                )
            ]
            assert selected == [owner], (
                f"{name} selects {[w['metadata']['name'] for w in selected]}"
            )
        assert data["VDUP_INDEXER_NAMESPACE"] == NAMESPACE
        assert "VDUP_INDEXER_URLS" not in data
        # The least shard count the API accepts: with it, a pod starting while a shard pod is
        # recreated answers 503 instead of placing videos on fewer shards. With replicas: the
        # shard count of the placement.
        assert data["VDUP_INDEXER_SHARDS"] == str(sts["spec"]["replicas"])
    else:
        entries = data["VDUP_INDEXER_URLS"].split(",")
        assert len(entries) == sts["spec"]["replicas"]
        for i, entry in enumerate(entries):
            urls = entry.split("|")  # a shard's replicas (StaticReplicas)
            assert len(urls) == len(sets)
            for url, owner in zip(urls, sets, strict=True):
                assert url.startswith(
                    f"http://{owner['metadata']['name']}-{i}."
                    f"{owner['spec']['serviceName']}.{NAMESPACE}.svc:"
                ), url


def test_api_keys_come_from_a_secret(rendered: Rendered) -> None:
    api = _workload(rendered, "api")
    ref = _env(api["spec"]["template"]["spec"]["containers"][0])["VDUP_API_KEYS"]["valueFrom"][
        "secretKeyRef"
    ]
    secret = rendered.get("Secret", ref["name"])
    if secret is None:
        assert rendered.case == "static-discovery-no-triton" and ref == {
            "name": "my-keys",
            "key": "keys",
        }, ref
    else:
        assert ref["key"] in secret["data"], ref
    for pod in rendered.of_kind("Pod"):
        assert _env(pod["spec"]["containers"][0])["API_KEYS"]["valueFrom"]["secretKeyRef"] == ref


def test_hpa_targets(rendered: Rendered) -> None:
    hpas = rendered.of_kind("HorizontalPodAutoscaler")
    adapter = yaml.safe_load(
        (CHART.parents[1] / "deploy" / "prometheus-adapter" / "values.yaml").read_text()
    )
    adapter_metrics = {r["name"]["as"] for r in adapter["rules"]["custom"]}
    for hpa in hpas:
        ref = hpa["spec"]["scaleTargetRef"]
        target = rendered.get(ref["kind"], ref["name"])
        assert target is not None and ref["apiVersion"] == "apps/v1", (
            f"HPA {hpa['metadata']['name']} targets missing {ref}"
        )
        assert "replicas" not in target["spec"], (
            f"{ref['name']} sets replicas although an HPA owns them"
        )
        assert (
            hpa["metadata"]["labels"][COMPONENT]
            == target["spec"]["template"]["metadata"]["labels"][COMPONENT]
        )
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        for metric in hpa["spec"]["metrics"]:
            if metric["type"] == "Resource":
                requests = target["spec"]["template"]["spec"]["containers"][0]["resources"][
                    "requests"
                ]
                assert metric["resource"]["name"] in requests, (
                    "a utilisation target needs a request"
                )
            elif metric["type"] == "Pods":
                assert metric["pods"]["metric"]["name"] in adapter_metrics, metric
    names = {h["spec"]["scaleTargetRef"]["name"] for h in hpas}
    for w in rendered.workloads():
        if w["kind"] == "Deployment" and w["metadata"]["name"] not in names:
            assert "replicas" in w["spec"], w["metadata"]["name"]


def test_ingress_routes_to_the_api_service(rendered: Rendered) -> None:
    for ingress in rendered.of_kind("Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                service = rendered.get("Service", backend["name"])
                assert service is not None, backend
                assert backend["port"]["name"] in [p["name"] for p in service["spec"]["ports"]]
                assert path["path"] not in ("/metrics", "/healthz", "/readyz")
        assert ingress["spec"]["ingressClassName"] == "nginx"
        assert ingress["spec"]["tls"][0]["secretName"] == "vdup-tls"


# ---- Services, PDBs, NetworkPolicies -----------------------------------------------------------


def test_services_select_pods_and_ports_exist(rendered: Rendered) -> None:
    for service in rendered.of_kind("Service"):
        pods = _pods_of(rendered, {"matchLabels": service["spec"]["selector"]})
        pods = [p for p in pods if p[0]["kind"] != "Pod"]
        assert pods, f"Service {service['metadata']['name']} selects no pods"
        for _, _, spec in pods:
            ports = {p["name"] for c in spec["containers"] for p in c.get("ports", [])}
            for port in service["spec"]["ports"]:
                assert port["targetPort"] in ports, (
                    f"{service['metadata']['name']}: targetPort {port['targetPort']} missing"
                )


def test_pdbs_select_exactly_one_workload(rendered: Rendered) -> None:
    """Each PDB selects one workload's pods; a replicated tier's per-shard budget selects one
    shard: the pod of that ordinal in every replica StatefulSet (test_replicated.py)."""
    for pdb in rendered.of_kind("PodDisruptionBudget"):
        selector = pdb["spec"]["selector"]
        if any(e["key"] == POD_NAME_LABEL for e in selector.get("matchExpressions", [])):
            pods = [
                (sts["metadata"]["name"], i)
                for sts, i, labels in rendered.statefulset_pods()
                if selector_matches(selector, labels)
            ]
            assert sorted(pods) == sorted(
                (w["metadata"]["name"], pods[0][1]) for w in _indexer_sets(rendered)
            ), f"PDB {pdb['metadata']['name']} selects {pods}"
            continue
        owners = {
            p[0]["metadata"]["name"] for p in _pods_of(rendered, selector) if p[0]["kind"] != "Pod"
        }
        assert len(owners) == 1, f"PDB {pdb['metadata']['name']} selects {owners}"


def test_network_policies(rendered: Rendered) -> None:
    policies = rendered.of_kind("NetworkPolicy")
    if not policies:
        return
    api_labels = _workload(rendered, "api")["spec"]["template"]["metadata"]["labels"]
    indexer_labels = _indexer_sets(rendered)[0]["spec"]["template"]["metadata"]["labels"]
    protected = {"triton", "indexer"}
    covered = set()
    for policy in policies:
        if policy["metadata"]["labels"][COMPONENT] == "database":
            covered.add("database")  # CloudNativePG's pods: test_replicated.py
            continue
        targets = _pods_of(rendered, policy["spec"]["podSelector"])
        assert targets, f"NetworkPolicy {policy['metadata']['name']} selects no pods"
        components = {p[1]["labels"][COMPONENT] for p in targets}
        assert len(components) == 1, components
        (component,) = components
        covered.add(component)
        ports = {
            p["name"]
            for _, _, spec in targets
            for c in spec["containers"]
            for p in c.get("ports", [])
        }
        for rule in policy["spec"]["ingress"]:
            for port in rule.get("ports", []):
                assert port["port"] in ports, (
                    f"{policy['metadata']['name']}: port {port['port']} not on the pods"
                )
            if component in protected:
                assert rule.get("from"), f"{component}: a rule without 'from' lets everyone in"
                for peer in rule["from"]:
                    if "podSelector" in peer and "namespaceSelector" not in peer:
                        # Replicas waiting to stop ask a lower replica's /readyz.
                        peer_replica = (
                            component == "indexer"
                            and _replicated(rendered)
                            and selector_matches(peer["podSelector"], indexer_labels)
                            and {p["port"] for p in rule["ports"]} == {"http"}
                        )
                        assert peer_replica or selector_matches(peer["podSelector"], api_labels), (
                            f"{component}: in-namespace peer {peer} is not the API"
                        )
                in_namespace = [p for p in rule["from"] if "namespaceSelector" not in p]
                if not in_namespace:
                    metric_ports = {p["port"] for p in rule.get("ports", [])}
                    assert metric_ports <= {"metrics", "http"}, rule
        if component == "triton":
            rules = policy["spec"]["ingress"]
            api_rule = next(
                r
                for r in rules
                if any("podSelector" in p and "namespaceSelector" not in p for p in r["from"])
            )
            assert {p["port"] for p in api_rule["ports"]} == {"http", "grpc"}
            assert all(
                "metrics" not in {p["port"] for p in r["ports"]}
                or all("namespaceSelector" in p for p in r["from"])
                for r in rules
            )
    expected = {"api", "indexer"} | ({"triton"} if _workload(rendered, "triton") else set())
    if rendered.of_kind("Cluster"):
        expected.add("database")
    assert covered == expected
    for pod in rendered.of_kind("Pod"):
        api_policy = next(
            p for p in policies if selector_matches(p["spec"]["podSelector"], api_labels)
        )
        for rule in api_policy["spec"]["ingress"]:
            if "from" in rule:
                assert any(
                    "podSelector" in peer
                    and selector_matches(peer["podSelector"], pod["metadata"]["labels"])
                    for peer in rule["from"]
                ), "the helm test pod cannot reach the API"


# ---- RBAC ------------------------------------------------------------------------------------------


def test_rbac_is_endpointslices_read_only(rendered: Rendered) -> None:
    api = _workload(rendered, "api")
    spec = api["spec"]["template"]["spec"]
    data = _configmap_data(rendered)
    roles = rendered.of_kind("Role") + rendered.of_kind("ClusterRole")
    assert not rendered.of_kind("ClusterRole") and not rendered.of_kind("ClusterRoleBinding")
    if data.get("VDUP_INDEXER_DISCOVERY") != "kubernetes":
        assert not roles and spec["automountServiceAccountToken"] is False
        return
    (role,) = roles
    assert role["rules"] == [
        {
            "apiGroups": ["discovery.k8s.io"],
            "resources": ["endpointslices"],
            "verbs": ["get", "list", "watch"],
        }
    ]
    (binding,) = rendered.of_kind("RoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    (subject,) = binding["subjects"]
    assert subject["kind"] == "ServiceAccount" and subject["name"] == spec["serviceAccountName"]
    assert rendered.get("ServiceAccount", spec["serviceAccountName"]) is not None
    assert spec["automountServiceAccountToken"] is True


# ---- indexer StatefulSet ----------------------------------------------------------------------


def test_indexer_statefulset(rendered: Rendered) -> None:
    for sts in _indexer_sets(rendered):
        _check_indexer_statefulset(rendered, sts)


def _check_indexer_statefulset(rendered: Rendered, sts: dict[str, Any]) -> None:
    assert sts["kind"] == "StatefulSet"
    headless = rendered.get("Service", sts["spec"]["serviceName"])
    assert headless is not None and headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    assert selector_matches(
        {"matchLabels": headless["spec"]["selector"]}, sts["spec"]["template"]["metadata"]["labels"]
    )
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"]["resources"]["requests"]["storage"]
    assert claim["spec"]["accessModes"]
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Retain",
        "whenScaled": "Retain",
    }
    spec = sts["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    assert {"name": "data", "mountPath": "/data"} in c["volumeMounts"]
    args = c["args"]
    assert args[0] == "indexer" and args[args.index("--data") + 1] == "/data"
    assert args[args.index("--shard-id") + 1] == "$(POD_NAME)"
    assert _env(c)["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    grace = spec["terminationGracePeriodSeconds"]
    sleep = int(c["lifecycle"]["preStop"]["exec"]["command"][-1].split()[-1])
    assert grace >= 60 and grace - sleep >= 60, "too little time left for the final snapshot"


# ---- Triton ------------------------------------------------------------------------------------------


def test_triton_deployment(rendered: Rendered) -> None:
    triton = _workload(rendered, "triton")
    if triton is None:
        assert rendered.case == "static-discovery-no-triton"
        return
    spec = triton["spec"]["template"]["spec"]
    (init,) = spec["initContainers"]
    assert init["command"] == ["vdup", "models", "install", "--dest", "/models"]
    assert {"name": "models", "mountPath": "/models"} in init["volumeMounts"]
    assert (
        init["image"]
        == _workload(rendered, "api")["spec"]["template"]["spec"]["containers"][0]["image"]
    )
    (c,) = spec["containers"]
    assert c["command"] == ["tritonserver"] and "--model-repository=/models" in c["args"]
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {
        "http": 8000,
        "grpc": 8001,
        "metrics": 8002,
    }
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert mounts["/models"]["readOnly"] is True
    shm = next(v for v in spec["volumes"] if v["name"] == mounts["/dev/shm"]["name"])
    assert shm["emptyDir"]["medium"] == "Memory"
    models = next(v for v in spec["volumes"] if v["name"] == "models")
    if "persistentVolumeClaim" in models:
        claim = rendered.get("PersistentVolumeClaim", models["persistentVolumeClaim"]["claimName"])
        assert claim is not None
        if "ReadWriteOnce" in claim["spec"]["accessModes"]:
            assert triton["spec"]["strategy"]["type"] == "Recreate"
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300, (
        "model loading needs a generous startupProbe"
    )
    gpu = c["resources"].get("limits", {}).get("nvidia.com/gpu")
    if rendered.case in ("gpu", "all-features"):
        assert gpu == 1
    else:
        assert gpu is None and "--allow-gpu-metrics=false" in c["args"]
    if rendered.case == "gpu":
        assert spec["nodeSelector"] and spec["tolerations"]


# ---- monitoring ------------------------------------------------------------------------------------------


def test_service_monitors_select_services_with_the_port(rendered: Rendered) -> None:
    monitors = rendered.of_kind("ServiceMonitor")
    if rendered.case in ("gpu", "all-features"):
        assert {m["metadata"]["labels"][COMPONENT] for m in monitors} == {
            "api",
            "indexer",
            "triton",
        }
    for monitor in monitors:
        services = [
            s
            for s in rendered.of_kind("Service")
            if selector_matches(monitor["spec"]["selector"], s["metadata"]["labels"])
        ]
        if monitor["metadata"]["labels"][COMPONENT] == "indexer":
            # Every indexer pod through its headless Service: one, or one per replica index.
            expected = sorted(s["spec"]["serviceName"] for s in _indexer_sets(rendered))
            assert sorted(s["metadata"]["name"] for s in services) == expected
        else:
            assert len(services) == 1, (
                f"ServiceMonitor {monitor['metadata']['name']} selects {len(services)} Services"
            )
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["port"] in [p["name"] for p in services[0]["spec"]["ports"]]
        component = monitor["metadata"]["labels"][COMPONENT]
        assert endpoint["relabelings"] == [
            {"action": "replace", "targetLabel": "job", "replacement": f"vdup-{component}"}
        ]


def test_dashboards_configmap(rendered: Rendered) -> None:
    maps = [
        m
        for m in rendered.of_kind("ConfigMap")
        if m["metadata"].get("labels", {}).get("grafana_dashboard") == "1"
    ]
    if rendered.case not in ("gpu", "all-features"):
        assert not maps
        return
    (dashboards,) = maps
    files = {p.name: p.read_text() for p in (CHART / "dashboards").glob("*.json")}
    assert set(dashboards["data"]) == set(files)
    for name, text in files.items():
        assert json.loads(dashboards["data"][name]) == json.loads(text)


def test_prometheus_rule_matches_the_rules_file(rendered: Rendered) -> None:
    rules = rendered.of_kind("PrometheusRule")
    if rendered.case not in ("gpu", "all-features"):
        assert not rules
        return
    (rule,) = rules
    expected = yaml.safe_load(
        (CHART.parents[1] / "deploy" / "prometheus" / "rules.yaml").read_text()
    )
    assert rule["spec"] == expected


def test_helm_test_pod(rendered: Rendered) -> None:
    (pod,) = rendered.of_kind("Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert pod["spec"]["restartPolicy"] == "Never"
    env = _env(pod["spec"]["containers"][0])
    host = env["API_URL"]["value"].removeprefix("http://").split(":")[0]
    service = rendered.get("Service", host.split(".")[0])
    assert service is not None and service["metadata"]["labels"][COMPONENT] == "api"
    assert env["VIDEO_URL"]["value"].startswith("http")
    assert "/check-video-duplicate" in pod["spec"]["containers"][0]["args"][0]


def test_secret_is_generated_when_no_keys_are_given() -> None:
    (secret,) = render_case("default").of_kind("Secret")
    assert len(base64.b64decode(secret["data"]["api-keys"])) == 32


def test_secret_holds_the_given_keys() -> None:
    result = helm_template("values.yaml", ("api.auth.apiKeys={k1,k2}",))
    assert result.returncode == 0, result.stderr
    (secret,) = [o for o in yaml.safe_load_all(result.stdout) if o and o["kind"] == "Secret"]
    assert base64.b64decode(secret["data"]["api-keys"]) == b"k1,k2"
