"""Every built-in primitive by family: forward, rule (VJP) and valid samples, one block each.

Families: :mod:`~tinygraph.ops.elementwise`, :mod:`~tinygraph.ops.reductions`,
:mod:`~tinygraph.ops.shape` (shapes and indexing), :mod:`~tinygraph.ops.linalg`,
:mod:`~tinygraph.ops.functions` (elementwise functions), :mod:`~tinygraph.ops.losses`,
:mod:`~tinygraph.ops.networks`; :mod:`~tinygraph.ops.operators` installs the Tensor operators.

Rules receive ``grad_out`` (the cotangent of the output), ``out`` (the forward result), the inputs
and the op's parameters, and return one cotangent per input (``None`` where an input has none); a
rule given per input returns its input's cotangent alone. A cotangent may have the broadcast
shape of the output: the reverse pass sums it back to the input's shape, in one place.

Every rule is written in tinygraph ops (``where``, ``greater``, ``matmul``, ...) and operators that
arrays and Tensors share, never in NumPy calls on its inputs: on arrays (first order) it runs as
fast NumPy, on Tensors (a recorded pass) it is recorded, so each rule is differentiable again to
any order. Masks (``greater(x, 0)``) are non-differentiable ops: constants to the derivative, yet
recorded in a trace so a replay recomputes them. Shape arithmetic (``np.shape``, ``np.ndim``) is
free to use: shapes are fixed for a node.
"""

from tinygraph.ops import (
    dispatch,
    elementwise,
    functions,
    linalg,
    losses,
    networks,
    operators,
    reductions,
    shape,
)
from tinygraph.ops.elementwise import *  # noqa: F403
from tinygraph.ops.functions import *  # noqa: F403
from tinygraph.ops.linalg import *  # noqa: F403
from tinygraph.ops.losses import *  # noqa: F403
from tinygraph.ops.networks import *  # noqa: F403
from tinygraph.ops.reductions import *  # noqa: F403
from tinygraph.ops.shape import *  # noqa: F403

# The public names of every family (``tinygraph`` re-exports them); operators has none.
__all__ = [name for family in (elementwise, functions, reductions, shape, linalg, losses, networks)
           for name in family.__all__]
del dispatch, operators  # they install Tensor methods; nothing to export
