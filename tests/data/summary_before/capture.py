"""Pin the summaries and tables of a few runs (tests/test_result_record.py compares against them).

Captured with the code before Result was built from a RunRecord (meshsim issue 14); re-run this script
(``.venv/bin/python tests/data/summary_before/capture.py``) only when a change to the simulation itself
is meant to move the numbers.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd

import meshsim

HERE = Path(__file__).resolve().parent

#: name -> (example, seed, overrides)
CASES: dict[str, tuple[str, int, dict]] = {
    "mmc": ("mmc", 1, {}),
    "tandem": ("tandem", 2, {}),
    "fault_timeline": ("fault_timeline", 3, {}),
    "registry_failover": ("registry_failover", 1, {"run.duration": "35s"}),
    "registry_messages": ("registry_failover", 2, {"run.duration": "34s",
                                                   "registry.record_messages": {"from": "30500ms", "until": "33s"}}),
    "fault_timeline_outliers": ("fault_timeline", 7, {
        "mesh.profile": "istio",
        "services.api.outlier_detection": {"consecutive_5xx": 3, "interval": "1s", "base_ejection_time": "3s",
                                           "max_ejection_percent": 50},
        "services.api.retries": {"attempts": 2, "per_try_timeout": "30ms"},
        "services.api.hedge_on_per_try_timeout": True}),
    "fanout": ("fanout", 5, {"run.requests": 10000}),
    "mmc_streaming": ("mmc", 4, {"metrics.mode": "streaming"}),
    "fault_timeline_streaming": ("fault_timeline", 6, {"metrics.mode": "streaming"}),
}

REGISTRY_TABLES = ("writes", "reads", "watches", "health", "dns_lookups", "commit_times", "leader_changes",
                   "events", "terms", "commits", "proposals", "windows", "messages")


def run(case: str) -> meshsim.Result:
    example, seed, overrides = CASES[case]
    return meshsim.run(meshsim.example(example), seed=seed, overrides=overrides or None)


def fingerprint(df: pd.DataFrame) -> dict:
    """Shape, columns, index, dtypes (with categories) and a hash of every row: equal frames, equal prints."""
    dtypes = {}
    for c in df.columns:
        dt = df[c].dtype
        # categories sorted: status reasons are numbered in the order a process first meets them
        dtypes[str(c)] = (f"category{sorted(map(str, dt.categories))}{dt.categories.dtype}"
                          if isinstance(dt, pd.CategoricalDtype) else str(dt))
    h = pd.util.hash_pandas_object(df, index=True).to_numpy() if len(df) else b""
    return {"shape": list(df.shape), "columns": [str(c) for c in df.columns],
            "index": [str(n) for n in df.index.names], "index_dtype": str(df.index.dtype), "dtypes": dtypes,
            "hash": hashlib.sha256(bytes(h)).hexdigest()}


def tables(res: meshsim.Result) -> dict[str, dict]:
    from meshsim.viz.overtime import fault_windows
    from meshsim.viz.spans import _retry_policies

    got = {"instances": res.instances, "timeseries": res.timeseries, "mesh_events": res.mesh_events,
           "fault_windows": fault_windows(res)}
    if not res.streaming:
        got.update(requests=res.requests, spans=res.spans)
    if "registry" in res.summary:
        from meshsim.viz.raft import raft_frames

        reg = res.component("registry").registry
        for name in REGISTRY_TABLES:
            got[f"registry.{name}"] = reg.frame(name)
        for name, df in raft_frames(res).items():
            got[f"raft_frames.{name}"] = df
    out = {name: fingerprint(df) for name, df in got.items()}
    out["retry_policies"] = [sorted(s) for s in _retry_policies(res)]
    return out


def main() -> None:
    for case in CASES:
        res = run(case)
        example, seed, overrides = CASES[case]
        doc = {"example": example, "seed": seed, "overrides": overrides,
               "summary": json.loads(res.to_json()), "tables": tables(res)}
        (HERE / f"{case}.json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        print(case, res.summary["requests"])


if __name__ == "__main__":
    main()
