"""The notebooks: each one runs top to bottom in a real Jupyter kernel, fast, and follows the house layout.

Every ``notebooks/*.ipynb`` (top level only) is executed with nbclient in the ``python3`` kernel of
this very interpreter (the test points Jupyter's search path at this venv first, and checks the
kernel's ``sys.prefix``), with ``notebooks/`` as the working folder and matplotlib's inline
backend, as a person running it in JupyterLab would.  The executed copies and their run times
are written to ``out/notebooks/``.

Layout rules, checked without running anything:

* the first cell is markdown: a ``#`` title, what the notebook teaches ("you will learn ..."),
  and how long it takes ("about 10 minutes");
* exactly one code cell is tagged ``parameters`` (so papermill can run it with other values);
* the last cell is markdown and its section is "Questions ..." (things to try next);
* committed notebooks carry no outputs (CI runs them; the repository stays small);
* no code cell defines a class: models live in ``meshsim``, notebooks only use them.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
OUT = ROOT / "out" / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("*.ipynb"))  # top level only: notebooks/exercises/ has its own rules

CELL_TIMEOUT_S = 180  # one cell; beyond it nbclient interrupts and the test fails
NOTEBOOK_BUDGET_S = 120  # a whole notebook, kernel start included
KERNEL = "python3"

_TIME_RE = re.compile(r"\b\d+\s*(?:(?:-|–|to)\s*\d+\s*)?(?:min\b|mins\b|minutes?\b)", re.IGNORECASE)
_TEACH_RE = re.compile(r"\b(?:learn|teach|teaches|you will|you'll|shows? you|how to)\b", re.IGNORECASE)
_CLASS_RE = re.compile(r"^\s*class\s+\w+\s*[(:]", re.MULTILINE)
_HEADING_RE = re.compile(r"^\s{0,3}#{1,6}\s+(.*\S)\s*$", re.MULTILINE)


def _source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _read(path: Path):
    return nbformat.read(path, as_version=4)


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _ids(path: Path) -> str:
    return path.name


@pytest.fixture(scope="module")
def kernel_env():
    """Environment for kernels: this venv's kernels first, matplotlib's inline backend (not Agg).

    ``make test`` sets MPLBACKEND=Agg for the test process; a kernel inheriting it would draw no
    inline figures, so it is removed here.  JUPYTER_PATH puts ``<sys.prefix>/share/jupyter`` ahead
    of the user's folders, so the ``python3`` kernel is this interpreter's (``make`` installs its
    spec with ``ipykernel install --sys-prefix``; without one, jupyter_client's built-in spec
    runs ``sys.executable``, the same interpreter).
    """
    saved = dict(os.environ)
    os.environ.pop("MPLBACKEND", None)
    venv_data = str(Path(sys.prefix) / "share" / "jupyter")
    os.environ["JUPYTER_PATH"] = os.pathsep.join([venv_data, *filter(None, [saved.get("JUPYTER_PATH")])])
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # quiet debugger warning on stderr
    try:
        yield dict(os.environ)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _execute(nb, cwd: Path, name: str) -> float:
    """Run ``nb`` in place in a fresh ``python3`` kernel; return the wall time in seconds."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        startup_timeout=90,
        kernel_name=KERNEL,
        resources={"metadata": {"path": str(cwd)}},
    )
    start = time.monotonic()
    try:
        client.execute()
    except CellTimeoutError as exc:
        pytest.fail(f"{name}: a cell ran longer than {CELL_TIMEOUT_S} s\n{exc}")
    except CellExecutionError as exc:
        pytest.fail(f"{name}: a cell raised\n{exc}")
    return time.monotonic() - start


def _errors(nb) -> list[str]:
    """Every error output, and every stderr stream that carries a traceback, as 'cell N: text'."""
    found = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                found.append(f"cell {i}: {out.get('ename')}: {out.get('evalue')}")
            elif out.get("output_type") == "stream" and out.get("name") == "stderr" and "Traceback" in out.get("text", ""):
                found.append(f"cell {i}: stderr traceback\n{out['text'][-2000:]}")
    return found


# -- layout, without running anything ---------------------------------------------------------


