"""Service-registry layers that run on the simulated network (Raft-backed stores and their shells)."""

from .raft_shell import RaftCluster, RaftServer, make_network

__all__ = ["RaftCluster", "RaftServer", "make_network"]
