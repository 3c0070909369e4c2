"""Compare variants of a scenario with common random numbers: same seeds, paired differences.

Every variant runs with the same seeds, so seed s of variant B meets the same
arrivals and service-time draws as seed s of variant A wherever the two
scenarios agree; the differences B - A, paired by seed, then vary much less
than either variant alone, and their t interval is narrow.  For two identical
variants every paired difference is exactly 0, and so is its interval.
The runs and statistics are :mod:`meshsim.compare`'s; this module adds the
table, the figure and the widget.  Pass ``common_random_numbers=True`` to key
service times by request as well (``run.common_random_numbers``), so that
variants that route differently still give each request the same draws.

>>> base = {"run": {"requests": 1500}, "network": {"enabled": False},
...         "services": {"s": {"replicas": 2, "service_time": {"dist": "exponential", "mean": "10ms"}}},
...         "workloads": {"w": {"rate": 150, "target": "s"}}}
>>> t = compare_frame(base, {"2 replicas": {}, "same": {}, "4 replicas": {"services.s.replicas": 4}},
...                   seeds=(1, 2, 3))
>>> t.loc[("same", "p99_ms"), ["diff", "diff_ci_low", "diff_ci_high"]].tolist()
[0.0, 0.0, 0.0]
>>> bool(t.loc[("4 replicas", "mean_ms"), "diff_ci_high"] < 0)
True
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..compare import METRICS, run_metrics, t_ci
from ..compare import run_variants as _run_variants
from ..compare import summarise as _summarise

if TYPE_CHECKING:
    import pandas as pd


def run_variants(scenario: Any, variants: Mapping[str, dict[str, Any] | None], *, seeds: Iterable[int] = (1, 2, 3),
                 overrides: dict[str, Any] | None = None,
                 common_random_numbers: bool | None = None) -> tuple[dict[str, list], pd.DataFrame]:
    """Run every variant with every seed: ``({label: [Result per seed]}, per-run frame)``.

    The frame has one row per (variant, seed) with the :data:`METRICS`
    (:func:`meshsim.compare.run_variants`, keeping every Result for the
    figures).  ``common_random_numbers`` sets ``run.common_random_numbers``
    (None: as the scenario says; ``meshsim.compare`` turns it on).
    """
    return _run_variants(scenario, variants, seeds=seeds, overrides=overrides,
                         common_random_numbers=common_random_numbers, keep_results=True)


def summarise(runs: pd.DataFrame, labels: list[str], confidence: float = 0.95) -> pd.DataFrame:
    """Per (variant, metric): mean over seeds with its t interval, and the paired difference against the
    first variant with its paired-t interval (``diff*`` are NaN on the first variant's own rows); see
    :func:`meshsim.compare.summarise`."""
    return _summarise(runs, labels, confidence, metrics=list(METRICS))


def compare_frame(scenario: Any, variants: Mapping[str, dict[str, Any] | None], *, seeds: Iterable[int] = (1, 2, 3),
                  overrides: dict[str, Any] | None = None,
                  common_random_numbers: bool | None = None) -> pd.DataFrame:
    """The comparison table of :func:`compare`, without widgets or figures (for scripts and tests).

    Indexed by (variant, metric); columns ``mean, ci_low, ci_high`` (over seeds,
    95% t) and ``diff, diff_ci_low, diff_ci_high`` (against the first variant,
    paired by seed, 95% t), ``unpaired_ci_low, unpaired_ci_high`` (Welch, for
    reference), ``seeds``.
    """
    _, runs = run_variants(scenario, variants, seeds=seeds, overrides=overrides,
                           common_random_numbers=common_random_numbers)
    return summarise(runs, list(variants))


def _fmt(v: float) -> str:
    if not math.isfinite(v):
        return "–"
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}" if abs(v) < 1 else f"{v:.1f}"


def table_html(table: pd.DataFrame) -> str:
    """Variants side by side: ``mean [low, high]`` and, after the first, ``Δ diff [low, high]``
    (bold when the interval excludes 0)."""
    from html import escape

    labels = list(dict.fromkeys(table.index.get_level_values(0)))
    head = "".join(f"<th>{escape(str(v))}</th>" + ("" if i == 0 else f"<th>Δ vs {escape(str(labels[0]))}</th>")
                   for i, v in enumerate(labels))
    body = []
    for metric, what in METRICS.items():
        cells = []
        for i, label in enumerate(labels):
            r = table.loc[(label, metric)]
            cells.append(f"<td>{_fmt(r['mean'])} <span style='color:#666'>[{_fmt(r['ci_low'])}, "
                         f"{_fmt(r['ci_high'])}]</span></td>")
            if i:
                sig = (r["diff_ci_low"] > 0 or r["diff_ci_high"] < 0)
                text = f"{'+' if r['diff'] > 0 else ''}{_fmt(r['diff'])} [{_fmt(r['diff_ci_low'])}, {_fmt(r['diff_ci_high'])}]"
                cells.append(f"<td>{'<b>' + text + '</b>' if sig else text}</td>")
        body.append(f"<tr><td style='text-align:left'>{escape(what)}</td>{''.join(cells)}</tr>")
    n = int(table["seeds"].iloc[0])
    return ("<table class='meshsim-compare' style='font-size:90%;text-align:right'>"
            f"<tr><th style='text-align:left'>mean over {n} seeds, 95% CI</th>{head}</tr>" + "".join(body)
            + "</table>")


class Comparison:
    """Variants of a scenario run with the same seeds: ``table``, ``results``, ``runs`` and ``figure``.

    In a notebook it shows as the table and the figure (HTML with the PNG
    inline, so it also survives export); ``widget()`` gives an ipywidgets box
    of the same to place in a layout.
    """

    def __init__(self, results: dict[str, list], runs: pd.DataFrame, seeds: list[int]):
        self.results = results
        self.runs = runs
        self.seeds = seeds
        self.table = summarise(runs, list(results))
        self._figure = None

    @property
    def figure(self):
        """Overlaid latency CDFs and p99 per seed (drawn on first use)."""
        if self._figure is None:
            from .figures import comparison_figure

            self._figure = comparison_figure(self.results, "p99_ms", self.runs)
        return self._figure

    def _png(self) -> bytes:
        from .figures import png

        return png(self.figure)

    def _repr_html_(self) -> str:
        import base64

        img = base64.b64encode(self._png()).decode("ascii")
        return table_html(self.table) + f"<img src='data:image/png;base64,{img}' style='max-width:100%'/>"

    def widget(self):
        """An ipywidgets VBox with the table (HTML) and the figure (Image)."""
        import ipywidgets as W

        return W.VBox([W.HTML(value=table_html(self.table)), W.Image(value=self._png(), format="png")])

    def __repr__(self) -> str:
        return f"Comparison of {', '.join(self.results)} over seeds {self.seeds}\n{self.table.round(4)}"


def compare(scenario: Any, variants: Mapping[str, dict[str, Any] | None], *, seeds: Iterable[int] = (1, 2, 3),
            overrides: dict[str, Any] | None = None, common_random_numbers: bool | None = None) -> Comparison:
    """Run ``scenario`` under each variant's overrides with the same ``seeds`` (common random numbers).

    ``overrides`` apply to all variants, below each variant's own.  The result's
    ``table`` is :func:`compare_frame`'s; its ``figure`` overlays the variants'
    latency CDFs and shows each seed's p99, joined across variants.
    """
    seeds = list(seeds)
    results, runs = run_variants(scenario, variants, seeds=seeds, overrides=overrides,
                                 common_random_numbers=common_random_numbers)
    return Comparison(results, runs, seeds)


__all__ = ["Comparison", "compare", "compare_frame", "run_metrics", "t_ci", "METRICS"]
