"""`examples/python_api.py`: BCO(0) with plain Trainers and the public API only, and it learns."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import bco_lightning

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "python_api.py"


def test_example_uses_only_public_names() -> None:
    """It imports from `bco_lightning` itself (names in `__all__`) and touches no private attribute."""
    tree = ast.parse(EXAMPLE.read_text())
    imported = [node for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("bco_lightning")]
    assert imported, "the example should use bco_lightning"
    for node in imported:
        assert node.module == "bco_lightning", f"line {node.lineno} imports from {node.module}, not the public package"
        assert {alias.name for alias in node.names} <= set(bco_lightning.__all__)
    private = [node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute) and node.attr.startswith("_")]
    assert not private, f"private attributes used: {private}"


@pytest.mark.slow
def test_example_learns_pendulum_from_states_only(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLE)], cwd=tmp_path, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert result.returncode == 0, result.stderr[-2000:]
    match = re.search(r"normalized score (-?[0-9.]+)", result.stdout)
    assert match, result.stdout
    assert float(match.group(1)) >= 0.9, result.stdout
