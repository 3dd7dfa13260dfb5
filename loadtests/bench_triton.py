"""Per-video cost of the Triton path against the embedded path, measured in the same run.

Both extract the same file's features (decode, SSCD with flips, audio) with the same models and
thread settings; the runs alternate (Triton, embedded, embedded, Triton, ...) so background load
hits both alike. Reports the median of ``--runs`` timed runs each, after ``--warmup`` untimed ones,
and the ratio Triton / embedded (target: <= 1.15 for the 60 s clip).

    .venv/bin/python loadtests/bench_triton.py [--video FILE] [--runs 9] [--url HOST:PORT]

Without ``--url`` it starts its own Triton from ./model_repository on free loopback ports.
"""

from __future__ import annotations

import argparse
import json
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


def timed(fn, data: bytes) -> float:
    t0 = time.perf_counter()
    fn(data)
    return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--url", default="", help="an already running Triton's gRPC host:port")
    parser.add_argument("--repository", type=Path, default=Path("model_repository"))
    args = parser.parse_args()

    from vdup.features.extractor import EmbeddedExtractor
    from vdup.settings import Settings
    from vdup.triton.client import TritonExtractor
    from vdup.triton.server import TritonServer

    data = args.video.read_bytes()
    settings = Settings()
    embedded = EmbeddedExtractor(settings.sampling(), settings.limits(), settings.sscd_model,
                                 threads=settings.onnx_threads)
    with ExitStack() as stack:
        url = args.url
        if not url:
            log = Path(tempfile.mkdtemp(prefix="vdup-bench-")) / "triton.log"
            server = stack.enter_context(TritonServer(
                args.repository, http_port=free_port(), grpc_port=free_port(),
                metrics_port=free_port(), log_path=log,
            ))
            url = server.grpc_url
        triton = TritonExtractor(url, timeout_s=120)
        a, b = triton.extract(data), embedded.extract(data)
        assert len(a.timestamps) == len(b.timestamps)
        for _ in range(args.warmup - 1):
            triton.extract(data)
            embedded.extract(data)
        t_triton, t_embedded = [], []
        for i in range(args.runs):
            pair = [("t", triton.extract), ("e", embedded.extract)]
            for name, fn in (pair if i % 2 == 0 else pair[::-1]):
                (t_triton if name == "t" else t_embedded).append(timed(fn, data))
        triton.close()
    med_t, med_e = statistics.median(t_triton), statistics.median(t_embedded)
    result = {
        "video": str(args.video),
        "bytes": len(data),
        "frames": int(len(b.timestamps)),
        "runs": args.runs,
        "triton_median_s": round(med_t, 3),
        "embedded_median_s": round(med_e, 3),
        "ratio": round(med_t / med_e, 3),
        "triton_min_s": round(min(t_triton), 3),
        "embedded_min_s": round(min(t_embedded), 3),
        "triton_runs_s": [round(t, 3) for t in t_triton],
        "embedded_runs_s": [round(t, 3) for t in t_embedded],
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
