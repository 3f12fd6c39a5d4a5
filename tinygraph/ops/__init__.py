"""Every built-in primitive by family: forward, rule (VJP) and valid samples, one block each.

Families: :mod:`~tinygraph.ops.elementwise`, :mod:`~tinygraph.ops.reductions`,
:mod:`~tinygraph.ops.shape` (shapes and indexing), :mod:`~tinygraph.ops.linalg`,
:mod:`~tinygraph.ops.functions` (elementwise functions), :mod:`~tinygraph.ops.losses`,
:mod:`~tinygraph.ops.networks`; :mod:`~tinygraph.ops.operators` installs the Tensor operators.

Five families span modules of one job each; the module named after the family is its face: it
defines the ops built on the others, re-exports every name of the family (``from
tinygraph.ops.shape import getitem`` works) and lists them in its ``__all__``. The other modules
never import their face, so imports point one way (``a <- b``: b imports a):

- elementwise: :mod:`~tinygraph.ops.arithmetic` (identity, casts, comparisons, where, arithmetic)
  <- :mod:`~tinygraph.ops.elementwise` (signs, rounding, extrema, clipping, parts);
- shape: :mod:`~tinygraph.ops.reshaping` (broadcasting, reshapes, axes, flip, roll)
  <- :mod:`~tinygraph.ops.indexing` (getitem, take_along_axis, scatter-adds, sort, select)
  <- :mod:`~tinygraph.ops.joins` (concatenate, stack, split, repeat, tile, pad)
  <- :mod:`~tinygraph.ops.shape` (diff, gradient, linspace);
- linalg: :mod:`~tinygraph.ops.products` (matmul, dot, tensordot, einsum)
  <- :mod:`~tinygraph.ops.matrix` (inv, solve, det, slogdet, norm)
  <- :mod:`~tinygraph.ops.linalg` (outer, inner, kron, cross, diagonals, traces, triangles);
- networks: :mod:`~tinygraph.ops.convolution` (conv2d and its adjoints, im2col, col2im)
  <- :mod:`~tinygraph.ops.pooling` <- :mod:`~tinygraph.ops.networks` (dropout);
- losses: :mod:`~tinygraph.ops.softmax` (log_softmax) <- :mod:`~tinygraph.ops.losses` (the
  cross-entropy, its rule and the compiled step's plan of both).

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
    arithmetic,
    convolution,
    dispatch,
    elementwise,
    functions,
    indexing,
    joins,
    linalg,
    losses,
    matrix,
    networks,
    operators,
    pooling,
    products,
    reductions,
    reshaping,
    shape,
)
from tinygraph.ops.arithmetic import *  # noqa: F403
from tinygraph.ops.convolution import *  # noqa: F403
from tinygraph.ops.elementwise import *  # noqa: F403
from tinygraph.ops.functions import *  # noqa: F403
from tinygraph.ops.indexing import *  # noqa: F403
from tinygraph.ops.joins import *  # noqa: F403
from tinygraph.ops.linalg import *  # noqa: F403
from tinygraph.ops.losses import *  # noqa: F403
from tinygraph.ops.matrix import *  # noqa: F403
from tinygraph.ops.networks import *  # noqa: F403
from tinygraph.ops.pooling import *  # noqa: F403
from tinygraph.ops.products import *  # noqa: F403
from tinygraph.ops.reductions import *  # noqa: F403
from tinygraph.ops.reshaping import *  # noqa: F403
from tinygraph.ops.shape import *  # noqa: F403

# The public names of every module (``tinygraph`` re-exports them), each once: a family's face
# lists its modules' names too. The faces come first, in their old order; operators has none.
__all__ = list(dict.fromkeys(
    name for module in (elementwise, functions, reductions, shape, linalg, losses, networks,
                        arithmetic, reshaping, indexing, joins, products, matrix, convolution,
                        pooling)
    for name in module.__all__))
del dispatch, operators  # they install Tensor methods; nothing to export
