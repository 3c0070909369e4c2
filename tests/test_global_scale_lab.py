"""The global-scale grids (meshsim.experiments.global_scale_lab) and their pictures (meshsim.viz.scale), small.

What is pinned: every watching sidecar is counted, once per size and mode; the churn's steady-state load is the
difference of a run with churn and the same run without, so it is zero without churn and its utilisation is
exactly the serve cost of what it counts; both modes carry the same changes to the same watchers (as many
answers as stream events, below the knee) but a blocking answer carries the whole service; blocking queries
asked with stale (Consul's agent cache, the default) spread over the servers like the streams, asked without it
(blocking_mode="default") all land on the leader; with the leader answering, below the knee the busiest
server's utilisation is proportional to churn, and beyond it blocking saturates the leader and its deploy
misses HashiCorp's one second while streaming stays at the 200 ms coalescing; stale moves that knee out by
about the number of servers.
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from meshsim.experiments import global_scale as gs
from meshsim.experiments import global_scale_lab as lab
from meshsim.viz import scale as viz

SHORT = dict(steady_ms=10_000.0, settle_ms=8_000.0)
# the hard knee: blocking queries without ?stale (the leader answers all), 1 core per server at 2,000 instances:
# offered utilisation ~0.055-0.075 per unit of churn
KNEE = dict(instances=2_000, churns=(0.0, 3.0, 6.0, 30.0), server_cores=1, seed=2, blocking_mode="default")


@pytest.fixture(scope="module")
def sweep():
    return lab.churn_sweep(**KNEE)


def _watching(instances: int) -> int:
    shape = gs.ScaleShape.sized(instances)
    return sum(t.services * t.instances for t in shape.tiers)  # every tier's instances call 'hey'


def test_every_sidecar_is_counted_once_per_size_and_mode():
    t = lab.propagation_table(sizes=(800, 1_500), **SHORT)
    counts = t.groupby(["instances", "discovery"]).size()
    for n in (800, 1_500):
        shape = gs.ScaleShape.sized(n)
        for mode in lab.MODES:
            assert counts[(shape.instances, mode)] == _watching(n)
    s = lab.propagation_summary(t)
    assert (s["share_under_1s"] == 1.0).all() and (s["sidecars"] == s["instances"] - 1).all()
    # Consul's proxycfg coalescing (200 ms) plus milliseconds of delivery, at 36 idle cores per server
    assert (s["p50_ms"] > gs.COALESCE_MS).all() and (s["max_ms"] < gs.COALESCE_MS + 30.0).all()


def test_the_summary_counts_a_sidecar_that_never_had_it_against_the_limit():
    t = pd.DataFrame({"instances": 5, "discovery": "blocking", "propagation_ms": [100.0, 999.0, 1_000.0, np.nan]})
    s = lab.propagation_summary(t).iloc[0]
    assert s["sidecars"] == 4 and s["share_under_1s"] == 0.5 and s["max_ms"] == 1_000.0
    assert s["p50_ms"] == 999.0


def test_steady_load_is_the_churns_own_and_costs_what_it_sends():
    kw = dict(SHORT, server_cores=2)
    base = gs.run(gs.ScaleShape.sized(1_000, **kw), seed=4)
    churn = gs.run(gs.ScaleShape.sized(1_000, churn_per_s_per_1000=6.0, **kw), seed=4)
    zero = lab.steady_load(base, base)
    assert (zero[["instances_per_s", "messages_per_s", "utilisation"]] == 0).all().all()
    d = lab.steady_load(churn, base)
    assert d["messages_per_s"].sum() > 0
    # streaming: one instance per event, and the busy time added is exactly the serve cost of the events
    np.testing.assert_allclose(d["instances_per_s"], d["messages_per_s"])
    cost = (d["messages_per_s"] * gs.SERVE_COST.per_message_ms + d["instances_per_s"] * gs.SERVE_COST.per_instance_ms)
    np.testing.assert_allclose(d["utilisation"], cost / (1_000.0 * 2), rtol=1e-9)
    with pytest.raises(ValueError):
        lab.steady_load(base, churn)  # the baseline must be the one without churn
    other = gs.run(gs.ScaleShape.sized(1_000, steady_ms=9_000.0, settle_ms=8_000.0, server_cores=2), seed=4)
    with pytest.raises(ValueError):
        lab.steady_load(churn, other)  # ... and the same shape


def test_both_modes_carry_the_same_changes_but_blocking_sends_whole_services():
    d = lab.load_vs_size(sizes=(1_000, 2_000), churn_per_s_per_1000=4.0, seed=3, **SHORT).set_index(
        ["instances", "discovery"])
    for n in d.index.get_level_values(0).unique():
        st, bl = d.loc[(n, "streaming")], d.loc[(n, "blocking")]
        # the same seed makes the same changes; far below the knee every change is one answer per watcher
        assert bl["total_messages_per_s"] == pytest.approx(st["total_messages_per_s"], rel=0.02)
        assert st["total_instances_per_s"] == pytest.approx(st["total_messages_per_s"])
        # a b or c service has 83-85 instances, a few failing: that is what every blocking answer carries
        assert 70 < bl["total_instances_per_s"] / bl["total_messages_per_s"] < 85
        assert st["instances_per_s"] <= st["total_instances_per_s"]
        assert bl["instances_per_s"] > 20 * st["instances_per_s"]
    # more instances, more changes (a Poisson count of flaps, so only the direction)
    assert d.loc[(d.index.levels[0].max(), "streaming"), "total_messages_per_s"] > \
        d.loc[(d.index.levels[0].min(), "streaming"), "total_messages_per_s"]


def test_stale_blocking_queries_spread_over_the_servers_and_default_ones_land_on_the_leader():
    kw = dict(sizes=(2_000,), modes=("blocking",), churn_per_s_per_1000=4.0, seed=3, **SHORT)
    stale = lab.load_vs_size(**kw).iloc[0]  # blocking_mode="stale" is ScaleShape's default
    leader = lab.load_vs_size(blocking_mode="default", **kw).iloc[0]
    # the same changes to the same watchers, whoever answers
    assert stale["total_instances_per_s"] == pytest.approx(leader["total_instances_per_s"], rel=0.01)
    assert stale["total_messages_per_s"] == pytest.approx(leader["total_messages_per_s"], rel=0.01)
    # without ?stale one server, the leader, sends everything
    assert leader["instances_per_s"] == pytest.approx(leader["total_instances_per_s"], rel=1e-9)
    # with stale the busiest sends about 1/5: 112 agents pick their first of 5 servers by a seeded permutation
    # (a binomial 22.4 +- 4.2 agents each, so the busiest has 1/5 to ~0.28; measured 0.23)
    share = stale["instances_per_s"] / stale["total_instances_per_s"]
    servers = gs.ScaleShape.sized(2_000).servers
    assert 1.0 / servers <= share < 0.3


def test_below_the_knee_utilisation_is_proportional_to_churn(sweep):
    for mode in lab.MODES:
        g = sweep[sweep["discovery"] == mode].set_index("churn_per_s_per_1000")
        assert g.loc[0.0, "utilisation"] == 0.0
        # u/churn at 3 and 6 agree within the noise of which tier flaps (a Poisson count of ~90-180 flaps,
        # tiers a/b/c costing 0/10/83 answers): 25 %
        assert g.loc[6.0, "utilisation"] / 6.0 == pytest.approx(g.loc[3.0, "utilisation"] / 3.0, rel=0.25)
    k = lab.knee(sweep)
    assert k["points"] == 3 and 0.04 < k["slope"] < 0.1  # the three points at churn 0, 3, 6
    assert 10.0 < k["knee_churn"] < 25.0


def test_beyond_the_knee_blocking_saturates_and_misses_one_second_while_streaming_does_not(sweep):
    assert (sweep.loc[sweep["discovery"] == "blocking", "blocking_mode"] == "default").all()
    s = sweep.set_index(["discovery", "churn_per_s_per_1000"])
    top = max(KNEE["churns"])
    assert sweep["all_have_it"].all() and (sweep["sidecars"] == _watching(KNEE["instances"])).all()
    bl, st = s.loc[("blocking", top)], s.loc[("streaming", top)]
    # offered ~2x capacity: the leader answers every query and is busy all the time (a little over 1: work
    # queued at the end counts)
    assert 0.9 < bl["utilisation"] < 1.1 and bl["backlog_ms"] > 50.0
    assert bl["utilisation"] < lab.knee(sweep)["slope"] * top * 0.75  # far below what was offered
    assert bl["p99_ms"] > 500.0 and bl["p99_ms"] > 2.5 * st["p99_ms"]
    # streaming: one small message per change, spread over the servers; the deploy keeps the 200 ms coalescing
    assert st["utilisation"] < 0.05 and st["p99_ms"] < gs.COALESCE_MS + 30.0
    # below the knee blocking kept up too
    assert s.loc[("blocking", 3.0), "p99_ms"] < gs.COALESCE_MS + 80.0


def test_stale_moves_the_knee_out_by_about_the_number_of_servers(sweep):
    stale = lab.churn_sweep(**dict(KNEE, modes=("blocking",), blocking_mode="stale"))
    both = pd.concat([sweep, stale], ignore_index=True)
    hard, soft = lab.knee(both, blocking_mode="default"), lab.knee(both, blocking_mode="stale")
    assert hard == lab.knee(sweep)
    # at the same churn the busiest stale server answers 1/5 to ~0.28 of the queries instead of all of them
    # (see the spreading test; 0.23 at this size), so it does 3.6-5 times less work (the same seed makes the
    # same flaps in both modes)
    u = both[both["discovery"] == "blocking"].pivot(index="churn_per_s_per_1000", columns="blocking_mode",
                                                     values="utilisation")
    for churn in (3.0, 6.0):
        assert 3.5 < u.loc[churn, "default"] / u.loc[churn, "stale"] < 5.5
    assert soft["points"] == 4 and soft["knee_churn"] > 3.5 * hard["knee_churn"]
    top = max(KNEE["churns"])
    at_top = stale.set_index("churn_per_s_per_1000").loc[top]
    # where the leader saturated, the busiest stale server keeps up and the deploy keeps the 200 ms coalescing
    assert at_top["utilisation"] < 0.7 and at_top["backlog_ms"] < 50.0
    assert at_top["all_have_it"] and at_top["p99_ms"] < gs.COALESCE_MS + 80.0


def test_knee_fit_is_least_squares_through_the_origin():
    d = pd.DataFrame({"discovery": "blocking", "churn_per_s_per_1000": [0.0, 1.0, 2.0, 50.0],
                      "utilisation": [0.0, 0.1, 0.3, 1.0]})
    k = lab.knee(d)
    assert k["points"] == 3 and k["slope"] == pytest.approx((0.1 + 0.6) / 5.0)
    assert k["knee_churn"] == pytest.approx(5.0 / 0.7)
    none = lab.knee(d, discovery="streaming")
    assert math.isnan(none["slope"]) and none["knee_churn"] == math.inf and none["points"] == 0


def test_the_pictures_draw_the_tables(sweep):
    t = pd.DataFrame({"instances": [600] * 4 + [1200] * 4, "discovery": ["streaming", "blocking"] * 4,
                      "propagation_ms": [201.0, 202.0, 203.0, np.nan, 205.0, 206.0, 207.0, 208.0]})
    fig = viz.propagation_cdf(t)
    full, zoom = fig.axes
    assert len(zoom.get_lines()) >= 4 and full.get_xlim()[1] >= 1_000.0
    # a sidecar that never had it keeps its curve below 1
    ys = [line.get_ydata() for line in zoom.get_lines() if line.get_label() == "600 instances, blocking"][0]
    assert max(ys) == 0.5
    fig = viz.churn_knee(sweep, lab.knee(sweep))
    left, right = fig.axes
    assert right.get_yscale() == "log" and any(line.get_linestyle() == ":" for line in left.get_lines())
    load = pd.DataFrame({"instances": [1000, 2000] * 2, "discovery": ["streaming"] * 2 + ["blocking"] * 2,
                         "instances_per_s": [5.0, 10.0, 2e3, 4e3], "total_messages_per_s": [20.0, 40.0] * 2,
                         "churn_per_s_per_1000": 2.0})
    fig = viz.server_load(load)
    assert [len(ax.get_lines()) for ax in fig.axes] == [2, 2]
