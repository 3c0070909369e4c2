"""Registry read modes under a partition and watch delays (meshsim.experiments.registry_lab)."""

from __future__ import annotations

import numpy as np
import pytest

from meshsim.experiments import registry_lab as rl


@pytest.fixture(scope="module")
def lab() -> rl.PartitionReads:
    return rl.partition_reads(seed=1, duration_ms=12_000, partition=(4_000, 8_000))


def test_no_fault_latency_matches_theory(lab):
    t = lab.table().set_index(["mode", "phase"])
    theory = rl.read_theory_ms(lab.latency_ms)
    for mode, expect in theory.items():
        row = t.loc[(mode, "before")]
        assert row["p50_ms"] == pytest.approx(expect, abs=1e-6) and row["max_ms"] == pytest.approx(expect, abs=1e-6)
        assert row["stale_answers"] == 0 and row["errors"] == 0


def test_stale_reads_fast_but_stale_under_partition(lab):
    t = lab.table().set_index(["mode", "phase"])
    stale, cons = t.loc[("stale", "partition")], t.loc[("consistent", "partition")]
    assert stale["p99_ms"] == pytest.approx(2 * lab.latency_ms)  # the cut-off follower still answers at once
    assert stale["stale_fraction"] > 0.9
    # the lag grows with the writes it misses: one every 100 ms for 4 s
    assert 35 <= stale["max_lag_index"] <= 41 and stale["max_lag_ms"] > 3_500
    assert cons["p50_ms"] > 100 * stale["p50_ms"]
    for mode in ("default", "consistent"):
        assert (lab.reads.loc[lab.reads["mode"] == mode, "lag_index"] == 0).all()
        assert set(lab.reads.loc[lab.reads["mode"] == mode, "server"]) == {lab.leader}
    # after the heal the follower catches up within a heartbeat or two (100 ms each): stale answers fresh again
    r = lab.reads
    late = r[(r["mode"] == "stale") & (r["invoked"] >= lab.end_ms + 300)]
    assert len(late) > 30 and late["lag_index"].max() <= 1
    assert set(lab.reads.loc[lab.reads["mode"] == "stale", "server"]) == {lab.follower}


def test_phases_and_counts(lab):
    r = lab.reads
    assert set(r["phase"]) == {"before", "partition", "after"}
    assert ((r["phase"] == "partition") == ((r["invoked"] >= 4_000) & (r["invoked"] < 8_000))).all()
    n = r.groupby("mode").size()
    assert (n == n.iloc[0]).all() and 115 <= n.iloc[0] <= 121  # every 100 ms for 12 s
    assert r["ok"].all()


def test_rejects_bad_arguments():
    with pytest.raises(ValueError):
        rl.partition_reads(modes=("eventual",))
    with pytest.raises(ValueError):
        rl.partition_reads(duration_ms=1_000, partition=(500, 2_000))


def test_watch_delay_is_two_hops():
    d = rl.watch_delays(seed=2, changes=40, watchers=3)
    assert set(d["mode"]) == {"stale", "default"}
    assert (d.groupby("mode").size() == 40 * 3).all()
    # sum of two uniform(0.5, 1.5) one-way latencies: triangular on [1, 3], mean 2, sd sqrt(1/6)
    for _, g in d.groupby("mode"):
        x = g["delay_ms"].to_numpy()
        assert x.min() >= 1.0 - 1e-9 and x.max() <= 3.0 + 1e-9
        assert abs(x.mean() - 2.0) < 4 * np.sqrt(1 / 6 / len(x))


def test_plot_partition_reads(lab):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = rl.plot_partition_reads(lab)
    top, bottom = fig.axes
    assert top.get_yscale() == "log" and "ms" in top.get_ylabel() and "ms" in bottom.get_xlabel()
    lines = {ln.get_label(): ln for ln in top.get_lines()}
    assert set(lines) == {"stale", "default", "consistent"}
    assert len(lines["stale"].get_xdata()) == int((lab.reads["mode"] == "stale").sum())
    lag = {ln.get_label(): ln for ln in bottom.get_lines()}
    assert max(lag["stale"].get_ydata()) == lab.reads["lag_index"].max()
    shaded = [p for p in top.patches]
    assert len(shaded) == 1
    x0, x1 = shaded[0].get_x(), shaded[0].get_x() + shaded[0].get_width()
    assert (x0, x1) == pytest.approx((lab.start_ms, lab.end_ms))
    plt.close(fig)
