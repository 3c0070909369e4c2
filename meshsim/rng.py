"""Random streams: one SeedSequence per run, one Generator per component.

Each component (a workload, an instance's service times, a link) asks for its
stream by a stable name.  The name is turned into a spawn key, so a stream does
not depend on the order in which components are built, and adding a component
does not change the numbers any other component draws.  (Network latencies are
drawn per link class and zone pair, so traffic added on the same zone pair does
shift the latencies other messages on it draw.)  The global ``random``
module and numpy's global state are never used.

>>> streams = RandomStreams(42)
>>> a = streams.generator("svc/cart-0").random()
>>> b = RandomStreams(42).generator("svc/cart-0").random()
>>> a == b
True
"""

from __future__ import annotations

import zlib

import numpy as np


def _name_key(name: str) -> tuple[int, ...]:
    data = name.encode("utf-8")
    # two independent 32-bit words make collisions between names negligible
    return (zlib.crc32(data), zlib.adler32(data), len(data))


class RandomStreams:
    """Named, independent numpy Generators spawned from one root SeedSequence."""

    def __init__(self, seed: int | np.random.SeedSequence | None = 0):
        self.root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
        self._issued: set[str] = set()

    @property
    def seed(self) -> int | None:
        ent = self.root.entropy
        return int(ent) if isinstance(ent, int) else None

    def seed_sequence(self, name: str) -> np.random.SeedSequence:
        """The child SeedSequence for ``name`` (same root and name, same child)."""
        return np.random.SeedSequence(
            entropy=self.root.entropy,
            spawn_key=tuple(self.root.spawn_key) + _name_key(name),
            pool_size=self.root.pool_size,
        )

    def generator(self, name: str) -> np.random.Generator:
        """A fresh Generator for ``name``; each name should be asked for once per run."""
        if name in self._issued:
            raise ValueError(f"random stream {name!r} requested twice; streams must be unique per component")
        self._issued.add(name)
        return np.random.Generator(np.random.PCG64(self.seed_sequence(name)))


class Uniforms:
    """A Generator whose ``uniform(low, high)`` is served from batches.

    Each call returns exactly what ``Generator.uniform(low, high)`` would have
    (``low + (high - low) * u`` with ``u`` the generator's next double), so a
    component that draws only uniforms keeps its numbers, without numpy's
    per-call overhead (about a microsecond) on a hot path.  Other methods pass
    through to the Generator, but mixing them with ``uniform`` changes the
    sequence (the batch has drawn ahead).

    >>> a, b = np.random.default_rng(5), Uniforms(np.random.default_rng(5))
    >>> [float(a.uniform(0, 3)) for _ in range(3)] == [b.uniform(0, 3) for _ in range(3)]
    True
    """

    def __init__(self, gen: np.random.Generator, batch: int = 256):
        self._gen = gen
        self._u = uniform_stream(gen, batch)

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * next(self._u)

    def __getattr__(self, name: str):
        return getattr(self._gen, name)


def uniform_stream(gen: np.random.Generator, batch: int = 4096):
    """Infinite iterator of ``gen``'s U(0, 1) doubles as Python floats, drawn ``batch`` at a time
    (the same numbers as one ``gen.random()`` call each)."""
    while True:
        yield from gen.random(batch).tolist()
