"""The scenario schema: every key a scenario file may hold, its type, default and meaning.

This module is the single source of truth for scenario keys; docs/scenarios.md
is rendered from it (``python -m meshsim.scenario.docs``) and a test checks the
two agree.  Times are milliseconds (numbers) or strings like "250ms", "2s", "5m".
"""

from __future__ import annotations

from typing import Any

from ..calibration import DEFAULT_LATENCY, MESH_PROFILES
from .raft_keys import check_registry_raft
from .schema import (
    AnyOf,
    Bool,
    Context,
    Custom,
    Dist,
    Duration,
    Enum,
    Field,
    Float,
    Int,
    ListOf,
    MapOf,
    Str,
    Struct,
)

#: Failure reasons a request can end with (the status column of the tables).
PROBABILITY = Float(min=0.0, max=1.0)


def _queue(value: Any, path: str, ctx: Context) -> Any:
    if value == "unbounded":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        ctx.error(path, f"must be 'unbounded' or an integer >= 0 (waiting-room size), got {value!r}")
        return None
    return value


def _placement(value: Any, path: str, ctx: Context) -> Any:
    if value in ("spread", "pack"):
        return value
    if isinstance(value, list) and value and all(isinstance(h, str) for h in value):
        return list(value)
    ctx.error(path, f"must be 'spread', 'pack' or a list of host names, got {value!r}")
    return "spread"


def _wait(value: Any, path: str, ctx: Context) -> Any:
    if value == "all":
        return "all"
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    ctx.error(path, f"must be 'all' or an integer k >= 1 (wait for the first k replies), got {value!r}")
    return "all"


def _call_shorthand(value: Any) -> Any:
    # "db" or "db.get" -> {service: db, endpoint: get}
    if isinstance(value, str):
        svc, _, ep = value.partition(".")
        return {"service": svc, "endpoint": ep or None}
    return value


CALL = Struct(
    "call",
    {
        "service": Field(Str(), doc="downstream service to call"),
        "endpoint": Field(Str(), default=None, doc="its endpoint; may be omitted when it has exactly one"),
        "probability": Field(PROBABILITY, default=1.0, doc="chance that this call is made at all"),
    },
    doc="One downstream call. Shorthand: a string 'service' or 'service.endpoint'.",
    shorthand=_call_shorthand,
)


def _validate_parallel(out: dict, path: str, ctx: Context) -> None:
    wait = out["wait"]
    n = len(out["parallel"])
    if wait != "all" and wait > n:
        ctx.error(f"{path}.wait", f"cannot wait for {wait} replies of {n} parallel call(s)")


PARALLEL = Struct(
    "parallel",
    {
        "parallel": Field(ListOf(CALL, min_items=1), doc="calls issued at the same time (fan-out)"),
        "wait": Field(Custom("'all' or integer k >= 1", _wait), default="all",
                      doc="continue when all replies are in, or after the first k successful ones"),
    },
    doc="A fan-out step: several calls in parallel.",
    validate=_validate_parallel,
)

STEP = AnyOf(
    (lambda v: isinstance(v, dict) and "parallel" in v, PARALLEL),
    (lambda v: True, CALL),
    type_name="call or parallel group",
)

ENDPOINT = Struct(
    "endpoint",
    {
        "service_time": Field(Dist(), doc="local processing time of one request (a distribution)"),
        "calls": Field(ListOf(STEP), default=list,
                       doc="downstream calls made after local processing, one step after another"),
    },
    doc="An endpoint: local work, then downstream calls.",
)


def _validate_service(out: dict, path: str, ctx: Context) -> None:
    has_short = out.get("service_time") is not None
    if has_short and out["endpoints"]:
        ctx.error(f"{path}.service_time", "give either service_time/calls (one endpoint) or endpoints, not both")
    elif not has_short and not out["endpoints"]:
        ctx.error(f"{path}.service_time", "is required (or define endpoints)")
    elif out["calls"] and not has_short:
        ctx.error(f"{path}.calls", "goes with service_time; put calls under endpoints.<name>.calls")
    if has_short:
        out["endpoints"] = {"default": {"service_time": out["service_time"], "calls": out["calls"]}}
    del out["service_time"], out["calls"]


POLICIES = ("round_robin", "weighted_round_robin", "random", "least_request", "ring_hash", "maglev",
            "ring_hash_bounded", "maglev_bounded")

