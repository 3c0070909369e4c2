"""A scenario's ``registry.raft`` keys: the Raft timing of the registry, over its profile.

``registry.profile`` (and ``raft_multiplier``) choose a
:class:`~meshsim.core.raft.RaftConfig` profile; ``registry.raft`` overrides
single fields of it.  Keys left out (or null) keep the profile's value, with
two rules that keep a partial override consistent (so a sweep can move one
key alone):

* ``election_timeout_min`` alone moves the whole range: the maximum follows
  at the profile's max/min ratio (2 for every shipped profile);
* ``lease`` left out is the profile's lease, cut to the election timeout
  minimum when that is shorter (followers only promise that long);
* with hashicorp/raft's timers (profiles ``consul``, ``hashicorp-raft-1.1``)
  the heartbeat is a range, U[HT/10, HT/5): ``heartbeat`` sets its lower end
  and the upper end follows at the profile's ratio; ``election_timeout_min``
  alone moves the heartbeat range with it, as HeartbeatTimeout does.

:func:`raft_config_fields` gives the effective RaftConfig fields and
:func:`check_registry_raft` reports an inconsistent combination with the
path of the key to change.

>>> reg = {"profile": "consul", "raft_multiplier": 1,
...        "raft": {"election_timeout_min": 300.0, "heartbeat": 50.0}}
>>> f = raft_config_fields(reg)
>>> f["heartbeat_interval_ms"], f["election_timeout_min_ms"], f["election_timeout_max_ms"], f["leader_lease_ms"]
(50.0, 300.0, 600.0, 300.0)
>>> f = raft_config_fields({"profile": "hashicorp-raft-1.1", "raft": {"election_timeout_min": 200.0}})
>>> f["heartbeat_interval_ms"], f["heartbeat_interval_max_ms"], f["election_timeout_max_ms"]
(20.0, 40.0, 400.0)
>>> raft_config_fields({"profile": "etcd", "raft": None})["election_timeout_max_ms"]
2000.0
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

#: scenario key under registry.raft -> RaftConfig field
RAFT_KEYS = {
    "heartbeat": "heartbeat_interval_ms",
    "election_timeout_min": "election_timeout_min_ms",
    "election_timeout_max": "election_timeout_max_ms",
    "lease": "leader_lease_ms",
    "pre_vote": "pre_vote",
    "check_quorum": "check_quorum",
}


def _profile_config(reg: dict[str, Any]) -> Any:
    from ..core.raft import RaftConfig

    overrides = {"raft_multiplier": reg["raft_multiplier"]} if reg.get("raft_multiplier") is not None else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return RaftConfig.profile(reg.get("profile") or "consul", **overrides)


def raft_config_fields(reg: dict[str, Any]) -> dict[str, Any]:
    """The RaftConfig fields (a dict) of a checked ``registry:`` section: the profile's, then ``registry.raft``."""
    base = dataclasses.asdict(_profile_config(reg))
    raft = reg.get("raft") or {}
    given = {RAFT_KEYS[k]: v for k, v in raft.items() if k in RAFT_KEYS and v is not None}
    out = {**base, **given}
    if "election_timeout_min_ms" in given and "election_timeout_max_ms" not in given:
        ratio = base["election_timeout_max_ms"] / base["election_timeout_min_ms"]
        out["election_timeout_max_ms"] = given["election_timeout_min_ms"] * ratio
    if base.get("heartbeat_interval_max_ms") is not None and "heartbeat_interval_max_ms" not in given:
        # hashicorp/raft derives its heartbeat, U[HT/10, HT/5), from the heartbeat timeout: the range
        # follows a new heartbeat (at the profile's ratio) or, without one, a new election timeout
        hb_ratio = base["heartbeat_interval_max_ms"] / base["heartbeat_interval_ms"]
        if "heartbeat_interval_ms" not in given and "election_timeout_min_ms" in given:
            out["heartbeat_interval_ms"] = base["heartbeat_interval_ms"] * (
                given["election_timeout_min_ms"] / base["election_timeout_min_ms"])
        out["heartbeat_interval_max_ms"] = out["heartbeat_interval_ms"] * hb_ratio
    if "leader_lease_ms" not in given and out["leader_lease_ms"] is not None:
        out["leader_lease_ms"] = min(out["leader_lease_ms"], out["election_timeout_min_ms"])
    if not out["check_quorum"] and out.get("lease_reads"):
        # a lease needs followers that ignore candidates while a leader is live: without
        # check-quorum, reads take a quorum round (ReadIndex) instead
        out["lease_reads"] = False
    return out


def check_registry_raft(reg: dict[str, Any], path: str, ctx: Any) -> None:
    """``validate`` hook of the REGISTRY struct: the effective timing must make a RaftConfig.

    Errors name the key to change (``registry.raft.election_timeout_min`` ...)."""
    try:
        _profile_config(reg)
    except ValueError as e:
        ctx.error(f"{path}.raft_multiplier" if reg.get("raft_multiplier") is not None else f"{path}.profile", str(e))
        return
    raft = reg.get("raft") or {}
    f = raft_config_fields(reg)
    hb, lo, hi, lease = (f["heartbeat_interval_ms"], f["election_timeout_min_ms"], f["election_timeout_max_ms"],
                         f["leader_lease_ms"])
    where = f"{path}.raft"

    def src(key: str) -> str:
        return "" if raft.get(key) is not None else f", the {reg.get('profile')} profile's"

    if not lo > hb:
        key = "election_timeout_min" if raft.get("election_timeout_min") is not None else "heartbeat"
        ctx.error(f"{where}.{key}", f"the election timeout minimum ({lo:g}ms{src('election_timeout_min')}) must be "
                                    f"greater than the heartbeat interval ({hb:g}ms{src('heartbeat')}): followers "
                                    "would time out between heartbeats")
        return
    if hi < lo:
        ctx.error(f"{where}.election_timeout_max", f"the election timeout maximum ({hi:g}ms{src('election_timeout_max')})"
                                                   f" must be >= the minimum ({lo:g}ms{src('election_timeout_min')})")
        return
    if lease is not None and not lease <= lo:
        ctx.error(f"{where}.lease", f"the leader lease ({lease:g}ms) must be at most the election timeout minimum "
                                    f"({lo:g}ms{src('election_timeout_min')}): followers only promise not to vote "
                                    "for that long")
        return
    from ..core.raft import RaftConfig

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            RaftConfig(**f)
    except ValueError as e:  # anything the core refuses that the rules above did not name
        ctx.error(where, str(e))


__all__ = ["RAFT_KEYS", "check_registry_raft", "raft_config_fields"]
