"""build_checker: process-wide settings it applies."""

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from vdup.catalog.local import LocalCatalog
from vdup.runtime import build_checker
from vdup.settings import Settings


def _numpy_blas_threads() -> set[int]:
    """Threads of numpy's own BLAS, the one whose idle threads spin during a check."""
    root = os.path.dirname(np.__file__)  # .../numpy; its wheel's libraries: .../numpy.libs
    libs = [lib for lib in threadpool_info()
            if lib["user_api"] == "blas" and lib["filepath"].startswith(root)]
    if not libs:
        pytest.skip("numpy's BLAS is not one threadpoolctl can see")
    return {lib["num_threads"] for lib in libs}


def test_checker_caps_numpy_blas_threads_for_every_thread(tmp_path):
    """The API checks on worker threads: the cap set when the checker is built holds there;
    blas_threads=0 leaves the count as it was."""
    with threadpool_limits(2, user_api="blas"):  # restored on exit
        catalog = LocalCatalog(tmp_path / "c")
        with ThreadPoolExecutor(1) as pool:
            build_checker(Settings(data_dir=tmp_path, blas_threads=0), catalog=catalog)
            assert pool.submit(_numpy_blas_threads).result() == {2}
            build_checker(Settings(data_dir=tmp_path, blas_threads=1), catalog=catalog)
            assert pool.submit(_numpy_blas_threads).result() == {1}
        catalog.close()