LOAD_BALANCER = Struct(
    "load_balancer",
    {
        "policy": Field(Enum(*POLICIES), default=None,
                        doc="how each caller picks an instance of this service (Envoy's algorithms); every caller "
                            "(node mode: every node proxy) keeps its own view and active-request counts. Default: "
                            "least_request for callers with an istio-profile proxy (Istio's default since 1.14), "
                            "round_robin otherwise (Envoy's default)"),
        "choice_count": Field(Int(min=2), default=None, doc="least_request: endpoints sampled per pick (Envoy default 2)"),
        "active_request_bias": Field(Float(min=0.0), default=None,
                                     doc="least_request with unequal weights: weight / (active + 1)^bias (default 1.0)"),
        "minimum_ring_size": Field(Int(min=1), default=None, doc="ring_hash: minimum ring entries (default 1024)"),
        "maximum_ring_size": Field(Int(min=1), default=None, doc="ring_hash: maximum ring entries (default 8M)"),
        "table_size": Field(Int(min=2), default=None, doc="maglev: lookup table size, a prime (default 65537)"),
        "hash_balance_factor": Field(Int(min=100), default=None,
                                     doc="ring_hash, maglev: bounded loads, as Envoy's common_lb_config."
                                         "consistent_hashing_lb_config.hash_balance_factor: a host already "
                                         "holding more than its weight share (rounded up) of "
                                         "ceil(factor/100 x (active requests + 1)) is skipped for the next host "
                                         "in a hash-seeded random order. Default: off (ring_hash_bounded, "
                                         "maglev_bounded: 150)"),
        "healthy_panic_threshold": Field(Float(min=0.0, max=100.0), default=None,
                                         doc="percent healthy below which health is ignored (default 50)"),
        "zone_aware": Field(Bool(), default=False,
                            doc="Envoy's zone-aware routing: instances calling this service keep traffic in their "
                                "own zone as far as capacity allows (not hash policies; workload clients have no "
                                "local cluster, so it is off for them)"),
        "min_cluster_size": Field(Int(min=0), default=None,
                                  doc="zone_aware: off below this many upstream instances (Envoy default 6)"),
        "routing_enabled": Field(Float(min=0.0, max=100.0), default=None,
                                 doc="zone_aware: percent of requests it applies to (Envoy default 100)"),
        "locality_failover": Field(Bool(), default=False,
                                   doc="priorities by locality as Istio sets them: the caller's zone first (P0), "
                                       "then its region (P1), then the rest (P2); traffic spills over when a "
                                       "level is less than 1/1.4 healthy"),
        "slow_start_window": Field(Duration(), default=None,
                                   doc="round robin, least_request: new instances ramp up over this window (off)"),
        "slow_start_aggression": Field(Float(min=0.0, min_exclusive=True), default=None,
                                       doc="slow start curve exponent (Envoy default 1.0: linear)"),
        "slow_start_min_weight_percent": Field(Float(min=0.0, max=100.0), default=None,
                                               doc="slow start floor of the weight, percent (Envoy default 10)"),
    },
    doc="Load-balancing policy that callers of this service use (Envoy's defaults unless set).",
)


_LB_RENAMES = {"slow_start_window": "slow_start_window_ms"}
_LB_SHELL_KEYS = ("policy", "zone_aware", "locality_failover")


def balancer_options(lb: dict) -> dict[str, Any]:
    """Constructor options of the balancer class from a checked ``load_balancer`` mapping (keys the shell
    handles itself, ``zone_aware`` and ``locality_failover``, left out)."""
    return {_LB_RENAMES.get(k, k): v for k, v in lb.items() if k not in _LB_SHELL_KEYS and v is not None}


def _check_load_balancer(out: dict, path: str, ctx: Context) -> None:
    """Build the policy once so that bad options (a non-prime Maglev table...) are scenario errors."""
    lb = out.get("load_balancer")
    if not lb:
        return
    from ..core.balancers import BALANCERS  # noqa: F401 - registers Envoy's policies

    options = balancer_options(lb)
    policy = lb["policy"] or "round_robin"
    # plain round robin is Envoy's weighted round robin with equal weights once any Envoy option is set
    plain = policy == "round_robin" and not options and not lb["zone_aware"] and not lb["locality_failover"]
    cls = BALANCERS[policy if plain or policy != "round_robin" else "weighted_round_robin"]
    if lb["zone_aware"]:
        options.update(local_zone="z", local_zone_hosts={"z": 1})
    try:
        cls(out["replicas"], None, **options)
    except TypeError as e:
        bad = str(e).split("'")[1] if "'" in str(e) else str(e)
        bad = {v: k for k, v in _LB_RENAMES.items()}.get(bad, bad)
        bad = "zone_aware" if bad in ("local_zone", "local_zone_hosts") else bad
        ctx.error(f"{path}.load_balancer.{bad}", f"does not apply to policy {policy}"
                  + ("" if lb["policy"] else " (the default; set load_balancer.policy)"))
    except ValueError as e:
        text = str(e)
        key = next((k for k in options if text.startswith(k)), None)
        if key is None and text.startswith(("local_zone", "min_cluster")):
            key = "zone_aware"
        ctx.error(f"{path}.load_balancer" + (f".{key}" if key else ""), text[len(key):].strip() if key else text)


def _retry_on(v: Any, p: str, c: Context) -> Any:
    from ..core.resilience import RETRY_ON

    items = [x.strip() for x in v.split(",")] if isinstance(v, str) else v
    if not isinstance(items, list) or not items or not all(isinstance(x, str) and x for x in items):
        c.error(p, f"must be a comma-separated list of retry conditions, got {v!r}")
        return v
    for x in items:
        if x not in RETRY_ON:
            from ..errors import closest

            c.error(p, f"unknown retry condition {x!r}; valid ones are {', '.join(sorted(RETRY_ON))}",
                    closest(x, sorted(RETRY_ON)))
    return ",".join(items)


