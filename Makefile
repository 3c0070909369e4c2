# meshsim — set-up and everyday commands.  Every target creates .venv itself.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# Jupyter refuses to run as root unless told to (containers and CI machines run as root)
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: run demo lab test bench docs exercises clean

$(VENV)/.stamp-dev: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e ".[dev]"
	touch $@

# everything: the notebooks' and the exercises' dependencies too, and the venv's own kernel registered as "python3"
# (absolute path to .venv/bin/python, so notebooks run in this venv whatever else is installed)
$(VENV)/.stamp-notebooks: pyproject.toml $(VENV)/.stamp-dev
	$(PIP) install --quiet -e ".[notebooks,dev,teaching]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

## run: the main job — headless demo (summary + plot in out/demo), then JupyterLab on notebooks/
run: demo lab

## demo: run the default scenario, print its summary, write out/demo/summary.json and latency.png
demo: $(VENV)/.stamp-dev
	MPLBACKEND=Agg $(VENV)/bin/meshsim demo --out out/demo

## lab: JupyterLab on notebooks/, opening on 00_quickstart.ipynb (localhost only, token printed in the log)
lab: $(VENV)/.stamp-notebooks
	$(VENV)/bin/jupyter lab --no-browser --ip=127.0.0.1 --ServerApp.root_dir=notebooks \
	  --LabApp.default_url=/lab/tree/00_quickstart.ipynb $(ROOT_FLAG)

## test: every test (unit, property, validation against theory, CLI, docs, notebooks, JupyterLab in Chromium)
test: $(VENV)/.stamp-notebooks
	MPLBACKEND=Agg $(PY) -m pytest -q

## bench: speed and memory against SimPy and Ciw, sweep backends, mesh cost, registry, dashboard re-run; writes bench/results.md
bench: $(VENV)/.stamp-notebooks
	$(PY) bench/run.py --repeat 3 --tables --markdown bench/results.md
	$(PY) bench/sweep_bench.py --append bench/results.md
	$(PY) bench/mesh_bench.py --append bench/results.md
	$(PY) bench/registry_bench.py --append bench/results.md
	$(PY) bench/dashboard_bench.py --append bench/results.md
	$(PY) bench/scale_bench.py --append bench/results.md
	$(PY) bench/compare_revs.py --append bench/results.md

## exercises: regenerate the student versions notebooks/exercises/release/ from source/ with nbgrader (commit them)
exercises: $(VENV)/.stamp-notebooks
	cd notebooks/exercises && PATH="$(abspath $(VENV))/bin:$$PATH" nbgrader generate_assignment '*' --force --no-db

## docs: regenerate the scenario key reference in docs/scenarios.md
docs: $(VENV)/.stamp-dev
	$(PY) -m meshsim.scenario.docs --write docs/scenarios.md

clean:
	rm -rf $(VENV) out .pytest_cache .hypothesis
