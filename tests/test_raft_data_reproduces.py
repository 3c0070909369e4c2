"""The committed Raft data (data/raft/) is what its generator produces today, for its recorded seed.

Regenerating everything takes minutes (``python -m meshsim.experiments.raft_elections
--out data/raft``), so each file is checked on a deterministic subset: every
trial is a fresh cluster seeded from ``trial_seed(seed, ..., trial)``, so the
first trials of a range re-run alone give the committed rows.  The fresh rows
go through the generator's own CSV formatting (``%.3f``) and must equal the
committed ones to 1e-9.  A change to the Raft core, the shell, the network or
the experiment that moves any of these trials makes this fail: then
regenerate data/raft and update docs/raft_elections.md (data/raft/README.md).

``split_votes.csv`` holds only fractions over 20000 trials per latency (too
slow to re-run here); its closed form and Wilson intervals are recomputed
from its own columns.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from meshsim.experiments import raft_elections as re_

RAFT = Path(__file__).resolve().parents[1] / "data" / "raft"
PROVENANCE = json.loads((RAFT / "provenance.json").read_text())
SEED = int(PROVENANCE["seed"])
FIRST = 25  # trials re-run per range (150-150 ms: 3, each runs to the 60 s limit)


def _through_csv(df: pd.DataFrame, float_format: str) -> pd.DataFrame:
    buf = io.StringIO()
    df.to_csv(buf, index=False, float_format=float_format)
    buf.seek(0)
    return pd.read_csv(buf)


def _assert_rows_equal(fresh: pd.DataFrame, committed: pd.DataFrame, label: str) -> None:
    assert list(fresh.columns) == list(committed.columns), label
    assert len(fresh) == len(committed) > 0, label
    for col in fresh.columns:
        a, b = fresh[col].to_numpy(), committed[col].to_numpy()
        if a.dtype.kind == "f" or b.dtype.kind == "f":
            a, b = a.astype(float), b.astype(float)
            same = (np.isnan(a) & np.isnan(b)) | (np.abs(a - b) <= 1e-9)
        else:
            same = a == b
        bad = np.flatnonzero(~same)
        assert bad.size == 0, (f"{label}: column {col} differs from the committed data at row(s) {bad[:5].tolist()}: "
                               f"fresh {a[bad[:5]].tolist()} vs committed {b[bad[:5]].tolist()}; regenerate data/raft")


@pytest.fixture(scope="module")
def elections() -> pd.DataFrame:
    return pd.read_csv(RAFT / "elections.csv")


def test_provenance_names_the_generator_and_its_arguments():
    assert PROVENANCE["command"].startswith("python -m meshsim.experiments.raft_elections")
    assert {"trials", "etcd_trials", "split_trials", "seed"} <= set(PROVENANCE)


@pytest.mark.filterwarnings("ignore:election timeouts are not randomized")  # 150-150 ms, on purpose
@pytest.mark.parametrize("lo, hi", [(lo, hi) for lo, hi in re_.RANGES])
def test_elections_csv_first_trials_reproduce(elections, lo, hi):
    n = 3 if lo == hi else FIRST
    fresh = _through_csv(re_.election_trials(lo, hi, n, SEED), "%.3f")
    committed = elections[elections["range"] == f"{lo:g}-{hi:g}"].head(n).reset_index(drop=True)
    _assert_rows_equal(fresh, committed, f"elections.csv {lo:g}-{hi:g}")


def test_elections_csv_has_the_recorded_trial_counts(elections):
    counts = elections.groupby("range", sort=False).size()
    for lo, hi in re_.RANGES:
        expected = min(PROVENANCE["trials"], 100) if lo == hi else PROVENANCE["trials"]
        assert counts[f"{lo:g}-{hi:g}"] == expected
        trials = elections.loc[elections["range"] == f"{lo:g}-{hi:g}", "trial"].to_numpy()
        assert (trials == np.arange(expected)).all()


@pytest.mark.parametrize("ticks", [True, False])
@pytest.mark.parametrize("hb, el", re_.ETCD_CONFIGS)
def test_etcd_prediction_csv_first_trials_reproduce(hb, el, ticks):
    committed = pd.read_csv(RAFT / "etcd_prediction.csv")
    committed = committed[(committed["config"] == f"{hb}/{el}") & (committed["ticks"] == ticks)]
    assert len(committed) == PROVENANCE["etcd_trials"]
    fresh = _through_csv(re_.etcd_prediction(hb, el, FIRST, SEED, ticks=ticks), "%.3f")
    _assert_rows_equal(fresh, committed.head(FIRST).reset_index(drop=True), f"etcd_prediction.csv {hb}/{el} {ticks}")


def test_split_votes_csv_is_consistent_with_its_generator():
    df = pd.read_csv(RAFT / "split_votes.csv")
    assert (df["trials"] == PROVENANCE["split_trials"]).all()
    z = 1.959964
    for r in df.itertuples():
        assert r.closed_form == pytest.approx(re_.split_vote_probability(r.latency_ms, r.range_ms), rel=1e-7)
        k = r.simulated * r.trials
        assert k == pytest.approx(round(k), abs=1e-6)  # a count of trials
        p, n = r.simulated, r.trials
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        assert r.ci_low == pytest.approx(max(0.0, centre - half), rel=1e-7)
        assert r.ci_high == pytest.approx(min(1.0, centre + half), rel=1e-7)
