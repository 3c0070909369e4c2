"""``meshsim run``'s output: mesh, retries, registry and failed-calls lines; the requests table as parquet or CSV.

The extra lines appear only when a run has something to say there (a mesh,
retries, a registry, calls that failed differently from requests), and their
numbers are those of summary.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from meshsim.cli import main
from meshsim.examples import SCENARIOS

THREE_TIER = str(SCENARIOS / "three_tier.yaml")
SMALL = ["--set", "run.duration=null", "--set", "run.requests=2000", "--set", "metrics.warmup=0"]


def cli(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    try:
        code = main([str(a) for a in args])
    except SystemExit as e:  # argparse usage errors
        code = e.code if isinstance(e.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def lines_starting(out: str, word: str) -> list[str]:
    return [ln for ln in out.splitlines() if ln.split(" ", 1)[0] == word]


def test_registry_failover_prints_registry_mesh_retries_and_calls(capsys, tmp_path: Path) -> None:
    # Istio 1.20's defaults: its client sidecar also retries the one 503 that a call reset by the crash leaves
    # (current Istio no longer retries 503, so that request fails), which makes this run hide every failed call
    code, out, err = cli(capsys, "run", SCENARIOS / "registry_failover.yaml", "--seed", 1, "--out", tmp_path,
                         "--set", "mesh.profile=istio-1.20")
    assert code == 0, err
    s = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    raft = s["registry"]["raft"]
    assert raft["leader_changes"] >= 2  # the first election and the one after the leader's crash at 31 s

    (reg,) = lines_starting(out, "registry")
    assert f"{raft['servers']} Raft servers" in reg
    assert f"leader {raft['leader']} (term {raft['term']})" in reg
    assert f"{raft['leader_changes']} leader changes" in reg
    assert f"in {len(raft['unavailability_windows'])} windows" in reg
    assert f"{s['registry']['control_plane']['pushes']} control-plane pushes" in reg

    (mesh,) = lines_starting(out, "mesh")
    assert mesh.startswith(f"mesh      sidecar: {s['mesh']['proxies']} proxies")
    assert f"{s['mesh']['handshakes']} mTLS handshakes" in mesh

    (retries,) = lines_starting(out, "retries")
    api = s["resilience"]["api"]
    assert api["retries"] > 0
    assert f"api {api['retries']} ({100 * api['retries'] / api['attempts']:.1f}% of {api['attempts']} attempts)" in retries

    # Istio's retries hide the crash: calls to api failed, yet no request did; the table says why
    assert s["failed"] == 0 and s["services"]["api"]["failed"] > 0
    (calls,) = lines_starting(out, "calls")
    total_calls = sum(e.get("failed", 0) for e in s["services"].values())
    assert calls.startswith(f"calls     {total_calls} failed (")
    assert f"api {s['services']['api']['failed']}" in calls
    assert "but 0 requests failed" in calls
    assert "retries re-sent failed calls, so a failed call need not fail its request" in calls
    # the extra lines sit between the latency line and the service table
    lines = out.splitlines()
    assert lines.index(mesh) > next(i for i, ln in enumerate(lines) if ln.startswith("latency  mean"))
    assert lines.index(calls) < next(i for i, ln in enumerate(lines) if ln.startswith("service "))


def test_failed_calls_without_retries_count_each_hop(capsys, tmp_path: Path) -> None:
    code, out, err = cli(capsys, "run", SCENARIOS / "fault_timeline.yaml", "--seed", 1, "--out", tmp_path, "--no-tables")
    assert code == 0, err
    s = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    assert not lines_starting(out, "retries")  # Envoy's default: no retries
    assert lines_starting(out, "mesh")
    assert not lines_starting(out, "registry")  # static discovery
    (calls,) = lines_starting(out, "calls")
    total_calls = sum(e["failed"] for e in s["services"].values())
    assert total_calls > s["failed"] > 0  # a request that failed at the api failed the frontend's call too
    assert f"{total_calls} failed" in calls and f"but {s['failed']} requests failed" in calls
    assert "a failed request fails a call at each service it passed" in calls


def test_plain_run_adds_no_lines(capsys) -> None:
    code, out, err = cli(capsys, "run", THREE_TIER, *SMALL)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("scenario three-tier  seed 1")
    assert lines[1].startswith("requests 2000  completed 2000  failed 0")
    assert lines[2].startswith("latency  mean")
    assert lines[3] == ""
    assert lines[4].split() == ["service", "inst", "util", "offered", "queue", "mean", "p99", "failed"]
    assert [ln.split()[0] for ln in lines[5:]] == ["frontend", "api", "db"]


def test_requests_table_is_parquet_by_default(capsys, tmp_path: Path) -> None:
    code, out, err = cli(capsys, "run", THREE_TIER, *SMALL, "--out", tmp_path)
    assert code == 0, err
    assert not (tmp_path / "requests.csv").exists()
    df = pd.read_parquet(tmp_path / "requests.parquet")
    assert len(df) == 2000
    assert list(df.columns) == ["workload", "arrival_ms", "end_ms", "latency_ms", "status"]
    assert (df["latency_ms"] > 0).all()
    assert str(tmp_path / "requests.parquet") in out


def test_requests_table_as_csv_on_request(capsys, tmp_path: Path) -> None:
    code, _, err = cli(capsys, "run", THREE_TIER, *SMALL, "--out", tmp_path, "--format", "csv", "--quiet")
    assert code == 0, err
    assert not (tmp_path / "requests.parquet").exists()
    df = pd.read_csv(tmp_path / "requests.csv")
    assert len(df) == 2000 and "latency_ms" in df.columns


def test_unknown_format_is_a_usage_error(capsys, tmp_path: Path) -> None:
    code, out, err = cli(capsys, "run", THREE_TIER, *SMALL, "--out", tmp_path, "--format", "xlsx")
    assert code == 2
    assert "invalid choice: 'xlsx'" in err and "Traceback" not in out + err


def test_save_checks_its_format(tmp_path: Path) -> None:
    import meshsim

    res = meshsim.run(THREE_TIER, overrides={"run.duration": None, "run.requests": 200, "metrics.warmup": 0})
    with pytest.raises(ValueError, match="format must be 'parquet' or 'csv'"):
        res.save(tmp_path, format="xls")
    written = res.save(tmp_path)
    assert written["requests"].name == "requests.parquet"
    assert len(pd.read_parquet(written["requests"])) == 200
