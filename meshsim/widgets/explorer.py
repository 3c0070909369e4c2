"""An interactive dashboard: move a control, the scenario re-runs, the summary and pictures redraw.

The picture is an ``ipywidgets.Image`` holding PNG bytes rather than an
``Output`` widget with inline matplotlib.  The Image's bytes are widget
state: they reach JupyterLab 4 with no dependence on the inline backend or on
which cell an Output is capturing (an Output filled from a timer or thread
callback loses its output), they are saved with the notebook's widget
state, and a headless browser sees the ``<img>`` source change after a
slider moves while Python sees ``.image.value`` change.  ``.figure`` keeps
the Figure for tests and saving.

>>> import pytest; _ = pytest.importorskip("ipywidgets")  # the notebooks extra
>>> import meshsim
>>> ex = explore(meshsim.example("mmc"), {"services.server.workers": None},
...              overrides={"run.requests": 2000, "metrics.warmup": 0}, debounce_ms=0)
>>> type(ex.controls["services.server.workers"]).__name__
'IntSlider'
>>> ex.set("services.server.workers", 0)
>>> ex.error
'services.server.workers: must be an integer >= 1, got 0'
>>> ex.history[-1][0]
{'services.server.workers': 5}
"""

from __future__ import annotations

import asyncio
import threading
import time
import warnings
from typing import Any

from ..api import run
from ..errors import ScenarioError, ScenarioErrors, ScenarioWarning, closest
from ..scenario.load import load_scenario
from .controls import DEFAULT_LABEL, ControlSpec, control_spec, default_controls, make_widget, scenario_value
from .figures import dashboard_figure, png
from .tables import summary_frame, summary_html

try:
    import ipywidgets as W

    _Base: type = W.VBox
except ImportError:  # pragma: no cover - ipywidgets is in the notebooks extra
    W = None
    _Base = object

#: the notebook's default dashboard (notebook 00's): three_tier cut to 5 s of simulated time after a 1 s warm-up
#: (no crash: it fires at 60 s), 1200 req/s and 4 workers per api instance, where 3 -> 2 api replicas takes
#: the api from about 64% to 95% busy and multiplies the p99 by two or more
DASHBOARD_OVERRIDES: dict[str, Any] = {"run.duration": "6s", "metrics.warmup": "1s", "faults": [],
                                       "workloads.users.rate": 1200, "services.api.workers": 4}
DASHBOARD_CONTROLS: dict[str, Any] = {
    "workloads.users.rate": (100, 1600, 50),
    "services.api.replicas": (1, 6),
    "services.api.load_balancer.policy": None,
    "services.db.workers": (4, 16),
}


def one_line(err: Exception) -> str:
    """The first problem of an error on one line (``path: message``), with a count of the others."""
    if isinstance(err, ScenarioErrors):
        more = len(err.errors) - 1
        return str(err.errors[0]) + (f" (and {more} more)" if more else "")
    if isinstance(err, ScenarioError):
        return str(err)
    return f"{type(err).__name__}: {err}".splitlines()[0]


