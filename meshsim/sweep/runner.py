"""Running a sweep on one of three backends, with progress, resume and Ctrl-C.

Backends give identical results for the same sweep (each run's seed depends
only on the sweep seed, the point and the replication):

- ``serial``: one run after another in this process;
- ``processes``: a local process pool (default one worker per core);
- ``dask``: a ``dask.distributed`` cluster, from an existing ``Client`` or a
  scheduler address.

Each finished run is written to the store at once; runs already in the store
are skipped, so an interrupted sweep resumes where it stopped.  A run that
raises is recorded with its error and the sweep goes on.  A store that holds
another sweep definition is refused (:class:`SweepMismatch`) unless
``new=True``, which writes to the first free ``DIR-2``, ``DIR-3``, ... instead.
Pool workers die with the sweep process, however it ends (SIGKILL included).
"""

from __future__ import annotations

import math
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._proc import die_with_parent
from .fingerprint import SweepMismatch, canonical, check, fingerprint
from .grid import Sweep, make_sweep
from .labels import labelled, sort_rows
from .store import ResultStore, git_revision, read_definition

DEFAULT_METRICS = (
    "requests", "completed", "failed", "throughput_rps",
    "latency_ms.mean", "latency_ms.p50", "latency_ms.p90", "latency_ms.p99", "latency_ms.p999", "latency_ms.max",
)


