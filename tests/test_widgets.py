"""Dashboards (meshsim.widgets): controls follow the schema, re-runs move the numbers the right way,
bad values keep the last good run, compare() pairs seeds (common random numbers)."""

from __future__ import annotations

import time

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

W = pytest.importorskip("ipywidgets")

import meshsim
from meshsim.errors import ScenarioError
from meshsim.scenario.spec import POLICIES
from meshsim.stats import t_quantile
from meshsim.widgets import breakdown_frame, compare, compare_frame, explore, quantile_ci, summary_frame
from meshsim.widgets.explorer import DASHBOARD_OVERRIDES, Explorer

THREE_TIER = meshsim.example("three_tier")
QUICK = dict(DASHBOARD_OVERRIDES)  # 5 s of three_tier (after 1 s of warm-up) at 1200 req/s, no crash

SMALL = {  # two replicas of one single-worker station at utilisation 0.75: replicas matter a lot
    "run": {"requests": 1500},
    "network": {"enabled": False},
    "services": {"s": {"replicas": 2, "service_time": {"dist": "exponential", "mean": "10ms"}}},
    "workloads": {"w": {"rate": 150, "target": "s"}},
}


def _readout(ex: Explorer, path: str) -> str:
    """The unit label beside a slider (its row is an HBox of slider and label)."""
    for row in ex.children[0].children:
        if isinstance(row, W.HBox) and row.children[0] is ex.controls[path]:
            return row.children[1].value
    raise AssertionError(f"no readout for {path}")


def test_controls_inferred_from_the_schema():
    ex = explore(THREE_TIER, {
        "services.api.replicas": None,
        "metrics.warmup": None,
        "services.api.load_balancer.policy": None,
        "mesh.mode": None,
        "mesh.profile": None,
        "mesh.mtls": None,
        "services.api.hedge_on_per_try_timeout": None,
        "workloads.users.rate": None,
        "services.db.service_time.mean": None,
    }, overrides=QUICK, debounce_ms=0)
    assert isinstance(ex, W.VBox)
    c = ex.controls
    reps = c["services.api.replicas"]
    assert type(reps) is W.IntSlider and (reps.value, reps.min) == (3, 1) and reps.max >= 6
    warm = c["metrics.warmup"]
    assert type(warm) is W.FloatSlider and warm.value == 1000.0 and _readout(ex, "metrics.warmup") == "1,000 ms"
    warm.value = 250.0
    assert _readout(ex, "metrics.warmup") == "250 ms"
    policy = c["services.api.load_balancer.policy"]
    assert type(policy) is W.Dropdown and policy.value == "(default)"
    assert [v for _, v in policy.options] == ["(default)", *POLICIES]  # "(default)" then exactly the enum's values
    assert ex.values["services.api.load_balancer.policy"] is None  # which the scenario gets as None
    assert type(c["mesh.mode"]) is W.Dropdown and [v for _, v in c["mesh.mode"].options] == ["none", "sidecar", "node"]
    assert [v for _, v in c["mesh.profile"].options] == ["istio", "istio-1.20", "istio-1.24", "linkerd", "envoy"]
    assert type(c["mesh.mtls"]) is W.Checkbox and c["mesh.mtls"].value is True
    assert type(c["services.api.hedge_on_per_try_timeout"]) is W.Checkbox
    rate = c["workloads.users.rate"]
    assert type(rate) is W.FloatSlider and rate.value == 1200.0 and rate.min > 0
    assert _readout(ex, "workloads.users.rate") == "1,200 req/s"
    # a parameter inside a distribution: "8ms" in the file, a duration slider in ms
    assert c["services.db.service_time.mean"].value == 8.0


def test_explicit_specs_and_default_set():
    ex = explore(SMALL, {"services.s.replicas": (1, 6), "workloads.w.rate": (50, 300, 25),
                         "services.s.semantics": ["async", "blocking"], "network.enabled": True},
                 debounce_ms=0)
    r = ex.controls["services.s.replicas"]
    assert type(r) is W.IntSlider and (r.min, r.max, r.value) == (1, 6, 2)
    rate = ex.controls["workloads.w.rate"]
    assert type(rate) is W.FloatSlider and (rate.min, rate.max, rate.step, rate.value) == (50, 300, 25, 150)
    assert type(ex.controls["services.s.semantics"]) is W.Dropdown
    net = ex.controls["network.enabled"]
    assert type(net) is W.Checkbox and net.value is False  # the scenario's value wins over the spec's
    default = explore(THREE_TIER, overrides=QUICK, debounce_ms=0)
    assert list(default.controls) == ["workloads.users.rate", "services.frontend.replicas",
                                      "services.api.replicas", "services.db.replicas"]
    with pytest.raises(ScenarioError, match="explicit control"):
        explore(SMALL, {"services.s.endpoints": None}, debounce_ms=0)


