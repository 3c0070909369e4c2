"""Classroom tools: an interactive Raft cluster on the real pure core, with classic scenarios.

``meshsim.teach.cluster(n=5, seed=0)`` gives a :class:`~meshsim.teach.classroom.RaftClassroom`: servers
running :class:`meshsim.core.raft.RaftNode`, every message in flight waiting for you to deliver or drop
it, time moving only when you say so, every action undoable, and the Raft safety properties checked
after each action.  ``cluster.widget()`` (or ``show(cluster)``) draws it with buttons (ipywidgets);
``figure8()`` sets up the Raft paper's Figure 8.  Names load their module on first use, so
``import meshsim.teach`` needs neither pandas nor ipywidgets until they are used.

>>> import meshsim.teach as teach
>>> c = teach.cluster(3, seed=1)
>>> c.timeout("s2"); c.deliver_all() > 0, c.leader()
(True, 's2')
"""

from __future__ import annotations

from .._lazy import lazy_exports

#: public name -> module under meshsim.teach that defines it
_WHERE: dict[str, str] = {
    "RaftClassroom": "classroom",
    "cluster": "classroom",
    "CLASSROOM_CONFIG": "classroom",
    "MessageView": "classroom",
    "Livelock": "classroom",
    "describe_message": "classroom",
    "SafetyMonitor": "safety",
    "Violation": "safety",
    "PROPERTIES": "safety",
    "figure8": "scenarios",
    "FIGURE8_STAGES": "scenarios",
    "draw": "svg",
    "ClassroomWidget": "widget",
    "show": "widget",
    "Cluster": "harness",
    "Transcript": "transcript",
    "check_safety": "harness",
}

__all__ = sorted(_WHERE)
__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
