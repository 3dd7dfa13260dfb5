"""Per-video cost of the Triton path against the embedded path, measured in the same run.

Both extract the same file's features (decode, SSCD with flips, audio) with the same models and
thread settings; the runs alternate (Triton, embedded, embedded, Triton, ...) so background load
hits both alike. Reports the median of ``--runs`` timed runs each, after ``--warmup`` untimed ones,
and the ratio Triton / embedded (target: <= 1.15 for the 60 s clip).

Two costs per video: wall-clock seconds, and CPU seconds (this process, plus the Triton server
and its python-backend stubs for the Triton path, read from /proc). On a shared machine the CPU
figure is the steadier one: a neighbour's load stretches wall time, not our CPU time.

    .venv/bin/python loadtests/bench_triton.py [--video FILE] [--runs 9] [--url HOST:PORT]

Without ``--url`` it starts its own Triton from ./model_repository on free loopback ports.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

DEFAULT_VIDEO = Path(__file__).resolve().parents[2] / "shared/bench/speed/vertical_720x1280_60s.mp4"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree_cpu_s(pid: int | None) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its live descendants."""
    if pid is None:
        return 0.0
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def timed(fn, data: bytes, server_pid: int | None) -> tuple[float, float]:
    """(wall s, CPU s) of ``fn(data)``; CPU counts this process and the server's tree."""
    c0 = time.process_time() + tree_cpu_s(server_pid)
    t0 = time.perf_counter()
    fn(data)
    wall = time.perf_counter() - t0
    return wall, time.process_time() + tree_cpu_s(server_pid) - c0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--url", default="", help="an already running Triton's gRPC host:port")
    parser.add_argument("--repository", type=Path, default=Path("model_repository"))
    args = parser.parse_args()

    from vdup.devstack.triton import TritonServer
    from vdup.features.extractor import EmbeddedExtractor
    from vdup.settings import Settings
    from vdup.triton.client import TritonExtractor

    data = args.video.read_bytes()
    settings = Settings()
    embedded = EmbeddedExtractor(
        settings.sampling(), settings.limits(), settings.sscd_model, threads=settings.onnx_threads
    )
    with ExitStack() as stack:
        url, server_pid = args.url, None
        if not url:
            log = Path(tempfile.mkdtemp(prefix="vdup-bench-")) / "triton.log"
            server = stack.enter_context(
                TritonServer(
                    args.repository,
                    http_port=free_port(),
                    grpc_port=free_port(),
                    metrics_port=free_port(),
                    log_path=log,
                )
            )
            url, server_pid = server.grpc_url, server.process.pid
        triton = TritonExtractor(url, timeout_s=120)
        a, b = triton.extract(data), embedded.extract(data)
        assert len(a.timestamps) == len(b.timestamps)
        for _ in range(args.warmup - 1):
            triton.extract(data)
            embedded.extract(data)
        runs: dict[str, list[tuple[float, float]]] = {"triton": [], "embedded": []}
        for i in range(args.runs):
            pair = [("triton", triton.extract, server_pid), ("embedded", embedded.extract, None)]
            for name, fn, pid in pair if i % 2 == 0 else pair[::-1]:
                runs[name].append(timed(fn, data, pid))
        triton.close()

    def med(name: str, k: int) -> float:
        return statistics.median(r[k] for r in runs[name])

    result = {
        "video": str(args.video),
        "bytes": len(data),
        "frames": int(len(b.timestamps)),
        "runs": args.runs,
        "triton_wall_median_s": round(med("triton", 0), 3),
        "embedded_wall_median_s": round(med("embedded", 0), 3),
        "wall_ratio": round(med("triton", 0) / med("embedded", 0), 3),
        "triton_cpu_median_s": round(med("triton", 1), 3) if server_pid else None,
        "embedded_cpu_median_s": round(med("embedded", 1), 3),
        "cpu_ratio": round(med("triton", 1) / med("embedded", 1), 3) if server_pid else None,
        "triton_wall_min_s": round(min(r[0] for r in runs["triton"]), 3),
        "embedded_wall_min_s": round(min(r[0] for r in runs["embedded"]), 3),
        "runs_wall_s": {k: [round(r[0], 3) for r in v] for k, v in runs.items()},
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
