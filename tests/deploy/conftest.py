"""Shared fixtures of the deployment checks: the offline tools, and the chart rendered per case.

The checks need helm, kubectl, promtool and kubernetes-validate in ``.tools/bin``, which
``tools/install-k8s-tools.sh`` installs (``make check-k8s`` runs it first). Without them the
tests that need them are skipped with that reason; the rest (metric definitions, Dockerfiles)
run anyway.

Rendering is done once per session and case: ``helm template`` of release "vdup" in namespace
"vdup" with one values file plus, for some cases, ``--set`` overrides that switch on the
features the values files leave off, so every template is rendered and checked at least once.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from support import REPO

ROOT = REPO
TOOLS_BIN = ROOT / ".tools" / "bin"
CHART = ROOT / "helm" / "vdup"
RELEASE = "vdup"
NAMESPACE = "vdup"
#: Kubernetes versions the rendered objects are validated against (kubectl from the tools is 1.33).
K8S_VERSIONS = ("1.33.0", "1.37.0")
#: The values files the chart ships; each is linted and rendered.
VALUES_FILES = ("values.yaml", "values-cpu-small.yaml", "values-gpu.yaml", "values-replicated.yaml")

ALL_FEATURES = (
    "api.ingress.enabled=true",
    "api.ingress.className=nginx",
    "api.ingress.tls[0].secretName=vdup-tls",
    "api.ingress.tls[0].hosts[0]=vdup.example.com",
    "api.autoscaling.requestsPerSecond.enabled=true",
    "api.topologySpreadConstraints[0].maxSkew=1",
    "api.topologySpreadConstraints[0].topologyKey=kubernetes.io/hostname",
    "api.topologySpreadConstraints[0].whenUnsatisfiable=ScheduleAnyway",
    "api.fetchAllow={example.com,10.0.0.0/8}",
    "tracing.otlpEndpoint=http://otel-collector.observability:4317",
    "networkPolicy.api.allowFrom[0].namespaceSelector.matchLabels.name=ingress-nginx",
    "imagePullSecrets[0].name=regcred",
    "triton.autoscaling.enabled=true",
    "triton.gpu.enabled=true",
    "monitoring.serviceMonitor.enabled=true",
    "monitoring.prometheusRule.enabled=true",
    "monitoring.dashboards.enabled=true",
)

#: Render cases: name -> (values file, --set overrides).
CASES: dict[str, tuple[str, tuple[str, ...]]] = {
    "default": ("values.yaml", ()),
    "cpu-small": ("values-cpu-small.yaml", ()),
    "gpu": ("values-gpu.yaml", ()),
    "all-features": ("values.yaml", ALL_FEATURES),
    "static-discovery-no-triton": (
        "values.yaml",
        (
            "indexer.discovery=static",
            "triton.enabled=false",
            "api.autoscaling.enabled=false",
            "api.auth.existingSecret=my-keys",
            "api.auth.existingSecretKey=keys",
        ),
    ),
    # The replicated tier: a CloudNativePG Cluster, 2 shards x 2 replicas, EndpointSlice discovery.
    "replicated": ("values-replicated.yaml", ()),
    # ... and with a managed database (a Secret with the URL), 3 shards x 3 replicas, static
    # discovery, soft anti-affinity, the indexer ServiceMonitor over the 3 replica Services.
    "replicated-managed-static": (
        "values.yaml",
        (
            "database.existingSecret=vdup-postgres",
            "database.existingSecretKey=url",
            "indexer.replicas=3",
            "indexer.replication.replicasPerShard=3",
            "indexer.replication.antiAffinity=preferred",
            "indexer.discovery=static",
            "monitoring.serviceMonitor.enabled=true",
        ),
    ),
}

#: Labels the StatefulSet controller adds to each pod it creates.
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"


def tool(name: str) -> Path:
    """Path of an offline tool in .tools/bin, or skip the calling test with the reason."""
    path = TOOLS_BIN / name
    if not path.is_file():
        pytest.skip(
            f"{name} is missing from .tools/bin: run tools/install-k8s-tools.sh "
            "(make check-k8s does) to install helm, kubectl, promtool and kubernetes-validate"
        )
    return path


def run(cmd: list[str | Path], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing text output, never raising on a non-zero exit."""
    return subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, check=False, **kwargs
    )


def helm_template(
    values_file: str, sets: tuple[str, ...] = (), *extra: str
) -> subprocess.CompletedProcess[str]:
    cmd: list[str | Path] = [
        tool("helm"),
        "template",
        RELEASE,
        CHART,
        "--namespace",
        NAMESPACE,
        "-f",
        CHART / values_file,
    ]
    for s in sets:
        cmd += ["--set", s]
    return run([*cmd, *extra])


@dataclass(frozen=True)
class Rendered:
    """One render of the chart: the YAML text and its objects."""

    case: str
    text: str
    objects: tuple[dict[str, Any], ...]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        return next((o for o in self.of_kind(kind) if o["metadata"]["name"] == name), None)

    def workloads(self) -> list[dict[str, Any]]:
        """Deployments and StatefulSets (objects with a pod template)."""
        return [o for o in self.objects if o["kind"] in ("Deployment", "StatefulSet")]

    def pods(self) -> list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]:
        """(owner object, pod metadata, pod spec) for every workload, Job and bare Pod."""
        out = [
            (w, w["spec"]["template"]["metadata"], w["spec"]["template"]["spec"])
            for w in [*self.workloads(), *self.of_kind("Job")]
        ]
        out += [(p, p["metadata"], p["spec"]) for p in self.of_kind("Pod")]
        return out

    def statefulset_pods(self) -> list[tuple[dict[str, Any], int, dict[str, str]]]:
        """(StatefulSet, ordinal, labels) of every pod the StatefulSets would create: the
        template's labels plus the pod-name and pod-index labels the controller adds."""
        return [
            (
                sts,
                i,
                {
                    **sts["spec"]["template"]["metadata"]["labels"],
                    POD_NAME_LABEL: f"{sts['metadata']['name']}-{i}",
                    POD_INDEX_LABEL: str(i),
                },
            )
            for sts in self.of_kind("StatefulSet")
            for i in range(sts["spec"]["replicas"])
        ]


_RENDER_CACHE: dict[str, Rendered] = {}


def render_case(case: str) -> Rendered:
    if case not in _RENDER_CACHE:
        values_file, sets = CASES[case]
        result = helm_template(values_file, sets)
        assert result.returncode == 0, f"helm template failed for case {case}:\n{result.stderr}"
        objects = tuple(o for o in yaml.safe_load_all(result.stdout) if o)
        _RENDER_CACHE[case] = Rendered(case, result.stdout, objects)
    return _RENDER_CACHE[case]


@pytest.fixture(params=sorted(CASES))
def rendered(request: pytest.FixtureRequest) -> Rendered:
    """The chart rendered for each case in CASES."""
    return render_case(request.param)


def labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    """True when every selector label is present with the same value (matchLabels semantics)."""
    return all(labels.get(k) == v for k, v in selector.items())


def selector_matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """LabelSelector (matchLabels and matchExpressions) against a label set."""
    if not labels_match(selector.get("matchLabels", {}), labels):
        return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True
