"""``loadtests/run.py`` (``make loadtest``): locust against a real local stack, with a summary whose figures can be quoted.

One run, every step bounded in time and every process ours stopped at the end:

1. the stack: ``vdup up`` (Triton, indexer shards, API) when ``vdup.devstack.stack`` is installed and
   answers ``/readyz``; otherwise, or with ``--embedded``, one ``vdup serve`` with in-process
   models. The summary says which ran, and why the fallback was taken;
2. ``loadtests/fileserver.py`` on 127.0.0.1, serving the pool the links point to;
3. locust, headless, as a subprocess (gevent patches the interpreter it runs in, so it gets its
   own), with ``loadtests/locustfile.py``;
4. all three stopped: SIGTERM, then SIGKILL after a grace period; each also runs under
   ``timeout`` so none outlives the run even if this process is killed;
5. ``reports/loadtest-<timestamp>/``: locust's CSV and HTML, the locustfile's ``run.json``, the
   processes' logs, ``summary.json`` and a one-screen ``summary.md``.

Figures in the summary and how they are computed:
- **videos/min**: successful checks (2xx of ``POST /check-video-duplicate``) per minute of the
  window from locust's test start to the last answer;
- **latency** per endpoint: nearest-rank p50/p95/p99 and max over every answer, in ms, as the
  client saw it (download of the link included). Shed answers have their own rows;
- **failures by cause**: ``<status> <error code>``. "Shed" is a 429, or a 503 with Retry-After:
  the API refusing work it cannot finish in time, which is its contract, not a fault; every other
  failure, and any exception inside locust's tasks, is unexpected;
- **CPU**: user+system time of each process of the stack, the file server and locust (from
  ``/proc/<pid>/stat``, sampled every second, children included while they run) divided by the
  window: 100% = one core. The machine's busy share over the same window tells whether anything
  else was competing.

The exit status is 0 when some checks succeeded and nothing failed unexpectedly.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import os
import random
import re
import select
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from vdup.devstack.process import Child

REPO = Path(__file__).resolve().parent.parent  # this script lives in <repo>/loadtests
BENCH = REPO.parent / "shared" / "bench"
CLIP60 = "vertical_720x1280_60s.mp4"
CHECK = "POST /check-video-duplicate"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--users", "-u", type=int, default=2, help="concurrent locust users")
    p.add_argument(
        "--spawn-rate",
        "-r",
        type=float,
        default=None,
        help="users started per second (default: all in the first second)",
    )
    p.add_argument("--time", "-t", default="60s", help="run time: 90, 90s, 5m")
    p.add_argument(
        "--mix",
        choices=["dev", "clip60"],
        default="dev",
        help="dev: dev benchmark + longer clips; clip60: only the 60 s 720x1280 clip",
    )
    p.add_argument(
        "--embedded",
        action="store_true",
        help="run one 'vdup serve' with in-process models, not 'vdup up'",
    )
    p.add_argument("--shards", type=int, default=2, help="indexer shards of 'vdup up'")
    p.add_argument(
        "--up-args",
        default="",
        help="more arguments for 'vdup up', as one string (e.g. '--no-triton')",
    )
    p.add_argument(
        "--max-concurrency",
        type=int,
        default=None,
        help="VDUP_MAX_CONCURRENCY of the API (default: the environment's, else 4)",
    )
    p.add_argument(
        "--deadline-s",
        type=float,
        default=None,
        help="VDUP_CHECK_DEADLINE_S of the API (default: the environment's, else 120)",
    )
    p.add_argument("--think-s", type=float, default=0.0, help="pause between a user's requests")
    p.add_argument(
        "--pool-dir",
        type=Path,
        action="append",
        default=[],
        help="serve the videos of this folder instead of the benchmark pool",
    )
    p.add_argument("--bench", type=Path, default=BENCH, help="the shared benchmark folder")
    p.add_argument("--out", type=Path, default=Path("reports"), help="parent of the report folder")
    p.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="JSON from loadtests/inprocess_throughput.py: report the ratio to it",
    )
    p.add_argument(
        "--startup-timeout-s",
        type=float,
        default=180.0,
        help="longest wait for the stack to answer /readyz",
    )
    p.add_argument("--locustfile", type=Path, default=REPO / "loadtests" / "locustfile.py")
    p.add_argument("--fileserver", type=Path, default=REPO / "loadtests" / "fileserver.py")


def run(args: argparse.Namespace) -> int:
    duration_s = parse_duration(args.time)
    for script in (args.locustfile, args.fileserver):
        if not script.is_file():
            print(
                f"loadtests/run.py: {script} is missing (run from the repository)", file=sys.stderr
            )
            return 2
    pool_args = pool_arguments(args)
    if isinstance(pool_args, str):
        print(f"loadtests/run.py: {pool_args}", file=sys.stderr)
        return 2
    env_settings = _settings_env(args)
    deadline_s = float(env_settings["VDUP_CHECK_DEADLINE_S"])
    stop_timeout_s = deadline_s + 10
    lifetime_s = args.startup_timeout_s + duration_s + stop_timeout_s + 120
    out = report_dir(args.out)
    command = "loadtests/run.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    print(f"loadtests/run.py: report in {out}", file=sys.stderr)

    with tempfile.TemporaryDirectory(prefix="vdup-lt-") as tmp, contextlib.ExitStack() as stack:
        files = stack.enter_context(
            Managed.start(
                "fileserver",
                [
                    sys.executable,
                    str(args.fileserver),
                    *pool_args,
                    "--max-seconds",
                    str(int(lifetime_s)),
                ],
                out / "fileserver.log",
                lifetime_s,
                capture_stdout=True,
            )
        )
        pool_url = files.first_line(timeout_s=60)
        api = stack.enter_context(start_stack(args, env_settings, Path(tmp), out, lifetime_s))
        print(
            f"loadtests/run.py: stack = {api.kind} at {api.url}; pool at {pool_url}",
            file=sys.stderr,
        )

        spawn_rate = args.spawn_rate or max(1.0, float(args.users))
        locust_cmd = [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(args.locustfile),
            "--headless",
            "-u",
            str(args.users),
            "-r",
            str(spawn_rate),
            "-t",
            f"{int(duration_s)}s",
            "--host",
            api.url,
            "--csv",
            str(out / "locust"),
            "--html",
            str(out / "locust.html"),
            "--only-summary",
            "--stop-timeout",
            str(int(stop_timeout_s)),
            "--exit-code-on-error",
            "0",
            "--loglevel",
            "WARNING",
            "--pool-url",
            pool_url,
            "--mix",
            args.mix,
            "--clip",
            CLIP60,
            "--think-s",
            str(args.think_s),
            "--request-timeout-s",
            str(deadline_s + 60),
            "--run-out",
            str(out / "run.json"),
        ]
        machine0 = machine_ticks()
        sampler = CpuSampler({"api/stack": api.proc.pid, "fileserver": files.proc.pid})
        sampler.sample()
        t0 = time.time()
        with Managed.start(
            "locust", locust_cmd, out / "locust.log", duration_s + stop_timeout_s + 60
        ) as loc:
            sampler.roots["locust"] = loc.proc.pid
            sampler.run_until(loc.proc, duration_s + stop_timeout_s + 90)
        wall_s = time.time() - t0
        machine1 = machine_ticks()
        cpu = sampler.report(wall_s)
        stack_kind, stack_note = api.kind, api.note

    summary = summarize(
        out,
        args,
        command,
        stack_kind,
        stack_note,
        env_settings,
        duration_s,
        cpu,
        machine_share(machine0, machine1),
        wall_s,
    )
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    (out / "summary.md").write_text(render(summary))
    print(render(summary))
    if not summary["checks_ok"]:
        log = (out / "locust.log").read_text(errors="replace")[-3000:]
        print(
            f"loadtests/run.py: no check succeeded; the end of locust.log:\n{log}", file=sys.stderr
        )
    ok = summary["checks_ok"] > 0 and summary["unexpected_failures"] == 0
    return 0 if ok else 1


# -- the pieces -----------------------------------------------------------------------------


def parse_duration(text: str) -> float:
    """'90', '90s', '5m', '1h' -> seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", str(text))
    if not m:
        raise SystemExit(f"loadtests/run.py: --time {text!r} is not like 90, 90s or 5m")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def pool_arguments(args: argparse.Namespace) -> list[str] | str:
    """fileserver.py arguments for the run's pool, or a message saying what is missing."""
    if args.pool_dir:
        missing = [d for d in args.pool_dir if not d.is_dir()]
        if missing:
            return f"no folder {missing[0]}"
        return [a for d in args.pool_dir for a in ("--dir", str(d))]
    speed = args.bench / "speed"
    if args.mix == "clip60":
        clip = speed / CLIP60
        return ["--file", str(clip)] if clip.is_file() else f"{clip} is missing (see README)"
    dev = args.bench / "dev"
    if not (dev / "manifest.csv").is_file():
        return f"the dev benchmark is not at {dev} (see README); or give --pool-dir"
    return ["--dev", str(dev)] + (["--dir", str(speed)] if speed.is_dir() else [])


