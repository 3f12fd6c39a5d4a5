"""The README's examples run as written, and the code is ruff-clean."""

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def test_readme_examples_run_in_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the drawing example writes files
    namespace: dict = {}
    blocks = python_blocks()
    assert blocks, "the README has no python example"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102
    assert namespace["value"].shape == () and set(namespace["grads"]) == {"W1", "b1", "W2", "b2"}
    assert namespace["W"].grad.shape == (784, 64)
    assert np.allclose(namespace["x_min"], np.linalg.solve(namespace["A"], namespace["b"]))
    assert set(namespace["hv_mnist"]) == {"W1", "b1", "W2", "b2"}
    assert np.allclose(namespace["H"] @ np.ones(2), namespace["hv"])
    assert namespace["path"].exists() and "cluster_hidden" in namespace["graph"].source


def test_code_is_ruff_clean():
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (it comes with the test extra)")
    result = subprocess.run([ruff, "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
