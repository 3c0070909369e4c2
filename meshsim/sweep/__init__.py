"""Parameter sweeps: grids of dotted-path parameters x replications, on serial,
process-pool or Dask backends, with a resumable on-disk result store."""

from .grid import Sweep, expand, load_sweep, make_sweep, point_seed
from .runner import SweepResult, aggregate, run_sweep, sweep
from .store import ResultStore, load_results

__all__ = ["ResultStore", "Sweep", "SweepResult", "aggregate", "expand", "load_results", "load_sweep",
           "make_sweep", "point_seed", "run_sweep", "sweep"]
