"""The layering of docs/architecture.md holds: a module imports (at module level) only from its own layer or
the layers below it, and the cores import nothing of meshsim beyond the foundations.  Imports inside
functions may reach up (``Result.to_chrome_trace`` imports the pictures when it is called); they are not
import-time dependencies and cannot make a cycle at import."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "meshsim"

#: top-level module or package of meshsim -> layer (lower = more basic), as docs/architecture.md lists them
LAYERS = {
    **dict.fromkeys(["errors", "units", "rng", "distributions", "calibration", "examples", "stats", "analytic",
                     "_lazy", "_proc", "_gc", "_background"], 0),
    "core": 1,
    **dict.fromkeys(["scenario", "topology", "tracefile"], 2),
    **dict.fromkeys(["sim", "registry"], 3),
    **dict.fromkeys(["run_record", "run_summary", "result", "report"], 4),
    **dict.fromkeys(["api", "compare", "sweep", "cli", "__init__", "__main__"], 5),
    **dict.fromkeys(["viz", "plots", "widgets", "teach", "grading", "experiments", "demo", "trace_export"], 6),
}


def top_of(path: Path) -> str:
    rel = path.relative_to(PKG)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def module_level_imports(path: Path) -> list[tuple[int, str]]:
    """(line, top-level meshsim module) of each import executed when the module is imported."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    rel = path.relative_to(PKG)
    pkg_parts = list(rel.parts[:-1])
    out = []

    def visit(stmts):
        for node in stmts:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if isinstance(node, ast.ClassDef):
                visit(node.body)
                continue
            if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
                continue
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg_parts[:len(pkg_parts) - (node.level - 1)] if node.level > 1 else pkg_parts
                    parts = base + (node.module.split(".") if node.module else [a.name for a in node.names][:1])
                elif node.module and node.module.split(".")[0] == "meshsim":
                    parts = node.module.split(".")[1:] or [a.name for a in node.names][:1]
                else:
                    continue
                if parts:
                    out.append((node.lineno, parts[0]))
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith("meshsim."):
                        out.append((node.lineno, a.name.split(".")[1]))
            for field in ("body", "orelse", "finalbody", "handlers"):
                inner = getattr(node, field, None)
                if isinstance(inner, list) and not isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                    visit(inner)

    visit(tree.body)
    return out


MODULES = sorted(p for p in PKG.rglob("*.py") if "data" not in p.relative_to(PKG).parts)


def test_every_module_has_a_layer():
    assert {top_of(p) for p in MODULES} <= set(LAYERS), sorted({top_of(p) for p in MODULES} - set(LAYERS))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PKG)))
def test_imports_only_from_its_layer_or_below(path):
    me = LAYERS[top_of(path)]
    bad = [(line, mod) for line, mod in module_level_imports(path) if mod in LAYERS and LAYERS[mod] > me]
    assert not bad, f"{path.relative_to(PKG)} (layer {me}) imports from higher layers: {bad}"


def test_cores_import_no_simpy_and_nothing_above_the_foundations():
    for path in (PKG / "core").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "import simpy" not in text and "from simpy" not in text, path
        ups = [(line, mod) for line, mod in module_level_imports(path) if LAYERS.get(mod, 0) > LAYERS["core"]]
        assert not ups, f"{path.relative_to(PKG)} imports {ups}"


def test_the_checker_catches_an_upward_import(tmp_path):
    fake = PKG / "core" / "__fake_for_test__.py"
    assert not fake.exists()
    try:
        fake.write_text("from ..sim.kernel import Kernel\n\ndef f():\n    from ..viz import style\n")
        found = module_level_imports(fake)
        assert found == [(1, "sim")]  # the function-level import is not an import-time dependency
    finally:
        fake.unlink()
