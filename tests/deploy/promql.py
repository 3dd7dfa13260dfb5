"""PromQL helpers for the checks: which metric names an expression selects, and parsing many
expressions at once with promtool (written as recording rules, which promtool parses fully).

The name extraction is a small tokenizer, not a full parser: after removing strings, label
matchers, range/subquery brackets, grouping clauses, numbers and durations, an identifier that is
not followed by "(" and is not a keyword is a metric name. ``test_promql_helpers`` pins it down.
promtool remains the judge of syntax.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from vdup.metrics import ALL_METRIC_NAMES

#: Triton's metric names (Triton 2.5x), as exported on its metrics port.
TRITON_METRIC_NAMES = frozenset(
    {
        "nv_inference_request_success",
        "nv_inference_request_failure",
        "nv_inference_count",
        "nv_inference_exec_count",
        "nv_inference_request_duration_us",
        "nv_inference_queue_duration_us",
        "nv_inference_compute_input_duration_us",
        "nv_inference_compute_infer_duration_us",
        "nv_inference_compute_output_duration_us",
        "nv_cpu_utilization",
        "nv_cpu_memory_used_bytes",
        "nv_gpu_utilization",
        "nv_gpu_memory_used_bytes",
    }
)
#: Series every Prometheus target has, and prometheus_client's process collector.
STANDARD_METRIC_NAMES = frozenset(
    {
        "up",
        "scrape_duration_seconds",
        "scrape_samples_scraped",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    }
)
KNOWN_METRIC_NAMES = ALL_METRIC_NAMES | TRITON_METRIC_NAMES | STANDARD_METRIC_NAMES

_KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "offset",
        "inf",
        "nan",
        "atan2",
    }
)
#: What Grafana's built-in and dashboard variables are replaced with before parsing.
_GRAFANA_VARS = {
    "__rate_interval": "5m",
    "__interval": "1m",
    "__range": "1h",
    "__interval_ms": "60000",
    "__range_s": "3600",
    "__range_ms": "3600000",
}


def substitute_grafana_variables(expr: str) -> str:
    """Replace $__rate_interval and friends with durations, any other $var / ${var} with "x"."""

    def repl(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return _GRAFANA_VARS.get(name, "x")

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", repl, expr)


def metric_names(expr: str) -> set[str]:
    """Metric names selected by a PromQL expression (see the module docstring for the method)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    s = re.sub(r"\boffset\s+-?\w+", " ", s)
    s = re.sub(
        r"(?<![\w:])(0x[0-9a-fA-F]+|\d+(\.\d*)?([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?)(?![\w:])",
        " ",
        s,
    )
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", s):
        word = m.group(0)
        if word.lower() in _KEYWORDS:
            continue
        if re.match(r"\s*\(", s[m.end() :]):
            continue
        names.add(word)
    return names


def label_values_metric(query: str) -> str | None:
    """The series selector of a Grafana ``label_values(selector, label)`` query, if it is one."""
    m = re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", query, re.S)
    return m.group(1) if m else None


def promtool_parse(
    promtool: Path, exprs: dict[str, str], tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    """Parse {name: expr} with ``promtool check rules`` (one recording rule each)."""
    rules = [
        {"record": f"vdup_check:{re.sub(r'[^A-Za-z0-9_]', '_', name)}", "expr": expr}
        for name, expr in exprs.items()
    ]
    path = tmp_path / "exprs.rules.yaml"
    path.write_text(
        yaml.safe_dump({"groups": [{"name": "exprs", "rules": rules}]}, sort_keys=False)
    )
    return subprocess.run(
        [str(promtool), "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
