"""One real Triton server for the whole session, from the committed repository installed into a
temporary directory (the Helm init container's path), on free loopback ports.

The fixture skips, with the reason, only when the ``tritonserver`` binary itself cannot run on
this machine (probed with an empty repository); a model that fails to load fails the tests.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from support import REPO
from vdup.devstack.triton import TritonServer, TritonStartError
from vdup.settings import Settings
from vdup.triton.repository import install


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server(repository: Path, log: Path, **kwargs) -> TritonServer:
    return TritonServer(
        repository,
        http_port=free_port(),
        grpc_port=free_port(),
        metrics_port=free_port(),
        log_path=log,
        install_models=False,
        ready_timeout_s=90,
        exit_timeout_s=2,
        **kwargs,
    )


@pytest.fixture(scope="session")
def triton_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("triton")
    empty = root / "empty"
    empty.mkdir()
    try:
        with _server(empty, root / "probe.log", check_repository=False):
            pass
    except TritonStartError as exc:
        pytest.skip(f"tritonserver cannot run on this machine: {str(exc).splitlines()[0]}")
    repository = root / "models"
    for _ in install(repository, Settings().sscd_model, REPO / "model_repository"):
        pass
    server = _server(repository, root / "triton.log")
    try:
        server.__enter__()
    except TritonStartError as exc:
        pytest.fail(f"Triton did not serve the model repository:\n{exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def triton_extractor(triton_server):
    from vdup.triton.client import TritonExtractor

    client = TritonExtractor(triton_server.grpc_url, timeout_s=60)
    yield client
    client.close()
