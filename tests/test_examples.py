"""Shipped examples: found from any folder, listed with their purpose, inside the built wheel."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import meshsim
from meshsim.errors import ScenarioError
from meshsim.examples import DATA_DIR

ROOT = Path(__file__).resolve().parents[1]


def test_every_example_is_listed_with_a_purpose_and_validates(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a user's own folder: nothing relative to the repository
    names = meshsim.examples()
    assert set(names) == {p.stem for p in (DATA_DIR / "scenarios").glob("*.yaml")}
    for name, purpose in names.items():
        assert purpose.endswith(".") and len(purpose) > 20, (name, purpose)
        sc = meshsim.load_scenario(meshsim.example(name))
        assert sc.name


def test_examples_cover_data_files_and_sweeps():
    assert meshsim.example("etcd/failover.csv").read_text().startswith(
        meshsim.example("etcd/failover.csv").read_text().splitlines()[0])
    assert meshsim.example("sweeps/three_tier_load").is_file()
    assert meshsim.example("mmc.yaml") == meshsim.example("mmc")


def test_unknown_example_names_the_closest():
    with pytest.raises(ScenarioError, match=r"did you mean 'three_tier'"):
        meshsim.example("three-tier")


def test_missing_scenario_path_says_where_it_looked_and_suggests_the_example(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ScenarioError) as e:
        meshsim.run("data/scenarios/mmc.yaml")
    msg = str(e.value)
    assert str(tmp_path / "data" / "scenarios") in msg
    assert "meshsim.example('mmc')" in msg


def test_repository_data_is_the_package_data():
    assert (ROOT / "data").resolve() == DATA_DIR


@pytest.mark.slow
def test_wheel_ships_the_examples(tmp_path):
    """`pip install meshsim` alone can run the notebooks: the wheel carries scenarios and data."""
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    wheel = next(tmp_path.glob("meshsim-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for p in DATA_DIR.rglob("*"):
        if p.is_file():
            assert f"meshsim/data/{p.relative_to(DATA_DIR).as_posix()}" in names


def test_readme_lists_every_example():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [n for n in meshsim.examples() if f"`{n}.yaml`" not in readme]
    assert not missing, f"README's scenario table lacks {missing}"
