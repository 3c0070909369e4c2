"""Envoy's load balancers as pure cores, one module per concept (as Envoy splits its sources).

==============================  =====================================================================
:mod:`.options`                 :class:`~.options.LbOptions`, the one options object every policy takes
:mod:`.priority`                priority loads, panic, zone-aware routing arithmetic (pure functions)
:mod:`.base`                    endpoints, the common balancer base, the zone-aware base
:mod:`.edf`                     EDF scheduler, slow start, weighted round robin, random
:mod:`.least_request`           least request (P2C, EDF with active-request bias)
:mod:`.hash_tables`             ring hash, Maglev, bounded loads
==============================  =====================================================================

:mod:`meshsim.core.balancers` re-exports the public names and registers
every policy in ``BALANCERS`` (each policy module registers its own on import).
This package imports nothing on its own: ``import meshsim.core.lb.priority``
loads only what that module needs.

>>> from meshsim.core.lb.options import LbOptions
>>> from meshsim.core.lb.least_request import LeastRequest
>>> LeastRequest(3, None, LbOptions(choice_count=3)).choice_count
3
"""
