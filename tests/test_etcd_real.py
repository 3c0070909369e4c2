"""Leader failover of a real etcd cluster (meshsim.experiments.etcd_real).

Two kinds of test:

* always: the measurements committed under data/etcd/ are there, complete and
  plausible (median failover between 0.5x and 3x the election timeout), and
  the helpers that need no etcd work;
* where an etcd server is installed (Debian: ``apt-get install etcd-server``):
  a smoke test that starts three members on 127.0.0.1, kills the leader three
  times (heartbeat 100 ms, election 1000 ms) and checks each failover lies in
  a loose band (200 ms .. 5000 ms).  It takes about 15 s and is bounded by
  60 s; without etcd it is skipped with a message saying how to install it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from meshsim.experiments import etcd_real as er

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "etcd"
CSV = DATA / "failover.csv"
META = DATA / "failover.json"


def _need_etcd() -> Path:
    binary = er.find_etcd()
    if binary is None:
        pytest.skip(er.INSTALL_HINT)
    return binary


# --------------------------------------------------------------------------- committed data


@pytest.fixture(scope="module")
def committed() -> pd.DataFrame:
    assert CSV.exists(), f"{CSV.relative_to(ROOT)} is missing: run python -m meshsim.experiments.etcd_real"
    return pd.read_csv(CSV)


def test_committed_csv_has_both_configurations(committed):
    assert list(committed.columns) == er.COLUMNS
    configs = {(int(h), int(e)) for h, e in committed[["heartbeat_ms", "election_ms"]].drop_duplicates().to_numpy()}
    assert configs == set(er.CONFIGS)
    for (_hb, _el), g in committed.groupby(["heartbeat_ms", "election_ms"]):
        assert len(g) >= 50
        assert g["failover_ms"].notna().mean() >= 0.95, "too many trials timed out"
        assert sorted(g["trial"]) == list(range(len(g)))


@pytest.mark.parametrize(("heartbeat_ms", "election_ms"), er.CONFIGS)
def test_committed_medians_in_band(committed, heartbeat_ms, election_ms):
    g = committed[(committed.heartbeat_ms == heartbeat_ms) & (committed.election_ms == election_ms)]
    median = g["failover_ms"].median()
    assert 0.5 * election_ms <= median <= 3 * election_ms, (heartbeat_ms, election_ms, median)


def test_committed_rows_are_consistent(committed):
    ok = committed.dropna(subset=["failover_ms"])
    assert (ok["failover_lo_ms"] <= ok["failover_ms"]).all()
    # the lower and upper bound are a poll interval and a round trip apart, not more than 50 ms
    assert ((ok["failover_ms"] - ok["failover_lo_ms"]) < 50).mean() > 0.95
    assert (ok["term_after"] > ok["term_before"]).all()
    assert (ok["new_leader"] != ok["killed"]).all()
    # the etcd log's own "became leader" time agrees with the polled one to a few ms
    both = ok.dropna(subset=["failover_log_ms"])
    assert len(both) >= 0.9 * len(ok)
    assert (both["failover_log_ms"] - both["failover_ms"]).abs().median() < 20


def test_committed_metadata():
    meta = json.loads(META.read_text(encoding="utf-8"))
    assert meta["etcd_version"].startswith("3.")
    assert meta["date"][:2] == "20"
    assert meta["machine"]["cpus"] >= 1
    assert {(c["heartbeat_ms"], c["election_ms"]) for c in meta["configs"]} == set(er.CONFIGS)


@pytest.mark.parametrize("page", ["data/etcd/README.md", "docs/etcd_failover.md"])
def test_summary_tables_match_committed_data(committed, page):
    text = (ROOT / page).read_text(encoding="utf-8")
    assert er.markdown_table(er.summarize(committed)) in text, f"the summary table in {page} is stale"


def test_tick_model_matches_committed_medians(committed):
    """etcd's timer rules (tick_model) predict the measured medians within 10 %."""
    for (hb, el), g in committed.groupby(["heartbeat_ms", "election_ms"]):
        predicted = float(np.median(er.tick_model(hb, el, draws=20_000, seed=0)))
        assert abs(g["failover_ms"].median() / predicted - 1) < 0.10, (hb, el, predicted)