def _timeout_or_none(v: Any, p: str, c: Context) -> Any:
    """A duration; 0, 'none' or 'off' disable the timeout (Envoy and Istio: 0 disables)."""
    if isinstance(v, str) and v.strip().lower() in ("none", "off", "disabled"):
        return 0.0
    return Duration().check(v, p, c)


RETRY_BUDGET = Struct(
    "retry budget",
    {
        "percent": Field(Float(min=0.0, max=100.0), default=20.0,
                         doc="active retries at most this percent of active requests (Envoy default 20)"),
        "min_concurrency": Field(Int(min=0), default=3, doc="but always allow this many (Envoy default 3)"),
    },
    doc="Envoy's retry budget: replaces circuit_breaker.max_retries.",
)

RETRIES = Struct(
    "retries",
    {
        "attempts": Field(Int(min=0, max=100), default=None,
                          doc="retries after the first try (Istio's attempts, Envoy's num_retries; istio profiles 2)"),
        "retry_on": Field(Custom("comma-separated retry conditions", _retry_on), default=None,
                          doc="Envoy retry_on conditions (default Istio's: connect-failure,refused-stream,"
                              "unavailable,cancelled,retriable-status-codes; with 503 under istio-1.20 only, "
                              "since Istio 1.24 no longer retries 503 by default, istio/istio#52111)"),
        "retriable_status_codes": Field(ListOf(Int(min=100, max=599)), default=None,
                                        doc="statuses retried by retriable-status-codes (default [503] when "
                                            "retry_on is given; else the profile's: [503] under istio-1.20, none "
                                            "under istio, istio-1.24, envoy, linkerd)"),
        "per_try_timeout": Field(Custom("duration, or 'none'", _timeout_or_none), default=None,
                                 doc="timeout of one attempt (default none)"),
        "backoff": Field(Duration(min_exclusive=0), default=None,
                         doc="base backoff interval (Envoy 25ms); retries wait uniform [0, base x 2^k)"),
        "max_backoff": Field(Duration(min_exclusive=0), default=None, doc="backoff cap (Envoy: 10 x base = 250ms)"),
        "previous_hosts": Field(Bool(), default=None,
                                doc="retries avoid hosts already tried (Istio: on, 5 selection attempts)"),
        "budget": Field(RETRY_BUDGET, default=None, doc="retry budget instead of the max_retries breaker"),
    },
    doc="Retries of calls to this service, made by the caller's proxy (Envoy's route retry policy).",
)

CIRCUIT_BREAKER = Struct(
    "circuit breaker",
    {
        "max_connections": Field(Int(min=1), default=None,
                                 doc="concurrent requests on connections to the service; more wait as pending "
                                     "(Envoy 1024, Istio unlimited)"),
        "max_pending_requests": Field(Int(min=0), default=None, doc="requests waiting for a connection (Envoy 1024)"),
        "max_requests": Field(Int(min=1), default=None, doc="concurrent requests (Envoy 1024)"),
        "max_retries": Field(Int(min=0), default=None, doc="concurrent retries (Envoy 3)"),
    },
    doc="Envoy's cluster circuit breakers, kept by each caller's proxy; an overflow fails at once with 503 (UO).",
)

OUTLIER_DETECTION = Struct(
    "outlier detection",
    {
        "consecutive_5xx": Field(Int(min=0), default=5, doc="5xx in a row that eject a host (Envoy 5)"),
        "consecutive_gateway_failure": Field(Int(min=0), default=5, doc="502/503/504 in a row (Envoy 5)"),
        "enforcing_consecutive_gateway_failure": Field(Float(min=0.0, max=100.0), default=0.0,
                                                       doc="percent chance those eject (Envoy 0)"),
        "interval": Field(Duration(min_exclusive=0), default=10_000.0, doc="analysis interval (Envoy 10s)"),
        "base_ejection_time": Field(Duration(min_exclusive=0), default=30_000.0,
                                    doc="ejection time, times the number of ejections (Envoy 30s)"),
        "max_ejection_time": Field(Duration(min_exclusive=0), default=None, doc="cap (Envoy max(300s, base))"),
        "max_ejection_percent": Field(Float(min=0.0, max=100.0), default=10.0,
                                      doc="at most this percent of hosts ejected (Envoy 10)"),
        "enforcing_success_rate": Field(Float(min=0.0, max=100.0), default=None,
                                        doc="success-rate ejection chance (Envoy 100, Istio 0)"),
        "success_rate_minimum_hosts": Field(Int(min=0), default=5, doc="(Envoy 5)"),
        "success_rate_request_volume": Field(Int(min=0), default=100, doc="(Envoy 100)"),
        "failure_percentage_threshold": Field(Float(min=0.0, max=100.0), default=85.0, doc="(Envoy 85)"),
        "enforcing_failure_percentage": Field(Float(min=0.0, max=100.0), default=0.0, doc="(Envoy 0)"),
    },
    doc="Envoy's outlier detection, run by each caller's proxy over the hosts it sees; on when present.",
)

