"""build_checker: process-wide settings it applies.

Run in a fresh interpreter: the BLAS thread count is process state, and OpenBLAS does not
always let a test raise it again once another test's checker has capped it."""

import json
import subprocess
import sys

import pytest

PROBE = r"""
import json, os, sys
from concurrent.futures import ThreadPoolExecutor
import numpy as np
from threadpoolctl import threadpool_info
from vdup.catalog.local import LocalCatalog
from vdup.runtime import build_checker
from vdup.settings import Settings

def numpy_blas():
    root = os.path.dirname(np.__file__)  # .../numpy; its wheel's libraries: .../numpy.libs
    return sorted({lib["num_threads"] for lib in threadpool_info()
                   if lib["user_api"] == "blas" and lib["filepath"].startswith(root)})

before = numpy_blas()
catalog = LocalCatalog(sys.argv[2])
build_checker(Settings(data_dir=sys.argv[2], blas_threads=int(sys.argv[1])), catalog=catalog)
with ThreadPoolExecutor(1) as pool:  # the API checks on worker threads
    after = pool.submit(numpy_blas).result()
catalog.close()
print(json.dumps({"before": before, "after": after}))
"""


def _probe(threads: int, tmp_path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(threads), str(tmp_path / str(threads))],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_checker_caps_numpy_blas_threads_for_every_thread(tmp_path):
    """blas_threads=1: numpy's BLAS runs one thread, seen from a worker thread; 0 leaves it."""
    capped, default = _probe(1, tmp_path), _probe(0, tmp_path)
    if not default["before"]:
        pytest.skip("numpy's BLAS is not one threadpoolctl can see")
    assert capped["after"] == [1]
    assert default["after"] == default["before"]