@pytest.mark.parametrize("path, suggestion", [
    ("services.api.replics", "services.api.replicas"),
    ("services.apii.replicas", "services.api.replicas"),
    ("load_balancer.policy", None),
    ("mesh.mdoe", "mesh.mode"),
    ("workloads.users.rat", "workloads.users.rate"),
])
def test_unknown_path_names_the_closest_key(path, suggestion):
    with pytest.raises(ScenarioError) as e:
        explore(THREE_TIER, {path: None}, overrides=QUICK, debounce_ms=0)
    assert e.value.suggestion == suggestion
    if suggestion:
        assert f"did you mean '{suggestion}'" in str(e.value)
    assert "valid keys are" in str(e.value)


def test_set_reruns_and_p99_moves_beyond_its_ci():
    ex = explore(THREE_TIER, {"services.api.replicas": (1, 6)}, overrides=QUICK, debounce_ms=0)
    three = ex.result
    png3 = ex.image.value
    s3 = summary_frame(three).loc["p99"]
    ex.set("services.api.replicas", 1)
    one = ex.result
    assert one is not three and len(ex.history) == 2 and ex.error is None
    assert ex.history[-1][0] == {"services.api.replicas": 1}
    assert [len(v) for v in (ex.history[0][1]["services"]["api"]["instance_utilisation"],
                             ex.history[1][1]["services"]["api"]["instance_utilisation"])] == [3, 1]
    s1 = summary_frame(one).loc["p99"]
    # one api replica (8 workers at ~0.95 busy) queues: the p99 rises, by more than both CIs' half widths
    assert s1.value > s3.value
    assert s1.value - s3.value > (s1.ci_high - s1.value) + (s3.value - s3.ci_low)
    assert s1.ci_low > s3.ci_high
    # the picture was redrawn from the new run, with the old one as "previous run"
    assert ex.image.value != png3 and ex.image.value[:4] == b"\x89PNG"
    lines = {ln.get_label(): ln for ln in ex.figure.axes[0].get_lines()}
    assert lines["this run"].get_xdata().max() == pytest.approx(one.latencies().max())
    assert lines["previous run"].get_xdata().max() == pytest.approx(three.latencies().max())
    assert "p99" in ex.summary_view.value and "ran in" in ex.status.value


def test_invalid_value_keeps_the_last_good_run():
    ex = explore(THREE_TIER, {"services.api.replicas": None}, overrides=QUICK, debounce_ms=0)
    good, png, fig = ex.result, ex.image.value, ex.figure
    ex.set("services.api.replicas", 0)
    assert ex.error == "services.api.replicas: must be an integer >= 1, got 0"
    assert ex.result is good and ex.image.value == png and ex.figure is fig and len(ex.history) == 1
    assert "services.api.replicas" in ex.status.value and "\n" not in ex.status.value
    ex.set("services.api.replicas", 2)
    assert ex.error is None and ex.result is not good and len(ex.history) == 2
    # a value that breaks another key: the error names that key (the crash targets api-1)
    crash = explore(THREE_TIER, {"services.api.replicas": None},
                    overrides={"run.duration": "3s", "metrics.warmup": "1s"}, debounce_ms=0)
    crash.set("services.api.replicas", 1)
    assert crash.error.startswith("faults[0].instance: unknown instance 'api-1'")


def test_debounce_coalesces_quick_moves():
    ex = explore(SMALL, {"services.s.replicas": (1, 6)}, debounce_ms=80)
    assert len(ex.history) == 1  # the first run happens at once
    for v in (3, 4, 5):
        ex.set("services.s.replicas", v)
    assert "waiting" in ex.status.value and len(ex.history) == 1
    deadline = time.monotonic() + 8
    while len(ex.history) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)
    assert [h[0]["services.s.replicas"] for h in ex.history] == [2, 5]  # one re-run, with the last value
    assert ex.rerun() is ex.result and len(ex.history) == 3