def report_dir(parent: Path) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for n in range(100):
        path = parent / (f"loadtest-{stamp}" + (f"-{n}" if n else ""))
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise SystemExit(f"loadtests/run.py: cannot make a report folder under {parent}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(n: int) -> int:
    """The first of ``n`` consecutive ports that are free on 127.0.0.1 now."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 60000 - n)
        with contextlib.ExitStack() as held:
            try:
                for port in range(base, base + n):
                    sock = held.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return base
    raise SystemExit(f"loadtests/run.py: found no {n} consecutive free ports")


def _settings_env(args: argparse.Namespace) -> dict[str, str]:
    """The VDUP_* variables the stack runs with (the environment's, then the flags)."""
    allow = [h for h in os.environ.get("VDUP_FETCH_ALLOW", "").split(",") if h.strip()]
    env = {
        "VDUP_FETCH_ALLOW": ",".join(dict.fromkeys(allow + ["127.0.0.1"])),
        "VDUP_MAX_CONCURRENCY": os.environ.get("VDUP_MAX_CONCURRENCY", "4"),
        "VDUP_CHECK_DEADLINE_S": os.environ.get("VDUP_CHECK_DEADLINE_S", "120"),
        "VDUP_LOG_LEVEL": os.environ.get("VDUP_LOG_LEVEL", "warning"),
    }
    if args.max_concurrency is not None:
        env["VDUP_MAX_CONCURRENCY"] = str(args.max_concurrency)
    if args.deadline_s is not None:
        env["VDUP_CHECK_DEADLINE_S"] = str(args.deadline_s)
    return env


@dataclass
class Managed:
    """A child process (``vdup.devstack.process.Child``) under ``timeout``, stopped on exit
    with every process it started."""

    child: Child

    @property
    def proc(self) -> subprocess.Popen:
        assert self.child.process is not None
        return self.child.process

    @classmethod
    @contextlib.contextmanager
    def start(
        cls,
        name: str,
        cmd: list[str],
        log_path: Path,
        lifetime_s: float,
        env: dict[str, str] | None = None,
        capture_stdout: bool = False,
        grace_s: float = 20.0,
    ):
        child = Child(
            name,
            ["timeout", "-k", str(int(grace_s)), str(int(lifetime_s)), *cmd],
            env=env,
            log_path=log_path,
            grace_s=grace_s,
            pipe_stdout=capture_stdout,
        )
        managed = cls(child.start())
        try:
            yield managed
        finally:
            managed.stop()

    def first_line(self, timeout_s: float) -> str:
        """The first stdout line (a URL), within ``timeout_s``."""
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout_s)
        line = self.proc.stdout.readline().decode().strip() if ready else ""
        if not line:
            raise SystemExit(f"loadtests/run.py: the {self.child.name} did not start; see its log")
        return line

    def stop(self) -> None:
        """SIGTERM (``timeout`` passes it on), then SIGKILL of its group and of every process
        the child started, even those that left its session (``vdup up`` gives each part its
        own)."""
        table = process_table()
        tree = {pid: table[pid][2] for pid in descendants(self.proc.pid, table)}
        self.child.stop()
        left = process_table()
        for pid, started in tree.items():
            if pid in left and left[pid][2] == started:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


@dataclass
class Api:
    kind: str
    url: str
    proc: subprocess.Popen
    note: str = ""


@contextlib.contextmanager
def start_stack(args, env_settings: dict[str, str], tmp: Path, out: Path, lifetime_s: float):
    """The API to load: ``vdup up`` when it exists and comes up, else one ``vdup serve``."""
    note = ""
    if args.embedded:
        note = "--embedded given"
    elif importlib.util.find_spec("vdup.devstack.stack") is None:
        note = "vdup.devstack.stack (vdup up) is not installed in this tree"
    else:
        port, shard_port, triton_base = free_port(), free_ports(args.shards), free_ports(3)
        cmd = [
            sys.executable,
            "-m",
            "vdup.cli",
            "up",
            "--port",
            str(port),
            "--shards",
            str(args.shards),
            "--shard-port",
            str(shard_port),
            "--triton-grpc-port",
            str(triton_base + 1),
            "--triton-repository",
            str(REPO / "model_repository"),
            "--data",
            str(tmp / "up"),
            "--logs",
            str(out / "stack"),
            *shlex.split(args.up_args),
        ]
        env = {**os.environ, **env_settings}
        with Managed.start("stack", cmd, out / "stack.log", lifetime_s, env=env, grace_s=90) as m:
            url = f"http://127.0.0.1:{port}"
            problem = wait_ready(url, m.proc, args.startup_timeout_s)
            if problem is None:
                parts = f"{args.shards} indexer shards + API"
                triton = "--no-triton" not in args.up_args
                yield Api(f"vdup up ({'Triton + ' if triton else ''}{parts})", url, m.proc)
                return
            note = f"vdup up did not come up: {problem} (see stack.log, stack/)"
        print(f"loadtests/run.py: {note}; falling back to one 'vdup serve'", file=sys.stderr)
    port = free_port()
    env = {**os.environ, **env_settings}
    env.pop("VDUP_TRITON_URL", None)
    env.pop("VDUP_INDEXER_URLS", None)
    cmd = [
        sys.executable,
        "-m",
        "vdup.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--data",
        str(tmp / "serve"),
    ]
    with Managed.start("api", cmd, out / "api.log", lifetime_s, env=env) as m:
        url = f"http://127.0.0.1:{port}"
        problem = wait_ready(url, m.proc, args.startup_timeout_s)
        if problem is not None:
            raise SystemExit(
                f"loadtests/run.py: vdup serve did not come up: {problem}; see {out / 'api.log'}"
            )
        yield Api("embedded (one vdup serve, in-process models)", url, m.proc, note)


def wait_ready(url: str, proc: subprocess.Popen, timeout_s: float) -> str | None:
    """None once ``url``/readyz answers 200; else why not (exited, or still not ready)."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return f"it exited with status {proc.returncode}"
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=5) as r:
                if r.status == 200:
                    return None
        except urllib.error.HTTPError as exc:
            last = f"/readyz answered {exc.code}"
        except OSError as exc:
            last = type(exc).__name__
        time.sleep(0.5)
    return f"not ready within {timeout_s:.0f} s ({last})"


# -- CPU ------------------------------------------------------------------------------------

TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def _proc_stat(pid: str) -> tuple[int, int, int] | None:
    """(ppid, utime+stime ticks, start time) of a process, or None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = raw[raw.rfind(")") + 2 :].split()
    return int(rest[1]), int(rest[11]) + int(rest[12]), int(rest[19])


def process_table() -> dict[int, tuple[int, int, int]]:
    """Every process: pid -> (ppid, cpu ticks, start time)."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (st := _proc_stat(entry)) is not None:
            table[int(entry)] = st
    return table


def descendants(root: int, table: dict[int, tuple[int, int, int]]) -> list[int]:
    """``root`` and every process below it in ``table``."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in table:
            out.append(pid)
            todo += children.get(pid, [])
    return out


def _cmdline(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    argv = [a.decode(errors="replace") for a in argv if a]
    if not argv:
        return "?"
    exe = Path(argv[0]).name
    if exe.startswith("python"):
        rest = argv[1:]
        if rest[:1] == ["-m"] and len(rest) > 1:
            return " ".join(rest[1:3])
        return " ".join([Path(rest[0]).name] + rest[1:2]) if rest else exe
    words = [exe] + [a for a in argv[1:3] if not a.startswith("-")][:1]
    return " ".join(words)


class CpuSampler:
    """CPU seconds of process trees: each root and its descendants while they live.

    The first ``sample()`` is the baseline; a process first seen later counts from zero.
    """

    def __init__(self, roots: dict[str, int]) -> None:
        self.roots = dict(roots)
        self.ticks: dict[int, int] = {}
        self.first: dict[int, int] = {}
        self.owner: dict[int, tuple[str, str]] = {}
        self._baseline = True

    def sample(self) -> None:
        table = process_table()
        for label, root in self.roots.items():
            for pid in descendants(root, table):
                if pid not in self.owner:
                    self.owner[pid] = (label, _cmdline(pid))
                    self.first[pid] = table[pid][1] if self._baseline else 0
                self.ticks[pid] = table[pid][1]
        self._baseline = False

    def run_until(self, proc: subprocess.Popen, limit_s: float) -> None:
        end = time.monotonic() + limit_s
        while proc.poll() is None and time.monotonic() < end:
            self.sample()
            time.sleep(1.0)
        self.sample()

    def report(self, wall_s: float) -> list[dict]:
        rows = []
        for pid, (label, cmd) in self.owner.items():
            cpu_s = (self.ticks[pid] - self.first.get(pid, 0)) * TICK_S
            rows.append(
                {
                    "group": label,
                    "pid": pid,
                    "cmd": cmd,
                    "cpu_s": round(cpu_s, 1),
                    "core_pct": round(100 * cpu_s / wall_s, 1) if wall_s else 0.0,
                }
            )
        return sorted(rows, key=lambda r: -r["cpu_s"])


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


def machine_share(a: tuple[int, int], b: tuple[int, int]) -> float:
    total = b[1] - a[1]
    return round(100 * (b[0] - a[0]) / total, 1) if total else 0.0


# -- the summary ----------------------------------------------------------------------------


def percentile(sorted_ms: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (ms)."""
    if not sorted_ms:
        return float("nan")
    rank = max(1, math.ceil(q / 100 * len(sorted_ms)))
    return sorted_ms[rank - 1]


def _read_csv_rows(path: Path) -> list[dict]:
    import csv

    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def summarize(
    out: Path,
    args,
    command: str,
    stack_kind: str,
    stack_note: str,
    env_settings: dict[str, str],
    duration_s: float,
    cpu: list[dict],
    machine_busy_pct: float,
    wall_s: float,
) -> dict:
    run_path = out / "run.json"
    record = json.loads(run_path.read_text()) if run_path.is_file() else {"events": []}
    events = record.get("events", [])
    started = record.get("started") or (events[0][0] if events else 0.0)
    ended = max((e[1] for e in events), default=started)
    window_s = max(ended - started, 1e-9)

    by_name: dict[str, list] = {}
    for _t0, _t1, name, outcome, ms in events:
        shed = outcome.startswith("shed")
        key = f"{name.split(' (')[0]} [shed]" if shed else name
        by_name.setdefault(key, []).append((outcome, ms))
    checks = [(o, ms) for (_, _, n, o, ms) in events if n.startswith(CHECK + " (")]
    ok_checks = [ms for o, ms in checks if o == "ok"]

    def row(name: str, items: list) -> dict:
        lat = sorted(ms for _, ms in items)
        ok = sum(o == "ok" for o, _ in items)
        return {
            "endpoint": name,
            "requests": len(items),
            "ok": ok,
            "failed": len(items) - ok,
            "p50_ms": percentile(lat, 50),
            "p95_ms": percentile(lat, 95),
            "p99_ms": percentile(lat, 99),
            "max_ms": lat[-1] if lat else float("nan"),
        }

    rows = [row(n, by_name[n]) for n in sorted(by_name)]
    if ok_checks:
        rows.append(row(f"{CHECK} (every successful check)", [("ok", ms) for ms in ok_checks]))

    failures: dict[tuple[str, str], int] = {}
    for _, _, name, outcome, _ in events:
        if outcome != "ok":
            failures[(name, outcome)] = failures.get((name, outcome), 0) + 1
    shed = sum(n for (_, o), n in failures.items() if o.startswith("shed"))
    unexpected = sum(n for (_, o), n in failures.items() if not o.startswith("shed"))
    task_errors = sum(
        int(r.get("Occurrences", 0) or 0) for r in _read_csv_rows(out / "locust_exceptions.csv")
    )
    locust_requests = next(
        (
            int(r["Request Count"])
            for r in _read_csv_rows(out / "locust_stats.csv")
            if r.get("Name") == "Aggregated"
        ),
        None,
    )

    per_action: dict[str, int] = {}
    for _, _, name, outcome, _ in events:
        if name.startswith(CHECK + " (") and outcome == "ok":
            action = name[len(CHECK) + 2 : -1]
            per_action[action] = per_action.get(action, 0) + 1
    deadline_s = float(env_settings["VDUP_CHECK_DEADLINE_S"])
    max_check_ms = max((ms for _, ms in checks), default=0.0)
    videos_per_min = 60 * len(ok_checks) / window_s if events else 0.0

    baseline = None
    if args.baseline and args.baseline.is_file():
        b = json.loads(args.baseline.read_text())
        if b.get("videos_per_min"):
            baseline = {
                "file": str(args.baseline),
                "videos_per_min": b["videos_per_min"],
                "ratio_pct": round(100 * videos_per_min / b["videos_per_min"], 1),
                "detail": {k: b[k] for k in ("videos", "threads", "wall_s") if k in b},
            }
    ours = round(sum(r["cpu_s"] for r in cpu), 1)
    stack_cpu_s = sum(r["cpu_s"] for r in cpu if r["group"] == "api/stack")
    cpu_per_check = round(stack_cpu_s / len(ok_checks), 3) if ok_checks else None
    if baseline and cpu_per_check and b.get("cpu_s_per_video"):
        baseline["cpu_s_per_video"] = b["cpu_s_per_video"]
        baseline["cpu_ratio_pct"] = round(100 * b["cpu_s_per_video"] / cpu_per_check, 1)
    return {
        "report": str(out),
        "command": command,
        "stack": stack_kind,
        "stack_note": stack_note,
        "mix": args.mix,
        "users": args.users,
        "think_s": args.think_s,
        "duration_s": duration_s,
        "window_s": round(window_s, 1),
        "wall_s": round(wall_s, 1),
        "settings": env_settings,
        "cores": os.cpu_count(),
        "checks_ok": len(ok_checks),
        "checks_ok_by_action": per_action,
        "videos_per_min": round(videos_per_min, 2),
        "latency": rows,
        "max_check_ms": max_check_ms,
        "deadline_s": deadline_s,
        "within_deadline": max_check_ms <= deadline_s * 1000,
        "failures": [
            {"endpoint": n, "cause": o, "count": c}
            for (n, o), c in sorted(failures.items(), key=lambda kv: -kv[1])
        ],
        "shed": shed,
        "unexpected_failures": unexpected + task_errors,
        "task_exceptions": task_errors,
        "locust_requests": locust_requests,
        "decisions": record.get("decisions", []),
        "cpu": cpu,
        "cpu_ours_s": ours,
        "stack_cpu_s_per_check": cpu_per_check,
        "cpu_ours_machine_pct": round(100 * ours / (wall_s * (os.cpu_count() or 1)), 1)
        if wall_s
        else 0.0,
        "machine_busy_pct": machine_busy_pct,
        "baseline": baseline,
        "loadavg_end": Path("/proc/loadavg").read_text().split()[:3],
    }


def _ms(v: float) -> str:
    return "–" if v != v else f"{v:,.0f}"


def render(s: dict) -> str:
    st = s["settings"]
    lines = [
        f"# Load test {Path(s['report']).name}: {s['mix']} mix, {s['users']} users, "
        f"{s['duration_s']:.0f} s",
        "",
        f"- stack: **{s['stack']}**" + (f" ({s['stack_note']})" if s["stack_note"] else ""),
        f"- command: `{s['command']}`",
        f"- VDUP_MAX_CONCURRENCY={st['VDUP_MAX_CONCURRENCY']}, "
        f"VDUP_CHECK_DEADLINE_S={st['VDUP_CHECK_DEADLINE_S']}; {s['cores']} cores; "
        f"think time {s['think_s']} s; load average at the end {' '.join(s['loadavg_end'])}",
        "",
        f"**{s['videos_per_min']:.1f} videos/min**: {s['checks_ok']} successful checks in "
        f"{s['window_s']:.0f} s ("
        + ", ".join(f"{k} {v}" for k, v in sorted(s["checks_ok_by_action"].items()))
        + ")",
    ]
    if s["baseline"]:
        b = s["baseline"]
        d = b["detail"]
        lines.append(
            f"vs in-process {b['videos_per_min']:.1f} videos/min ({d.get('videos')} "
            f"videos, {d.get('threads')} thread(s), {d.get('wall_s')} s): "
            f"**{b['ratio_pct']:.0f}%**"
        )
        if "cpu_ratio_pct" in b:
            lines.append(
                f"CPU per video, in-process {b['cpu_s_per_video']:.2f} s vs stack "
                f"{s['stack_cpu_s_per_check']:.2f} s: the stack does "
                f"**{b['cpu_ratio_pct']:.0f}%** of in-process work per CPU-second"
            )
    lines += [
        "",
        "| endpoint | requests | ok | failed | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in s["latency"]:
        lines.append(
            f"| {r['endpoint']} | {r['requests']} | {r['ok']} | {r['failed']} | "
            f"{_ms(r['p50_ms'])} | {_ms(r['p95_ms'])} | {_ms(r['p99_ms'])} | "
            f"{_ms(r['max_ms'])} |"
        )
    verdict = "within" if s["within_deadline"] else "**over**"
    lines += [
        "",
        f"Slowest check answer: {s['max_check_ms'] / 1000:.1f} s, {verdict} the "
        f"deadline of {s['deadline_s']:.0f} s.",
        f"Failures: **{s['unexpected_failures']} unexpected**"
        + (f" ({s['task_exceptions']} task exceptions)" if s["task_exceptions"] else "")
        + f", **{s['shed']} shed** (429/503 with Retry-After).",
    ]
    for f in s["failures"][:8]:
        lines.append(f"- {f['endpoint']}: `{f['cause']}` × {f['count']}")
    if s["decisions"]:
        lines.append(
            "Decisions: "
            + "; ".join(
                f"{d['action']} → {'dup' if d['is_duplicate'] else 'new'}"
                f"{'/' + d['path'] if d['path'] else ''} {d['count']}"
                for d in s["decisions"]
            )
        )
    per_check = s["stack_cpu_s_per_check"]
    lines += [
        "",
        f"CPU over {s['wall_s']:.0f} s (100% = one core): ours "
        f"{s['cpu_ours_machine_pct']:.0f}% of the machine, machine busy "
        f"{s['machine_busy_pct']:.0f}%"
        + (
            f"; the stack spent {per_check:.2f} CPU-s per successful check "
            f"({60 / per_check:.0f} videos/min per core)."
            if per_check
            else "."
        ),
        "",
        "| process | pid | cpu s | % of a core |",
        "|---|---:|---:|---:|",
    ]
    for r in s["cpu"]:
        if r["cpu_s"] >= 0.5:
            lines.append(
                f"| {r['group']}: {r['cmd']} | {r['pid']} | {r['cpu_s']:.1f} | "
                f"{r['core_pct']:.0f}% |"
            )
    lines += [
        "",
        "Latencies are client-side (link download included), nearest-rank over every "
        "answer; locust's own tables: locust.html, locust_*.csv.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="loadtests/run.py", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
