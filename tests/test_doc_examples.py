"""The Python examples in docs/tutorial.md, docs/howto.md and docs/workbench.md run, and print what they say.

Every ```python block of a page is executed in order, in one namespace per
page, and every ```pycon block (``>>>`` prompts with the expected output) is
checked by doctest in that same namespace, with the repository root as working directory and matplotlib's Agg
backend, as a reader would run them one after another in a notebook.  Blocks
that must not run use another fence (```bash, ```text, ```yaml).  A traceback
points at the line of the Markdown file.  An unexpected ScenarioWarning fails
the test (pyproject's filterwarnings); pages that expect one catch it.
"""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["tutorial.md", "howto.md", "workbench.md"]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def code_blocks(text: str) -> list[tuple[str, int, str]]:
    """(kind, line of the first code line, code) of every ```python and ```pycon block, in order."""
    return [(m.group(1), text.count("\n", 0, m.start(2)) + 1, m.group(2))
            for m in FENCE.finditer(text) if m.group(1) in ("python", "pycon")]


def run_block(kind: str, line: int, code: str, path: Path, namespace: dict) -> None:
    """Run a ```python block, or check a ```pycon block's printed output with doctest."""
    if kind == "python":
        # pad with blank lines so that tracebacks give the line in the .md file
        exec(compile("\n" * (line - 1) + code, str(path), "exec"), namespace)
        return
    parser, runner = doctest.DocTestParser(), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    test = parser.get_doctest(code, namespace, f"{path.name}:{line}", str(path), line - 1)
    test.globs = namespace  # one namespace per page, shared with the python blocks
    out: list[str] = []
    result = runner.run(test, out=out.append, clear_globs=False)
    assert result.failed == 0, "".join(out)


def test_block_extraction():
    text = "intro\n```python\nx = 1\n```\n\n```bash\nmeshsim run\n```\n```pycon\n>>> x\n1\n```\n"
    assert code_blocks(text) == [("python", 3, "x = 1\n"), ("pycon", 10, ">>> x\n1\n")]


def test_a_wrong_printed_output_fails(tmp_path):
    ns: dict = {}
    run_block("python", 1, "x = 1\n", tmp_path / "p.md", ns)
    run_block("pycon", 3, ">>> x + 1\n2\n", tmp_path / "p.md", ns)
    with pytest.raises(AssertionError, match="Expected"):
        run_block("pycon", 5, ">>> x + 1\n3\n", tmp_path / "p.md", ns)


@pytest.mark.parametrize("page", PAGES)
def test_examples_run(page, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = ROOT / "docs" / page
    blocks = code_blocks(path.read_text(encoding="utf-8"))
    assert blocks, f"{page} has no ```python blocks"
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.syspath_prepend(str(ROOT))
    namespace: dict = {"__name__": f"docs_{path.stem}"}
    try:
        for kind, line, code in blocks:
            run_block(kind, line, code, path, namespace)
    finally:
        plt.close("all")
