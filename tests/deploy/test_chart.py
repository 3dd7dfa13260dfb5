"""helm lint --strict and helm template for every values file; the values schema rejects bad
values; every value is documented in values.yaml and typed in values.schema.json."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import CHART, VALUES_FILES, helm_template, run, tool


@pytest.mark.parametrize("values_file", VALUES_FILES)
def test_helm_lint_strict(values_file: str) -> None:
    result = run([tool("helm"), "lint", "--strict", CHART, "-f", CHART / values_file])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout, result.stdout


@pytest.mark.parametrize("values_file", VALUES_FILES)
def test_helm_template(values_file: str) -> None:
    result = helm_template(values_file)
    assert result.returncode == 0, result.stderr
    assert "kind: Deployment" in result.stdout


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("api.unknownKey=1", "Additional property unknownKey is not allowed"),
        ("indexer.discovery=dns", "indexer.discovery"),
        ("api.port=0", "api.port"),
        ("indexer.replicas=0", "indexer.replicas"),
        ("image.digest=latest", "image.digest"),
        ("tests.checkVideo.expectDuplicate=maybe", "expectDuplicate"),
    ],
)
def test_schema_rejects_bad_values(override: str, message: str) -> None:
    result = helm_template("values.yaml", (override,))
    assert result.returncode != 0, f"--set {override} was accepted"
    assert message in result.stderr, result.stderr


def _schema() -> dict[str, Any]:
    return json.loads((CHART / "values.schema.json").read_text())


def _value_comments(path: Path) -> dict[str, str]:
    """Comment of each key path in a values file: the comment lines right above it, or a comment
    at the end of its line."""
    out: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    pending: list[str] = []
    for line in path.read_text().splitlines():
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        if not stripped:
            pending = []
            continue
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("#").strip())
            continue
        m = re.match(r"([A-Za-z0-9_.-]+):(.*)", stripped)
        if m:
            while stack and stack[-1][0] >= indent:
                stack.pop()
            stack.append((indent, m.group(1)))
            key = ".".join(k for _, k in stack)
            trailing = re.search(r"\s#\s*(.*)$", m.group(2))
            text = " ".join(pending) if pending else (trailing.group(1) if trailing else "")
            if text.strip():
                out[key] = text.strip()
        pending = []
    return out


def _schema_paths(node: dict[str, Any], prefix: str = "") -> dict[str, dict[str, Any]]:
    """Every property of the schema by dotted path (descending into objects with properties)."""
    out = {}
    for key, sub in node.get("properties", {}).items():
        path = f"{prefix}{key}"
        out[path] = sub
        out.update(_schema_paths(sub, path + "."))
    return out


def _value_paths(values: Any, schema: dict[str, Any], prefix: str = "") -> list[str]:
    """Key paths of values.yaml, down to where the schema stops describing properties (free-form
    Kubernetes objects such as resources or affinity)."""
    out = []
    if isinstance(values, dict) and "properties" in schema:
        for key, sub in values.items():
            path = f"{prefix}{key}"
            out.append(path)
            out += _value_paths(sub, schema["properties"].get(key, {}), path + ".")
    return out


def test_schema_is_closed_and_described() -> None:
    schema = _schema()
    missing = [p for p, s in _schema_paths(schema).items() if not s.get("description")]
    assert not missing, f"schema properties without a description: {missing}"
    open_objects = [
        p
        for p, s in _schema_paths(schema).items()
        if "properties" in s and s.get("additionalProperties") is not False
    ]
    assert not open_objects, f"schema objects that accept unknown keys: {open_objects}"


def test_every_value_is_documented_and_typed() -> None:
    schema = _schema()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    comments = _value_comments(CHART / "values.yaml")
    typed = _schema_paths(schema)
    paths = _value_paths(values, schema)
    assert paths, "values.yaml parsed to nothing"
    undocumented = [p for p in paths if p not in comments]
    untyped = [p for p in paths if p not in typed]
    assert not undocumented, f"values.yaml keys without a comment: {undocumented}"
    assert not untyped, f"values.yaml keys missing from values.schema.json: {untyped}"


def test_templates_start_with_a_purpose_comment() -> None:
    for path in sorted((CHART / "templates").rglob("*.yaml")):
        assert path.read_text().startswith("{{- /*"), (
            f"{path.relative_to(CHART)} has no purpose comment"
        )


def test_one_resource_per_template() -> None:
    for path in sorted((CHART / "templates").rglob("*.yaml")):
        kinds = re.findall(r"^kind: ", path.read_text(), re.M)
        assert len(kinds) == 1, f"{path.relative_to(CHART)} defines {len(kinds)} resources"
