"""Grade nbgrader exercises without an nbgrader server: restore the tests, run, count the points.

A teacher who only collects ``.ipynb`` files can grade them with
``meshsim grade SUBMISSION.ipynb`` (or :func:`grade` from Python).  It does
what nbgrader's ``autograde`` does, without a gradebook database:

1. **restore** (:func:`restore_cells`): every locked cell and every autograded
   test cell of the submission is replaced, by its ``grade_id``, with the
   instructor's *source* version, hidden tests included; so an edited or
   weakened test counts for nothing.  Answer cells keep the student's code.
   Duplicated ids keep only their first cell; cells claiming a ``grade_id`` the
   source does not have lose their nbgrader metadata; all outputs are cleared.
2. **execute** (:func:`execute`): in a fresh kernel (nbclient), the working
   folder being the submission's folder, with a time limit per cell; errors do
   not stop the run (later cells still execute), a cell over its limit is
   interrupted.
3. **score** (:func:`score_cells`): nbgrader's rule for each autograded test
   cell: no points if it printed an error or anything on stderr, partial
   credit if its last value is a number, else all its points.  Points are the
   source's (a student cannot raise them).  A test cell that is missing, or
   that never ran because the kernel died, scores 0.  Manually graded cells
   (written answers) are listed with ``status == "manual"`` and no points.

The source notebook is found next to the course's layout
(``<course>/source/<id>/<id>.ipynb`` above the submission, as nbgrader lays
out ``release/`` and ``submitted/``; see :func:`find_source`) or given.

>>> import nbformat
>>> v4 = nbformat.v4
>>> def meta(gid, grade=False, solution=False, points=0):
...     return {"nbgrader": {"grade_id": gid, "grade": grade, "solution": solution, "locked": not solution,
...                          "points": points, "schema_version": 3, "task": False}}
>>> source = v4.new_notebook(cells=[
...     v4.new_code_cell("x = 2", metadata=meta("answer", solution=True)),
...     v4.new_code_cell("assert x == 2", metadata=meta("test", grade=True, points=3))])
>>> student = v4.new_notebook(cells=[
...     v4.new_code_cell("x = 2", metadata=meta("answer", solution=True)),
...     v4.new_code_cell("pass  # test removed by the student", metadata=meta("test", grade=True, points=99))])
>>> restored = restore_cells(student, source)
>>> restored.cells[1].source, restored.cells[1].metadata.nbgrader.points
('assert x == 2', 3)
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from nbformat import NotebookNode

__all__ = [
    "Graded",
    "cell_errors",
    "execute",
    "find_source",
    "format_table",
    "grade",
    "grade_many",
    "grade_notebook",
    "restore_cells",
    "score_cells",
    "to_json",
]

DEFAULT_TIMEOUT_S = 120.0
COLUMNS = ["grade_id", "points", "max_points", "status", "error"]


# --------------------------------------------------------------------------- cell kinds (nbgrader's rules)


def _nbg(cell: Any) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def _is_grade(cell: Any) -> bool:
    return bool(_nbg(cell).get("grade", False))


def _is_solution(cell: Any) -> bool:
    return bool(_nbg(cell).get("solution", False))


def _is_locked(cell: Any) -> bool:
    """Locked = overwritten from the source at grading: grade cells that are not answers, and locked cells."""
    meta = _nbg(cell)
    if not meta or meta.get("solution", False):
        return False
    return bool(meta.get("grade", False) or meta.get("locked", False))


def _is_autograded_test(cell: Any) -> bool:
    return cell.get("cell_type") == "code" and _is_grade(cell) and not _is_solution(cell)


def _grade_id(cell: Any) -> str | None:
    gid = _nbg(cell).get("grade_id")
    return str(gid) if gid else None


# --------------------------------------------------------------------------- restore


def restore_cells(submission: NotebookNode, source: NotebookNode) -> NotebookNode:
    """A copy of ``submission`` with its locked and test cells taken from ``source``, outputs cleared.

    Matching is by nbgrader ``grade_id``.  Locked cells and autograded test
    cells get the source's text, type and metadata (so hidden tests come back
    and points are the source's); answer cells keep the student's text with
    the source's nbgrader metadata.  A ``grade_id`` seen twice keeps only its
    first cell; an id the source does not know loses its nbgrader metadata.
    The kernelspec is the source's.  Source cells missing from the submission
    are not added (:func:`score_cells` reports them as ``missing``).

    >>> import nbformat
    >>> v4 = nbformat.v4
    >>> locked = {"nbgrader": {"grade_id": "setup", "locked": True, "grade": False, "solution": False}}
    >>> src = v4.new_notebook(cells=[v4.new_code_cell("import math", metadata=locked)])
    >>> sub = v4.new_notebook(cells=[v4.new_code_cell("import os", metadata=locked),
    ...                              v4.new_code_cell("y = 1", metadata=locked)])   # a copy of the cell
    >>> out = restore_cells(sub, src)
    >>> [c.source for c in out.cells], "nbgrader" in out.cells[1].metadata
    (['import math', 'y = 1'], False)
    """
    by_id = {}
    for cell in source.cells:
        gid = _grade_id(cell)
        if gid and gid not in by_id:
            by_id[gid] = cell
    nb = copy.deepcopy(submission)
    seen: set[str] = set()
    for i, cell in enumerate(nb.cells):
        gid = _grade_id(cell)
        if gid is None:
            cell.get("metadata", {}).pop("nbgrader", None)
        elif gid in seen or gid not in by_id:
            cell.metadata.pop("nbgrader", None)
        else:
            seen.add(gid)
            ref = by_id[gid]
            if _is_locked(ref) or _is_autograded_test(ref):
                new = copy.deepcopy(ref)
                if "id" in cell:
                    new["id"] = cell["id"]
                nb.cells[i] = cell = new
            else:
                cell.metadata["nbgrader"] = copy.deepcopy(ref.metadata["nbgrader"])
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    if "kernelspec" in source.get("metadata", {}):
        nb.metadata["kernelspec"] = copy.deepcopy(source.metadata["kernelspec"])
    return nb


# --------------------------------------------------------------------------- execute


def execute(nb: NotebookNode, cwd: str | os.PathLike, timeout_s: float = DEFAULT_TIMEOUT_S,
            kernel_name: str | None = None) -> NotebookNode:
    """Run ``nb`` in place in a fresh kernel with ``cwd`` as its folder; errors do not stop the run.

    ``timeout_s`` bounds each cell (the kernel is interrupted, the cell gets a
    ``KeyboardInterrupt`` error, the run goes on).  ``kernel_name`` defaults to
    the notebook's kernelspec, else ``python3``.  If the kernel dies, the
    cells after it keep no execution count (and score 0).  Returns ``nb``.

    >>> import nbformat, tempfile
    >>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 / 0"),
    ...                                      nbformat.v4.new_code_cell("print('still runs')")])
    >>> _ = execute(nb, tempfile.gettempdir(), timeout_s=60)
    >>> nb.cells[0].outputs[0].ename, nb.cells[1].outputs[0].text
    ('ZeroDivisionError', 'still runs\\n')
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, DeadKernelError

    name = kernel_name or nb.get("metadata", {}).get("kernelspec", {}).get("name") or "python3"
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # else a debugger notice may reach stderr
    client = NotebookClient(
        nb,
        timeout=max(1, int(math.ceil(timeout_s))),
        startup_timeout=120,
        kernel_name=name,
        allow_errors=True,
        interrupt_on_timeout=True,
        error_on_timeout={"ename": "TimeoutError", "evalue": f"cell ran longer than {timeout_s:g} s",
                          "traceback": [f"TimeoutError: cell ran longer than {timeout_s:g} s"]},
        record_timing=False,
        resources={"metadata": {"path": str(cwd)}},
    )
    try:
        client.execute()
    except (DeadKernelError, CellExecutionError) as exc:  # the kernel died: the rest stays unexecuted
        nb.metadata.setdefault("meshsim_grading", {})["aborted"] = f"{type(exc).__name__}: {exc}"[:500]
    return nb


