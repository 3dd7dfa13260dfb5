"""build_checker: settings that reach the checker."""

from concurrent.futures import ThreadPoolExecutor

from threadpoolctl import threadpool_info

from vdup.catalog.local import LocalCatalog
from vdup.runtime import build_checker
from vdup.settings import Settings


def _blas_threads() -> set[int]:
    return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}


class _SpyCatalog(LocalCatalog):
    """Records the BLAS thread counts seen while searching."""

    seen: list[set[int]]

    def search(self, *args, **kwargs):
        self.seen.append(_blas_threads())
        return super().search(*args, **kwargs)


def test_a_check_runs_with_settings_blas_threads_in_whatever_thread_runs_it(tmp_path):
    """The API runs checks on worker threads; the cap must hold there, during the search."""
    from media_factory import make_video

    data = make_video(5, duration_s=2.0)
    for threads, expected in ((1, {1}), (0, None)):
        catalog = _SpyCatalog(tmp_path / str(threads))
        catalog.seen = []
        checker = build_checker(Settings(data_dir=tmp_path, blas_threads=threads),
                                catalog=catalog)
        with ThreadPoolExecutor(1) as pool:
            default = pool.submit(_blas_threads).result()
            pool.submit(checker.check, data, "v").result()
            after = pool.submit(_blas_threads).result()
        catalog.close()
        assert catalog.seen == [expected or default]
        assert after == default  # restored after the check