def test_breakdown_bars_add_up_to_the_mean_call_time():
    ex = explore(THREE_TIER, {"services.api.replicas": None}, overrides=QUICK, debounce_ms=0)
    bd = breakdown_frame(ex.result)
    assert list(bd.index) == ["frontend", "api", "db"]
    parts = bd[["network_ms", "queue_ms", "service_ms", "downstream_ms"]].sum(axis=1)
    np.testing.assert_allclose(parts, bd["total_ms"], rtol=1e-9)
    assert bd.loc["db", "downstream_ms"] == pytest.approx(0, abs=1e-6)  # the db calls nobody
    assert bd.loc["frontend", "calls"] == ex.result.summary["completed"]
    # the stacked bars drawn are those numbers: each service's bars end at its total
    ax = ex.figure.axes[1]
    ends = {}
    for p in ax.patches:
        y = round(p.get_y() + p.get_height() / 2)
        ends[y] = max(ends.get(y, 0.0), p.get_x() + p.get_width())
    np.testing.assert_allclose([ends[i] for i in range(3)], bd["total_ms"], rtol=1e-9)


def test_summary_cis():
    res = meshsim.run(SMALL, seed=3)
    sf = summary_frame(res)
    assert sf.loc["requests", "value"] == 1500
    assert [sf.loc["mean", "ci_low"], sf.loc["mean", "ci_high"]] == pytest.approx(res.summary["latency_ms"]["ci95"])
    assert sf.loc["p99", "value"] == pytest.approx(res.summary["latency_ms"]["p99"])
    # sectioning covers the true quantiles of independent draws
    x = np.random.default_rng(0).uniform(size=20_000)
    for q in (0.5, 0.99):
        est, lo, hi = quantile_ci(x, q)
        assert lo < q < hi and hi - lo < 0.02
    assert np.isnan(quantile_ci(x[:100], 0.99)[1])  # sections of 5 values cannot hold a p99


def test_compare_uses_common_seeds_and_pairs_them():
    cmp = compare(SMALL, {"2 replicas": {}, "again": {}, "4 replicas": {"services.s.replicas": 4}}, seeds=(1, 2, 3))
    assert {k: [r.seed for r in v] for k, v in cmp.results.items()} == {
        "2 replicas": [1, 2, 3], "again": [1, 2, 3], "4 replicas": [1, 2, 3]}
    t = cmp.table
    # identical variants under common random numbers: every paired difference, and its CI, is exactly 0
    same = t.loc["again"]
    assert (same[["diff", "diff_ci_low", "diff_ci_high"]].to_numpy() == 0).all()
    assert (same["mean"] == t.loc["2 replicas", "mean"]).all()
    # four replicas instead of two: lower latency, and the paired CI of the difference excludes 0
    for metric in ("mean_ms", "p99_ms"):
        row = t.loc[("4 replicas", metric)]
        assert row["diff"] < 0 and row["diff_ci_high"] < 0
    # the paired interval is the t interval of the per-seed differences
    runs = cmp.runs.set_index(["variant", "seed"])["p99_ms"]
    d = (runs["4 replicas"] - runs["2 replicas"]).to_numpy()
    half = t_quantile(0.975, 2) * d.std(ddof=1) / np.sqrt(3)
    row = t.loc[("4 replicas", "p99_ms")]
    assert [row["diff_ci_low"], row["diff_ci_high"]] == pytest.approx([d.mean() - half, d.mean() + half])
    assert np.isnan(t.loc[("2 replicas", "p99_ms"), "diff"])
    # pictures: one CDF per variant; p99 per seed; HTML carries table and figure
    assert [ln.get_label() for ln in cmp.figure.axes[0].get_lines()] == list(cmp.results)
    html = cmp._repr_html_()
    assert "Δ vs 2 replicas" in html and "data:image/png;base64," in html
    assert isinstance(cmp.widget(), W.VBox)
    # compare_frame gives the same table without figures
    frame = compare_frame(SMALL, {"2 replicas": {}, "4 replicas": {"services.s.replicas": 4}}, seeds=(1, 2, 3))
    assert frame.loc[("4 replicas", "p99_ms"), "diff"] == pytest.approx(row["diff"])
