"""Pictures of runs: Raft timelines, request waterfalls, metrics over time, topology drawings.

Each figure function returns a matplotlib Figure, and the data behind it is
available as a DataFrame from a ``*_frame`` function beside it.  Matplotlib
is imported only when a figure is drawn; the names below load their module
on first use (modules are named apart from the functions: ``spans``,
``graph``, ``overtime``, ``raft``).

>>> import meshsim.viz as viz
>>> sorted(viz.__all__)[:3]
['fault_windows', 'over_time', 'pick_requests']
"""

from __future__ import annotations

from .._lazy import lazy_exports

#: public name -> module under meshsim.viz that defines it
_WHERE: dict[str, str] = {
    "raft_frames": "raft",
    "raft_timeline": "raft",
    "waterfall": "spans",
    "waterfall_frame": "spans",
    "pick_requests": "spans",
    "over_time": "overtime",
    "windows_frame": "overtime",
    "fault_windows": "overtime",
    "topology": "graph",
    "topology_frame": "graph",
}

__all__ = sorted(_WHERE)
__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
