"""The message-by-message Raft harness now lives in :mod:`meshsim.teach.harness`; this module re-exports
it for the tests (``from raft_harness import Cluster, check_safety``) and keeps one scenario helper."""

from __future__ import annotations

from meshsim.teach.harness import (  # noqa: F401  (re-exported)
    FAST,
    Cluster,
    Commit,
    Envelope,
    ReadRecord,
    Snapshot,
    check_election_safety,
    check_leader_append_only,
    check_leader_completeness,
    check_log_matching,
    check_reads,
    check_safety,
    committed_entries,
)

__all__ = ["FAST", "Cluster", "Commit", "Envelope", "ReadRecord", "Snapshot", "check_election_safety",
           "check_leader_append_only", "check_leader_completeness", "check_log_matching", "check_reads",
           "check_safety", "committed_entries", "service_beside_servers"]


def service_beside_servers(name: str, duration: str):
    """A one-service scenario on host ``app`` with hosts h0, h1, h2 free for Raft servers (1 ms links)."""
    from meshsim.scenario.load import load_scenario

    return load_scenario({
        "name": name,
        "run": {"duration": duration},
        "topology": {"regions": {"r": ["z"]}, "hosts": {"h0": "z", "h1": "z", "h2": "z", "app": "z"}},
        "network": {"latency": {"same_zone": {"dist": "constant", "value": 1.0}}},
        "services": {"web": {"replicas": 1, "workers": 4, "placement": ["app"],
                             "service_time": {"dist": "exponential", "mean": "2ms"}}},
        "workloads": {"users": {"type": "poisson", "rate": "50/s", "target": "web"}},
    })
