"""A Dask cluster on this machine with quiet workers, for sweeps.

A sweep's tasks are whole simulation runs (seconds of pure Python each), so
the workers' own monitoring only takes CPU from them: the statistical
profiler samples every thread every 10 ms, the GIL monitor polls every 1 ms,
the system monitor every 500 ms, the memory monitor every 100 ms, and the
event-loop health check every 20 ms (``distributed.yaml``'s defaults).  On a
2-core machine that was most of the gap between a ``LocalCluster`` and a
process pool.  :data:`QUIET_WORKERS` switches the profiler and the GIL
monitor off and slows the others down; :func:`local_cluster` starts a
``LocalCluster`` with it (workers started by a nanny take the configuration
in force when they start).  ``meshsim.sweep(backend="dask")`` uses it when it
starts its own cluster; pass ``client=`` to use any other.

>>> QUIET_WORKERS["distributed.worker.profile.enabled"]
False
"""

from __future__ import annotations

from typing import Any

__all__ = ["QUIET_WORKERS", "local_cluster"]

#: dask configuration for workers that run long CPU-bound tasks (see module doc)
QUIET_WORKERS: dict[str, Any] = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.system-monitor.gil.enabled": False,
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.admin.tick.interval": "500ms",
}


def local_cluster(n_workers: int | None = None, **kwargs: Any):
    """A ``dask.distributed.LocalCluster`` of ``n_workers`` single-threaded worker processes (default: one
    per core) with :data:`QUIET_WORKERS` and no dashboard; other keyword arguments go to ``LocalCluster``.
    Use it as a context manager, with ``Client(cluster)``."""
    import dask
    from dask.distributed import LocalCluster

    opts = dict(threads_per_worker=1, processes=True, dashboard_address=None)
    opts.update(kwargs)
    with dask.config.set(QUIET_WORKERS):
        return LocalCluster(n_workers=n_workers, **opts)
