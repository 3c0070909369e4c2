"""meshsim — discrete-event simulation of service meshes.

Simulated time is in milliseconds.  The one way in::

    import meshsim
    scenario = meshsim.load_scenario(meshsim.example("tandem"))
    result = meshsim.run(scenario, seed=1)
    result.summary["latency_ms"]["mean"]
    result.requests          # pandas DataFrame, one row per request
"""

from .api import run
from .compare import Comparison, compare
from .examples import example, examples
from .errors import MeshsimError, ScenarioError, ScenarioErrors, ScenarioWarning
from .result import Result
from .scenario.load import load_scenario
from .scenario.model import Scenario
from .scenario.builder import ScenarioBuilder
from .sweep import load_results, sweep

__version__ = "0.1.0"

__all__ = [
    "Comparison",
    "MeshsimError",
    "Result",
    "Scenario",
    "ScenarioBuilder",
    "ScenarioError",
    "ScenarioErrors",
    "ScenarioWarning",
    "load_results",
    "load_scenario",
    "run",
    "sweep",
    "__version__",
    "compare",
    "example",
    "examples",
]