SERVICE = Struct(
    "service",
    {
        "replicas": Field(Int(min=1, max=100_000), default=1, doc="number of instances"),
        "workers": Field(Int(min=1, max=1_000_000), default=1, doc="concurrency c of each instance (its worker pool)"),
        "queue": Field(Custom("'unbounded' or integer >= 0", _queue), default=None,
                       doc="waiting-room size per instance; a request arriving to a full queue is rejected "
                           "(reason queue_full). Default unbounded"),
        "semantics": Field(Enum("async", "blocking"), default="async",
                           doc="blocking: a worker is held during downstream calls (thread per request); "
                               "async: it is released after local processing"),
        "placement": Field(Custom("'spread', 'pack' or list of hosts", _placement), default="spread",
                           doc="where instances go: spread over zones, pack onto as few hosts as possible, "
                               "or an explicit list of hosts (one per instance, cycled)"),
        "zones": Field(ListOf(Str(), min_items=1), default=None, doc="restrict placement to these zones"),
        "service_time": Field(Dist(), default=None, doc="shorthand for a single endpoint named 'default'"),
        "calls": Field(ListOf(STEP), default=list, doc="shorthand: calls of the single 'default' endpoint"),
        "endpoints": Field(MapOf(ENDPOINT, "endpoint name"), default=dict, doc="named endpoints"),
        "load_balancer": Field(LOAD_BALANCER, default=dict, doc="how callers choose among its instances"),
        "timeout": Field(Custom("duration, or 'none'", _timeout_or_none), default=None,
                         doc="route timeout of calls to this service, retries included (Envoy 15s; Istio and "
                             "no mesh: none); 0 or 'none' disables"),
        "retries": Field(RETRIES, default=None, doc="retry policy of calls to this service (default: the mesh "
                                                    "profile's; no retries without a mesh)"),
        "circuit_breaker": Field(CIRCUIT_BREAKER, default=None, doc="circuit breakers callers keep for this "
                                                                     "service (default: the mesh profile's)"),
        "outlier_detection": Field(OUTLIER_DETECTION, default=None,
                                   doc="callers eject instances that fail (off unless given)"),
        "hedge_on_per_try_timeout": Field(Bool(), default=False,
                                          doc="on a per-try timeout send another attempt and keep the first; the "
                                              "first good reply wins (Envoy's hedge policy)"),
        "max_concurrency": Field(Int(min=1), default=None,
                                 doc="inbound limit: an instance with this many requests in progress rejects more "
                                     "with 503 (status rejected)"),
    },
    doc="A service: replicas of one program, each a worker pool with a queue.",
    validate=lambda out, path, ctx: (_validate_service(out, path, ctx), _check_load_balancer(out, path, ctx)),
)

ARRIVALS = {"poisson", "deterministic", "mmpp", "steps", "diurnal", "closed", "trace"}


def _validate_workload(out: dict, path: str, ctx: Context) -> None:
    kind = out["type"]
    need = {
        "poisson": ["rate"],
        "deterministic": ["rate"],
        "mmpp": ["rate", "off_rate", "on_time", "off_time"],
        "steps": ["steps"],
        "diurnal": ["rate", "amplitude", "period"],
        "closed": ["users", "think_time"],
        "trace": ["file"],
    }[kind]
    for key in need:
        if out.get(key) is None:
            ctx.error(f"{path}.{key}", f"is required for type {kind}")
    # a zero rate would never produce an arrival (division by zero, or a run that never ends)
    if kind in ("poisson", "deterministic", "diurnal", "mmpp") and out.get("rate") == 0:
        ctx.error(f"{path}.rate", f"must be a rate > 0 for type {kind}, got 0")
    used = set(need) | {"type", "target", "endpoint", "source", "timeout", "phase", "column", "speedup", "off_rate", "clients"}
    for key in ("rate", "off_rate", "on_time", "off_time", "steps", "amplitude", "period", "users", "think_time", "file"):
        if out.get(key) is not None and key not in used:
            ctx.error(f"{path}.{key}", f"does not apply to type {kind}")


STEP_RATE = Struct(
    "rate step",
    {
        "at": Field(Duration(), doc="time the rate takes effect"),
        "rate": Field(Custom("rate >= 0", lambda v, p, c: _rate_nonneg(v, p, c)), doc="arrival rate from then on"),
    },
)


def _rate_nonneg(v: Any, p: str, c: Context) -> Any:
    from ..errors import ScenarioError
    from ..units import parse_rate

    try:
        return parse_rate(v, p)
    except ScenarioError as e:
        c.errors.append(e)
        return 0.0


