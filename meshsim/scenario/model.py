"""A checked scenario and what can be derived from it without simulating.

The :class:`Scenario` keeps the user's raw mapping (for ``--set`` overrides,
sweeps and saving) and the normalised spec (durations in ms, rates per second,
distributions as objects).  Placement of instances on hosts and the offered
utilisation of every service are computed here, before any run.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Scenario:
    """A validated scenario.  Build one with :func:`meshsim.load_scenario`."""

    raw: dict
    spec: dict
    base_dir: Path | None = None
    origin: str = "<dict>"
    #: run.duration or run.max_time was set by an override (here or in the Scenario this one was made from):
    #: faults after the shortened end are then deliberate, not an error
    end_overridden: bool = False
    _placement: dict[str, str] | None = field(default=None, repr=False)
    _hosts: dict[str, str] | None = field(default=None, repr=False)

    # -- names -------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.spec["name"]

    @property
    def seed(self) -> int:
        return self.spec["seed"]

    @property
    def services(self) -> dict[str, dict]:
        return self.spec["services"]

    @property
    def workloads(self) -> dict[str, dict]:
        return self.spec["workloads"]

    def instances(self) -> list[str]:
        """Instance names, ``service-index``, in a stable order."""
        return [f"{s}-{i}" for s, svc in self.services.items() for i in range(svc["replicas"])]

    def zones(self) -> dict[str, str]:
        """Zone -> region."""
        return {z: r for r, zones in self.spec["topology"]["regions"].items() for z in zones}

    # -- placement ---------------------------------------------------------
    def hosts(self) -> dict[str, str]:
        """Host -> zone, including hosts created for instances and clients."""
        if self._hosts is None:
            self._place()
        return dict(self._hosts)  # type: ignore[arg-type]

    def placement(self) -> dict[str, str]:
        """Instance -> host."""
        if self._placement is None:
            self._place()
        return dict(self._placement)  # type: ignore[arg-type]

    def client_host(self, workload: str) -> str:
        src = self.workloads[workload]["source"]
        if src is not None and src in self.spec["topology"]["hosts"]:
            return src
        return f"client-{workload}"

    def _place(self) -> None:
        topo = self.spec["topology"]
        zones = list(self.zones())
        hosts: dict[str, str] = {h: v["zone"] for h, v in topo["hosts"].items()}
        placement: dict[str, str] = {}
        for sname, svc in self.services.items():
            allowed = svc["zones"] or zones
            n = svc["replicas"]
            if isinstance(svc["placement"], list):
                for i in range(n):
                    placement[f"{sname}-{i}"] = svc["placement"][i % len(svc["placement"])]
                continue
            if topo["hosts"]:
                by_zone = {z: sorted(h for h, hz in topo["hosts"].items() if hz["zone"] == z) for z in allowed}
                by_zone = {z: hs for z, hs in by_zone.items() if hs}
                if svc["placement"] == "pack":
                    first = next(iter(by_zone.values()))[0]
                    for i in range(n):
                        placement[f"{sname}-{i}"] = first
                else:  # spread: round robin over zones, then over hosts within a zone
                    zl = list(by_zone)
                    for i in range(n):
                        z = zl[i % len(zl)]
                        hs = by_zone[z]
                        placement[f"{sname}-{i}"] = hs[(i // len(zl)) % len(hs)]
            else:
                for i in range(n):
                    z = allowed[0] if svc["placement"] == "pack" else allowed[i % len(allowed)]
                    host = f"h-{sname}-{i}"
                    hosts[host] = z
                    placement[f"{sname}-{i}"] = host
        reg = self.spec.get("registry")
        if reg is not None:
            allowed = reg["zones"] or zones
            for i in range(reg["servers"]):
                hosts[f"registry-{i}"] = allowed[i % len(allowed)]
            if self.spec["mesh"]["mode"] != "none":
                hosts["control-plane"] = allowed[0]
        for w, wl in self.workloads.items():
            src = wl["source"]
            if src is not None and src in topo["hosts"]:
                continue
            hosts[f"client-{w}"] = src if src is not None else zones[0]
        self._placement, self._hosts = placement, hosts

    # -- offered load ------------------------------------------------------
    def workload_rate(self, name: str) -> float:
        """Mean arrival rate of a workload in requests per second (closed: an upper bound)."""
        w = self.workloads[name]
        kind = w["type"]
        if kind in ("poisson", "deterministic", "diurnal"):
            return w["rate"]
        if kind == "mmpp":
            on, off = w["on_time"], w["off_time"]
            return (w["rate"] * on + (w["off_rate"] or 0.0) * off) / (on + off)
        if kind == "steps":
            horizon = self.spec["run"]["duration"]
            steps = sorted(w["steps"], key=lambda s: s["at"])
            if horizon is None:
                return max(s["rate"] for s in steps)
            total = 0.0
            for i, s in enumerate(steps):
                end = steps[i + 1]["at"] if i + 1 < len(steps) else horizon
                total += s["rate"] * max(0.0, min(end, horizon) - min(s["at"], horizon))
            return total / horizon
        if kind == "closed":
            think = w["think_time"].mean
            return math.inf if think <= 0 else w["users"] * 1000.0 / think
        if kind == "trace":
            from ..tracefile import read_trace

            times = read_trace(w["file"], w["column"], self.base_dir, f"workloads.{name}.file") / w["speedup"]
            span = float(times.max() - times.min()) if len(times) > 1 else 0.0
            return (len(times) - 1) * 1000.0 / span if span > 0 else 0.0
        raise AssertionError(kind)

    def endpoint_rates(self, include_closed: bool = True) -> dict[tuple[str, str], float]:
        """Mean arrival rate (per second) at each (service, endpoint), from the workloads' rates.

        Closed workloads count with their upper bound users / think time; leave
        them out with ``include_closed=False`` (a closed loop cannot overload).
        """
        rates: dict[tuple[str, str], float] = {}

        def push(service: str, endpoint: str, rate: float) -> None:
            rates[(service, endpoint)] = rates.get((service, endpoint), 0.0) + rate
            for step in self.services[service]["endpoints"][endpoint]["calls"]:
                for call in step["parallel"] if "parallel" in step else [step]:
                    push(call["service"], call["endpoint"], rate * call["probability"])

        for name, w in self.workloads.items():
            if include_closed or w["type"] != "closed":
                push(w["target"], w["endpoint"], self.workload_rate(name))
        return rates

    def utilisation(self, include_closed: bool = True) -> dict[str, float]:
        """Offered utilisation per service: arrival rate x mean service time / (replicas x workers).

        For blocking services this counts local processing only, so it is a
        lower bound on how busy the workers are.
        """
        util = {s: 0.0 for s in self.services}
        for (s, e), rate in self.endpoint_rates(include_closed).items():
            svc = self.services[s]
            mean_ms = svc["endpoints"][e]["service_time"].mean
            util[s] += rate * mean_ms / 1000.0 / (svc["replicas"] * svc["workers"])
        return util

    # -- convenience -------------------------------------------------------
    def with_overrides(self, overrides: dict[str, Any] | list[str]) -> Scenario:
        """A new checked scenario with ``{path: value}`` overrides applied."""
        from .load import load_scenario

        return load_scenario(self, overrides)

    def to_dict(self) -> dict:
        """The raw mapping (what a YAML file of this scenario would hold)."""
        return copy.deepcopy(self.raw)
