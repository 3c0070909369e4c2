"""The example scenarios and data files shipped inside the package.

They live in ``meshsim/data`` (the repository's ``data/`` is a link to it), so
``pip install meshsim`` alone can run every notebook and doc example, from any
working folder.

>>> from meshsim.examples import example, examples
>>> example("mmc").name
'mmc.yaml'
>>> "tandem" in examples()
True
>>> example("etcd/failover.csv").is_file()
True
"""

from __future__ import annotations

from pathlib import Path

from .errors import ScenarioError, closest

#: Where the shipped data lives: scenarios/, sweeps/, traces/, etcd/, raft/ and sample files.
DATA_DIR: Path = Path(__file__).resolve().parent / "data"
SCENARIOS: Path = DATA_DIR / "scenarios"


def _purpose(path: Path) -> str:
    """The first sentence of the comment a scenario file opens with."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    text = " ".join(lines)
    end = text.find(". ")
    return (text[: end + 1] if end >= 0 else text).strip()


def examples() -> dict[str, str]:
    """The shipped example scenarios: ``{name: one-line purpose}``, sorted by name.

    >>> examples()["mmc"]
    'A single M/M/c station: Poisson arrivals at 40/s to one instance with 5 workers and exponential service of mean 100 ms (utilisation 0.8).'
    """
    return {p.stem: _purpose(p) for p in sorted(SCENARIOS.glob("*.yaml"))}


def example(name: str) -> Path:
    """The path of a shipped example: a scenario by name (``"mmc"``, ``"three_tier.yaml"``), a sweep
    (``"sweeps/three_tier_load"``) or any data file (``"etcd/failover.csv"``).

    An unknown name is a :class:`~meshsim.errors.ScenarioError` that lists the examples and the closest one.

    >>> example("three_tier").parent.name
    'scenarios'
    >>> example("sweeps/three_tier_load").suffix
    '.yaml'
    """
    if not isinstance(name, str) or not name:
        raise ScenarioError(str(name), "an example name is a non-empty string, e.g. meshsim.example('mmc')")
    rel = Path(name)
    candidates = [DATA_DIR / rel, SCENARIOS / rel]
    if not rel.suffix:
        candidates += [SCENARIOS / rel.with_suffix(".yaml"), DATA_DIR / rel.with_suffix(".yaml")]
    for c in candidates:
        if c.is_file():
            return c
    names = list(examples())
    hint = closest(rel.stem, names)
    msg = f"no such example; the example scenarios are {', '.join(names)}"
    if hint:
        msg += f" (did you mean {hint!r}?)"
    raise ScenarioError(name, msg)