def flatten(summary: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a summary as ``{"latency_ms.p99": ..., "services.api.utilisation": ...}``."""
    out: dict[str, float] = {}
    for k, v in summary.items():
        p = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict):
            out.update(flatten(v, p))
        elif isinstance(v, bool):
            continue
        elif isinstance(v, (int, float)) or v is None:
            out[p] = math.nan if v is None else v
    return out


def run_task(base: Any, params: dict[str, Any], seed: int, metrics: list[str] | None) -> dict[str, Any]:
    """Run one replication of one point; never raises (errors are returned)."""
    from ..api import run
    from ..errors import ScenarioWarning
    import warnings

    t0 = time.perf_counter()
    record: dict[str, Any] = {"seed": seed, "params": params, "metrics": None, "error": None}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ScenarioWarning)
            result = run(base, seed=seed, overrides=params)
        flat = flatten(result.summary)
        if metrics:
            missing = [m for m in metrics if m not in flat]
            record["metrics"] = {m: flat.get(m, math.nan) for m in metrics}
            if missing:
                record["error"] = f"unknown metrics: {', '.join(missing)}"
        else:
            record["metrics"] = flat
    except Exception as e:  # noqa: BLE001 - a failing point is recorded, the sweep goes on
        record["error"] = f"{type(e).__name__}: {e}"
        record["traceback"] = traceback.format_exc(limit=8)
    record["elapsed_s"] = time.perf_counter() - t0
    return record


@dataclass
class SweepResult:
    """``runs``: one row per point and replication; ``aggregate``: mean and 95% CI per point.

    ``directory`` is where the store is (with ``new=True`` perhaps not the
    folder asked for); ``fingerprint`` identifies the sweep's definition.
    """

    runs: Any
    aggregate: Any
    interrupted: bool = False
    directory: str | None = None
    parameters: list[str] = field(default_factory=list)
    metrics: list[str] | None = None
    paired: bool = False
    fingerprint: str | None = None

    def __iter__(self):
        return iter((self.runs, self.aggregate))

    def differences(self, baseline: dict[str, Any] | None = None, metrics: list[str] | None = None,
                    confidence: float = 0.95):
        """Paired differences of every point to ``baseline`` (default: the first point); see paired.py."""
        from .paired import paired_differences

        return paired_differences(self.runs, self.parameters, baseline, metrics or self.metrics, confidence)


def aggregate(runs, parameters: list[str], metrics: list[str] | None = None, confidence: float = 0.95):
    """Mean, 95% confidence interval (Student t over replications) and count per point."""
    import numpy as np
    import pandas as pd

    from ..stats import t_quantile

    if len(runs) == 0:
        return pd.DataFrame()
    ok = runs[runs["error"].isna()] if "error" in runs else runs
    skip = set(parameters) | {"replication", "seed", "error", "key", "meshsim_version"}
    cols = metrics or [c for c in ok.columns if c not in skip and pd.api.types.is_numeric_dtype(ok[c])]
    cols = [c for c in cols if c in ok]
    ok = labelled(ok, parameters)  # lists, dicts, None: grouped and shown by a readable label
    rows = []
    for values, grp in ok.groupby(parameters, sort=False, dropna=False):
        values = values if isinstance(values, tuple) else (values,)
        row = dict(zip(parameters, values))
        n = len(grp)
        row["n"] = n
        for c in cols:
            x = grp[c].to_numpy(dtype=float)
            x = x[~np.isnan(x)]
            m = float(x.mean()) if x.size else math.nan
            half = t_quantile(0.5 + confidence / 2, x.size - 1) * float(x.std(ddof=1)) / math.sqrt(x.size) if x.size > 1 else math.nan
            row[f"{c}"] = m
            row[f"{c}_ci_low"] = m - half
            row[f"{c}_ci_high"] = m + half
        rows.append(row)
    return pd.DataFrame(rows)


def _progress(total: int, initial: int, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # progress is a nicety
        return None
    return tqdm(total=total, initial=initial, unit="run", desc="sweep", dynamic_ncols=True)


def run_sweep(
    sweep: Sweep,
    out: str | os.PathLike | None = None,
    *,
    backend: str = "processes",
    workers: int | None = None,
    client: Any = None,
    scheduler: str | None = None,
    progress: bool = True,
    new: bool = False,
) -> SweepResult:
    """Run every not-yet-finished run of ``sweep``; see the module doc."""
    defn = definition(sweep)
    out = _choose_directory(defn, out, new)
    store = ResultStore(out)
    store.write_sweep(dict(defn, scenario_raw=sweep.base.raw, scenario_origin=sweep.base.origin,
                           git_revision=git_revision()))
    done = store.done()
    todo = [t for t in sweep.tasks() if t[3] not in done]
    total = len(sweep.points) * sweep.replications
    bar = _progress(total, total - len(todo), progress)
    failures = 0
    interrupted = False
    revision, version = git_revision(), _version()

    def finish(task, record):
        nonlocal failures
        params, rep, seed, key = task
        record.update({"replication": rep, "meshsim_version": version, "git_revision": revision})
        store.write(key, record)
        if record["error"]:
            failures += 1
        if bar is not None:
            bar.update(1)
            bar.set_postfix(failed=failures)

    try:
        if backend == "serial" or not todo:
            for task in todo:
                finish(task, run_task(sweep.base, task[0], task[2], sweep.metrics))
        elif backend == "processes":
            _run_processes(sweep, todo, workers, finish)
        elif backend == "dask":
            _run_dask(sweep, todo, client, scheduler, finish)
        else:
            raise ValueError(f"unknown backend {backend!r}; use serial, processes or dask")
    except KeyboardInterrupt:
        interrupted = True
        print(f"\nsweep interrupted: {len(store.done())} of {total} runs are finished and kept"
              + (f" in {out}" if out else ""), file=sys.stderr)
    finally:
        if bar is not None:
            bar.close()
    runs = store.load()
    params = list(sweep.parameters)
    try:
        runs = sort_rows(runs, params, sweep.points)
    except Exception:  # noqa: BLE001 - the order is a nicety; the runs and their aggregate are not
        pass
    agg = aggregate(runs, params, sweep.metrics)
    store.write_text("aggregate.csv", agg.to_csv(index=False))  # before anything else can fail
    return SweepResult(runs=runs, aggregate=agg, interrupted=interrupted, directory=str(out) if out else None,
                       parameters=params, metrics=sweep.metrics, paired=sweep.paired, fingerprint=defn["fingerprint"])


def definition(sweep: Sweep) -> dict[str, Any]:
    """What a sweep's runs are runs of, with its fingerprint (see fingerprint.py)."""
    defn = {
        "scenario": canonical(sweep.base.spec), "parameters": canonical(sweep.parameters),
        "parameter_names": list(sweep.parameters), "mode": sweep.mode, "points": canonical(sweep.points),
        "replications": sweep.replications, "seed": sweep.seed, "metrics": sweep.metrics, "paired": sweep.paired,
        "meshsim_version": _version(),
    }
    defn["fingerprint"] = fingerprint(defn)
    return defn


def _choose_directory(defn: dict[str, Any], out: str | os.PathLike | None, new: bool):
    """``out`` if it is empty or holds this sweep (or a smaller one); else, with ``new``, the first free DIR-n."""
    if out is None:
        return None
    try:
        check(read_definition(out), defn, str(out))
        return out
    except SweepMismatch:
        if not new:
            raise
    base = Path(out)
    for n in range(2, 10_000):
        cand = base.with_name(f"{base.name}-{n}")
        try:
            check(read_definition(cand), defn, str(cand))
        except SweepMismatch:
            continue
        return str(cand) if isinstance(out, str) else cand
    raise SweepMismatch([f"no free folder {base.name}-n next to it"], str(out))  # pragma: no cover


def _version() -> str:
    from .. import __version__

    return __version__


def _die_with_parent(parent_pid: int) -> None:
    """End this worker as soon as the sweep process is gone, however it ended.

    On Linux the kernel sends SIGKILL when the parent dies (PR_SET_PDEATHSIG);
    everywhere, a watchdog thread also polls the parent id twice a second.
    """
    die_with_parent()
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="meshsim-sweep-watchdog", daemon=True).start()


