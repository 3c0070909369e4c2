"""Every notebook's code cells run top to bottom (in-process, no Jupyter server needed)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import matplotlib
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path: Path, monkeypatch):
    matplotlib.use("Agg")
    monkeypatch.chdir(path.parent)
    nb = json.loads(path.read_text(encoding="utf-8"))
    namespace: dict = {"__name__": "__notebook__"}
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        code = compile(source, f"{path.name}[cell {i}]", "exec")
        exec(code, namespace)  # noqa: S102 - running our own notebooks is the point
    import matplotlib.pyplot as plt

    plt.close("all")
    assert os.getcwd() == str(path.parent)


def test_there_is_a_notebook():
    assert NOTEBOOKS


def test_parameters_cell_can_be_overridden_like_papermill(monkeypatch):
    """papermill injects a cell after the one tagged 'parameters'; emulate that in-process."""
    matplotlib.use("Agg")
    path = ROOT / "notebooks" / "02_load_point.ipynb"
    monkeypatch.chdir(path.parent)
    nb = json.loads(path.read_text(encoding="utf-8"))
    tagged = [i for i, c in enumerate(nb["cells"]) if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1
    ns: dict = {}
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        exec(compile("".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"], f"cell {i}", "exec"), ns)
        if i == tagged[0]:
            exec("rate = 900\napi_replicas = 4\nduration = '15s'", ns)
    assert ns["result"].scenario.services["api"]["replicas"] == 4
    assert ns["result"].scenario.workloads["users"]["rate"] == 900
    import matplotlib.pyplot as plt

    plt.close("all")
