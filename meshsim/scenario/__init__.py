"""Scenarios: the schema of every key, loading and checking, the builder."""

from .builder import ScenarioBuilder
from .load import load_scenario, set_path
from .model import Scenario

__all__ = ["Scenario", "ScenarioBuilder", "load_scenario", "set_path"]
