"""The Python examples in docs/tutorial.md and docs/howto.md run.

Every ```python block of a page is executed in order, in one namespace per
page, with the repository root as working directory and matplotlib's Agg
backend, as a reader would run them one after another in a notebook.  Blocks
that must not run use another fence (```bash, ```text, ```yaml).  A traceback
points at the line of the Markdown file.  An unexpected ScenarioWarning fails
the test (pyproject's filterwarnings); pages that expect one catch it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["tutorial.md", "howto.md"]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(line of the first code line, code) of every ```python block, in order."""
    return [(text.count("\n", 0, m.start(2)) + 1, m.group(2)) for m in FENCE.finditer(text) if m.group(1) == "python"]


def test_block_extraction():
    text = "intro\n```python\nx = 1\n```\n\n```bash\nmeshsim run\n```\n```python\ny = x\n```\n"
    assert python_blocks(text) == [(3, "x = 1\n"), (10, "y = x\n")]


@pytest.mark.parametrize("page", PAGES)
def test_examples_run(page, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = ROOT / "docs" / page
    blocks = python_blocks(path.read_text(encoding="utf-8"))
    assert blocks, f"{page} has no ```python blocks"
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.syspath_prepend(str(ROOT))
    namespace: dict = {"__name__": f"docs_{path.stem}"}
    try:
        for line, code in blocks:
            # pad with blank lines so that tracebacks give the line in the .md file
            exec(compile("\n" * (line - 1) + code, str(path), "exec"), namespace)
    finally:
        plt.close("all")
