"""The layout's promises, checked on the source: a file's path is its import path, and each
package imports only what docs/architecture.md's package table allows it.

Imports are read with ``ast`` (function-level ones included, since lazy imports are still
dependencies), so the check needs nothing installed beyond the tree itself.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

from support import REPO

ROOTS = [REPO / "services" / "core", REPO / "services" / "api", REPO / "services" / "indexer"]

#: vdup packages each part may import (itself always). The composition roots (vdup.cli,
#: vdup.runtime) and the local-development tools (vdup.devstack) may import anything.
MAY_IMPORT = {
    "vdup.errors": set(),
    "vdup.media": {"vdup.errors"},
    "vdup.features": {"vdup.errors", "vdup.media"},
    "vdup.matching": {"vdup.features.types"},
    "vdup.catalog": {"vdup.errors", "vdup.features", "vdup.matching"},
    "vdup.checker": {
        "vdup.catalog",
        "vdup.errors",
        "vdup.features",
        "vdup.matching",
        "vdup.tracing",
    },
    "vdup.settings": {"vdup.features", "vdup.matching", "vdup.media"},
    "vdup.evaluate": set(),
    "vdup.metrics": set(),
    "vdup.tracing": set(),
    "vdup.triton": {"vdup.errors", "vdup.features", "vdup.media", "vdup.metrics", "vdup.settings"},
    "vdup.calibrate": {
        "vdup.catalog",
        "vdup.evaluate",
        "vdup.features",
        "vdup.matching",
        "vdup.runtime",
        "vdup.settings",
    },
    "vdup.indexer": {
        "vdup.catalog",
        "vdup.checker",
        "vdup.errors",
        "vdup.features",
        "vdup.matching",
        "vdup.metrics",
        "vdup.settings",
        "vdup.tracing",
    },
    "vdup.api": {
        "vdup.catalog",
        "vdup.checker",
        "vdup.errors",
        "vdup.features",
        "vdup.matching",
        "vdup.metrics",
        "vdup.runtime",
        "vdup.settings",
        "vdup.tracing",
    },
}
ROOTS_OF_COMPOSITION = {"vdup.cli", "vdup.runtime", "vdup.devstack"}

#: The pure core: no web framework, no network client, no metrics or tracing exporter.
CORE = ("vdup.media", "vdup.features", "vdup.matching", "vdup.catalog")
NOT_IN_CORE = {
    "fastapi",
    "starlette",
    "uvicorn",
    "httpx",
    "httpcore",
    "requests",
    "grpc",
    "tritonclient",
    "kubernetes",
    "pydantic",
    "pydantic_settings",
    "prometheus_client",
    "opentelemetry",
    "sklearn",
    "psycopg",
    "psycopg_pool",
}


def _modules() -> list[tuple[str, Path]]:
    out = []
    for root in ROOTS:
        for path in sorted((root / "vdup").rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out.append((name, path))
    return out


def _imports(path: Path, module: str) -> set[str]:
    """Absolute names of every module ``path`` imports, anywhere in it."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            names.add(base)
    return names


def _part(module: str) -> str:
    """The MAY_IMPORT key that ``module`` belongs to."""
    for key in sorted(MAY_IMPORT.keys() | ROOTS_OF_COMPOSITION, key=len, reverse=True):
        if module == key or module.startswith(key + "."):
            return key
    raise AssertionError(f"{module} belongs to no part of the package table")


def _inside(name: str, allowed: set[str]) -> bool:
    return any(name == a or name.startswith(a + ".") for a in allowed)


MODULES = _modules()


def test_every_path_ends_in_its_import_path():
    assert len(MODULES) > 40
    for name, path in MODULES:
        spec = importlib.util.find_spec(name)
        assert spec is not None and Path(spec.origin).resolve() == path.resolve(), name
    assert importlib.util.find_spec("vdup").origin is None  # one namespace over the services


@pytest.mark.parametrize("name,path", MODULES, ids=[m for m, _ in MODULES])
def test_each_package_imports_only_what_the_table_allows(name, path):
    part = _part(name)
    if part in ROOTS_OF_COMPOSITION:
        return
    allowed = MAY_IMPORT[part] | {part}
    wrong = sorted(
        i for i in _imports(path, name) if i.startswith("vdup.") and not _inside(i, allowed)
    )
    assert not wrong, f"{name} ({part}) imports {wrong}; allowed: {sorted(allowed)}"


@pytest.mark.parametrize("name,path", [(m, p) for m, p in MODULES if _part(m) in CORE])
def test_the_core_imports_no_framework_client_or_environment(name, path):
    third = {i.split(".")[0] for i in _imports(path, name)}
    assert not third & NOT_IN_CORE, f"{name} imports {sorted(third & NOT_IN_CORE)}"
    tree = ast.parse(path.read_text())
    env = [
        n.lineno
        for n in ast.walk(tree)
        if isinstance(n, ast.Attribute) and n.attr in ("environ", "getenv")
    ]
    assert not env, f"{name} reads the environment at lines {env}: take a setting instead"


def test_the_rules_catch_a_forbidden_import(tmp_path):
    bad = tmp_path / "x.py"
    bad.write_text("def f():\n    from vdup.api.app import create_app\n    import fastapi\n")
    found = _imports(bad, "vdup.matching.x")
    assert "vdup.api.app" in found and "fastapi" in found
    assert not _inside("vdup.api.app", MAY_IMPORT["vdup.matching"])
    rel = tmp_path / "y.py"
    rel.write_text("from .decide import Candidate\nfrom .. import errors\n")
    assert _imports(rel, "vdup.matching.y") == {"vdup.matching.decide", "vdup"}