class Explorer(_Base):  # type: ignore[misc, valid-type]
    """A scenario with controls on some of its keys, re-run and redrawn whenever a control changes.

    ``controls`` maps path -> widget, ``result`` is the last good Result,
    ``error`` the last run's problem on one line (None when it ran),
    ``figure`` the last Figure drawn, ``history`` a list of ``(values, summary)``
    of good runs, ``image`` the PNG shown.  ``set(path, value)`` moves a
    control as a user would; ``rerun()`` runs now, whatever the debounce.
    """

    def __init__(self, scenario: Any, controls: dict[str, Any] | None = None, *, seed: int = 1,
                 overrides: dict[str, Any] | None = None, debounce_ms: float = 250, run: bool = True):
        if W is None:  # pragma: no cover
            raise ImportError("the dashboard needs ipywidgets: pip install 'meshsim[notebooks]'")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ScenarioWarning)
            self.scenario = load_scenario(scenario, overrides)
        self.seed = seed
        self.debounce_ms = float(debounce_ms)
        wanted = default_controls(self.scenario) if controls is None else dict(controls)
        self.specs: dict[str, ControlSpec] = {p: control_spec(self.scenario, p, s) for p, s in wanted.items()}
        self.controls: dict[str, Any] = {}
        rows = []
        for path, spec in self.specs.items():
            widget, row = make_widget(spec)
            widget.observe(self._changed, names="value")
            self.controls[path] = widget
            rows.append(row)
        self.result: Any = None
        self.error: str | None = None
        self.figure: Any = None
        self.history: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self.timings: list[dict[str, float]] = []
        self._pending: Any = None
        self._lock = threading.Lock()
        self.status = W.HTML(value="")
        self.summary_view = W.HTML(value="")
        self.image = W.Image(format="png", layout=W.Layout(max_width="100%"))
        super().__init__([W.VBox(rows), self.status, self.summary_view, self.image])
        self.add_class("meshsim-explorer")
        if run:
            self.rerun()

    # -- values -------------------------------------------------------------------------
    @property
    def values(self) -> dict[str, Any]:
        """The controls' current values as scenario values, ``{path: value}`` (durations in ms, rates per
        second, None for a dropdown's "(default)" entry)."""
        return {p: scenario_value(self.specs[p], w.value) for p, w in self.controls.items()}

    def set(self, path: str, value: Any) -> None:
        """Move the control of ``path`` to ``value`` as a user would (a slider's range widens to take it)."""
        if path not in self.controls:
            raise ScenarioError(path, f"has no control here; controls are {', '.join(self.controls)}",
                                closest(path, self.controls))
        w = self.controls[path]
        if value is None and isinstance(w, W.Dropdown):
            value = DEFAULT_LABEL
        if isinstance(w, (W.IntSlider, W.FloatSlider)):
            if value < w.min:
                w.min = value
            if value > w.max:
                w.max = value
        elif isinstance(w, W.Dropdown) and value not in [v for _, v in w.options]:
            w.options = list(w.options) + [(str(value), value)]
        w.value = value

    # -- running ------------------------------------------------------------------------
    def _changed(self, change: dict) -> None:
        if self.debounce_ms <= 0:
            self.rerun()
            return
        self._cancel()
        self._set_status("waiting…", "#666")
        delay = self.debounce_ms / 1000.0
        try:  # in a kernel: the kernel's event loop runs the re-run on the main thread once the user pauses
            self._pending = asyncio.get_running_loop().call_later(delay, self.rerun)
        except RuntimeError:  # no loop (a plain script): a timer thread
            t = threading.Timer(delay, self.rerun)
            t.daemon = True
            t.start()
            self._pending = t

    def _cancel(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None

    def _set_status(self, text: str, color: str) -> None:
        from html import escape

        self.status.value = f"<span style='color:{color}'>{escape(text)}</span>"

    def rerun(self) -> Any:
        """Run with the controls' current values now and redraw; returns the last good Result."""
        self._cancel()
        with self._lock:
            values = self.values
            self._set_status("running…", "#0072B2")
            t0 = time.perf_counter()
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", ScenarioWarning)
                    result = run(self.scenario, seed=self.seed, overrides=values)
            except Exception as e:  # a bad value: keep the last good picture, say what is wrong
                self.error = one_line(e)
                self._set_status(f"⚠ {self.error} — showing the last good run", "#D55E00")
                return self.result
            t1 = time.perf_counter()
            fig = dashboard_figure(result, previous=self.result)
            self.image.value = png(fig)
            self.summary_view.value = summary_html(summary_frame(result))
            t2 = time.perf_counter()
            self.result, self.figure, self.error = result, fig, None
            self.history.append((dict(values), result.summary))
            self.timings.append({"run_s": t1 - t0, "draw_s": t2 - t1})
            notes = "; ".join(str(w.message) for w in caught if issubclass(w.category, ScenarioWarning))
            text = f"ran in {t1 - t0:.2f} s, drawn in {t2 - t1:.2f} s" + (f" — warning: {notes}" if notes else "")
            self._set_status(text, "#E69F00" if notes else "#009E73")
            return result


def explore(scenario: Any, controls: dict[str, Any] | None = None, *, seed: int = 1,
            overrides: dict[str, Any] | None = None, debounce_ms: float = 250) -> Explorer:
    """A dashboard on ``scenario`` with a control per dotted path of ``controls``, run once to start.

    A spec of None infers the control from the schema and the scenario's value:
    slider for numbers and integers, a slider in ms for durations, a dropdown
    for choices, a checkbox for booleans; ``(min, max[, step])`` asks for a
    slider, a list for a dropdown, True/False for a checkbox.  ``controls=None``
    gives the first workload's rate and every service's replicas.  ``overrides``
    apply below the controls (e.g. a shorter run); ``debounce_ms=0`` re-runs
    synchronously on every change.
    """
    return Explorer(scenario, controls, seed=seed, overrides=overrides, debounce_ms=debounce_ms)


def default_dashboard(debounce_ms: float = 250, **kw: Any) -> Explorer:
    """The notebook's default dashboard: three_tier, 5 s runs, rate, api replicas and policy, db workers."""
    from ..examples import example

    overrides = {**DASHBOARD_OVERRIDES, **kw.pop("overrides", {})}
    controls = kw.pop("controls", DASHBOARD_CONTROLS)
    return explore(example("three_tier"), controls, overrides=overrides, debounce_ms=debounce_ms, **kw)
