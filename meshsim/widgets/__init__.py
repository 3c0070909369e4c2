"""Interactive dashboards for notebooks: explore a scenario with controls, compare variants with the same seeds.

``explore`` needs ipywidgets (the notebooks extra); ``compare_frame`` and the
tables need only pandas.  Names load their module on first use.

>>> import meshsim.widgets as mw
>>> sorted(mw.__all__)[:4]
['Comparison', 'Explorer', 'breakdown_frame', 'compare']
"""

from __future__ import annotations

from .._lazy import lazy_exports

#: public name -> module under meshsim.widgets that defines it
_WHERE: dict[str, str] = {
    "explore": "explorer",
    "Explorer": "explorer",
    "default_dashboard": "explorer",
    "compare": "comparison",
    "compare_frame": "comparison",
    "Comparison": "comparison",
    "control_spec": "controls",
    "default_controls": "controls",
    "summary_frame": "tables",
    "breakdown_frame": "tables",
    "quantile_ci": "tables",
}

__all__ = sorted(_WHERE)
__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
