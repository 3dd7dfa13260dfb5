"""``loadtests/run.py`` end to end for a few seconds: embedded API, file server and locust, for real.

The run goes through the script in a subprocess, as CI and ``make loadtest`` run it: locust's
gevent patches the interpreter it runs in, and its import-time warnings must not meet this
suite's warnings-are-errors filter.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from support.media import make_video

pytestmark = pytest.mark.slow  # uvicorn, a file server and locust as processes

REPO = Path(__file__).resolve().parent.parent.parent


def test_a_short_run_writes_its_reports_and_fails_nothing(tmp_path):
    pool = tmp_path / "pool"
    pool.mkdir()
    for seed in (1, 2, 3):
        (pool / f"clip-{seed}.mp4").write_bytes(
            make_video(seed, duration_s=3.0, width=160, height=120)
        )
    reports = tmp_path / "reports"

    proc = subprocess.run(
        [
            sys.executable,
            "loadtests/run.py",
            "--embedded",
            "--pool-dir",
            str(pool),
            "--users",
            "2",
            "--time",
            "8s",
            "--deadline-s",
            "20",
            "--startup-timeout-s",
            "40",
            "--out",
            str(reports),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=100,
    )

    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (report,) = reports.glob("loadtest-*")
    for name in (
        "summary.md",
        "summary.json",
        "run.json",
        "locust.html",
        "locust_stats.csv",
        "locust_failures.csv",
    ):
        assert (report / name).is_file(), name
    summary = json.loads((report / "summary.json").read_text())
    assert summary["stack"].startswith("embedded")
    assert summary["checks_ok"] > 0
    assert summary["unexpected_failures"] == 0, summary["failures"]
    assert summary["videos_per_min"] > 0
    assert any(r["group"] == "api/stack" for r in summary["cpu"])
    assert "videos/min" in (report / "summary.md").read_text()