# --------------------------------------------------------------------------- score


def _first_line(text: str, limit: int = 200) -> str:
    lines = [ln for ln in str(text).splitlines() if ln.strip()]
    line = lines[0] if lines else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _cell_score(cell: Any, max_points: float) -> tuple[float, str, str]:
    """(points, status, error) of one executed autograded test cell, by nbgrader's rule."""
    if cell.get("execution_count") is None and cell.get("source", "").strip():
        return 0.0, "not run", ""
    for out in cell.get("outputs", []):
        kind = out.get("output_type")
        if kind == "error":
            ename, evalue = out.get("ename", "Error"), out.get("evalue", "")
            return 0.0, "failed", _first_line(f"{ename}: {evalue}" if str(evalue).strip() else ename)
        if kind == "stream" and out.get("name") == "stderr":
            return 0.0, "failed", "stderr: " + _first_line(out.get("text", ""))
        if kind == "execute_result":
            text = out.get("data", {}).get("text/plain", "")
            text = "".join(text) if isinstance(text, list) else text
            try:
                value = float(text)
            except ValueError:
                return max_points, "passed", ""
            if value > max_points:
                return 0.0, "failed", f"partial credit {value:g} above the cell's {max_points:g} points"
            if value >= 0:
                return value, ("passed" if value == max_points else "partial"), ""
            return max_points, "passed", ""
    return max_points, "passed", ""


