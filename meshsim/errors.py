"""Errors and warnings raised for bad scenarios.

Every problem with user input is a :class:`ScenarioError` that names the path
into the scenario (``services.cart.replicas``) and what is wrong with it.  The
CLI turns these into a one-line message and exit status 2, never a traceback.

>>> str(ScenarioError("services.cart.replicas", "must be an integer >= 1, got 0"))
'services.cart.replicas: must be an integer >= 1, got 0'
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class MeshsimError(Exception):
    """Base class of every error meshsim raises on purpose."""


class ScenarioError(MeshsimError, ValueError):
    """One problem at one place of a scenario.

    ``path`` is a dotted path (``services.cart.endpoints.get.calls[0].service``);
    an empty path means the scenario as a whole.
    """

    def __init__(self, path: str, message: str, suggestion: str | None = None):
        self.path = path
        self.message = message
        self.suggestion = suggestion
        text = f"{path}: {message}" if path else message
        if suggestion:
            text += f" (did you mean '{suggestion}'?)"
        super().__init__(text)


class ScenarioErrors(ScenarioError):
    """Several scenario problems found in one pass; ``errors`` lists them."""

    def __init__(self, errors: list[ScenarioError]):
        self.errors = list(errors)
        first = self.errors[0]
        super().__init__(first.path, first.message, first.suggestion)
        self.args = ("\n".join(str(e) for e in self.errors),)

    def __str__(self) -> str:
        return self.args[0]


class ScenarioWarning(UserWarning):
    """A scenario that runs but probably not as intended (e.g. utilisation >= 1)."""


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """Return the candidate closest to ``name``, or None if nothing is close.

    >>> closest("replcas", ["replicas", "workers", "queue"])
    'replicas'
    """
    cands = [str(c) for c in candidates]
    match = difflib.get_close_matches(str(name), cands, n=1, cutoff=0.5)
    return match[0] if match else None