WORKLOAD = Struct(
    "workload",
    {
        "type": Field(Enum(*sorted(ARRIVALS)), default="poisson",
                      doc="arrival process: poisson, deterministic, mmpp (bursty on/off), steps (rate schedule), "
                          "diurnal (sinusoidal rate), closed (users with think time), trace (CSV replay)"),
        "target": Field(Str(), doc="service that receives the requests"),
        "endpoint": Field(Str(), default=None, doc="endpoint of the target; may be omitted when it has one"),
        "source": Field(Str(), default=None,
                        doc="zone or host the clients sit in (default: the first zone; clients get their own host)"),
        "rate": Field(Custom("rate", _rate_nonneg), default=None,
                      doc="arrivals per second (poisson, deterministic, diurnal mean; mmpp rate while on)"),
        "off_rate": Field(Custom("rate", _rate_nonneg), default=None, doc="mmpp: rate while off (often 0)"),
        "on_time": Field(Duration(min_exclusive=0), default=None, doc="mmpp: mean length of an on period (exponential)"),
        "off_time": Field(Duration(min_exclusive=0), default=None, doc="mmpp: mean length of an off period (exponential)"),
        "steps": Field(ListOf(STEP_RATE, min_items=1), default=None,
                       doc="steps: list of {at, rate}; the rate before the first step is 0"),
        "amplitude": Field(Float(min=0.0, max=1.0), default=None,
                           doc="diurnal: relative swing, rate(t) = rate * (1 + amplitude * sin(2 pi t / period + phase))"),
        "period": Field(Duration(min_exclusive=0), default=None, doc="diurnal: length of one cycle, e.g. 24h"),
        "phase": Field(Float(), default=0.0, doc="diurnal: phase in radians"),
        "users": Field(Int(min=1), default=None, doc="closed: number of users, each with one request outstanding"),
        "think_time": Field(Dist(), default=None, doc="closed: pause between a reply and the next request"),
        "file": Field(Str(), default=None,
                      doc="trace: CSV of arrival times (ms), relative to the scenario file or data/; times are shifted so the first arrival is at 0"),
        "column": Field(Str(), default="time_ms", doc="trace: column holding the arrival times"),
        "speedup": Field(Float(min=0.0, min_exclusive=True), default=1.0, doc="trace: divide trace times by this"),
        "timeout": Field(Duration(min_exclusive=0), default=None,
                         doc="client gives up after this long (request fails with reason timeout)"),
        "clients": Field(Int(min=1), default=None,
                         doc="number of distinct client ids; each request comes from one drawn uniformly, and hash "
                             "policies (ring_hash, maglev) hash it; default: no id, hash policies pick at random"),
    },
    doc="A source of requests.",
    validate=_validate_workload,
)

LINK = Struct(
    "link",
    {
        "between": Field(ListOf(Str(), min_items=2, max_items=2),
                         doc="two hosts, zones or regions; the override applies to traffic between them"),
        "latency": Field(Dist(), default=None, doc="one-way latency distribution on this link"),
        "loss": Field(PROBABILITY, default=None, doc="probability that a message on this link is lost"),
        "oneway": Field(Bool(), default=False, doc="apply only from the first to the second"),
    },
    doc="A per-pair override of latency or loss.",
)

LATENCY = Struct(
    "latency",
    {
        key: Field(Dist(), default=None, doc=f"one-way latency {key.replace('_', ' ')} (default {val})")
        for key, val in DEFAULT_LATENCY.items()
    },
    doc="Default one-way latency by where the two hosts are.",
)

NETWORK = Struct(
    "network",
    {
        "enabled": Field(Bool(), default=True, doc="false: every message is delivered at once (no latency, no loss)"),
        "latency": Field(LATENCY, default=dict, doc="latency classes"),
        "loss": Field(PROBABILITY, default=0.0, doc="probability that any message is lost"),
        "links": Field(ListOf(LINK), default=list, doc="overrides for pairs of hosts, zones or regions"),
    },
    doc="Links between hosts. A lost or blocked request message fails the call at once (reason network_loss "
        "or partitioned), as a connection error would.",
)


def _zone_list(value: Any, path: str, ctx: Context) -> Any:
    if isinstance(value, str):
        value = [value]
    return ListOf(Str(), min_items=1).check(value, path, ctx)


HOST = Struct(
    "host",
    {"zone": Field(Str(), doc="zone the host is in")},
    doc="A machine. Shorthand: the zone name.",
    shorthand=lambda v: {"zone": v},
)

TOPOLOGY = Struct(
    "topology",
    {
        "regions": Field(MapOf(Custom("list of zones", _zone_list), "region name"), default=None,
                         doc="regions and their zones (default: region-1 with zone-a)"),
        "hosts": Field(MapOf(HOST, "host name"), default=dict,
                       doc="hosts and their zones; when empty, each instance gets its own host"),
    },
    doc="Where things run: regions contain zones, zones contain hosts.",
)


def _validate_fault(out: dict, path: str, ctx: Context) -> None:
    action = out["action"]
    target_keys = {"crash": ("instance", "host"), "restart": ("instance", "host"), "slow": ("instance", "host"),
                   "degrade": ("between",), "partition": ("groups",),
                   "crash_server": ("server",), "restart_server": ("server",), "slow_disk": ("server",)}[action]
    given = [k for k in ("instance", "host", "between", "groups", "server") if out.get(k) is not None]
    if action == "slow_disk" and out.get("latency") is None:
        ctx.error(f"{path}.latency", "is required for slow_disk: the time of one disk write from then on")
    if action in ("crash_server", "restart_server", "slow_disk"):
        if out.get("server") is None:
            ctx.error(f"{path}.server", f"is required for action {action}")
        given = [k for k in given if k != "server"]
        for k in given:
            ctx.error(f"{path}.{k}", f"does not apply to action {action}")
        if action == "restart_server" and out.get("until") is not None:
            ctx.error(f"{path}.until", "does not apply to restart_server")
        if out.get("until") is not None and out["until"] <= out["at"]:
            ctx.error(f"{path}.until", f"must be after at ({out['at']}ms), got {out['until']}ms")
        return
    if (out.get("factor") is not None) != (action == "slow"):
        ctx.error(f"{path}.factor", "is required for slow: how many times longer each service takes"
                  if action == "slow" else f"does not apply to action {action}")
    if action in ("crash", "restart", "slow"):
        if len([k for k in given if k in target_keys]) != 1:
            ctx.error(path, f"{action} needs exactly one of instance or host")
    else:
        for k in target_keys:
            if out.get(k) is None:
                ctx.error(f"{path}.{k}", f"is required for action {action}")
    for k in given:
        if k not in target_keys:
            ctx.error(f"{path}.{k}", f"does not apply to action {action}")
    if action == "restart" and out.get("until") is not None:
        ctx.error(f"{path}.until", "does not apply to restart")
    if action == "degrade" and out.get("latency") is None and out.get("extra_latency") is None and out.get("loss") is None:
        ctx.error(path, "degrade needs latency, extra_latency or loss")
    if out.get("until") is not None and out["until"] <= out["at"]:
        ctx.error(f"{path}.until", f"must be after at ({out['at']}ms), got {out['until']}ms")


