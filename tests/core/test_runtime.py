"""build_checker: the process-wide settings it applies."""

from threadpoolctl import threadpool_info, threadpool_limits

from vdup.catalog.local import LocalCatalog
from vdup.runtime import build_checker
from vdup.settings import Settings


class _NoExtractor:
    def extract(self, data: bytes):
        raise AssertionError("not used")

    def ready(self) -> bool:
        return True


def _blas_threads() -> set[int]:
    return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}


def test_checker_caps_blas_threads(tmp_path):
    """numpy's and FAISS's BLAS run on settings.blas_threads threads in a checking process;
    0 leaves them as they were."""
    with threadpool_limits(2, user_api="blas"):  # restored on exit
        assert _blas_threads() == {2}
        catalog = LocalCatalog(tmp_path / "a")
        build_checker(Settings(data_dir=tmp_path, blas_threads=0), _NoExtractor(), catalog)
        assert _blas_threads() == {2}
        build_checker(Settings(data_dir=tmp_path, blas_threads=1), _NoExtractor(), catalog)
        assert _blas_threads() == {1}
        catalog.close()