def _worker_init(parent_pid: int) -> None:
    """Pool-worker set-up: Ctrl-C is the parent's to handle, SIGTERM ends the worker, and it dies with its parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _die_with_parent(parent_pid)


def _run_processes(sweep: Sweep, todo: list, workers: int | None, finish) -> None:
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    workers = workers or os.cpu_count() or 1
    # fork where available: works from notebooks and scripts without a __main__ guard
    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init,
                               initargs=(os.getpid(),))
    futures = {}
    try:
        for task in todo:
            futures[pool.submit(run_task, sweep.base, task[0], task[2], sweep.metrics)] = task
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in finished:
                finish(futures[f], f.result())
    except BaseException:
        for f in futures:
            f.cancel()
        pool.shutdown(wait=False, cancel_futures=True)
        for p in list(getattr(pool, "_processes", {}).values()):
            p.terminate()
        raise
    pool.shutdown(wait=True)


def _run_dask(sweep: Sweep, todo: list, client: Any, scheduler: str | None, finish) -> None:
    from dask.distributed import Client, as_completed

    own = client is None
    cluster = None
    if own:
        if scheduler:
            client = Client(scheduler)
        else:
            from .dask_cluster import local_cluster

            cluster = local_cluster()
            client = Client(cluster)
    futures: dict[Any, tuple] = {}
    try:
        base = client.scatter(sweep.base, broadcast=True, hash=False)  # sent to each worker once, not per task
        for task in todo:
            f = client.submit(run_task, base, task[0], task[2], sweep.metrics, pure=False)
            futures[f] = task
        for f in as_completed(list(futures)):
            finish(futures[f], f.result())
    except BaseException:
        client.cancel(list(futures))
        raise
    finally:
        if own:
            client.close()
            if cluster is not None:
                cluster.close()


def sweep(
    scenario: Any,
    parameters: dict[str, Any],
    *,
    replications: int = 1,
    seed: int = 0,
    mode: str = "product",
    metrics: list[str] | None = None,
    out: str | os.PathLike | None = None,
    backend: str = "processes",
    workers: int | None = None,
    client: Any = None,
    scheduler: str | None = None,
    progress: bool = True,
    paired: bool = False,
    new: bool = False,
) -> SweepResult:
    """Run ``scenario`` over a grid of ``parameters`` (dotted paths) with ``replications`` seeds each.

    ``paired=True`` runs replication r of every point on the same seed (common
    random numbers; see :meth:`SweepResult.differences`).  ``out`` keeps the
    runs; a folder holding another sweep is refused (:class:`SweepMismatch`)
    unless ``new=True``, which writes to the first free ``out-2``, ``out-3``...

    >>> import meshsim
    >>> res = meshsim.sweep({"run": {"requests": 300}, "network": {"enabled": False},
    ...                      "services": {"s": {"workers": 2, "service_time": "5ms"}},
    ...                      "workloads": {"w": {"rate": 100, "target": "s"}}},
    ...                     {"services.s.workers": [1, 2]}, replications=2, backend="serial", progress=False)
    >>> res.runs.shape[0], list(res.aggregate["services.s.workers"])
    (4, [1, 2])
    """
    sw = make_sweep(scenario, parameters, mode=mode, replications=replications, seed=seed, metrics=metrics,
                    paired=paired)
    return run_sweep(sw, out, backend=backend, workers=workers, client=client, scheduler=scheduler, progress=progress,
                     new=new)
