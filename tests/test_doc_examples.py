"""The Python examples in docs/tutorial.md, docs/howto.md and docs/workbench.md run, and print what they say.

Every ```python block of a page is executed in order, in one namespace per
page, and every ```pycon block (``>>>`` prompts with the expected output) is
checked by doctest in that same namespace, with the repository root as working directory and matplotlib's Agg
backend, as a reader would run them one after another in a notebook.  Blocks
that must not run use another fence (```bash, ```text, ```yaml).  A traceback
points at the line of the Markdown file.  An unexpected ScenarioWarning fails
the test (pyproject's filterwarnings); pages that expect one catch it.

Shell examples of the tutorial and the how-to guides are checked too: in a
```console block every ``$ meshsim ...`` (or ``$ python -m meshsim ...``)
command runs in-process and must print the lines below it (whitespace
normalised) and exit 0; every ``meshsim validate`` or ``meshsim run`` line of
a ```bash block must exit 0, its ``--out`` sent to a temporary folder.
``meshsim sweep`` lines are left out (minutes of runs).
"""

from __future__ import annotations

import contextlib
import doctest
import io
import re
import shlex
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


# -- shell examples ------------------------------------------------------------------------
SHELL_PAGES = ["tutorial.md", "howto.md"]
MESHSIM = re.compile(r"^(?:python -m meshsim|meshsim)\s+(.*)$")


def shell_commands(text: str) -> list[tuple[str, int, list[str], str | None]]:
    """(kind, line, argv after ``meshsim``, expected output or None) of the meshsim commands in
    ```console and ```bash blocks; continuation lines (ending in a backslash) are joined."""
    out = []
    for m in FENCE.finditer(text):
        kind = m.group(1)
        if kind not in ("console", "bash"):
            continue
        first = text.count("\n", 0, m.start(2)) + 1
        lines = m.group(2).splitlines()
        i = 0
        while i < len(lines):
            line, start = lines[i], i
            if kind == "console" and not line.startswith("$ "):
                i += 1
                continue
            cmd = line[2:] if kind == "console" else line
            while cmd.rstrip().endswith("\\") and i + 1 < len(lines):
                i += 1
                cmd = cmd.rstrip()[:-1] + " " + lines[i].strip()
            i += 1
            want = None
            if kind == "console":
                body = []
                while i < len(lines) and not lines[i].startswith("$ "):
                    body.append(lines[i])
                    i += 1
                want = "\n".join(body)
            cm = MESHSIM.match(cmd.strip())
            if cm:
                out.append((kind, first + start, shlex.split(cm.group(1).split(" #")[0]), want))
    return out


def test_shell_command_extraction():
    text = ("```console\n$ meshsim validate a.yaml\nok\n  two\n$ ls\n```\n"
            "```bash\npython -m meshsim run a.yaml --seed 3 \\\n    --out out/x\nmake test\n```\n")
    assert shell_commands(text) == [("console", 2, ["validate", "a.yaml"], "ok\n  two"),
                                    ("bash", 8, ["run", "a.yaml", "--seed", "3", "--out", "out/x"], None)]


@pytest.mark.parametrize("page", SHELL_PAGES)
def test_shell_examples(page, monkeypatch, tmp_path):
    from meshsim.cli import main

    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    path = ROOT / "docs" / page
    commands = shell_commands(path.read_text(encoding="utf-8"))
    checked = 0
    for kind, line, argv, want in commands:
        if argv[0] == "sweep":
            continue
        argv = [str(tmp_path / f"out{line}") if i and argv[i - 1] == "--out" else a for i, a in enumerate(argv)]
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            status = main(argv)
        assert status == 0, f"{page}:{line}: meshsim {' '.join(argv)} exited {status}"
        if want is not None:
            got = buf.getvalue()
            assert " ".join(got.split()) == " ".join(want.split()), f"{page}:{line}: printed\n{got}\nexpected\n{want}"
        checked += 1
    assert page != "howto.md" or checked >= 2
