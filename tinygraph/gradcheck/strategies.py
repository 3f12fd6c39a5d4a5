"""Hypothesis strategies for gradient checks: op inputs drawn from an op's own ``sample``, float
arrays, broadcastable shapes.

The suite's shrinking (:mod:`tinygraph.gradcheck.suite`) draws with :func:`op_inputs`; users get
every name here from :mod:`tinygraph.testing`. Needs hypothesis, which nothing else in the
gradient checks imports: import this module only where hypothesis may be missing under a guard.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinygraph.primitive import Primitive
from tinygraph.sampling import Shape

__all__ = ["HypothesisDraw", "broadcastable_shapes", "float_arrays", "op_inputs"]


class HypothesisDraw:
    """A :class:`tinygraph.sampling.Draw` whose choices hypothesis makes (and can shrink).

    Shapes, integers and choices are drawn from strategies; array values come from a NumPy
    generator seeded by a drawn integer, so they stay inside the op's valid domain.
    """

    def __init__(self, draw: Callable[[st.SearchStrategy], Any]) -> None:
        self._draw = draw
        self._rng: np.random.Generator | None = None

    def rng(self) -> np.random.Generator:
        if self._rng is None:
            self._rng = np.random.default_rng(self._draw(st.integers(0, 2**32 - 1)))
        return self._rng

    def integers(self, low: int, high: int) -> int:
        return self._draw(st.integers(low, high))

    def choice(self, options: Sequence[Any]) -> Any:
        return self._draw(st.sampled_from(list(options)))

    def shape(self, min_dims: int = 0, max_dims: int = 3, max_side: int = 4) -> Shape:
        return self._draw(hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=1,
                                           max_side=max_side))

    def broadcastable_shapes(self, n: int, min_dims: int = 0, max_dims: int = 3,
                             max_side: int = 4) -> list[Shape]:
        shapes = self._draw(hnp.mutually_broadcastable_shapes(
            num_shapes=n, min_dims=min_dims, max_dims=max_dims, min_side=1, max_side=max_side))
        return list(shapes.input_shapes)


@st.composite
def op_inputs(draw: Callable[[st.SearchStrategy], Any], op: Primitive) -> tuple[tuple, dict]:
    """Valid ``(args, params)`` for ``op``, from the op's own sample function."""
    return op.sample(HypothesisDraw(draw))


def broadcastable_shapes(n: int = 2, min_dims: int = 0, max_dims: int = 3,
                         max_side: int = 4) -> st.SearchStrategy[list[Shape]]:
    """``n`` shapes that broadcast together (size-1 and missing leading dims included)."""
    return hnp.mutually_broadcastable_shapes(
        num_shapes=n, min_dims=min_dims, max_dims=max_dims, min_side=1, max_side=max_side
    ).map(lambda shapes: list(shapes.input_shapes))


def float_arrays(shape: Shape | st.SearchStrategy[Shape] | None = None,
                 dtype: Any = np.float64, low: float = -2.0,
                 high: float = 2.0) -> st.SearchStrategy[np.ndarray]:
    """Float arrays of a given (or drawn) shape and dtype with finite values in [low, high].

    ``dtype`` is a float dtype or a strategy of them (e.g. ``hnp.floating_dtypes(sizes=(32,
    64))``); ``shape`` a shape or a strategy of shapes (default: 0 to 3 dims, sides 1 to 4).
    """
    if shape is None:
        shape = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)
    if isinstance(dtype, st.SearchStrategy):
        return dtype.flatmap(lambda drawn: float_arrays(shape, drawn, low, high))
    elements = st.floats(low, high, allow_nan=False, allow_infinity=False,
                         width=np.dtype(dtype).itemsize * 8)
    return hnp.arrays(dtype, shape, elements=elements)
