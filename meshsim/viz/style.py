"""The house style of meshsim's pictures: one colour-blind-safe palette, units on every axis.

The palette is Okabe and Ito's (2008), safe for the common colour-vision
deficiencies; roles, span parts and statuses always get the same colour, so
a student learns them once.

>>> len(PALETTE)
8
>>> ROLE_COLORS["leader"] == PALETTE[5]
True
>>> color_for(7) == PALETTE[1]
True
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

#: Okabe-Ito: black, orange, sky blue, bluish green, yellow, blue, vermillion, reddish purple
PALETTE: tuple[str, ...] = ("#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7")

#: Raft roles (RaftScope's idea: a band per server, coloured by its role)
ROLE_COLORS: dict[str, str] = {
    "follower": "#BBBBBB",
    "pre_candidate": PALETTE[4],
    "candidate": PALETTE[1],
    "leader": PALETTE[5],
    "crashed": PALETTE[0],
}

#: The parts of a span (request waterfalls and per-service breakdowns)
PART_COLORS: dict[str, str] = {
    "network": PALETTE[2],
    "queue": PALETTE[4],
    "service": PALETTE[5],
    "downstream": "#BBBBBB",
    "proxy": PALETTE[7],
    "retry": PALETTE[6],
    "hedge": PALETTE[3],
}

#: Shading of fault windows on time axes
FAULT_COLOR: str = PALETTE[6]
FAULT_ALPHA: float = 0.15

#: Transparency of confidence-interval bands
CI_ALPHA: float = 0.2


def color_for(i: int) -> str:
    """The i-th series colour, skipping black (kept for reference lines)."""
    return PALETTE[1 + i % (len(PALETTE) - 1)]


_RC: dict[str, Any] = {
    "axes.prop_cycle": None,  # filled lazily (needs matplotlib)
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "figure.dpi": 100,
    "savefig.dpi": 120,
}


@contextmanager
def house_style() -> Iterator[None]:
    """A context in which new figures use the house style (palette, grids, no top/right spines)."""
    import matplotlib as mpl
    from cycler import cycler

    rc = dict(_RC)
    rc["axes.prop_cycle"] = cycler(color=[color_for(i) for i in range(len(PALETTE) - 1)])
    with mpl.rc_context(rc):
        try:
            yield
        finally:
            # the first figure of a Jupyter session loads the inline backend, which turns interactive mode on
            # inside this context; rc_context would turn it off again on exit and no later figure would show
            interactive = mpl.is_interactive()
    mpl.interactive(interactive)


def new_figure(nrows: int = 1, ncols: int = 1, **kw: Any):
    """``plt.subplots`` in the house style; returns ``(fig, axes)``."""
    import matplotlib.pyplot as plt

    with house_style():
        return plt.subplots(nrows, ncols, **kw)
