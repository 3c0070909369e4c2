"""Load-balancing policies compared: per-instance load split, latency per policy, the supermarket model.

The supermarket model (Vvedenskaya, Dobrushin and Karpelevich 1996;
Mitzenmacher 2001): n single-server exponential queues with service rate 1,
Poisson arrivals at rate ``lam * n``, each job joins the shortest of ``d``
queues sampled at random.  As n grows, the fraction of queues holding at
least k jobs tends to ``lam ** ((d**k - 1) / (d - 1))`` (``lam ** k`` for
d = 1, random choice: each queue is then M/M/1), and the mean time in system
to ``sum_{i>=1} lam ** ((d**i - d) / (d - 1))`` service times.  Envoy's
``least_request`` with ``choice_count: d`` is that rule when one caller sees
every queue (its own active-request counts are the queue lengths).

The readers take runs keyed by a label (a policy name, say); a label may hold
one :class:`~meshsim.result.Result` or a list of them (one per seed).

>>> round(supermarket_tail(0.9, 3, d=2), 4), round(supermarket_tail(0.9, 3, d=1), 4)
(0.4783, 0.729)
>>> round(supermarket_sojourn(0.9, d=2), 2), round(supermarket_sojourn(0.9, d=1), 2)
(2.61, 10.0)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Union

import numpy as np

from .queueing_lab import service_name as _service

if TYPE_CHECKING:
    import pandas as pd

    from ..result import Result

    Runs = Union[Result, Sequence[Result]]

__all__ = ["supermarket_tail", "supermarket_sojourn", "jsq_d_finite", "jsq_d_simulate", "queue_tail", "load_split", "workload_split",
           "load_split_figure", "policy_table"]


# --------------------------------------------------------------------------- theory


def _check_model(lam: float, d: int) -> None:
    if not 0.0 < lam < 1.0:
        raise ValueError(f"the supermarket model needs a load 0 < lam < 1, got {lam!r}")
    if isinstance(d, bool) or not isinstance(d, int) or d < 1:
        raise ValueError(f"d (choices per job) must be an integer >= 1, got {d!r}")


def supermarket_tail(lam: float, k: int, d: int = 2) -> float:
    """Fraction of queues with at least ``k`` jobs at the fixed point: lam^((d^k - 1)/(d - 1)).

    d = 1 (random choice) gives lam^k, the M/M/1 tail; k = 0 gives 1.

    >>> supermarket_tail(0.5, 1, d=2), supermarket_tail(0.5, 2, d=2), supermarket_tail(0.5, 2, d=1)
    (0.5, 0.125, 0.25)
    """
    _check_model(lam, d)
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k!r}")
    if d > 1 and k * math.log(d) > 700.0:  # d**k beyond a float: the tail is 0 to double precision
        return 0.0
    exponent = k if d == 1 else (d**k - 1) / (d - 1)
    return float(lam**exponent)


def supermarket_sojourn(lam: float, d: int = 2, terms: int = 60) -> float:
    """Mean time in system, in mean service times, at the fixed point: sum_{i>=1} lam^((d^i - d)/(d - 1)).

    d = 1 gives 1 / (1 - lam), the M/M/1 value.  (Little's law on the tail:
    the mean number per queue is sum_k s_k, divided by the arrival rate lam.)

    >>> round(supermarket_sojourn(0.5, d=2), 2), round(supermarket_sojourn(0.99, d=2), 2)
    (1.27, 5.43)
    """
    _check_model(lam, d)
    if d == 1:
        return 1.0 / (1.0 - lam)
    total = 0.0
    for i in range(1, terms + 1):
        exponent = (d**i - d) / (d - 1)
        term = lam**exponent
        total += term
        if term < 1e-16:
            break
    return total


def jsq_d_finite(n: int, lam: float, d: int = 2, with_replacement: bool = True, k_max: int = 40) -> float:
    """Mean time in system, in mean service times, of the supermarket model with ``n`` queues (refined mean field).

    The n -> infinity value (:func:`supermarket_sojourn`) plus its 1/n
    correction (Gast and Van Houdt, "A refined mean field approximation",
    SIGMETRICS 2018): with X the vector of fractions of queues holding at
    least k = 1..k_max jobs, drift f, its Jacobian A and second derivatives
    F at the fixed point x*, and Q the covariance rate of the jumps there,
    E[X] = x* + V/n + O(1/n^2), where W solves A W + W A^T + Q = 0 and
    A V = -(F:W/2 + f1), f1 the 1/n part of the drift.  The time in system
    is sum_k E[X_k] / lam (Little).  ``with_replacement=True`` is Envoy's
    ``least_request`` (each of the d choices is an independent uniform draw,
    possibly the same host twice): the drift is then exactly the limit's,
    and the whole correction comes from the fluctuations (E[X^2] > E[X]^2).
    Without replacement the d hosts are distinct (a smaller value).

    Checked against :func:`jsq_d_simulate` (a long simulation of the exact
    Markov chain): 100 queues at load 0.9 give 2.658 here and 2.658 +- 0.002
    simulated (95 %), against 2.614 for n -> infinity; see docs/mesh.md.

    >>> round(jsq_d_finite(100, 0.9), 3), round(jsq_d_finite(100, 0.9, with_replacement=False), 3)
    (2.658, 2.645)
    >>> round(jsq_d_finite(100, 0.5), 3), round(jsq_d_finite(10**9, 0.9), 3), round(supermarket_sojourn(0.9), 3)
    (1.272, 2.614, 2.614)
    """
    _check_model(lam, d)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < d:
        raise ValueError(f"n (queues) must be an integer >= d, got {n!r}")
    if d == 1:
        return 1.0 / (1.0 - lam)  # independent M/M/1 queues: no finite-n effect
    # truncate where the fixed point's tail is below double precision (plus a margin): K is small (d = 2,
    # lam = 0.9: 12), and the Lyapunov solve below costs K^6
    K = 1
    while K < k_max and supermarket_tail(lam, K, d) > 1e-17:
        K += 1
    K = min(int(k_max), K + 4)
    s = np.array([supermarket_tail(lam, k, d) for k in range(1, K + 1)])
    s_prev = np.concatenate([[1.0], s[:-1]])  # s_{k-1}, s_0 = 1
    s_next = np.concatenate([s[1:], [0.0]])   # s_{k+1}
    g1 = d * s ** (d - 1)                     # derivative of s^d
    g2 = d * (d - 1) * s ** (d - 2)           # second derivative
    g2_prev = d * (d - 1) * s_prev ** (d - 2)
    # drift f_k = lam (s_{k-1}^d - s_k^d) - (s_k - s_{k+1})
    A = np.diag(-lam * g1 - 1.0) + np.diag(np.ones(K - 1), 1) + np.diag(lam * g1[:-1], -1)
    Q = np.diag(lam * (s_prev**d - s**d) + (s - s_next))
    eye = np.eye(K)
    W = np.linalg.solve(np.kron(eye, A) + np.kron(A, eye), -Q.reshape(-1)).reshape(K, K)
    w = np.diag(W)
    w_prev = np.concatenate([[0.0], w[:-1]])
    rhs = 0.5 * lam * (g2_prev * w_prev - g2 * w)
    if not with_replacement:  # n (P(min >= k) without replacement - s^d) -> -C(d, 2) s^(d-1) (1 - s)
        h = -math.comb(d, 2) * s ** (d - 1) * (1.0 - s)
        h_prev = -math.comb(d, 2) * s_prev ** (d - 1) * (1.0 - s_prev)
        rhs = rhs + lam * (h_prev - h)
    V = np.linalg.solve(A, -rhs)
    return float((s.sum() + V.sum() / n) / lam)


def jsq_d_simulate(n: int, lam: float, d: int = 2, with_replacement: bool = True, *, replicas: int = 200,
                   time_units: float = 200.0, warmup: float = 50.0, seed: int = 0) -> dict[str, float]:
    """The supermarket model with ``n`` queues simulated exactly, independently of meshsim's simulator.

    A continuous-time Markov chain, uniformized at rate n (1 + lam): each
    step is an arrival (probability lam / (1 + lam)), which joins the
    shortest of d queues drawn uniformly (with or without replacement; ties to
    the first drawn), or a potential departure from a uniformly drawn queue.
    ``replicas`` independent chains run side by side in numpy, each started
    at the fixed point's queue-length distribution, ``warmup`` mean service
    times discarded, then ``time_units`` averaged.  The replica means are
    i.i.d., so their t interval is the confidence interval.  Returns
    ``mean`` (time in system in mean service times, by Little's law),
    ``ci95`` (half-width), ``replicas``.  docs/mesh.md gives the long run
    (2000 replicas x 2000 time units) that pins :func:`jsq_d_finite`.

    >>> r = jsq_d_simulate(100, 0.9, replicas=50, time_units=50.0, warmup=20.0, seed=1)
    >>> abs(r["mean"] - jsq_d_finite(100, 0.9)) < 3 * r["ci95"] < 0.2
    True
    """
    _check_model(lam, d)
    if not with_replacement and n < d:
        raise ValueError(f"cannot draw {d} distinct queues out of {n}")
    rng = np.random.default_rng(seed)
    R = int(replicas)
    tail = np.array([supermarket_tail(lam, k, d) for k in range(1, 80)])
    p = np.concatenate([[1.0 - tail[0]], tail[:-1] - tail[1:]])
    q = rng.choice(p.size, size=R * n, p=p / p.sum()).astype(np.int64)  # flat: replica r, queue i at r*n + i
    total = q.reshape(R, n).sum(axis=1)
    rate = n * (1.0 + lam)
    steps_warm, steps = int(warmup * rate), int(time_units * rate)
    base = np.arange(R) * n
    acc = np.zeros(R, dtype=np.int64)
    p_arrival = lam / (1.0 + lam)
    done, block = 0, 1000
    while done < steps_warm + steps:
        b = min(block, steps_warm + steps - done)
        arrivals = rng.random((b, R)) < p_arrival
        if with_replacement:
            picks = rng.integers(0, n, size=(b, d, R))
        else:
            picks = np.argsort(rng.random((b, R, n)), axis=2)[:, :, :d].transpose(0, 2, 1) if d > 2 else None
            if d == 2:
                first = rng.integers(0, n, size=(b, R))
                picks = np.stack([first, (first + 1 + rng.integers(0, n - 1, size=(b, R))) % n], axis=1)
        for t in range(b):
            i1 = base + picks[t, 0]
            q1 = q[i1]
            best, qbest = i1, q1
            for j in range(1, d):
                ij = base + picks[t, j]
                qj = q[ij]
                shorter = qj < qbest
                best, qbest = np.where(shorter, ij, best), np.where(shorter, qj, qbest)
            a = arrivals[t]
            delta = np.where(a, 1, -(q1 > 0).astype(np.int64))
            q[np.where(a, best, i1)] += delta
            total += delta
            if done + t >= steps_warm:
                acc += total
        done += b
    sojourn = acc / max(steps, 1) / (n * lam)
    half = 1.96 * float(sojourn.std(ddof=1)) / math.sqrt(R) if R > 1 else math.nan
    return {"mean": float(sojourn.mean()), "ci95": half, "replicas": R}


# --------------------------------------------------------------------------- readers


def _runs(value: Runs) -> list[Result]:
    from ..result import Result as _Result

    return [value] if isinstance(value, _Result) else list(value)


def queue_tail(result: Runs, service: str | None = None, k_max: int = 8) -> pd.DataFrame:
    """Fraction of (instance, sample time) pairs with at least k requests at the instance, k = 1..k_max.

    Read from ``result.timeseries`` (queue + busy, sampled every
    ``metrics.sample_interval``) after ``metrics.warmup``; with single-worker
    instances this is the supermarket model's s_k.  Several runs are pooled.
    Columns ``k`` and ``fraction``.

    >>> import meshsim
    >>> res = meshsim.run({"run": {"duration": "60s"}, "network": {"enabled": False},
    ...                    "metrics": {"sample_interval": "7ms"},
    ...                    "services": {"s": {"service_time": {"dist": "exponential", "mean": "5ms"}}},
    ...                    "workloads": {"w": {"rate": 100, "target": "s"}}}, seed=1)
    >>> tail = queue_tail(res, k_max=3)   # M/M/1 at load 0.5: P(N >= k) = 0.5^k
    >>> [round(x, 2) for x in tail["fraction"]]
    [0.5, 0.26, 0.13]
    """
    import pandas as pd

    counts = []
    for res in _runs(result):
        name = _service(res, service)
        ts = res.timeseries
        ts = ts[(ts["service"] == name) & (ts["time_ms"] >= res.summary["warmup_ms"])]
        counts.append((ts["queue"] + ts["busy"]).to_numpy())
    n = np.concatenate(counts) if counts else np.empty(0)
    ks = np.arange(1, k_max + 1)
    frac = [float((n >= k).mean()) if n.size else math.nan for k in ks]
    return pd.DataFrame({"k": ks, "fraction": frac})


def load_split(results: Mapping[str, Runs], service: str | None = None, column: str = "arrivals") -> pd.DataFrame:
    """Share of each instance in ``column`` of ``result.instances`` (arrivals by default), one column per label.

    Each column sums to 1; runs under one label are pooled.  Other useful
    columns: ``completed``, ``utilisation`` (then the values are the mean
    utilisation, not shares).

    >>> import meshsim
    >>> sc = {"run": {"requests": 400}, "network": {"enabled": False},
    ...       "services": {"s": {"replicas": 4, "service_time": "1ms", "load_balancer": {"policy": "round_robin"}}},
    ...       "workloads": {"w": {"rate": 100, "target": "s"}}}
    >>> load_split({"rr": meshsim.run(sc, seed=1)})["rr"].tolist()
    [0.25, 0.25, 0.25, 0.25]
    """
    import pandas as pd

    cols = {}
    for label, value in results.items():
        frames = []
        for res in _runs(value):
            inst = res.instances
            frames.append(inst.loc[inst["service"] == _service(res, service), column].astype(float))
        pooled = pd.concat(frames, axis=1)
        if column == "utilisation":
            cols[label] = pooled.mean(axis=1)
        else:
            total = pooled.to_numpy().sum()
            cols[label] = pooled.sum(axis=1) / total if total > 0 else pooled.sum(axis=1) * math.nan
    return pd.DataFrame(cols).rename_axis("instance")


def workload_split(results: Mapping[str, Runs], workload: str, service: str | None = None) -> pd.DataFrame:
    """Like :func:`load_split`, for the calls of one workload only (from ``result.spans``).

    With a single client id (one hot key) the largest share is the key's
    *affinity*: 1.0 when a hash policy pins it to one instance, 1/n under
    round robin.

    >>> import meshsim
    >>> sc = {"run": {"requests": 400}, "network": {"enabled": False},
    ...       "services": {"s": {"replicas": 4, "service_time": "1ms", "load_balancer": {"policy": "ring_hash"}}},
    ...       "workloads": {"w": {"rate": 90, "target": "s", "clients": 50},
    ...                     "hot": {"rate": 10, "target": "s", "clients": 1}}}
    >>> split = workload_split({"ring hash": meshsim.run(sc, seed=1)}, "hot")
    >>> sorted(split["ring hash"].tolist())
    [0.0, 0.0, 0.0, 1.0]
    """
    import pandas as pd

    cols = {}
    for label, value in results.items():
        counts = []
        for res in _runs(value):
            if workload not in res.scenario.workloads:
                raise ValueError(f"no workload {workload!r} in scenario {res.scenario.name!r}; "
                                 f"it has {', '.join(res.scenario.workloads)}")
            name = _service(res, service)
            req = res.requests
            ids = req.index.to_numpy()[(req["workload"] == workload).to_numpy()]
            sp = res.spans
            mine = sp[(sp["service"] == name).to_numpy() & np.isin(sp["request"].to_numpy(), ids)]
            names = res.instances.index[res.instances["service"] == name]
            counts.append(mine["instance"].value_counts().reindex(names, fill_value=0).astype(float))
        pooled = pd.concat(counts, axis=1).sum(axis=1)
        total = float(pooled.sum())
        cols[label] = pooled / total if total > 0 else pooled * math.nan
    return pd.DataFrame(cols).rename_axis("instance")


def load_split_figure(results: Mapping[str, Runs] | pd.DataFrame, service: str | None = None,
                      column: str = "arrivals", title: str | None = None):
    """One bar chart per label: each instance's share of the load, a dashed line at the even share 1/n.

    ``results`` is a mapping as for :func:`load_split`, or the frame it
    returns.  Panels share the y axis, so the policies compare at a glance.

    >>> import meshsim, matplotlib
    >>> matplotlib.use("Agg")
    >>> sc = {"run": {"requests": 400}, "network": {"enabled": False},
    ...       "services": {"s": {"replicas": 4, "service_time": "1ms", "load_balancer": {"policy": "round_robin"}}},
    ...       "workloads": {"w": {"rate": 100, "target": "s"}}}
    >>> fig = load_split_figure({"rr": meshsim.run(sc, seed=1), "random": meshsim.run(sc, seed=1,
    ...                          overrides={"services.s.load_balancer.policy": "random"})})
    >>> len(fig.axes), [len(ax.patches) for ax in fig.axes]
    (2, [4, 4])
    """
    import pandas as pd

    from ..viz.style import PALETTE, color_for, new_figure

    frame = results if isinstance(results, pd.DataFrame) else load_split(results, service, column)
    labels = list(frame.columns)
    n = len(frame.index)
    width = max(3.0, 0.28 * n + 1.2)
    fig, axes = new_figure(1, len(labels), figsize=(min(16.0, width * len(labels)), 3.4), sharey=True, squeeze=False)
    names = [str(i) for i in frame.index]
    short = [s.rsplit("-", 1)[-1] for s in names]
    share = column != "utilisation"
    even = None
    for j, (ax, label) in enumerate(zip(axes[0], labels)):
        values = frame[label].to_numpy(dtype=float)
        ax.bar(range(n), values, color=color_for(j), width=0.8)
        if share and n:
            even = ax.axhline(1.0 / n, color=PALETTE[0], linestyle="--", linewidth=1, label="even share 1/n")
        top = float(np.nanmax(values)) if n else math.nan
        ax.set_title(f"{label}\nbusiest {top:.1%}" if share else f"{label}\nbusiest {top:.2f}", fontsize=10)
        ax.set_xticks(range(n), short, fontsize=7 if n > 12 else 8)
        ax.set_xlabel("instance (index)")
    axes[0][0].set_ylabel(f"share of {column}" if share else "utilisation (fraction busy)")
    if even is not None:
        fig.legend(handles=[even], loc="upper right", fontsize=8, frameon=False)
    fig.suptitle(title or f"per-instance {column} by policy")
    fig.tight_layout()
    return fig


def policy_table(results: Mapping[str, Runs], service: str | None = None) -> pd.DataFrame:
    """One row per label: latency (ms), failures and how uneven the load was, averaged over its runs.

    Columns: ``runs``; ``mean_ms``, ``p50_ms``, ``p99_ms`` (of successful
    requests after warm-up, from the summaries); ``p99_ci_low`` and
    ``p99_ci_high`` (Student t over the runs, NaN with one run);
    ``failed_fraction`` (failed / requests); ``busiest_share`` (largest
    instance share of arrivals, pooled) and ``max_utilisation`` (of the
    busiest instance, mean over runs).

    >>> import meshsim
    >>> sc = {"run": {"requests": 400}, "network": {"enabled": False},
    ...       "services": {"s": {"replicas": 4, "service_time": "1ms"}},
    ...       "workloads": {"w": {"rate": 100, "target": "s"}}}
    >>> t = policy_table({"rr": [meshsim.run(sc, seed=1), meshsim.run(sc, seed=2)]})
    >>> int(t.loc["rr", "runs"]), float(t.loc["rr", "busiest_share"]), float(t.loc["rr", "failed_fraction"])
    (2, 0.25, 0.0)
    """
    import pandas as pd

    from ..stats import t_quantile

    split = load_split(results, service)
    rows = []
    for label, value in results.items():
        runs = _runs(value)
        lat = [r.summary["latency_ms"] for r in runs]
        p99 = np.array([x["p99"] for x in lat], dtype=float)
        half = (t_quantile(0.975, p99.size - 1) * float(p99.std(ddof=1)) / math.sqrt(p99.size)
                if p99.size > 1 else math.nan)
        requests = sum(r.summary["requests"] for r in runs)
        util = [float(r.instances.loc[r.instances["service"] == _service(r, service), "utilisation"].max())
                for r in runs]
        rows.append({
            "policy": label,
            "runs": len(runs),
            "mean_ms": float(np.mean([x["mean"] for x in lat])),
            "p50_ms": float(np.mean([x["p50"] for x in lat])),
            "p99_ms": float(p99.mean()),
            "p99_ci_low": float(p99.mean()) - half,
            "p99_ci_high": float(p99.mean()) + half,
            "failed_fraction": sum(r.summary["failed"] for r in runs) / requests if requests else math.nan,
            "busiest_share": float(split[label].max()),
            "max_utilisation": float(np.mean(util)),
        })
    return pd.DataFrame(rows).set_index("policy")