# --------------------------------------------------------------------------- no etcd needed


def test_summarize_and_table():
    df = pd.DataFrame({
        "heartbeat_ms": [50] * 4 + [100] * 2,
        "election_ms": [500] * 4 + [1000] * 2,
        "failover_ms": [500.0, 600.0, 700.0, np.nan, 1000.0, 1200.0],
        "failover_lo_ms": [495.0, 595.0, 695.0, np.nan, 995.0, 1195.0],
        "term_before": [2, 3, 4, 5, 2, 3],
        "term_after": [3, 5, 5, -1, 3, 4],
    })
    s = er.summarize(df)
    assert list(s["trials"]) == [4, 2]
    assert list(s["timeouts"]) == [1, 0]
    assert list(s["median_ms"]) == [600.0, 1100.0]
    assert list(s["term_jumps_gt1"]) == [1, 0]
    assert s["resolution_ms"].tolist() == [5.0, 5.0]
    table = er.markdown_table(s)
    assert "| 50 / 500 | 4 | 500 | 600 |" in table
    assert table.count("\n") == 4


def test_find_etcd_prefers_meshsim_etcd(tmp_path, monkeypatch):
    fake = tmp_path / "etcd"
    fake.write_text("#!/bin/sh\necho 'etcd Version: 9.9.9'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("MESHSIM_ETCD", str(fake))
    assert er.find_etcd() == fake
    assert er.etcd_version(fake) == "9.9.9"


def test_without_etcd_the_cluster_says_how_to_install(monkeypatch):
    monkeypatch.setattr(er, "find_etcd", lambda: None)
    with pytest.raises(FileNotFoundError, match="apt-get install etcd-server"):
        er.EtcdCluster(3, 100, 1000)
    assert er.main(["--trials", "1", "--out", os.devnull]) == 2


def test_etcd_env_drops_callers_etcd_variables(monkeypatch):
    monkeypatch.setenv("ETCD_NAME", "not-ours")
    assert "ETCD_NAME" not in er._etcd_env()


def test_free_ports_are_distinct_loopback_ports():
    ports = er.free_ports(6)
    assert len(set(ports)) == 6
    assert all(1024 <= p <= 65535 for p in ports)


# --------------------------------------------------------------------------- real etcd


@pytest.mark.slow
def test_real_cluster_starts_and_cleans_up(tmp_path):
    _need_etcd()
    with er.EtcdCluster(3, 50, 500, base_dir=tmp_path) as c:
        leader, term = c.wait_stable(hold=0.2, timeout=20)
        assert 0 <= leader < 3 and term >= 2
        assert len({m.client_port for m in c.members} | {m.peer_port for m in c.members}) == 6
        procs = [m.proc for m in c.members]
        tmp = c.tmp
        assert tmp is not None and tmp.is_dir()
    assert all(p is not None and p.poll() is not None for p in procs)
    assert not tmp.exists()


@pytest.mark.slow
def test_real_etcd_failover_smoke(tmp_path):
    """3 leader kills at heartbeat 100 ms / election 1000 ms; < 60 s."""
    _need_etcd()
    t0 = time.monotonic()
    df = er.failover_trials(100, 1000, 3, seed=7, base_dir=tmp_path, trial_timeout=8.0,
                            settle=0.5, settle_timeout=15.0)
    elapsed = time.monotonic() - t0
    assert len(df) == 3
    assert df["failover_ms"].notna().all(), df.to_string()
    assert df["failover_ms"].between(200, 5000).all(), df.to_string()
    assert (df["term_after"] > df["term_before"]).all()
    assert (df["new_leader"] != df["killed"]).all()
    assert elapsed < 60, f"smoke test took {elapsed:.0f} s"
    assert not any(tmp_path.iterdir()), "temporary etcd data dirs were left behind"
