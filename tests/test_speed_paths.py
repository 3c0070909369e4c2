"""The request path's direct hand-offs and the pandas-free Parquet writer change no number.

With neither a mesh nor a network, the engine hands a call straight to the
only instance behind a route (no pick, no transmit), makes an endpoint's
first single call inside the service completion, finishes a chain of parent
calls in one loop, and an open workload starts each request and records its
end itself; with a mesh but no network, a proxy pass that ends before
anything else is due runs on into the next pass or the arrival in the same
kernel event (:data:`meshsim.sim.router.DIRECT`).  These tests run scenarios
that reach every branch next to those paths (queues, queue caps, blocking
workers, concurrency limits, crashes, parallel steps with ``wait: 1``,
call probabilities, several replicas behind load-tracking and hash
balancers, retries, a network, sidecars, streaming metrics, request
timeouts, closed users, common random numbers; sidecars and node proxies
without a network, with constant times for ties) with the switch on and off,
and compare every table and the summary exactly.

``meshsim run --out`` writes ``requests.parquet`` with pyarrow alone
(:func:`meshsim.result.write_requests_parquet`); it must read back as the
same Arrow table, schema metadata included, and the same DataFrame as the
pandas path (``Result.requests.to_parquet``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import meshsim
from meshsim.result import write_requests_parquet
from meshsim.sim import router
from meshsim.sim.simulation import Simulation

REPO = Path(__file__).resolve().parent.parent

TANDEM = meshsim.example("tandem")

#: name -> (scenario, overrides); every case runs with the direct paths on and off
CASES: dict[str, tuple] = {
    "tandem": (TANDEM, {"run.requests": 6000}),
    # queue caps (rejections), blocking workers (the worker is held across the downstream call), replicas
    "tandem_caps_blocking": (TANDEM, {"run.requests": 5000, "services.s1.replicas": 3, "services.s2.queue": 2,
                                      "services.s2.semantics": "blocking", "services.s3.workers": 9}),
    # an inbound concurrency limit (503s relayed up the chain), two replicas behind least request
    "tandem_limit_lr": (TANDEM, {"run.requests": 5000, "services.s2.max_concurrency": 9,
                                 "services.s3.replicas": 2, "services.s3.load_balancer.policy": "least_request"}),
    # arrivals stop with requests in flight: incomplete requests, NaN end times
    "tandem_no_drain": (TANDEM, {"run.requests": 4000, "run.drain": False}),
    # hash keys from workload clients, a ring-hash balancer over replicas
    "tandem_hash_clients": (TANDEM, {"run.requests": 4000, "workloads.clients.clients": 50,
                                     "services.s2.replicas": 3, "services.s2.load_balancer.policy": "ring_hash"}),
    "tandem_timeout": (TANDEM, {"run.requests": 4000, "workloads.clients.timeout": "2500ms"}),
    "tandem_streaming": (TANDEM, {"run.requests": 6000, "metrics.mode": "streaming"}),
    "tandem_no_spans": (TANDEM, {"run.requests": 4000, "metrics.spans": False}),
    "tandem_crn": (TANDEM, {"run.requests": 4000, "run.common_random_numbers": True}),
    # crashes and restarts of the only instance of a service in the middle of the chain
    "tandem_crash": (TANDEM, {"run.requests": 6000, "faults": [
        {"action": "crash", "instance": "s2-0", "at": "150s", "until": "170s"},
        {"action": "slow", "instance": "s3-0", "at": "300s", "until": "400s", "factor": 2}]}),
    # a crashed s3 refuses s2's calls; s2's failure is relayed: a 503 to s1's route, which retries connect
    # failures only (s2 itself was reachable), so these requests fail
    "tandem_retries_crash": (TANDEM, {"run.requests": 5000,
                                      "services.s2.retries": {"attempts": 2, "retry_on": "connect-failure"},
                                      "faults": [{"action": "crash", "instance": "s3-0", "at": "150s", "until": "160s"}]}),
    "tandem_closed": (TANDEM, {"run.duration": "200s", "workloads.clients": {
        "type": "closed", "users": 12, "think_time": {"dist": "exponential", "mean": "500ms"}, "target": "s1"}}),
    "mmc": ("mmc", {"run.duration": "60s"}),
    "fanout": ("fanout", {"run.duration": "5s"}),
    # the first 2 of 10 parallel replies decide the step, later ones arrive while rank is called (late replies);
    # a crashed shard fails some calls (a parallel step fails once too few can still succeed)
    "fanout_first_2": ("fanout", {"run.duration": "5s", "services.search.endpoints.query.calls": [
        {"parallel": [f"shard{i}" for i in range(10)], "wait": 2}, "rank"],
        "faults": [{"action": "crash", "instance": "shard3-0", "at": "1s", "until": "2s"}]}),
    "hotel": ("hotel_reservation", {"run.duration": "3s"}),
    "social": ("social_network", {"run.duration": "2s"}),
    "three_tier_no_network": ("three_tier", {"run.duration": "8s", "network.enabled": False}),
    "three_tier": ("three_tier", {"run.duration": "8s"}),
    "three_tier_sidecar": ("three_tier", {"run.duration": "5s", "mesh.mode": "sidecar", "mesh.profile": "istio",
                                          "faults": []}),
    "fault_timeline": ("fault_timeline", {"run.duration": "30s"}),
    # mesh without a network: a proxy pass that ends before anything else is due runs on into the next pass
    # or the arrival in the same event (Instance._inbound_after_pass, Caller.transmit, Instance._respond)
    "tandem_sidecar_lr": (TANDEM, {"run.requests": 4000, "mesh.mode": "sidecar", **{
        f"services.{s}.{k}": v for s in ("s1", "s2", "s3")
        for k, v in (("replicas", 10), ("workers", 1), ("load_balancer.policy", "least_request"))}}),
    # constant times: ties between a run-on pass and other events at the same time (event ids decide)
    "tandem_sidecar_constant": (TANDEM, {"run.requests": 3000, "mesh.mode": "sidecar", "mesh.workers": 1,
                                         "mesh.request_processing": "1ms", "mesh.response_processing": "1ms",
                                         "services.s1.service_time": "1s", "services.s2.service_time": "500ms",
                                         "services.s2.replicas": 2, "workloads.clients.type": "deterministic"}),
    # queue caps, blocking workers, a concurrency limit (the arrival is not run on), retries, a request timeout
    "tandem_sidecar_caps": (TANDEM, {"run.requests": 4000, "mesh.mode": "sidecar", "services.s1.replicas": 3,
                                     "services.s2.queue": 2, "services.s2.semantics": "blocking",
                                     "services.s3.max_concurrency": 8, "services.s3.replicas": 2,
                                     "services.s3.retries": {"attempts": 2, "per_try_timeout": "3s"},
                                     "workloads.clients.timeout": "6s"}),
    # crashes (resets skip the proxy), a slow instance, node proxies, clients without a sidecar
    "tandem_node_crash": (TANDEM, {"run.requests": 4000, "mesh.mode": "node", "mesh.client_sidecar": False,
                                   "services.s2.replicas": 2, "faults": [
                                       {"action": "crash", "instance": "s2-0", "at": "150s", "until": "170s"},
                                       {"action": "slow", "instance": "s3-0", "at": "300s", "until": "400s",
                                        "factor": 2}]}),
    "tandem_sidecar_crn": (TANDEM, {"run.requests": 3000, "mesh.mode": "sidecar", "run.common_random_numbers": True}),
    # parallel steps (the first 2 of 10 decide), a crashed shard, Linkerd's profile (bare routes)
    "fanout_sidecar": ("fanout", {"run.duration": "3s", "network.enabled": False, "mesh.mode": "sidecar",
                                  "services.search.endpoints.query.calls": [
                                      {"parallel": [f"shard{i}" for i in range(10)], "wait": 2}, "rank"],
                                  "faults": [{"action": "crash", "instance": "shard3-0", "at": "1s", "until": "2s"}]}),
    "fanout_linkerd": ("fanout", {"run.duration": "3s", "network.enabled": False, "mesh.mode": "sidecar",
                                  "mesh.profile": "linkerd"}),
}


def _scenario(name: str):
    sc, overrides = CASES[name]
    path = meshsim.example(sc) if sc in meshsim.examples() else sc
    return meshsim.load_scenario(path, overrides or None)


def _run(name: str, direct: bool) -> meshsim.Result:
    old, router.DIRECT = router.DIRECT, direct
    try:
        return meshsim.run(_scenario(name), seed=5)
    finally:
        router.DIRECT = old


def _tables(res: meshsim.Result) -> dict[str, pd.DataFrame]:
    out = {"timeseries": res.timeseries, "instances": res.instances}
    if not res.streaming:
        out["requests"] = res.requests
        if res.record.spans_on:
            out["spans"] = res.spans
    return out


@pytest.mark.parametrize("name", list(CASES))
def test_direct_paths_give_the_same_tables_and_summary_as_the_general_path(name):
    fast, general = _run(name, True), _run(name, False)
    assert json.dumps(fast.summary, sort_keys=True) == json.dumps(general.summary, sort_keys=True)
    a, b = _tables(fast), _tables(general)
    assert a.keys() == b.keys()
    for key in a:
        pd.testing.assert_frame_equal(a[key], b[key], check_exact=True, obj=key)
    if not fast.streaming:  # the test is not vacuous: hundreds of requests ran, many of them to the end
        assert len(a["requests"]) >= 500 and (a["requests"]["status"] == "ok").mean() > 0.1


def _sim(name: str, direct: bool) -> Simulation:
    old, router.DIRECT = router.DIRECT, direct
    try:
        sim = Simulation(_scenario(name), seed=5)
        sim.run()
        return sim
    finally:
        router.DIRECT = old


def test_the_direct_paths_are_the_ones_the_tandem_reference_takes_and_the_switch_turns_them_off():
    sim = _sim("tandem", True)
    routes = [r for c in (*sim.instances, *sim.workloads) for r in c.routes.values()]
    assert len(routes) == 3 and all(r.bare and r.only is not None for r in routes)
    assert all(r.send == r._send_one for r in routes)
    assert all(i._direct_hop and i._direct_reply for i in sim.instances)
    assert all(w._direct for w in sim.workloads)
    off = _sim("tandem", False)
    routes = [r for c in (*off.instances, *off.workloads) for r in c.routes.values()]
    assert all(r.only is None and r.send == r._send_bare for r in routes)
    assert not any(i._direct_hop or i._direct_reply for i in off.instances)
    assert not any(w._direct for w in off.workloads)


def test_where_a_direct_path_does_not_apply_it_is_not_taken():
    # a network: replies travel, so no chain is finished in one loop, and bare routes send over the network
    net = _sim("three_tier", True)
    assert not any(i._direct_reply for i in net.instances)
    assert all(r.only is None for c in net.instances for r in c.routes.values())
    # several replicas: the balancer picks (no ``only``), still without transmit
    lr = _sim("tandem_limit_lr", True)
    to_s3 = lr.instances[1].routes[lr.services["s3"]]
    assert to_s3.only is None and to_s3.send == to_s3._send_local
    # common random numbers: KeyedInstance overrides advance and arrive, so neither is bypassed
    crn = _sim("tandem_crn", True)
    assert not any(i._direct_hop for i in crn.instances)
    assert all(r.only is None for c in crn.instances for r in c.routes.values())
    # client keys, timeouts and streaming metrics keep the workload's general send
    for name in ("tandem_hash_clients", "tandem_timeout", "tandem_streaming"):
        assert not any(w._direct for w in _sim(name, True).workloads), name


# --------------------------------------------------------------------------- parquet without pandas

PARQUET_CASES = ["tandem", "tandem_no_drain", "tandem_caps_blocking", "social", "fault_timeline"]


@pytest.mark.parametrize("name", PARQUET_CASES)
def test_parquet_written_without_pandas_reads_back_as_the_pandas_path_writes_it(name, tmp_path):
    res = meshsim.run(_scenario(name), seed=5)
    direct = write_requests_parquet(res.record, tmp_path / "direct.parquet")
    res.requests.to_parquet(tmp_path / "pandas.parquet")
    a, b = pq.read_table(direct), pq.read_table(tmp_path / "pandas.parquet")
    assert a.schema.equals(b.schema, check_metadata=True)  # types, dictionary code widths, pandas metadata
    assert a.equals(b)
    fa, fb = pd.read_parquet(direct), pd.read_parquet(tmp_path / "pandas.parquet")
    pd.testing.assert_frame_equal(fa, fb, check_exact=True)
    pd.testing.assert_frame_equal(fa, res.requests, check_exact=True)
    if name == "tandem_no_drain":  # incomplete requests: NaN end times are nulls in both files
        assert a.column("end_ms").null_count == b.column("end_ms").null_count > 0
        assert (fa["status"] == "incomplete").sum() == a.column("end_ms").null_count
    if name == "tandem_caps_blocking":
        assert set(fa["status"].unique()) >= {"ok", "queue_full"}


def test_save_writes_the_built_table_when_the_caller_already_has_it(tmp_path):
    res = meshsim.run(_scenario("tandem"), seed=5)
    res.requests  # built (and perhaps changed by the caller): save() writes that frame, through pandas
    res.save(tmp_path / "built")
    fresh = meshsim.run(_scenario("tandem"), seed=5)
    fresh.save(tmp_path / "direct")
    a, b = pq.read_table(tmp_path / "built" / "requests.parquet"), pq.read_table(tmp_path / "direct" / "requests.parquet")
    assert a.schema.equals(b.schema, check_metadata=True) and a.equals(b)


def test_meshsim_run_writes_the_requests_table_without_importing_pandas(tmp_path):
    code = (
        "import sys; from meshsim.cli import main\n"
        f"rc = main(['run', {str(REPO / 'data/scenarios/tandem.yaml')!r}, '--quiet', '--set', 'run.requests=3000',"
        f" '--seed', '4', '--out', {str(tmp_path / 'out')!r}])\n"
        "print(rc, 'pandas' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.split() == ["0", "False"]
    got = pd.read_parquet(tmp_path / "out" / "requests.parquet")
    ref = meshsim.run(meshsim.load_scenario(REPO / "data/scenarios/tandem.yaml", {"run.requests": 3000}), seed=4)
    pd.testing.assert_frame_equal(got, ref.requests, check_exact=True)
    assert np.isclose(json.loads((tmp_path / "out" / "summary.json").read_text())["latency_ms"]["mean"],
                      ref.summary["latency_ms"]["mean"], rtol=0, atol=0)