def score_cells(executed: NotebookNode, source: NotebookNode) -> pd.DataFrame:
    """Points per graded cell of ``source``, read from the ``executed`` (restored) notebook.

    One row per source grade cell, in source order: ``grade_id``, ``points``
    (NaN for manually graded cells), ``max_points``, ``status`` (passed,
    partial, failed, not run, missing, manual) and ``error`` (first line of
    the error, or ""); ``attrs`` hold ``total`` and ``max_total``.

    >>> import nbformat
    >>> v4 = nbformat.v4
    >>> test = {"nbgrader": {"grade_id": "t", "grade": True, "solution": False, "points": 2}}
    >>> src = v4.new_notebook(cells=[v4.new_code_cell("assert x", metadata=test)])
    >>> done = copy.deepcopy(src)
    >>> done.cells[0].execution_count = 1
    >>> done.cells[0].outputs = [v4.new_output("error", ename="NameError", evalue="name 'x' is not defined")]
    >>> table = score_cells(done, src)
    >>> table[["grade_id", "points", "status", "error"]].values.tolist()
    [['t', 0.0, 'failed', "NameError: name 'x' is not defined"]]
    >>> table.attrs["total"], table.attrs["max_total"]
    (0.0, 2.0)
    """
    import pandas as pd

    executed_by_id = {}
    for cell in executed.cells:
        gid = _grade_id(cell)
        if gid and gid not in executed_by_id:
            executed_by_id[gid] = cell
    rows = []
    for ref in source.cells:
        if not _is_grade(ref):
            continue
        gid = _grade_id(ref)
        max_points = float(_nbg(ref).get("points", 0) or 0)
        if not _is_autograded_test(ref):
            rows.append((gid, math.nan, max_points, "manual", ""))
            continue
        cell = executed_by_id.get(gid)
        if cell is None:
            rows.append((gid, 0.0, max_points, "missing", "the test cell is not in the submission"))
            continue
        points, status, error = _cell_score(cell, max_points)
        rows.append((gid, points, max_points, status, error))
    table = pd.DataFrame(rows, columns=COLUMNS)
    table.attrs["total"] = float(table["points"].fillna(0).sum())
    table.attrs["max_total"] = float(table["max_points"].sum())
    return table


def cell_errors(nb: NotebookNode) -> list[dict[str, Any]]:
    """Every error output of an executed notebook: ``cell`` (index), ``grade_id``, ``ename``, ``evalue``.

    >>> import nbformat
    >>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x")])
    >>> nb.cells[0].outputs = [nbformat.v4.new_output("error", ename="NameError", evalue="x")]
    >>> cell_errors(nb)
    [{'cell': 0, 'grade_id': None, 'ename': 'NameError', 'evalue': 'x'}]
    """
    found = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                found.append({"cell": i, "grade_id": _grade_id(cell), "ename": out.get("ename"),
                              "evalue": out.get("evalue")})
    return found


# --------------------------------------------------------------------------- the whole thing