def test_there_are_notebooks():
    assert NB_DIR.joinpath("00_quickstart.ipynb") in NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_notebook_layout(path: Path):
    nb = _read(path)
    nbformat.validate(nb)
    cells = [c for c in nb.cells if _source(c).strip()]
    assert cells, f"{path.name} is empty"

    first = cells[0]
    text = _source(first)
    assert first.cell_type == "markdown", f"{path.name}: the first cell must be markdown saying what it teaches"
    assert text.lstrip().startswith("# "), f"{path.name}: the first cell must open with a '# ' title"
    assert _TEACH_RE.search(text), f"{path.name}: the first cell must say what it teaches ('You will learn ...')"
    assert _TIME_RE.search(text), f"{path.name}: the first cell must say how long it takes ('about 10 minutes')"

    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in _tags(c)]
    assert len(tagged) == 1, f"{path.name}: exactly one cell must be tagged 'parameters', found {len(tagged)}"
    assert nb.cells[tagged[0]].cell_type == "code", f"{path.name}: the 'parameters' cell must be a code cell"

    last = cells[-1]
    assert last.cell_type == "markdown", f"{path.name}: the notebook must end with a markdown 'Questions' section"
    headings = [h for c in nb.cells if c.cell_type == "markdown" for h in _HEADING_RE.findall(_source(c))]
    assert headings and "question" in headings[-1].lower(), (
        f"{path.name}: the last section must be 'Questions ...', it is {headings[-1] if headings else None!r}"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_committed_without_outputs(path: Path):
    """Notebooks are committed clean: CI runs them, outputs would only bloat the repository."""
    nb = _read(path)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count"))]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs; clear them before committing"
    assert path.stat().st_size < 200_000, f"{path.name}: {path.stat().st_size} bytes; keep notebooks small"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_no_model_code_in_cells(path: Path):
    """Models live in meshsim (tested there); a notebook only uses them."""
    nb = _read(path)
    offenders = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and _CLASS_RE.search(_source(c))]
    assert not offenders, f"{path.name}: cells {offenders} define classes; move them into meshsim"


def test_layout_rules_reject_a_bad_notebook():
    """The checks above can fail: a notebook breaking every rule is caught by each regex."""
    assert not _TIME_RE.search("# Title\nWe look at queues.")
    assert _TIME_RE.search("Time: about 15 minutes") and _TIME_RE.search("takes 10-15 min")
    assert not _TEACH_RE.search("# Queues\nSome numbers.")
    assert _CLASS_RE.search("import x\nclass Station(Base):\n    pass")
    assert not _CLASS_RE.search("# each class of request\nx = 'class A:'")


# -- running them ------------------------------------------------------------------------------


def test_kernel_is_this_venv(kernel_env, tmp_path):
    """The 'python3' kernel the notebooks run in is this interpreter, with meshsim importable."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import sys, meshsim\nprint(sys.prefix)")])
    _execute(nb, tmp_path, "kernel check")
    printed = "".join(o.get("text", "") for o in nb.cells[0].outputs).strip()
    assert Path(printed).resolve() == Path(sys.prefix).resolve(), (
        f"the python3 kernel runs in {printed}, not in this venv {sys.prefix}: "
        f"run `{sys.executable} -m ipykernel install --sys-prefix --name python3`"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_notebook_runs(path: Path, kernel_env):
    """Top to bottom in a real kernel, cwd notebooks/: no error output, and under the time budget."""
    nb = _read(path)
    elapsed = _execute(nb, NB_DIR, path.name)
    OUT.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, OUT / path.name)
    timings = OUT / "timings.json"
    try:
        recorded = json.loads(timings.read_text())
    except (OSError, ValueError):
        recorded = {}
    recorded[path.name] = round(elapsed, 1)
    timings.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")
    print(f"{path.name}: {elapsed:.1f} s")

    errors = _errors(nb)
    assert not errors, f"{path.name}: error outputs\n" + "\n".join(errors)
    assert elapsed < NOTEBOOK_BUDGET_S, (
        f"{path.name} took {elapsed:.1f} s to run, over the {NOTEBOOK_BUDGET_S} s budget: "
        "shorten its runs (run.duration / run.requests) or fewer replications"
    )


def test_papermill_runs_quickstart_with_other_parameters(kernel_env, tmp_path):
    """papermill injects new values after the 'parameters' cell, and the run uses them."""
    papermill = pytest.importorskip("papermill")
    src = NB_DIR / "00_quickstart.ipynb"
    dest = tmp_path / "00_seed2.ipynb"
    papermill.execute_notebook(
        str(src),
        str(dest),
        parameters={"seed": 2, "duration": "20s"},
        kernel_name=KERNEL,
        cwd=str(NB_DIR),
        execution_timeout=CELL_TIMEOUT_S,
        start_timeout=90,
        progress_bar=False,
    )
    nb = _read(dest)
    tags = [_tags(c) for c in nb.cells]
    tagged = next(i for i, t in enumerate(tags) if "parameters" in t)
    assert "injected-parameters" in tags[tagged + 1]
    assert not _errors(nb)
    shown = "\n".join(
        "".join(o.get("data", {}).get("text/plain", "")) + "".join(o.get("data", {}).get("text/html", ""))
        + "".join(o.get("text", ""))
        for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )
    assert re.search(r"\bseed 2\b", shown), "the run did not use the injected seed"
    assert re.search(r"simulated 20\.\d+\s*s", shown), "the run did not use the injected duration"
    assert not re.search(r"\bseed 1\b", shown)
