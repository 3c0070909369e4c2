"""Istio profiles that carry their version: istio-1.20 retries 503 by default, istio-1.24 and istio do not.

Istio 1.24 dropped 503 from the default retry policy's retriable status codes (istio/istio#52111,
``EXCLUDE_UNSAFE_503_FROM_DEFAULT_RETRY``); everything else Istio writes is the same in every version.
"""

from __future__ import annotations

import dataclasses
import warnings

import pytest

import meshsim
from meshsim.core.resilience import (
    ISTIO_PROFILES,
    PROFILE_NAMES,
    BreakerLimits,
    OutlierConfig,
    RetryPolicy,
    Timeouts,
    is_istio,
    istio_version,
    profile,
)
from meshsim.scenario.spec import MESH_PROFILES
from meshsim.sim.router import ISTIO_RETRY_ON, route_policy
from meshsim.sim.simulation import Simulation

ISTIO = ("istio-1.20", "istio-1.24", "istio")
CONDITIONS = {"connect-failure", "refused-stream", "unavailable", "cancelled", "retriable-status-codes"}
OUTCOMES = (200, 409, 500, 502, 503, 504, "connect-failure", "refused-stream", "reset", "per-try-timeout", "overflow")
NO_POLICY = {"timeout": None, "retries": None, "circuit_breaker": None, "outlier_detection": None,
             "hedge_on_per_try_timeout": False}


def _retried(policy: RetryPolicy) -> set:
    return {o for o in OUTCOMES if policy.is_retriable(o)}


# ------------------------------------------------------------------ the profiles' retry policies


def test_version_table_and_helpers() -> None:
    assert ISTIO_PROFILES == {"istio": (1, 24), "istio-1.20": (1, 20), "istio-1.24": (1, 24)}
    assert PROFILE_NAMES == ("envoy", "istio", "istio-1.20", "istio-1.24")
    assert [is_istio(n) for n in (*ISTIO, "envoy", "linkerd", None, "istio-1.19")] == [True] * 3 + [False] * 4
    assert istio_version("istio") == istio_version("istio-1.24") > istio_version("istio-1.20")
    with pytest.raises(ValueError, match="not an Istio profile: 'envoy'"):
        istio_version("envoy")


def test_istio_1_20_retries_503_and_connection_failures() -> None:
    r = RetryPolicy.profile("istio-1.20")
    assert r.retry_on == CONDITIONS and r.retriable_status_codes == {503}
    assert (r.num_retries, r.retry_previous_hosts, r.host_selection_max_attempts) == (2, True, 5)
    assert _retried(r) == {503, "connect-failure", "refused-stream"}


@pytest.mark.parametrize("name", ["istio-1.24", "istio"])
def test_istio_1_24_and_current_no_longer_retry_503(name: str) -> None:
    r = RetryPolicy.profile(name)
    # retriable-status-codes stays in retry_on (Istio writes the same string), but with no code it matches nothing
    assert r.retry_on == CONDITIONS and r.retriable_status_codes == frozenset()
    assert (r.num_retries, r.retry_previous_hosts, r.host_selection_max_attempts) == (2, True, 5)
    assert _retried(r) == {"connect-failure", "refused-stream"}
    assert not r.should_retry(503, 1) and r.should_retry("connect-failure", 2) and not r.should_retry("connect-failure", 3)
    assert r.is_retriable(200, grpc_status=14) and r.is_retriable(200, grpc_status=1)  # unavailable, cancelled
    assert r == dataclasses.replace(RetryPolicy.profile("istio-1.20"), retriable_status_codes=frozenset())


def test_only_the_retried_statuses_differ_between_versions() -> None:
    old, new = profile("istio-1.20"), profile("istio")
    assert old.timeouts == new.timeouts == Timeouts(None, None) == Timeouts.profile("istio-1.24")
    assert old.breaker == new.breaker == BreakerLimits.profile("istio-1.20")
    assert old.outlier == new.outlier == OutlierConfig.profile("istio-1.24")
    assert old.outlier.enforcing_success_rate == 0.0
    assert (old.name, new.name) == ("istio-1.20", "istio")
    # the proxy costs: every Istio profile shares Istio 1.20's calibration, as separate dicts
    assert MESH_PROFILES["istio-1.20"] == MESH_PROFILES["istio-1.24"] == MESH_PROFILES["istio"]
    assert MESH_PROFILES["istio-1.20"] is not MESH_PROFILES["istio"]
    assert set(ISTIO_RETRY_ON.split(",")) == CONDITIONS


def test_unknown_profile_names_are_refused() -> None:
    for fn in (profile, RetryPolicy.profile, Timeouts.profile, BreakerLimits.profile, OutlierConfig.profile):
        with pytest.raises(ValueError, match=r"name must be one of \('envoy', 'istio', 'istio-1.20', 'istio-1.24'\), "
                                             r"got 'istio-1.19'"):
            fn("istio-1.19")


# ------------------------------------------------------------------ route policies built from a scenario


def test_route_policy_defaults_by_version() -> None:
    assert route_policy(NO_POLICY, "istio-1.20").retry.retriable_status_codes == {503}
    for name in ("istio-1.24", "istio"):
        p = route_policy(NO_POLICY, name)
        assert p.retry.retriable_status_codes == frozenset() and p.retry.retry_on == CONDITIONS
    assert route_policy(NO_POLICY, "envoy").retry is None and route_policy(NO_POLICY, "linkerd").retry is None


