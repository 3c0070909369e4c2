"""The headless demo behind ``make demo``: run the 3-tier example, print, plot.

It runs data/scenarios/three_tier.yaml, prints the summary table, and writes
summary.json and latency.png to the output directory.
"""

from __future__ import annotations

from pathlib import Path

from .tracefile import DATA_DIR

DEMO_SCENARIO = DATA_DIR / "scenarios" / "three_tier.yaml"


def run_demo(out: Path, seed: int | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    from .api import run
    from .plots import latency_figure

    result = run(DEMO_SCENARIO, seed=seed)
    print(result.table())
    out.mkdir(parents=True, exist_ok=True)
    result.save(out)
    fig = latency_figure(result)
    png = out / "latency.png"
    fig.savefig(png, dpi=120)
    print(f"\nwrote {out / 'summary.json'} and {png}")
    return png
