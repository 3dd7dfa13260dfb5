"""Runs the real ``tritonserver`` binary shipped in the ``nvidia-pytriton`` wheel, on loopback,
with vdup's model repository: ``vdup triton``, the test fixture and ``vdup up`` all use
:class:`TritonServer`.

Why launch the binary directly rather than through PyTriton: we serve a model repository (the
same one the Helm chart serves with the official image), not Python callables. What the launch
has to get right, each learnt the hard way (``shared/NOTES.md``):

- the python backend's stub must match this interpreter's version and is *copied* (not linked)
  into a private backend directory next to links to ``libtriton_python.so`` and
  ``triton_python_backend_utils.py``;
- ``LD_LIBRARY_PATH`` holds the wheel's bundled libraries and this interpreter's ``LIBDIR``
  (the stub links ``libpython3.X.so``; a wrong one fails with
  ``'_thread.RLock' object has no attribute '_recursion_count'``);
- ``PATH`` starts with this interpreter's ``bin`` so the stubs import vdup and its packages;
- each server gets its own shared-memory prefix, so two servers on one machine never share
  the python backend's regions.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from vdup.devstack.process import Child

log = logging.getLogger(__name__)

DEFAULT_REPOSITORY = Path("model_repository")


class TritonStartError(RuntimeError):
    """The server could not be started or did not become ready (the message holds its log)."""


def wheel_root() -> Path:
    """``site-packages/pytriton/tritonserver`` of the installed ``nvidia-pytriton`` wheel."""
    try:
        import pytriton
    except ImportError as exc:
        raise TritonStartError("nvidia-pytriton is not installed in this environment") from exc
    return Path(pytriton.__file__).resolve().parent / "tritonserver"


def library_path() -> str:
    """``LD_LIBRARY_PATH`` for the server: the wheel's libraries and this Python's LIBDIR."""
    root = wheel_root()
    libs = root.parents[1] / "nvidia_pytriton.libs"
    parts = [str(libs), sysconfig.get_config_var("LIBDIR") or ""]
    parts += [p for p in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p]
    return os.pathsep.join(p for p in parts if p)


def build_backend_dir(dest: Path) -> Path:
    """Make ``dest/python`` the python backend for this interpreter; returns ``dest``."""
    root = wheel_root()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = root / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.is_file():
        raise TritonStartError(
            f"the nvidia-pytriton wheel has no python backend stub for Python {version}"
        )
    python = dest / "python"
    python.mkdir(parents=True, exist_ok=True)
    for name in ("libtriton_python.so", "triton_python_backend_utils.py"):
        link = python / name
        if not link.exists():
            link.symlink_to(root / "backends" / "python" / name)
    if not (python / stub.name).exists():
        shutil.copy2(stub, python / stub.name)
    return dest


class TritonServer:
    """A ``tritonserver`` child process serving ``repository`` on ``host``.

    ``with TritonServer(repo, grpc_port=...) as server:`` starts it, waits until the server and
    every model are ready, and stops it on exit: SIGTERM (the server gives in-flight inferences
    ``exit_timeout_s``), then SIGKILL of its process group after ``stop_timeout_s``.

    A repository lacking vdup's models is completed with ``vdup models install`` first
    (``install_models``), or refused; ``check_repository`` False skips that check (to probe the
    binary with an empty repository). ``log_path`` None sends the server's output to this
    process's stdout/stderr, else to that file (:meth:`log_tail` reads it back).
    """

    def __init__(
        self,
        repository: Path = DEFAULT_REPOSITORY,
        *,
        host: str = "127.0.0.1",
        http_port: int = 8000,
        grpc_port: int = 8001,
        metrics_port: int = 8002,
        log_path: Path | None = None,
        log_verbose: int = 0,
        install_models: bool = True,
        check_repository: bool = True,
        ready_timeout_s: float = 120.0,
        stop_timeout_s: float = 15.0,
        exit_timeout_s: int = 10,
        extra_args: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.repository = Path(repository)
        self.host = host
        self.http_port, self.grpc_port, self.metrics_port = http_port, grpc_port, metrics_port
        self.log_path = log_path
        self.log_verbose = log_verbose
        self.install_models = install_models
        self.check_repository = check_repository
        self.ready_timeout_s = ready_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.exit_timeout_s = exit_timeout_s
        self.extra_args = list(extra_args or [])
        self.env = dict(env or {})
        self._child: Child | None = None
        self.shm_prefix = f"vdup_{os.getpid()}_{id(self):x}_"
        self._workdir: tempfile.TemporaryDirectory | None = None

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        """The running ``tritonserver`` process (None before start and after stop)."""
        return self._child.process if self._child else None

    @property
    def grpc_url(self) -> str:
        """``host:port`` for ``VDUP_TRITON_URL`` / ``tritonclient.grpc``."""
        return f"{self.host}:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"{self.host}:{self.http_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host}:{self.metrics_port}/metrics"

    def command(self, backend_dir: Path) -> list[str]:
        binary = wheel_root() / "bin" / "tritonserver"
        return [
            str(binary),
            f"--model-repository={self.repository.resolve()}",
            f"--backend-directory={backend_dir}",
            f"--http-address={self.host}",
            f"--http-port={self.http_port}",
            f"--grpc-address={self.host}",
            f"--grpc-port={self.grpc_port}",
            f"--metrics-address={self.host}",
            f"--metrics-port={self.metrics_port}",
            "--allow-gpu-metrics=false",
            "--pinned-memory-pool-byte-size=0",
            "--cuda-memory-pool-byte-size=0:0",
            "--strict-readiness=true",
            # Seconds a stopping server waits for in-flight inferences. Triton 2.51 keeps counting
            # an ensemble request that the client cancelled (deadline) as in flight, so a server
            # that saw one always waits this long (docs/triton-notes.md).
            f"--exit-timeout-secs={self.exit_timeout_s}",
            f"--log-verbose={self.log_verbose}",
            # A private shared-memory prefix: servers side by side must not share regions.
            f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}",
            *self.extra_args,
        ]

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.env)
        env["LD_LIBRARY_PATH"] = library_path()
        bindir = str(Path(sys.executable).parent)
        env["PATH"] = os.pathsep.join([bindir, env.get("PATH", "")])
        return env

    def start(self) -> TritonServer:
        if self._child is not None:
            raise RuntimeError("this TritonServer is already started")
        lacking = _missing(self.repository) if self.check_repository else []
        if lacking and self.install_models:
            from vdup.settings import Settings
            from vdup.triton.repository import install

            settings = Settings()
            for line in install(self.repository, settings.sscd_model, settings.model_sources):
                log.info("%s", line)
            lacking = _missing(self.repository)
        if lacking:
            raise TritonStartError(
                f"{self.repository} lacks {', '.join(map(str, lacking))}: run 'vdup models install'"
            )
        self._workdir = tempfile.TemporaryDirectory(prefix="vdup-triton-")
        backends = build_backend_dir(Path(self._workdir.name) / "backends")
        cmd = self.command(backends)
        log.info("starting %s", " ".join(cmd))
        child = Child(
            "tritonserver",
            cmd,
            env=self.environment(),
            log_path=self.log_path,
            grace_s=self.stop_timeout_s,
        )
        try:
            self._child = child.start()
        except OSError as exc:
            self._cleanup()
            raise TritonStartError(f"cannot execute tritonserver: {exc}") from exc
        return self

    def wait_ready(self, timeout_s: float | None = None) -> None:
        """Block until the server and all its models are ready; raises TritonStartError if the
        process exits first or ``timeout_s`` passes."""
        import tritonclient.grpc as grpcclient

        timeout_s = timeout_s or self.ready_timeout_s
        deadline = time.monotonic() + timeout_s
        client = grpcclient.InferenceServerClient(self.grpc_url)
        try:
            while True:
                if self._child is None or self._child.exited():
                    raise TritonStartError(
                        "tritonserver exited before it was ready\n" + self.log_tail()
                    )
                try:
                    if client.is_server_ready(client_timeout=2):
                        return
                except Exception:  # noqa: BLE001 - not listening yet
                    pass
                if time.monotonic() > deadline:
                    raise TritonStartError(
                        f"tritonserver was not ready within {timeout_s:.0f} s\n" + self.log_tail()
                    )
                time.sleep(0.2)
        finally:
            client.close()

    def stop(self) -> int | None:
        """SIGTERM, wait up to ``stop_timeout_s``, then SIGKILL what is left of its process group
        (python backend stubs included); returns the exit code."""
        code = None
        if self._child is not None:
            code = self._child.stop()
            self._child = None
            # A server that crashed or hit its exit timeout leaves its python backend regions.
            for region in Path("/dev/shm").glob(f"{self.shm_prefix}*"):
                region.unlink(missing_ok=True)
        self._cleanup()
        return code

    def log_tail(self, chars: int = 6000) -> str:
        if self.log_path is None or not self.log_path.is_file():
            return ""
        return (
            self._child.log_tail(chars)
            if self._child
            else self.log_path.read_text(errors="replace")[-chars:]
        )

    def _cleanup(self) -> None:
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    def __enter__(self) -> TritonServer:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _missing(repository: Path) -> list[Path]:
    from vdup.triton.repository import missing

    return missing(repository)


# -- vdup triton -----------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--repository",
        type=Path,
        default=DEFAULT_REPOSITORY,
        help="model repository (default: ./model_repository)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address Triton binds")
    parser.add_argument(
        "--http-port",
        type=int,
        default=None,
        help="HTTP port (VDUP_TRITON_HTTP_PORT, default 8000)",
    )
    parser.add_argument(
        "--grpc-port",
        type=int,
        default=None,
        help="gRPC port (VDUP_TRITON_GRPC_PORT, default 8001)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="metrics port (VDUP_TRITON_METRICS_PORT, default 8002)",
    )
    parser.add_argument("--log-verbose", type=int, default=0, help="tritonserver --log-verbose")
    parser.add_argument(
        "--no-install",
        action="store_true",
        help="fail, rather than run 'vdup models install', when models are missing",
    )


def run(args: argparse.Namespace) -> int:
    from vdup.settings import Settings

    settings = Settings()
    server = TritonServer(
        args.repository,
        host=args.host,
        http_port=args.http_port or settings.triton_http_port,
        grpc_port=args.grpc_port or settings.triton_grpc_port,
        metrics_port=args.metrics_port or settings.triton_metrics_port,
        log_verbose=args.log_verbose,
        install_models=not args.no_install,
    )
    stopping = False

    def _stop(signum, _frame):
        nonlocal stopping
        stopping = True
        raise KeyboardInterrupt

    previous = {s: signal.signal(s, _stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.start()
        server.wait_ready()
        print(
            f"Triton ready: gRPC {server.grpc_url}, HTTP {server.http_url}, "
            f"metrics {server.metrics_url}\n"
            f"  use it with: VDUP_TRITON_URL={server.grpc_url}",
            file=sys.stderr,
            flush=True,
        )
        assert server.process is not None
        return server.process.wait()
    except KeyboardInterrupt:
        return 0 if stopping else 130
    except TritonStartError as exc:
        print(f"vdup triton: {exc}", file=sys.stderr)
        return 1
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        server.stop()