FAULT = Struct(
    "fault",
    {
        "at": Field(Duration(), doc="when the fault starts"),
        "until": Field(Duration(), default=None, doc="when it heals (crash: restart then); default never"),
        "action": Field(Enum("crash", "restart", "slow", "degrade", "partition", "crash_server", "restart_server",
                             "slow_disk"), doc="what happens (*_server, slow_disk: registry servers)"),
        "server": Field(Str(), default=None,
                        doc="crash_server/restart_server/slow_disk: a registry server (registry-0, ...) or 'leader' "
                            "(the leader when the fault fires)"),
        "instance": Field(Str(), default=None, doc="crash/restart/slow: an instance, named service-index, e.g. cart-0"),
        "host": Field(Str(), default=None, doc="crash/restart/slow: a host (all its instances)"),
        "factor": Field(Float(min=0.0, min_exclusive=True), default=None,
                        doc="slow: service times of the instance (or host) multiplied by this (3: three times "
                            "slower) from at until until; the same random draws, scaled"),
        "between": Field(ListOf(Str(), min_items=2, max_items=2), default=None,
                         doc="degrade: two hosts, zones or regions"),
        "latency": Field(Dist(), default=None, doc="degrade: replacement one-way latency; slow_disk: write time"),
        "extra_latency": Field(Dist(), default=None, doc="degrade: latency added on top"),
        "loss": Field(PROBABILITY, default=None, doc="degrade: message loss probability"),
        "groups": Field(ListOf(ListOf(Str(), min_items=1), min_items=2), default=None,
                        doc="partition: lists of hosts/zones/regions that cannot reach each other"),
        "oneway": Field(Bool(), default=False,
                        doc="degrade/partition: only traffic from the first side (groups[0]) to the others"),
    },
    doc="One event of the fault timeline.",
    validate=_validate_fault,
)


def _validate_run(out: dict, path: str, ctx: Context) -> None:
    if out["duration"] is None and out["requests"] is None:
        ctx.error(path, "needs duration or requests (or both) to know when arrivals stop")


RUN = Struct(
    "run",
    {
        "duration": Field(Duration(min_exclusive=0), default=None, doc="arrivals stop at this simulated time"),
        "requests": Field(Int(min=1), default=None, doc="arrivals stop after this many requests"),
        "drain": Field(Bool(), default=True, doc="after arrivals stop, let requests in flight finish"),
        "max_time": Field(Duration(min_exclusive=0), default=None,
                          doc="hard stop for the whole run (guards unstable scenarios); default none"),
        "max_wall": Field(Duration(min_exclusive=0), default=None,
                          doc="wall-clock budget (real time, e.g. '30s'): the run stops cleanly when it is used up "
                              "and its result is flagged partial (summary partial: true, with partial_reason); "
                              "default none"),
        "common_random_numbers": Field(
            Bool(), default=False,
            doc="draw service times and call choices per service endpoint keyed by request (request r gets "
                "the same draws whichever instance serves it), so variants that route differently stay "
                "paired; meshsim.compare turns it on.  Changes the numbers a seed gives"),
    },
    doc="When the run ends.",
    validate=_validate_run,
)

METRICS = Struct(
    "metrics",
    {
        "mode": Field(Enum("full", "streaming"), default="full",
                      doc="full: per-request and per-span tables; streaming: histograms only, memory flat"),
        "warmup": Field(Duration(), default=0.0, doc="requests arriving before this are left out of the summary"),
        "spans": Field(Bool(), default=True, doc="full mode: record one row per call (span)"),
        "sample_interval": Field(Duration(min_exclusive=0), default=None,
                                 doc="how often queue lengths and busy workers are sampled (default: about 200 "
                                     "samples over the run)"),
        "batches": Field(Int(min=2), default=20, doc="the most batches of the batch-means confidence interval (fewer, longer ones when the latencies are strongly autocorrelated)"),
        "histogram_error": Field(Float(min=1e-4, max=0.1), default=0.01,
                                 doc="streaming: relative error of latency quantiles"),
    },
    doc="What is recorded and how the summary is computed.",
)

