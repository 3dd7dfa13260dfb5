"""kubernetes-validate --strict on every render, against current Kubernetes versions. It only
warns (exit 0) on a kind it has no schema for, so its output is read too: only the
prometheus-operator CRDs and the CloudNativePG Cluster may lack a schema (no registry here carries
the CNPG CRDs; test_replicated.py checks the fields the chart sets on it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import K8S_VERSIONS, Rendered, run, tool

pytestmark = pytest.mark.slow  # kubernetes-validate over the rendered chart

KNOWN_CRDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("postgresql.cnpg.io/v1", "Cluster"),
}


def test_kubernetes_validate_strict(rendered: Rendered, tmp_path: Path) -> None:
    manifest = tmp_path / f"{rendered.case}.yaml"
    manifest.write_text(rendered.text)
    cmd: list[str | Path] = [tool("kubernetes-validate"), "--strict"]
    for version in K8S_VERSIONS:
        cmd += ["-k", version]
    result = run([*cmd, manifest])
    output = result.stdout + result.stderr
    problems = "\n".join(line for line in output.splitlines() if not line.startswith("INFO "))
    assert result.returncode == 0, problems
    unknown = [
        (m.group(2), m.group(1))
        for m in re.finditer(r"Couldn't find schema for kind (\S+) with api version (\S+)", output)
    ]
    unexpected = sorted(set(unknown) - KNOWN_CRDS)
    assert not unexpected, f"no schema for {unexpected}:\n{problems}"
    crds = sum(1 for o in rendered.objects if (o["apiVersion"], o["kind"]) in KNOWN_CRDS)
    assert output.count(" passed for resource ") == (len(rendered.objects) - crds) * len(
        K8S_VERSIONS
    ), problems
