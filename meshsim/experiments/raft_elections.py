"""Raft leader election after a leader crash: the Raft paper's experiment in meshsim.

Ongaro & Ousterhout, "In Search of an Understandable Consensus Algorithm"
(USENIX ATC 2014), section 9.3 and Figure 16; Ongaro's PhD thesis
("Consensus: Bridging Theory and Practice", 2014), chapter 9.  LogCabin on
five servers repeatedly crashed the leader and timed how long it took to
detect the crash and elect a new leader: from the crash until the other
servers received the new leader's first heartbeat.  The heartbeat interval
was half the minimum election timeout, the crash fell uniformly within it,
the old leader's heartbeats went out together (so the followers' election
timers started at about the same time) and two of the four survivors had
shorter logs (not eligible to win).  The cluster's broadcast time (network
round trip plus a disk write) was about 15 ms.

Here each trial builds a fresh cluster of :class:`~meshsim.registry.raft_shell.RaftCluster`
servers on a simulated network (:func:`~meshsim.registry.raft_shell.make_network`),
elects a leader, replicates one entry to all followers but ``lagging`` of them
(their copies of the leader's AppendEntries lose the entries, so their logs
stay one entry short while they still get every heartbeat), runs to the
leader's next heartbeat, crashes the leader ``U[0, heartbeat)`` later and
runs until every survivor follows a new leader.  Profile ``paper``: no
Pre-Vote, no check-quorum.

:func:`split_vote_probability` is the thesis's closed form (section 9.2,
fixed latency); :func:`first_split_trials` checks it against the simulation.
:func:`etcd_prediction` runs the same crash experiment on three members with
the ``etcd`` profile (etcd 3.4: Pre-Vote off, CheckQuorum on) at loopback
latency, to set beside the real etcd measurements in ``data/etcd``
(:func:`compare_etcd`).

Run::

    python -m meshsim.experiments.raft_elections --trials 1000 --out data/raft
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..core.raft import AppendEntries, RaftConfig
from ..registry.raft_shell import DelaySpec, RaftCluster, make_network
from ..rng import RandomStreams
from ..sim.kernel import Kernel
from ..examples import DATA_DIR as DATA

__all__ = [
    "BOTTOM_RANGES",
    "DEFAULT_DISK",
    "DEFAULT_LATENCY",
    "ETCD_CONFIGS",
    "HASHICORP_CONFIGS",
    "PUBLISHED",
    "RANGES",
    "TOP_RANGES",
    "all_ranges",
    "compare_etcd",
    "compare_hashicorp",
    "election_trials",
    "etcd_config",
    "etcd_prediction",
    "failover_trial",
    "figure_table",
    "first_split_trials",
    "hashicorp_config",
    "hashicorp_markdown",
    "hashicorp_prediction",
    "paper_config",
    "plot_cdf",
    "published_comparison",
    "split_vote_probability",
    "split_vote_table",
    "trial_seed",
]

#: Figure 16, top: the randomness of the election timeout varied (150-150 had 100 trials, the rest 1000)
TOP_RANGES: tuple[tuple[float, float], ...] = ((150, 150), (150, 151), (150, 155), (150, 175), (150, 200), (150, 300))
#: Figure 16, bottom: the minimum election timeout scaled
BOTTOM_RANGES: tuple[tuple[float, float], ...] = ((12, 24), (25, 50), (50, 100), (100, 200), (150, 300))
RANGES: tuple[tuple[float, float], ...] = TOP_RANGES + tuple(r for r in BOTTOM_RANGES if r not in TOP_RANGES)

#: The numbers the paper (section 9.3) and the thesis (sections 9.2, 9.4) state, in ms / as fractions.
PUBLISHED = {
    "150-155 median_ms": 287.0,
    "150-200 max_ms": 513.0,  # worst of 1000 trials
    "12-24 mean_ms": 35.0,
    "12-24 max_ms": 152.0,  # longest of 1000 trials
    "150-150 min_ms": 10_000.0,  # "consistently took longer than 10 seconds" (100 trials)
    "split 1ms/100ms": 0.0006,  # 5 servers, 4 alive, fixed one-way latency / timeout range
    "split 10ms/100ms": 0.052,
    "split 20ms/100ms": 0.181,
}

#: Default model of the LogCabin cluster: one-way latency and the disk write (ms).  The thesis gives
#: only their sum, "broadcast time (network round trip plus disk write) of roughly 15 ms"; see
#: docs/raft_elections.md for the split and how the results depend on it.
DEFAULT_LATENCY: DelaySpec = {"dist": "uniform", "low": 0.1, "high": 0.3}
DEFAULT_DISK: DelaySpec = {"dist": "uniform", "low": 2.0, "high": 3.0}


# --------------------------------------------------------------------------- closed form


def split_vote_probability(latency_ms: float, range_ms: float, servers: int = 5, alive: int | None = None) -> float:
    """The thesis's split-vote probability with a fixed one-way latency (section 9.2).

    ``alive`` (s) of ``servers`` (n) are up (default: all but one, the crashed
    leader); timeouts are uniform over a range of ``range_ms``; ``l =
    latency_ms / range_ms``.  The first server to time out gets the votes of
    every server that does not time out within ``l`` after it, so the vote
    splits when the first ``c = s - floor(n/2) + 1`` servers time out within
    ``l`` of each other:  Pr(D_{c,s} <= l) = sum_{k=c-1}^{s} C(s,k) l^k (1-l)^(s-k).

    >>> round(100 * split_vote_probability(1, 100), 2), round(100 * split_vote_probability(10, 100), 1)
    (0.06, 5.2)
    >>> round(100 * split_vote_probability(20, 100), 1)
    18.1
    """
    n = int(servers)
    s = n - 1 if alive is None else int(alive)
    if not 1 <= s <= n:
        raise ValueError(f"alive must be in 1..{n}, got {s}")
    if s < n // 2 + 1:
        return 1.0  # no majority left: every election fails
    if range_ms <= 0:
        return 1.0 if s - n // 2 + 1 > 1 else 0.0
    l = min(max(latency_ms / range_ms, 0.0), 1.0)
    c = s - n // 2 + 1
    if c > s:
        return 0.0  # the first server's own vote is enough (a single server)
    return float(sum(math.comb(s, k) * l ** k * (1 - l) ** (s - k) for k in range(c - 1, s + 1)))


# --------------------------------------------------------------------------- one trial


def paper_config(timeout_min: float, timeout_max: float, **overrides: Any) -> RaftConfig:
    """The ``paper`` profile with election timeouts in [min, max) and a heartbeat of min/2."""
    kw = dict(heartbeat_interval_ms=timeout_min / 2.0, election_timeout_min_ms=float(timeout_min),
              election_timeout_max_ms=float(timeout_max))
    kw.update(overrides)
    return RaftConfig.profile("paper", **kw)


def _lagging_intercept(cluster: RaftCluster, leader: str, lagging: set):
    """Rewrite ``leader``'s AppendEntries to ``lagging`` servers as plain heartbeats that they accept:
    no entries, consistency check at their own last entry, commit capped there."""
    def intercept(src, dst, msg):
        if src == leader and dst in lagging and isinstance(msg, AppendEntries):
            node = cluster.servers[dst].node
            if node is None:
                return msg
            last = node.last_index
            last_term = node.log[-1].term if last else 0
            return replace(msg, prev_index=last, prev_term=last_term, entries=(), commit=min(msg.commit, last))
        return msg
    return intercept


def failover_trial(config: RaftConfig, seed: int | Sequence[int] | np.random.SeedSequence, *, servers: int = 5,
                   latency: DelaySpec = DEFAULT_LATENCY, disk: DelaySpec = DEFAULT_DISK, lagging: int = 0,
                   tick_ms: float | None = None, max_ms: float = 60_000.0) -> dict[str, Any]:
    """Crash the leader of a fresh ``servers``-member cluster once; see the module doc.

    Returns crash_offset_ms (crash time after the last heartbeat broadcast),
    elected_ms (crash to a survivor becoming leader), leader_ms (crash to
    every survivor following it: the paper's measure), terms (terms used,
    new - old), candidates, split_votes (terms with two or more candidates and
    no leader), first_term_won, new_leader_eligible, timed_out.
    """
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    streams = RandomStreams(ss)
    kernel = Kernel()
    hosts = [f"s{i}" for i in range(servers)]
    net = make_network(kernel, hosts, latency, streams)
    cluster = RaftCluster(kernel, net, hosts, config, streams, disk_delay=disk, tick_ms=tick_ms)
    exp = streams.generator("experiment")
    hb = config.heartbeat_interval_ms
    lo = config.election_timeout_min_ms
    # bootstrap: s0 boots first, the others half a minimum timeout later, so that s0 (almost always)
    # wins the first election even when timeouts are not randomized
    cluster.start(servers=[hosts[0]])
    kernel.call_at(lo / 2.0, lambda _a: cluster.start(servers=hosts[1:]))
    if not cluster.run_until(lambda: cluster.agreed_leader() is not None, 200 * lo + 10_000):
        raise RuntimeError(f"no stable initial leader with {config}, latency {latency!r}, disk {disk!r}: an election "
                           "round trip (write, send, write, answer) longer than the election timeout violates "
                           "Raft's timing requirement")
    leader = cluster.agreed_leader()
    followers = [h for h in hosts if h != leader]
    lag = set(exp.choice(followers, size=min(lagging, len(followers)), replace=False).tolist()) if lagging else set()
    if lag:
        cluster.intercept = _lagging_intercept(cluster, leader, lag)
    index = cluster.propose("x")
    lnode = cluster.servers[leader].node
    if index is None or not cluster.run_until(lambda: lnode.commit_index >= index, 100 * lo):
        raise RuntimeError("the leader could not commit its entry")
    # run to the leader's next heartbeat broadcast, then crash it within the heartbeat interval
    t_hb = cluster.servers[leader].timer_time
    cluster.run_to(t_hb)
    while cluster.servers[leader].timer_time is not None and cluster.servers[leader].timer_time <= t_hb:
        cluster.run_to(cluster.servers[leader].timer_time)  # (several deadlines at the same instant)
    u = float(exp.uniform(0.0, hb))
    cluster.run_to(t_hb + u)
    if cluster.leader() != leader or cluster.agreed_leader() != leader:
        raise RuntimeError("leadership changed before the crash")
    old_term = cluster.servers[leader].term
    eligible = {h for h in followers if h not in lag}
    t_crash = kernel.now
    n_events = len(cluster.events["time"])
    n_leaders = len(cluster.leader_changes["time"])
    cluster.crash(leader)

    def done() -> bool:
        lead = cluster.agreed_leader()
        return lead is not None and cluster.servers[lead].term > old_term

    ok = cluster.run_until(done, max_ms)
    lc = cluster.leader_changes
    elected = [(lc["time"][i], lc["leader"][i], lc["term"][i]) for i in range(n_leaders, len(lc["time"]))
               if lc["term"][i] > old_term]
    ev = cluster.events
    cands: dict[int, set] = {}
    for i in range(n_events, len(ev["time"])):
        if ev["event"][i] == "candidate":
            cands.setdefault(ev["term"][i], set()).add(ev["server"][i])
    leader_terms = {t for _, _, t in elected}
    if ok:
        new_leader = cluster.agreed_leader()
        new_term = cluster.servers[new_leader].term
    else:
        new_leader, new_term = None, max(cluster.servers[h].term for h in followers)
    return {
        "crash_offset_ms": u,
        "elected_ms": (elected[0][0] - t_crash) if elected else math.nan,
        "leader_ms": (kernel.now - t_crash) if ok else math.nan,
        "terms": new_term - old_term,
        "candidates": sum(len(v) for v in cands.values()),
        "split_votes": sum(1 for t, v in cands.items() if len(v) >= 2 and t not in leader_terms),
        "first_term_won": (old_term + 1) in leader_terms,
        "new_leader_eligible": (new_leader in eligible) if new_leader is not None else False,
        "new_leader": new_leader,
        "timed_out": not ok,
    }


# --------------------------------------------------------------------------- the paper's figure


def trial_seed(seed: int, *parts: float) -> list[int]:
    """The SeedSequence entropy of one trial: ``seed``, then each part in thousandths (the functions here
    pass the timeout range or latency, and the trial number).

    >>> trial_seed(0, 150, 155, 7)
    [0, 150000, 155000, 7000]
    """
    return [int(seed)] + [int(round(p * 1000)) for p in parts]


def election_trials(timeout_min: float, timeout_max: float, trials: int, seed: int = 0, *, servers: int = 5,
                    latency: DelaySpec = DEFAULT_LATENCY, disk: DelaySpec = DEFAULT_DISK, lagging: int = 2,
                    max_ms: float = 60_000.0, **config_overrides: Any) -> pd.DataFrame:
    """``trials`` leader crashes with election timeouts uniform in [min, max) ms; one row per trial.

    Columns: range ("150-155"), timeout_min, timeout_max, trial, leader_ms
    (time to new leader: crash until every survivor follows it, the paper's
    measure; NaN if not within ``max_ms``), elected_ms, crash_offset_ms,
    terms, candidates, split_votes, first_term_won, new_leader_eligible,
    timed_out.  Heartbeat = min/2; ``lagging`` survivors have shorter logs
    (the paper: two of four).
    """
    config = paper_config(timeout_min, timeout_max, **config_overrides)
    rows = []
    for i in range(int(trials)):
        r = failover_trial(config, trial_seed(seed, timeout_min, timeout_max, i), servers=servers, latency=latency,
                           disk=disk, lagging=lagging, max_ms=max_ms)
        r.update(trial=i)
        rows.append(r)
    df = pd.DataFrame(rows)
    df.insert(0, "timeout_max", float(timeout_max))
    df.insert(0, "timeout_min", float(timeout_min))
    df.insert(0, "range", f"{timeout_min:g}-{timeout_max:g}")
    cols = ["range", "timeout_min", "timeout_max", "trial", "leader_ms", "elected_ms", "crash_offset_ms", "terms",
            "candidates", "split_votes", "first_term_won", "new_leader_eligible", "timed_out"]
    return df[cols]


def all_ranges(trials: int = 1000, seed: int = 0, ranges: Iterable[tuple[float, float]] = RANGES,
               trials_150_150: int = 100, progress: bool = False, **kw: Any) -> pd.DataFrame:
    """:func:`election_trials` for every range of Figure 16 (150-150 with ``trials_150_150`` trials)."""
    out = []
    for lo, hi in ranges:
        t0 = time.perf_counter()
        n = min(trials, trials_150_150) if lo == hi else trials
        out.append(election_trials(lo, hi, n, seed, **kw))
        if progress:
            print(f"{lo:g}-{hi:g} ms: {n} trials in {time.perf_counter() - t0:.1f} s", flush=True)
    return pd.concat(out, ignore_index=True)


def figure_table(trials: pd.DataFrame, column: str = "leader_ms") -> pd.DataFrame:
    """The CDF summary per range: trials, timeouts, min, p10, p25, median, p75, p90, p99, max, mean (ms),
    mean terms, fraction of trials with a split vote and whose first term elected no leader."""
    rows = []
    for rng, g in trials.groupby("range", sort=False):
        x = g[column].to_numpy(dtype=float)
        fin = x[np.isfinite(x)]
        q = (lambda p: float(np.percentile(fin, p))) if fin.size else (lambda p: math.nan)
        rows.append({
            "range": rng, "timeout_min": g["timeout_min"].iloc[0], "timeout_max": g["timeout_max"].iloc[0],
            "trials": len(g), "timed_out": int(g["timed_out"].sum()),
            "min_ms": float(fin.min()) if fin.size else math.nan, "p10_ms": q(10), "p25_ms": q(25),
            "median_ms": q(50), "p75_ms": q(75), "p90_ms": q(90), "p99_ms": q(99),
            "max_ms": float(fin.max()) if fin.size else math.nan,
            "mean_ms": float(fin.mean()) if fin.size else math.nan,
            "mean_terms": float(g["terms"].mean()), "split_fraction": float((g["split_votes"] > 0).mean()),
            "first_term_lost": float((~g["first_term_won"].astype(bool)).mean()),
        })
    return pd.DataFrame(rows)


def published_comparison(trials: pd.DataFrame, column: str = "leader_ms", seed: int = 0) -> pd.DataFrame:
    """The published numbers beside meshsim's, from a frame of :func:`election_trials` rows.

    Columns: quantity, published, meshsim, ci_low/ci_high (bootstrap 95 %
    interval for medians and means; for the worst case of n trials, NaN),
    exceed (fraction of meshsim trials above the published value: the paper
    saw none of its 1000 above its worst case), ratio (meshsim / published).
    """
    rng = np.random.default_rng(seed)

    def pick(r: str) -> np.ndarray:
        return trials.loc[trials["range"] == r, column].to_numpy(dtype=float)

    def boot(x: np.ndarray, f) -> tuple[float, float]:
        idx = rng.integers(0, x.size, (2000, x.size))
        v = f(x[idx], axis=1)
        return float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))

    rows = []
    for rname, stat, key in (("150-155", "median", "150-155 median_ms"), ("150-200", "max", "150-200 max_ms"),
                             ("12-24", "mean", "12-24 mean_ms"), ("12-24", "max", "12-24 max_ms"),
                             ("150-150", "min", "150-150 min_ms")):
        x = pick(rname)
        if not x.size:
            continue
        pub = PUBLISHED[key]
        fin = x[np.isfinite(x)]
        if stat == "min":
            # censored trials (no leader within max_ms) count as longer than any finite one
            val = float(fin.min()) if fin.size else math.inf
            lo = hi = math.nan
            label = f"{rname} ms: shortest of {x.size} trials (published: all > 10 s)"
        elif stat == "max":
            val = float(x.max()) if fin.size == x.size else math.inf
            lo = hi = math.nan
            label = f"{rname} ms: worst of {x.size} trials"
        else:
            f = np.median if stat == "median" else np.mean
            val = float(f(fin))
            lo, hi = boot(fin, f)
            label = f"{rname} ms: {stat}"
        rows.append({"quantity": label, "published": pub, "meshsim": val, "ci_low": lo, "ci_high": hi,
                     "exceed": float(np.mean(~(x <= pub))), "ratio": val / pub})
    return pd.DataFrame(rows)


def split_vote_table(latencies_ms: Sequence[float] = (1.0, 5.0, 10.0, 20.0, 30.0), trials: int = 2000,
                     seed: int = 0, range_ms: float = 100.0) -> pd.DataFrame:
    """The thesis's closed form beside the simulated fraction of first elections that split
    (5 servers, 4 alive, fixed latency), with a Wilson 95 % interval for the simulated fraction."""
    rows = []
    for lat in latencies_ms:
        df = first_split_trials(lat, trials, seed, range_ms=range_ms)
        k = int((~df["first_term_won"].astype(bool)).sum())
        n = len(df)
        p = k / n
        z = 1.959964
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        rows.append({"latency_ms": lat, "range_ms": range_ms, "l": lat / range_ms,
                     "closed_form": split_vote_probability(lat, range_ms), "simulated": p, "trials": n,
                     "ci_low": max(0.0, centre - half), "ci_high": min(1.0, centre + half)})
    return pd.DataFrame(rows)


def plot_cdf(trials: pd.DataFrame, path: str | Path | None = None, column: str = "leader_ms",
             published: bool = True):
    """Figure 16 from ``trials``: CDF per range, top (randomness, log x) and bottom (scale, linear x),
    with the published numbers as black markers.  Saves a PNG when ``path`` is given; returns the Figure."""
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(7, 7.5))
    panels = ((axes[0], TOP_RANGES, True, "randomness of the election timeout"),
              (axes[1], BOTTOM_RANGES, False, "scale of the election timeout"))
    for ax, ranges, logx, title in panels:
        for lo, hi in ranges:
            g = trials[trials["range"] == f"{lo:g}-{hi:g}"]
            if g.empty:
                continue
            x = np.sort(g[column].to_numpy(dtype=float))
            n = len(x)
            x = x[np.isfinite(x)]
            if not x.size:
                ax.plot([], [], ls=":", label=f"{lo:g}-{hi:g} ms (n={n}): no leader within the time limit")
                continue
            y = 100.0 * np.arange(1, x.size + 1) / n
            ax.step(x, y, where="post", label=f"{lo:g}-{hi:g} ms (n={n})")
        if published:
            pts = ([(PUBLISHED["150-155 median_ms"], 50.0, "paper: 150-155 median"),
                    (PUBLISHED["150-200 max_ms"], 100.0, "paper: 150-200 worst")] if logx else
                   [(PUBLISHED["12-24 max_ms"], 100.0, "paper: 12-24 longest")])
            for px, py, txt in pts:
                ax.plot([px], [py], "kx", ms=8, mew=2)
                ax.annotate(txt, (px, py), textcoords="offset points", xytext=(6, -12), fontsize=7)
            if not logx:
                ax.axvline(PUBLISHED["12-24 mean_ms"], color="k", ls=":", lw=1)
                ax.annotate("paper: 12-24 mean", (PUBLISHED["12-24 mean_ms"], 5), textcoords="offset points",
                            xytext=(4, 0), fontsize=7)
        if logx:
            ax.set_xscale("log")
        ax.set_xlabel("time without leader (ms)")
        ax.set_ylabel("cumulative percent")
        ax.set_ylim(0, 100)
        ax.set_title(f"5 servers, leader crashed: {title}", fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
    return fig


# --------------------------------------------------------------------------- split votes (thesis 9.2)


def first_split_trials(latency_ms: float, trials: int, seed: int = 0, *, range_ms: float = 100.0,
                       timeout_min: float = 150.0, servers: int = 5) -> pd.DataFrame:
    """The thesis's fixed-latency split-vote setting, simulated: ``servers`` servers, the leader crashed
    (so ``servers - 1`` alive), constant one-way latency, no disk delay, equal logs, election timeouts in
    [min, min + range_ms).  The column ``first_term_won`` is False when the first election split."""
    config = paper_config(timeout_min, timeout_min + range_ms)
    rows = []
    for i in range(int(trials)):
        r = failover_trial(config, trial_seed(seed, latency_ms, range_ms, i), servers=servers,
                           latency=float(latency_ms), disk=0.0, lagging=0)
        r.update(trial=i, latency_ms=latency_ms, range_ms=range_ms)
        rows.append(r)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- etcd


ETCD_CONFIGS: tuple[tuple[int, int], ...] = ((50, 500), (100, 1000))


def etcd_config(heartbeat_ms: float, election_ms: float, **overrides: Any) -> RaftConfig:
    """The ``etcd`` profile as etcd 3.4 runs it: election timeout [T, 2T), heartbeat H, CheckQuorum on,
    Pre-Vote off (``--pre-vote`` defaults to true only from 3.5)."""
    kw = dict(heartbeat_interval_ms=float(heartbeat_ms), election_timeout_min_ms=float(election_ms),
              election_timeout_max_ms=2.0 * election_ms, pre_vote=False, check_quorum=True)
    kw.update(overrides)
    return RaftConfig.profile("etcd", **kw)


def etcd_prediction(heartbeat_ms: float, election_ms: float, trials: int, seed: int = 0, *, members: int = 3,
                    latency: DelaySpec = 0.1, disk: DelaySpec = 2.0, ticks: bool = True) -> pd.DataFrame:
    """meshsim's failover times for a ``members``-member etcd 3.4 cluster on loopback, leader killed at a
    random point of its heartbeat interval; columns like ``data/etcd/failover.csv``.

    ``failover_ms`` is the time from the kill until a survivor becomes leader
    (the raft state change that etcd logs as "became leader" and its status
    API reports).  ``ticks`` (default) uses etcd's logical clock (one tick per
    heartbeat, timeouts in whole ticks, see :mod:`meshsim.registry.raft_shell`);
    without it timers are continuous.  ``disk`` models the WAL fsync.
    """
    config = etcd_config(heartbeat_ms, election_ms)
    rows = []
    for i in range(int(trials)):
        r = failover_trial(config, trial_seed(seed, heartbeat_ms, election_ms, i, 1 if ticks else 0), servers=members,
                           latency=latency, disk=disk, lagging=0, tick_ms=heartbeat_ms if ticks else None,
                           max_ms=20.0 * election_ms + 10_000)
        rows.append({"config": f"{heartbeat_ms:g}/{election_ms:g}", "trial": i, "heartbeat_ms": heartbeat_ms,
                     "election_ms": election_ms, "failover_ms": r["elected_ms"],
                     "all_know_ms": r["leader_ms"], "kill_offset_ms": r["crash_offset_ms"],
                     "term_jump": r["terms"], "split_votes": r["split_votes"], "ticks": ticks,
                     "timed_out": r["timed_out"]})
    return pd.DataFrame(rows)


HASHICORP_CONFIGS: tuple[tuple[int, int, int], ...] = ((1000, 1000, 500), (200, 200, 100))


def hashicorp_config(heartbeat_ms: float, election_ms: float, lease_ms: float, *, version: str = "1.1",
                     **overrides: Any) -> RaftConfig:
    """hashicorp/raft with HeartbeatTimeout, ElectionTimeout and LeaderLeaseTimeout in ms: the
    ``hashicorp-raft-1.1`` profile (``version="1.1"``, no pre-vote) or ``consul`` (``"1.7"``: pre-vote),
    with the follower check and candidate timeout in [T, 2T) and heartbeats in [T/10, T/5).

    >>> c = hashicorp_config(200, 200, 100)
    >>> c.timers, c.election_timeout_min_ms, c.heartbeat_interval_ms, c.heartbeat_interval_max_ms, c.lease_ms
    ('hashicorp', 200.0, 20.0, 40.0, 100.0)
    """
    if heartbeat_ms != election_ms:
        raise ValueError("meshsim's hashicorp timers use one range for HeartbeatTimeout and ElectionTimeout "
                         f"(Consul sets them equal); got {heartbeat_ms} and {election_ms}")
    profile = {"1.1": "hashicorp-raft-1.1", "1.7": "consul"}.get(version)
    if profile is None:
        raise ValueError(f"version must be '1.1' or '1.7', got {version!r}")
    t = float(heartbeat_ms)
    kw = dict(heartbeat_interval_ms=t / 10.0, heartbeat_interval_max_ms=t / 5.0, election_timeout_min_ms=t,
              election_timeout_max_ms=2.0 * t, leader_lease_ms=float(lease_ms))
    kw.update(overrides)
    return RaftConfig.profile(profile, **kw)


def hashicorp_prediction(heartbeat_ms: float, election_ms: float, lease_ms: float, trials: int, seed: int = 0, *,
                         members: int = 3, version: str = "1.1", latency: DelaySpec = 0.1,
                         disk: DelaySpec = 0.0) -> pd.DataFrame:
    """meshsim's failover times for a ``members``-server hashicorp/raft cluster on loopback (in-memory stores:
    no disk time), leader killed at a random point of its heartbeat interval; columns like
    ``data/hashicorp/failover.csv`` (``failover_ms``: kill to a survivor becoming leader)."""
    config = hashicorp_config(heartbeat_ms, election_ms, lease_ms, version=version)
    rows = []
    for i in range(int(trials)):
        r = failover_trial(config, trial_seed(seed, heartbeat_ms, election_ms, lease_ms, i), servers=members,
                           latency=latency, disk=disk, lagging=0, max_ms=40.0 * election_ms + 10_000)
        rows.append({"config": f"{heartbeat_ms:g}/{election_ms:g}/{lease_ms:g}", "trial": i,
                     "heartbeat_ms": heartbeat_ms, "election_ms": election_ms, "lease_ms": lease_ms,
                     "failover_ms": r["elected_ms"], "all_know_ms": r["leader_ms"],
                     "kill_offset_ms": r["crash_offset_ms"], "term_jump": r["terms"],
                     "split_votes": r["split_votes"], "timed_out": r["timed_out"]})
    return pd.DataFrame(rows)


def compare_hashicorp(measured: pd.DataFrame | str | Path | None = None, predicted: pd.DataFrame | None = None,
                      trials: int = 400, seed: int = 0) -> pd.DataFrame:
    """Side by side per timing (1000/1000/500, 200/200/100): the real hashicorp/raft 1.1.2 cluster
    (``data/hashicorp/failover.csv``) against meshsim's ``hashicorp-raft-1.1`` profile (``predicted``, else
    :func:`hashicorp_prediction` with ``trials``): min, median, p90, p95, max, mean (ms) and the fraction of
    failovers that took three or more terms."""
    if measured is None:
        measured = DATA / "hashicorp" / "failover.csv"
    if not isinstance(measured, pd.DataFrame):
        measured = pd.read_csv(measured)
    rows = []
    for hb, el, ls in HASHICORP_CONFIGS:
        m = measured[(measured["heartbeat_ms"] == hb) & (measured["election_ms"] == el)]
        p = predicted[(predicted["heartbeat_ms"] == hb) & (predicted["election_ms"] == el)] \
            if predicted is not None else hashicorp_prediction(hb, el, ls, trials, seed)
        for label, x, jumps in (
                ("hashicorp/raft 1.1.2 measured", m["failover_ms"].to_numpy(float),
                 (m["term_after"] - m["term_before"]).to_numpy(float)),
                ("meshsim hashicorp-raft-1.1", p["failover_ms"].to_numpy(float), p["term_jump"].to_numpy(float))):
            x = x[np.isfinite(x)]
            rows.append({"config": f"{hb}/{el}/{ls}", "source": label, "trials": len(x),
                         **{f"{k}_ms": v for k, v in _stats(x).items()}, "p95_ms": float(np.percentile(x, 95)),
                         "term_jump_3plus": float(np.mean(jumps >= 3))})
    return pd.DataFrame(rows)


def hashicorp_markdown(comparison: pd.DataFrame) -> str:
    """:func:`compare_hashicorp`'s table as the Markdown in docs/hashicorp_failover.md (ms, rounded).

    >>> c = pd.DataFrame([{"config": "200/200/100", "source": "x", "trials": 3, "min_ms": 1.0, "median_ms": 2.0,
    ...                    "p90_ms": 3.0, "max_ms": 5.0, "mean_ms": 2.5, "p95_ms": 4.0, "term_jump_3plus": 0.5}])
    >>> print(hashicorp_markdown(c).splitlines()[-1])
    | 200/200/100 | x | 3 | 1 | 2 | 3 | 4 | 5 | 2 | 50 % |
    """
    head = ("| timing (ms) | source | trials | min | median | p90 | p95 | max | mean | term +3 or more |\n"
            "|---|---|---|---|---|---|---|---|---|---|\n")
    rows = [f"| {r.config} | {r.source} | {r.trials} | {r.min_ms:.0f} | {r.median_ms:.0f} | {r.p90_ms:.0f} "
            f"| {r.p95_ms:.0f} | {r.max_ms:.0f} | {r.mean_ms:.0f} | {100 * r.term_jump_3plus:.0f} % |"
            for r in comparison.itertuples()]
    return head + "\n".join(rows) + "\n"


def _stats(x: np.ndarray) -> dict[str, float]:
    x = x[np.isfinite(x)]
    return {"min": float(x.min()), "median": float(np.median(x)), "p90": float(np.percentile(x, 90)),
            "max": float(x.max()), "mean": float(x.mean())}


def compare_etcd(measured: pd.DataFrame | str | Path | None = None, predicted: pd.DataFrame | None = None,
                 trials: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Side by side per setting (50/500, 100/1000): measured etcd (``data/etcd/failover.csv``) against
    meshsim's prediction (``predicted``, else :func:`etcd_prediction` with ``trials``): min, median, p90,
    max, mean (ms) and the fraction of failovers that took two or more terms."""
    if measured is None:
        measured = DATA / "etcd" / "failover.csv"
    if not isinstance(measured, pd.DataFrame):
        measured = pd.read_csv(measured)
    rows = []
    for hb, el in ETCD_CONFIGS:
        m = measured[(measured["heartbeat_ms"] == hb) & (measured["election_ms"] == el)]
        if predicted is not None:
            p_all = predicted[(predicted["heartbeat_ms"] == hb) & (predicted["election_ms"] == el)]
        else:
            p_all = pd.concat([etcd_prediction(hb, el, trials, seed, ticks=t) for t in (True, False)])
        sources = [("etcd 3.4 measured", m["failover_ms"].to_numpy(float),
                    float(((m["term_after"] - m["term_before"]) >= 2).mean()), len(m))]
        for ticks, p in p_all.groupby("ticks", sort=False):
            label = "meshsim, etcd ticks" if ticks else "meshsim, continuous timers"
            sources.append((label, p["failover_ms"].to_numpy(float), float((p["term_jump"] >= 2).mean()), len(p)))
        for label, x, jumps, n in sources:
            rows.append({"config": f"{hb}/{el}", "source": label, "trials": n,
                         **{f"{k}_ms": v for k, v in _stats(x).items()}, "term_jump_2plus": jumps})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=1000, help="trials per election-timeout range (150-150: 100)")
    ap.add_argument("--etcd-trials", type=int, default=1000, help="trials per etcd setting and timer model")
    ap.add_argument("--split-trials", type=int, default=20_000, help="trials per latency for the split-vote check")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(DATA / "raft"),
                    help="directory for elections.csv, split_votes.csv, etcd_prediction.csv, figure16.png")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    df = all_ranges(args.trials, args.seed, progress=True)
    df.to_csv(out / "elections.csv", index=False, float_format="%.3f")
    plot_cdf(df, out / "figure16.png")
    print(figure_table(df).to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    print(published_comparison(df).to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    split = split_vote_table(trials=args.split_trials, seed=args.seed)
    split.to_csv(out / "split_votes.csv", index=False, float_format="%.8g")
    print(split.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    t1 = time.perf_counter()
    pred = pd.concat([etcd_prediction(hb, el, args.etcd_trials, args.seed, ticks=t)
                      for hb, el in ETCD_CONFIGS for t in (True, False)], ignore_index=True)
    pred.to_csv(out / "etcd_prediction.csv", index=False, float_format="%.3f")
    print(compare_etcd(predicted=pred).to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    t2 = time.perf_counter()
    print(f"elections and split votes: {t1 - t0:.0f} s, etcd prediction: {t2 - t1:.0f} s")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