CONTROL_PLANE = Struct(
    "control plane",
    {
        "debounce_after": Field(Duration(), default=100.0,
                                doc="push once no registry change came for this long (Istio PILOT_DEBOUNCE_AFTER 100ms)"),
        "debounce_max": Field(Duration(min_exclusive=0), default=10_000.0,
                              doc="but at most this long after the first change (Istio PILOT_DEBOUNCE_MAX 10s)"),
        "push_latency": Field(Dist(), default=None,
                              doc="time from a push to a proxy applying it (default exponential, mean 50ms: an "
                                  "assumption; Istio reports it as pilot_proxy_convergence_time)"),
        "read_mode": Field(Enum("default", "stale", "consistent"), default="default",
                           doc="consistency mode of the control plane's watches"),
    },
    doc="The control plane (istiod's role): it watches the registry and pushes endpoints to every proxy. Proxies "
        "route on what they last received.",
)

MESH = Struct(
    "mesh",
    {
        "mode": Field(Enum("none", "sidecar", "node"), default="none",
                      doc="none: no proxies; sidecar: a proxy per instance (and per client); node: one shared proxy "
                          "per host (ambient-like)"),
        "profile": Field(Enum(*MESH_PROFILES), default="istio",
                         doc="default proxy costs and resilience defaults (see docs/mesh.md): istio (current Istio, "
                             "1.24+), istio-1.24, istio-1.20 (Istio's default retries also retry 503 before 1.24), "
                             "linkerd, envoy"),
        "workers": Field(Int(min=1, max=1024), default=None, doc="proxy worker threads (Envoy --concurrency; Istio 2)"),
        "request_processing": Field(Dist(), default=None, doc="time of one request pass through a proxy"),
        "response_processing": Field(Dist(), default=None, doc="time of one response pass through a proxy"),
        "mtls": Field(Bool(), default=True, doc="new connections pay an mTLS handshake"),
        "handshake": Field(Dist(), default=None, doc="extra time of the outbound pass that opens a connection"),
        "idle_timeout": Field(Duration(min_exclusive=0), default=3_600_000.0,
                              doc="an idle connection closes after this (Envoy's HTTP default 1h)"),
        "client_sidecar": Field(Bool(), default=True, doc="sidecar mode: workload clients have a sidecar too"),
        "control_plane": Field(CONTROL_PLANE, default=dict,
                               doc="with a registry: how endpoint updates reach the proxies (istiod's role)"),
    },
    doc="The service mesh's data plane: sidecar or node proxies on every call.",
)

GRAPH = Struct(
    "graph",
    {
        "kind": Field(Enum("chain", "fanout", "tree", "random_dag"), doc="shape of the generated call graph"),
        "n": Field(Int(min=1, max=10_000), default=3, doc="chain, random_dag: number of services"),
        "width": Field(Int(min=1, max=100), default=2, doc="fanout, tree: children per service"),
        "depth": Field(Int(min=1, max=10), default=2, doc="fanout, tree: levels below the entry service"),
        "edge_probability": Field(PROBABILITY, default=0.3, doc="random_dag: chance of each forward edge"),
        "seed": Field(Int(min=0), default=0, doc="random_dag: seed of the graph (not of the run)"),
        "replicas": Field(Int(min=1, max=100_000), default=1, doc="replicas of every generated service"),
        "workers": Field(Int(min=1, max=1_000_000), default=1, doc="workers of every generated service"),
        "semantics": Field(Enum("async", "blocking"), default="async", doc="semantics of every generated service"),
        "service_time": Field(Dist(), default=None,
                              doc="service time of every generated service (default exponential, mean 1ms)"),
    },
    doc="A generated call graph (meshsim.topology): services svc0 (the entry), svc1, ... Services listed "
        "under services override generated ones of the same name.",
)

HEALTH_CHECK = Struct(
    "health check",
    {
        "type": Field(Enum("probe", "ttl", "none"), default="probe",
                      doc="probe: the agent calls the instance every interval; ttl: the instance must heartbeat "
                          "within ttl; none: instances stay passing"),
        "interval": Field(Duration(min_exclusive=0), default=10_000.0, doc="probe: time between probes (10s)"),
        "timeout": Field(Duration(min_exclusive=0), default=None,
                         doc="probe: a probe of a dead instance fails after this (Consul default 10s, capped by "
                             "the interval)"),
        "ttl": Field(Duration(min_exclusive=0), default=30_000.0, doc="ttl: critical without a heartbeat for this long"),
        "failures_before_critical": Field(Int(min=1), default=None, doc="probe: failed probes in a row (Consul 1)"),
        "success_before_passing": Field(Int(min=1), default=None, doc="probe: good probes in a row (Consul 1)"),
        "deregister_critical_after": Field(Duration(min_exclusive=0), default=None,
                                           doc="remove an instance critical this long (off)"),
    },
    doc="How each host's agent checks its instances (Consul agent checks).",
)

RECORD_WINDOW = Struct(
    "record window",
    {
        "from": Field(Duration(), default=0.0, doc="start of the window"),
        "until": Field(Duration(), default=None, doc="end of the window (default: the end of the run)"),
    },
    doc="A window of simulated time in which something is recorded.",
)

