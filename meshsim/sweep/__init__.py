"""Parameter sweeps: grids of dotted-path parameters x replications, on serial,
process-pool or Dask backends, with a resumable on-disk result store that
refuses to mix definitions, and paired (common-random-number) seeds on request."""

from .dask_cluster import QUIET_WORKERS, local_cluster
from .fingerprint import SweepMismatch
from .grid import Sweep, expand, load_sweep, make_sweep, point_seed, replication_seed
from .paired import paired_differences
from .runner import SweepResult, aggregate, run_sweep, sweep
from .store import ResultStore, SweepWarning, load_results

__all__ = ["QUIET_WORKERS", "ResultStore", "Sweep", "SweepMismatch", "SweepResult", "SweepWarning", "aggregate", "expand",
           "load_results", "load_sweep", "local_cluster", "make_sweep", "paired_differences", "point_seed", "replication_seed",
           "run_sweep", "sweep"]
