"""Building blocks for users' own gradient tests: hypothesis strategies and assertion helpers.

- strategies: :func:`float_arrays` (given or drawn shapes and dtypes), :func:`broadcastable_shapes`
  (shapes that ``np.broadcast_shapes`` accepts), :func:`op_inputs` (valid ``(args, params)`` for a
  primitive, from its own ``sample`` function);
- checks: :func:`check_op` (one input) and :func:`assert_op_gradients` (many drawn inputs at one
  derivative order, the failure shrunk and reported as ``python -m tinygraph.gradcheck``
  reports it).

Needs hypothesis (``pip install tinygraph[test]``); the rest of tinygraph does not import this.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinygraph.gradcheck import CheckResult, GradientCheckError, check_op, check_op_examples
from tinygraph.primitive import Primitive
from tinygraph.sampling import Shape

__all__ = ["HypothesisDraw", "assert_op_gradients", "broadcastable_shapes", "check_op",
           "float_arrays", "op_inputs"]


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


def assert_op_gradients(op: Primitive | str, examples: int = 50, seed: int = 0, *,
                        shrink: bool = True, order: int = 1, **tolerances: Any) -> CheckResult:
    """Assert that ``op``'s backward rule matches central differences on drawn inputs.

    For ``examples`` inputs from the op's ``sample`` function (the same ones as
    ``python -m tinygraph.gradcheck --op NAME --seed SEED``, whatever the order),
    :func:`check_op` compares the VJP of random output weights ``w`` with the central
    differences of ``L = sum(op(*args) * w)``. With ``order=2`` it then compares the gradient of
    ``<grad L, v>`` for a random ``v`` (the rule differentiated again: ``H v``) with central
    differences of it, so a rule whose second derivative is lost or wrong fails too (as does
    one that cannot be differentiated again, with its HigherOrderError in the message); higher
    orders go on the same way. ``tolerances`` are ``check_grads`` keywords (``atol``, ``rtol``,
    ``eps``, ``mode``). On a failure raises :class:`~tinygraph.GradientCheckError` (an
    AssertionError) whose message is the command's row and its reproduction report: the seed,
    the order, the input, the input shrunk by hypothesis, the errors and tolerances. Returns the
    row otherwise.
    """
    __tracebackhide__ = True  # pytest shows the caller's line, not this one
    result = check_op_examples(op, examples, seed, order=order, shrink=shrink, **tolerances)
    if not result.passed:
        error = GradientCheckError(result.report())
        error.mismatch = result.failure.mismatch if result.failure else None
        raise error
    return result
