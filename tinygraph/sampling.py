"""Drawing valid sample inputs for primitives, for gradient checks and benchmarks.

A primitive's ``sample`` function takes a :class:`Draw` and returns ``(args, params)``. ``Draw``
is a tiny interface with two back ends: :class:`RandomDraw` here (a NumPy generator, no extra
dependency) and ``tinygraph.testing.HypothesisDraw`` (hypothesis chooses the shapes and can shrink
them). The same sample function serves both, so an op's valid domain is written once, next to it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

Shape = tuple[int, ...]
SampleFn = Callable[["Draw"], tuple[tuple, dict]]


class Draw(Protocol):
    """What a sample function may ask for."""

    def shape(self, min_dims: int = 0, max_dims: int = 3, max_side: int = 4) -> Shape: ...

    def broadcastable_shapes(self, n: int, min_dims: int = 0, max_dims: int = 3,
                             max_side: int = 4) -> list[Shape]: ...

    def integers(self, low: int, high: int) -> int: ...

    def choice(self, options: Sequence[Any]) -> Any: ...

    def rng(self) -> np.random.Generator: ...


def _push_away(values: np.ndarray, avoid: Sequence[float], margin: float) -> np.ndarray:
    """Move values closer than ``margin`` to a point in ``avoid`` (a kink) to ``margin`` away."""
    for point in avoid:
        near = np.abs(values - point) < margin
        values[near] = point + np.where(values[near] >= point, margin, -margin)
    return values


def array(draw: Draw, shape: Shape, low: float = -2.0, high: float = 2.0,
          avoid: Sequence[float] = (), margin: float = 0.1) -> np.ndarray:
    """A float64 array of ``shape``, uniform in [low, high], at least ``margin`` from ``avoid``."""
    values = draw.rng().uniform(low, high, size=shape)
    return np.asarray(_push_away(np.atleast_1d(values), avoid, margin)).reshape(shape)


def distinct_array(draw: Draw, shape: Shape, low: float = -2.0, high: float = 2.0,
                   gap: float = 0.05) -> np.ndarray:
    """Values at least ``gap`` apart from each other (no ties, e.g. for max)."""
    size = int(np.prod(shape, dtype=np.int64))
    rng = draw.rng()
    step = max(gap, (high - low) / max(size, 1))
    values = low + step * rng.permutation(size) + rng.uniform(0, step - gap + 1e-12, size)
    return values.reshape(shape)


def axis_for(draw: Draw, ndim: int) -> int | None:
    """None (all axes) or one valid axis, possibly negative."""
    if ndim == 0:
        return None
    return draw.choice([None, *range(-ndim, ndim)])


def elementwise(arity: int, low: float = -2.0, high: float = 2.0,
                avoid: Sequence[float] = ()) -> SampleFn:
    """Sample ``arity`` arrays of mutually broadcastable shapes with values in [low, high]."""

    def sample(draw: Draw) -> tuple[tuple, dict]:
        shapes = draw.broadcastable_shapes(arity)
        return tuple(array(draw, s, low, high, avoid) for s in shapes), {}

    return sample


class RandomDraw:
    """A :class:`Draw` backed by a seeded NumPy generator."""

    def __init__(self, seed: int | np.random.Generator = 0) -> None:
        self._rng = np.random.default_rng(seed)

    def rng(self) -> np.random.Generator:
        return self._rng

    def integers(self, low: int, high: int) -> int:
        """An integer in [low, high] (both ends included)."""
        return int(self._rng.integers(low, high + 1))

    def choice(self, options: Sequence[Any]) -> Any:
        return options[int(self._rng.integers(len(options)))]

    def shape(self, min_dims: int = 0, max_dims: int = 3, max_side: int = 4) -> Shape:
        ndim = self.integers(min_dims, max_dims)
        return tuple(self.integers(1, max_side) for _ in range(ndim))

    def broadcastable_shapes(self, n: int, min_dims: int = 0, max_dims: int = 3,
                             max_side: int = 4) -> list[Shape]:
        base = self.shape(min_dims, max_dims, max_side)
        shapes = []
        for _ in range(n):
            keep = self.integers(0, len(base))  # drop leading dims, then set some sides to 1
            tail = base[len(base) - keep:]
            shape = tuple(side if self._rng.random() < 0.7 else 1 for side in tail)
            shapes.append(shape)
        return shapes


def default_sample(arity: int) -> SampleFn:
    """For smooth ops: ``arity`` broadcastable float arrays with values in [-2, 2]."""
    return elementwise(arity)