@dataclass
class Graded:
    """One graded submission: the points ``table`` (see :func:`score_cells`) and the ``executed`` notebook."""

    submission: Path
    source: Path | None
    table: pd.DataFrame
    executed: NotebookNode
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> float:
        """Points earned on the autograded cells."""
        return float(self.table.attrs["total"])

    @property
    def max_total(self) -> float:
        """Points available (manually graded cells included)."""
        return float(self.table.attrs["max_total"])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: notebook, source, total, max_total, seconds and one dict per graded cell."""
        cells = []
        for row in self.table.to_dict("records"):
            pts = row["points"]
            cells.append({**row, "points": None if isinstance(pts, float) and math.isnan(pts) else pts})
        return {"notebook": str(self.submission), "source": str(self.source) if self.source else None,
                "total": self.total, "max_total": self.max_total, "seconds": round(self.seconds, 2),
                "notes": list(self.notes), "cells": cells}


def find_source(submission: str | os.PathLike) -> Path | None:
    """The instructor's version of a submission, by nbgrader's layout, or None.

    Looks for ``source/<name>/<name>.ipynb`` in each folder above the
    submission (the course root of ``release/<name>/<name>.ipynb`` and of
    ``submitted/<student>/<name>/<name>.ipynb``), then in this repository's
    ``notebooks/exercises/``.  A notebook that is itself in ``source/`` is its
    own source.

    >>> p = find_source("notebooks/exercises/release/ex01_littles_law/ex01_littles_law.ipynb")
    >>> p is None or p.parts[-3:] == ("source", "ex01_littles_law", "ex01_littles_law.ipynb")
    True
    """
    path = Path(submission).resolve()
    stem = path.stem
    if path.parent.parent.name == "source" and path.parent.name == stem:
        return path
    candidates = [d / "source" / stem / f"{stem}.ipynb" for d in path.parents]
    candidates.append(Path(__file__).resolve().parents[1] / "notebooks" / "exercises" / "source" / stem / f"{stem}.ipynb")
    for c in candidates:
        if c.is_file():
            return c
    return None


def grade_notebook(submission: NotebookNode, source: NotebookNode, cwd: str | os.PathLike,
                   timeout_s: float = DEFAULT_TIMEOUT_S, kernel_name: str | None = None) -> Graded:
    """Restore, execute and score an in-memory submission against its ``source`` (see the module doc).

    >>> import nbformat, tempfile
    >>> v4 = nbformat.v4
    >>> t = {"nbgrader": {"grade_id": "t", "grade": True, "solution": False, "locked": True, "points": 1}}
    >>> a = {"nbgrader": {"grade_id": "a", "grade": False, "solution": True, "locked": False}}
    >>> src = v4.new_notebook(cells=[v4.new_code_cell("x = 1", metadata=a),
    ...                              v4.new_code_cell("assert x == 1", metadata=t)])
    >>> sub = copy.deepcopy(src)
    >>> sub.cells[0].source = "x = 2"
    >>> g = grade_notebook(sub, src, tempfile.gettempdir(), timeout_s=60)
    >>> g.total, g.max_total, g.table.loc[0, "status"], g.table.loc[0, "error"]
    (0.0, 1.0, 'failed', 'AssertionError')
    """
    start = time.monotonic()
    restored = restore_cells(submission, source)
    executed = execute(restored, cwd, timeout_s=timeout_s, kernel_name=kernel_name)
    table = score_cells(executed, source)
    notes = []
    aborted = executed.metadata.get("meshsim_grading", {}).get("aborted")
    if aborted:
        notes.append(f"the run stopped early: {aborted}")
    return Graded(Path("<memory>"), None, table, executed, time.monotonic() - start, notes)


def _read(path: Path) -> NotebookNode:
    import nbformat

    return nbformat.read(str(path), as_version=4)


def _grade_path(path: str | os.PathLike, source: str | os.PathLike | None, timeout_s: float,
                kernel_name: str | None) -> Graded:
    sub_path = Path(path)
    if not sub_path.is_file():
        raise FileNotFoundError(f"no such notebook: {sub_path}")
    src_path = Path(source) if source is not None else find_source(sub_path)
    if src_path is None:
        raise FileNotFoundError(
            f"no source version found for {sub_path.name} (looked for source/{sub_path.stem}/{sub_path.name} "
            f"above it): give it with --source")
    if not src_path.is_file():
        raise FileNotFoundError(f"no such source notebook: {src_path}")
    g = grade_notebook(_read(sub_path), _read(src_path), sub_path.resolve().parent,
                       timeout_s=timeout_s, kernel_name=kernel_name)
    g.submission, g.source = sub_path, src_path
    return g


def grade(path: str | os.PathLike, source: str | os.PathLike | None = None, *,
          timeout_s: float = DEFAULT_TIMEOUT_S, kernel_name: str | None = None) -> pd.DataFrame:
    """Grade one submitted notebook file; one row per graded cell (see :func:`score_cells`).

    ``source`` is the instructor's version (default: :func:`find_source`);
    its locked cells and tests, hidden ones included, replace the
    submission's before it runs in its own folder, each cell limited to
    ``timeout_s``.  ``attrs``: ``total``, ``max_total``, ``notebook``,
    ``source``.  Raises FileNotFoundError when a notebook is missing.

    >>> import nbformat, tempfile
    >>> v4 = nbformat.v4
    >>> t = {"nbgrader": {"grade_id": "t", "grade": True, "solution": False, "locked": True, "points": 2}}
    >>> folder = Path(tempfile.mkdtemp())
    >>> nbformat.write(v4.new_notebook(cells=[v4.new_code_cell("assert 1 + 1 == 2", metadata=t)]),
    ...                str(folder / "src.ipynb"))
    >>> nbformat.write(v4.new_notebook(cells=[v4.new_code_cell("", metadata=t)]), str(folder / "hw.ipynb"))
    >>> table = grade(folder / "hw.ipynb", source=folder / "src.ipynb", timeout_s=60)
    >>> table[["grade_id", "points", "max_points", "status"]].values.tolist()
    [['t', 2.0, 2.0, 'passed']]
    """
    g = _grade_path(path, source, timeout_s, kernel_name)
    g.table.attrs.update({"notebook": str(g.submission), "source": str(g.source)})
    return g.table


def grade_many(paths: Sequence[str | os.PathLike], source: str | os.PathLike | None = None, *,
               timeout_s: float = DEFAULT_TIMEOUT_S, kernel_name: str | None = None,
               workers: int = 1) -> list[Graded]:
    """Grade several files, ``workers`` kernels at a time; results in the order of ``paths``.

    ``source`` applies to all of them (default: each one's :func:`find_source`).

    >>> grade_many([])
    []
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")

    def one(p: str | os.PathLike) -> Graded:
        return _grade_path(p, source, timeout_s, kernel_name)

    if workers == 1 or len(paths) <= 1:
        return [one(p) for p in paths]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, paths))


