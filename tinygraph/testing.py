"""Building blocks for users' own gradient tests: hypothesis strategies and assertion helpers.

- strategies: :func:`float_arrays` (given or drawn shapes and dtypes), :func:`broadcastable_shapes`
  (shapes that ``np.broadcast_shapes`` accepts), :func:`op_inputs` (valid ``(args, params)`` for a
  primitive, from its own ``sample`` function); they live in :mod:`tinygraph.gradcheck.strategies`,
  where the suite's shrinking uses them too, and are re-exported here;
- checks: :func:`check_op` (one input) and :func:`assert_op_gradients` (many drawn inputs at one
  derivative order, the failure shrunk and reported as ``python -m tinygraph.gradcheck``
  reports it).

Needs hypothesis (``pip install tinygraph[test]``); the rest of tinygraph does not import this.
"""

from __future__ import annotations

from typing import Any

from tinygraph.gradcheck import CheckResult, GradientCheckError, check_op, check_op_examples
from tinygraph.gradcheck.strategies import (
    HypothesisDraw,
    broadcastable_shapes,
    float_arrays,
    op_inputs,
)
from tinygraph.primitive import Primitive

__all__ = ["HypothesisDraw", "assert_op_gradients", "broadcastable_shapes", "check_op",
           "float_arrays", "op_inputs"]


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