def test_scenario_retries_inherit_the_versions_codes_unless_they_say_otherwise() -> None:
    def codes(retries: dict, name: str) -> frozenset:
        return route_policy({**NO_POLICY, "retries": retries}, name).retry.retriable_status_codes

    # attempts only: Istio's ConvertPolicy starts from the version's DefaultPolicy
    assert codes({"attempts": 3}, "istio-1.20") == {503}
    assert codes({"attempts": 3}, "istio") == codes({"attempts": 3}, "istio-1.24") == frozenset()
    assert codes({"attempts": 3}, "envoy") == codes({"attempts": 3}, "linkerd") == frozenset()  # current Istio's
    # explicit keys are kept as written, whatever the version
    for name in (*ISTIO, "envoy", "linkerd"):
        assert codes({"retriable_status_codes": [503, 429]}, name) == {503, 429}
        assert codes({"retry_on": "retriable-status-codes"}, name) == {503}  # meshsim's default for an explicit retry_on
        assert codes({"retriable_status_codes": []}, name) == frozenset()
    p = route_policy({**NO_POLICY, "retries": {"attempts": 1, "retry_on": "5xx"}}, "istio")
    assert p.retry.retry_on == {"5xx"} and p.retry.num_retries == 1 and p.retry.should_retry(503, 1)


def test_the_schema_accepts_the_versions_and_suggests_one_for_a_typo() -> None:
    for name in (*ISTIO, "linkerd", "envoy"):
        assert meshsim.load_scenario(_rejecting(name)).spec["mesh"]["profile"] == name
    with pytest.raises(meshsim.ScenarioError) as e:
        meshsim.load_scenario(_rejecting("istio-1.19"))
    msg = str(e.value)
    assert "mesh.profile: must be one of istio, istio-1.20, istio-1.24, linkerd, envoy, got 'istio-1.19'" in msg
    assert "(did you mean 'istio-1.24'?)" in msg


# ------------------------------------------------------------------ a run where an instance answers 503


def _rejecting(profile_name: str, retries: dict | None = None, requests: int = 3000) -> dict:
    """Two single-worker instances with no queue at 80% load: a busy instance answers 503 (``queue_full``) at once."""
    api: dict = {"replicas": 2, "workers": 1, "queue": 0, "service_time": {"dist": "exponential", "mean": "4ms"}}
    if retries is not None:
        api["retries"] = retries
    return {"run": {"requests": requests}, "network": {"enabled": False}, "metrics": {"warmup": 0},
            "mesh": {"mode": "sidecar", "profile": profile_name},
            "services": {"api": api}, "workloads": {"users": {"rate": 400, "target": "api"}}}


def _attempts_per_request(res):
    """Attempts (spans) at ``api`` per request."""
    sp = res.spans
    return sp[sp["service"] == "api"].groupby("request").size()


def _run(profile_name: str, retries: dict | None = None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", meshsim.ScenarioWarning)
        return meshsim.run(_rejecting(profile_name, retries), seed=4)


def test_istio_1_20_retries_the_503s_current_istio_does_not() -> None:
    old, new, v124 = _run("istio-1.20"), _run("istio"), _run("istio-1.24")
    r_old = old.summary["resilience"]["api"]
    # Istio 1.20: rejected attempts are retried, on the other instance first; a request makes at most 3 attempts
    assert r_old["retries"] > 100 and r_old["attempts"] == r_old["requests"] + r_old["retries"]
    per_old = _attempts_per_request(old)
    assert per_old.max() == 3 and (per_old > 1).sum() > 100 and int((per_old - 1).sum()) == r_old["retries"]
    for res in (new, v124):
        # Istio 1.24 and later: the same 503s reach the client, not one is retried
        r = res.summary["resilience"]["api"]
        assert r["retries"] == 0 and r["attempts"] == r["requests"]
        assert (_attempts_per_request(res) == 1).all()
        assert res.summary["failed_by_reason"]["queue_full"] > 100
    # retrying the 503s hides most of them (they go to the other instance)
    assert old.summary["failed"] < 0.5 * new.summary["failed"]
    assert new.summary["failed"] == v124.summary["failed"]  # the same defaults: the same run


def test_explicit_retriable_status_codes_are_respected_under_current_istio() -> None:
    res = _run("istio", {"retriable_status_codes": [503]})
    r = res.summary["resilience"]["api"]
    assert r["retries"] > 100 and _attempts_per_request(res).max() == 3  # Istio's 2 retries, on 503 again
    assert res.summary["failed"] < 0.5 * _run("istio").summary["failed"]
    # with 503 named again, current Istio does exactly what Istio 1.20's default did (same seed, same run)
    assert r == _run("istio-1.20").summary["resilience"]["api"]
    # and attempts alone inherit the version's codes: no 503 retries under istio, 503 retries under istio-1.20
    assert _run("istio", {"attempts": 3}).summary["resilience"]["api"]["retries"] == 0
    assert _attempts_per_request(_run("istio-1.20", {"attempts": 3})).max() == 4


def test_every_istio_version_keeps_istios_least_request_default(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, set] = {}
    orig = Simulation.make_balancer

    def spy(self, caller, service, need_health=False):
        view, bal = orig(self, caller, service, need_health)
        seen.setdefault(self.scenario.spec["mesh"]["profile"], set()).add(type(bal).__name__)
        return view, bal

    monkeypatch.setattr(Simulation, "make_balancer", spy)
    for name in (*ISTIO, "envoy"):
        meshsim.run({**_rejecting(name), "run": {"requests": 50}}, seed=1)
    assert seen["istio-1.20"] == seen["istio-1.24"] == seen["istio"] == {"LeastRequest"}
    assert seen["envoy"] == {"RoundRobin"}
