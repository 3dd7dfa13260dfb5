"""tools/install-k8s-tools.sh is idempotent: with the tools present it only checks them."""

from __future__ import annotations

import time

import pytest

from .conftest import ROOT, run, tool

pytestmark = pytest.mark.slow  # runs the tool installer


def test_install_script_is_quick_when_tools_are_present() -> None:
    for name in ("helm", "kubectl", "promtool", "kubernetes-validate"):
        tool(name)
    started = time.monotonic()
    result = run(["bash", ROOT / "tools" / "install-k8s-tools.sh"])
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("present") == 3, result.stderr
    assert "downloading" not in result.stderr and "installing" not in result.stderr
    assert elapsed < 10, f"took {elapsed:.1f}s with everything installed"
