"""k8s/ holds exactly what tools/render-k8s.sh renders from the chart, and kustomize builds it."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import ROOT, run, tool

K8S = ROOT / "k8s"
PROFILES = ("cpu-small", "gpu", "replicated")


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def test_k8s_matches_the_chart(tmp_path: Path) -> None:
    tool("helm")
    result = run(["bash", ROOT / "tools" / "render-k8s.sh", "--out", tmp_path])
    assert result.returncode == 0, result.stderr
    fresh = _tree(tmp_path)
    committed = {k: v for k, v in _tree(K8S).items() if k.split("/")[0] in PROFILES}
    assert sorted(fresh) == sorted(committed), (
        "k8s/ has other files than the chart renders: run tools/render-k8s.sh"
    )
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"k8s/ is out of date with the chart, run tools/render-k8s.sh: {stale}"


@pytest.mark.parametrize("profile", PROFILES)
def test_kustomize_builds(profile: str) -> None:
    result = run([tool("kubectl"), "kustomize", K8S / profile])
    assert result.returncode == 0, result.stderr
    files = [p for p in (K8S / profile).rglob("*.yaml") if p.name != "kustomization.yaml"]
    assert result.stdout.count("\nkind: ") + result.stdout.startswith("kind: ") >= len(files)
    assert "kind: Secret" not in result.stdout, "plain manifests must not carry API keys"