REGISTRY_RAFT = Struct(
    "registry raft",
    {
        "heartbeat": Field(Duration(min_exclusive=0), default=None,
                           doc="leader heartbeat interval (default: the profile's)"),
        "election_timeout_min": Field(Duration(min_exclusive=0), default=None,
                                      doc="election timeouts are drawn from [min, max); alone, it moves the whole "
                                          "range (max at the profile's ratio, 2x)"),
        "election_timeout_max": Field(Duration(min_exclusive=0), default=None,
                                      doc="upper bound of the election timeout range"),
        "lease": Field(Duration(min_exclusive=0), default=None,
                       doc="check-quorum / leader-lease window, at most election_timeout_min (default: the "
                           "profile's, cut to election_timeout_min)"),
        "pre_vote": Field(Bool(), default=None, doc="Pre-Vote before a real election (default: the profile's)"),
        "check_quorum": Field(Bool(), default=None,
                              doc="a leader steps down without a quorum for one lease (default: the profile's; "
                                  "false also turns lease reads off)"),
    },
    doc="Raft timing of the registry over its profile (meshsim.scenario.raft_keys); null keys keep the profile's.",
)

REGISTRY = Struct(
    "registry",
    {
        "servers": Field(Int(min=1, max=15), default=3, doc="Raft servers (hosts registry-0, registry-1, ...)"),
        "zones": Field(ListOf(Str(), min_items=1), default=None, doc="zones the servers spread over (default all)"),
        "profile": Field(Enum("consul", "hashicorp-raft-1.1", "etcd", "paper"), default="consul",
                         doc="Raft timers and timing: consul (current Consul: hashicorp/raft 1.7 timers with "
                             "pre-vote, durations x raft_multiplier), hashicorp-raft-1.1 (the same timers without "
                             "pre-vote, as measured in data/hashicorp), etcd (100ms/1s, etcd-io/raft timers), paper"),
        "raft_multiplier": Field(Int(min=1, max=10), default=None,
                                 doc="consul and hashicorp-raft-1.1 profiles: scales HeartbeatTimeout, "
                                     "ElectionTimeout and LeaderLeaseTimeout (1000/1000/500 ms); Consul's default "
                                     "5, 1 recommended in production; hashicorp-raft-1.1 defaults to 1"),
        "raft": Field(REGISTRY_RAFT, default=dict,
                      doc="override the profile's Raft timing: heartbeat, election timeout range, lease, pre_vote, "
                          "check_quorum (sweepable, e.g. registry.raft.election_timeout_min)"),
        "disk_delay": Field(Dist(), default=None, doc="time of one durable write (fsync) on a server (default 0)"),
        "health_check": Field(HEALTH_CHECK, default=dict, doc="checks run by the agents"),
        "anti_entropy": Field(Duration(min_exclusive=0), default=None,
                              doc="agents' full sync period (default Consul's: 1 min, scaled with cluster size)"),
        "discovery": Field(Enum("watch", "blocking", "dns", "streaming"), default="watch",
                           doc="callers without a proxy: watch or blocking (blocking queries through the host's "
                               "agent), dns (lookups cached for dns_ttl) or streaming (Consul's streaming "
                               "subscriptions, the control plane's too)"),
        "read_mode": Field(Enum("default", "stale", "consistent"), default="default",
                           doc="consistency mode of callers' watches and lookups"),
        "dns_ttl": Field(Duration(), default=0.0, doc="dns discovery: cache lifetime (Consul's default TTL 0)"),
        "duplicate": Field(PROBABILITY, default=0.0, doc="chance that a Raft message is delivered twice"),
        "reorder": Field(PROBABILITY, default=0.0, doc="chance that a Raft message is held back and overtaken"),
        "record_messages": Field(RECORD_WINDOW, default=None,
                                 doc="record the Raft messages sent in this window, for timelines and traces "
                                     "(meshsim.viz.raft_timeline, Result.to_chrome_trace); off by default"),
    },
    doc="A Consul-like service registry replicated with Raft. When present, agents register every instance and "
        "run its health check; callers find instances through it (proxies via the control plane).",
    validate=check_registry_raft,
)

SCENARIO = Struct(
    "scenario",
    {
        "name": Field(Str(), default="scenario", doc="a name for tables and plots"),
        "description": Field(Str(), default="", doc="free text"),
        "seed": Field(Int(min=0), default=1, doc="default seed (the CLI's --seed and run(seed=) override it)"),
        "run": Field(RUN, doc="when the run ends"),
        "metrics": Field(METRICS, default=dict, doc="recording options"),
        "topology": Field(TOPOLOGY, default=dict, doc="regions, zones, hosts"),
        "network": Field(NETWORK, default=dict, doc="latency and loss between hosts"),
        "mesh": Field(MESH, default=dict, doc="proxies on the request path"),
        "graph": Field(GRAPH, default=None, doc="a generated call graph (adds services svc0, svc1, ...)"),
        "services": Field(MapOf(SERVICE, "service name", min_items=1), doc="the services"),
        "workloads": Field(MapOf(WORKLOAD, "workload name", min_items=1), doc="request sources"),
        "registry": Field(REGISTRY, default=None, doc="a service registry (off: callers know every instance)"),
        "faults": Field(ListOf(FAULT), default=list, doc="the fault timeline"),
    },
    doc="A whole scenario.",
)