def format_table(graded: Graded | Iterable[Graded]) -> str:
    """A plain-text report: one block per notebook (cells, points, status, first error line) and its total.

    >>> import pandas as pd, nbformat
    >>> t = pd.DataFrame([("q1", 2.0, 2.0, "passed", ""), ("q2", 0.0, 3.0, "failed", "AssertionError: too slow")],
    ...                  columns=COLUMNS)
    >>> t.attrs.update(total=2.0, max_total=5.0)
    >>> print(format_table(Graded(Path("hw.ipynb"), Path("src.ipynb"), t, nbformat.v4.new_notebook())))
    hw.ipynb  (source: src.ipynb)
      cell   points  max  status  error
      q1        2.0  2.0  passed
      q2        0.0  3.0  failed  AssertionError: too slow
      total     2.0  5.0
    """
    items = [graded] if isinstance(graded, Graded) else list(graded)
    blocks = []
    for g in items:
        rows = [("cell", "points", "max", "status", "error")]
        for r in g.table.itertuples(index=False):
            pts = "-" if isinstance(r.points, float) and math.isnan(r.points) else f"{r.points:.1f}"
            rows.append((r.grade_id, pts, f"{r.max_points:.1f}", r.status, r.error))
        rows.append(("total", f"{g.total:.1f}", f"{g.max_total:.1f}", "", ""))
        w = [max(len(row[k]) for row in rows) for k in range(4)]
        lines = [f"{g.submission}  (source: {g.source})"]
        for row in rows:
            line = f"  {row[0]:<{w[0]}}  {row[1]:>{w[1]}}  {row[2]:>{w[2]}}  {row[3]:<{w[3]}}  {row[4]}"
            lines.append(line.rstrip())
        lines += [f"  note: {n}" for n in g.notes]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def to_json(graded: Graded | Iterable[Graded], indent: int = 2) -> str:
    """JSON of one result (an object) or several (a list); see :meth:`Graded.to_dict`.

    >>> import pandas as pd, nbformat
    >>> t = pd.DataFrame([("q1", 1.0, 1.0, "passed", "")], columns=COLUMNS)
    >>> t.attrs.update(total=1.0, max_total=1.0)
    >>> json.loads(to_json(Graded(Path("hw.ipynb"), None, t, nbformat.v4.new_notebook())))["total"]
    1.0
    """
    if isinstance(graded, Graded):
        return json.dumps(graded.to_dict(), indent=indent)
    return json.dumps([g.to_dict() for g in graded], indent=indent)
