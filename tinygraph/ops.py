"""Every built-in primitive: forward, backward rule (VJP) and valid sample inputs, one block each.

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

from __future__ import annotations

from typing import Any

import numpy as np

from tinygraph.primitive import describe, primitive
from tinygraph.sampling import Draw, array, axis_for, distinct_array, elementwise
from tinygraph.state import STATE
from tinygraph.tensor import Tensor


def _normalize_axes(axis: int | tuple[int, ...] | None, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    return tuple(int(a) % ndim if ndim else 0 for a in axes)


def _with_kept_dims(value: Any, shape: tuple[int, ...], axis: Any, keepdims: bool) -> Any:
    """Reinsert the reduced axes as size-1 dims, so a reduction's result broadcasts to ``shape``."""
    if keepdims or not shape:
        return value
    axes = _normalize_axes(axis, len(shape))
    return value.reshape(tuple(1 if i in axes else side for i, side in enumerate(shape)))


# ---------------------------------------------------------------------------------------------
# What rules are made of: identity, casts, reductions to a shape, masks, selection
# ---------------------------------------------------------------------------------------------

@primitive(sample=elementwise(1))
def identity(x):
    """x itself (no copy). A nested transform's variables are identity nodes of the outer ones."""
    return x


identity.defvjp(lambda grad_out, out, x: grad_out)  # d x/dx = 1


# Not registered: the registry's gradient checks compare with finite differences, and this op's
# derivative is 0 by definition, not by the math (tests/test_autodiff.py checks it).
@primitive(sample=elementwise(1), differentiable=False, register=False)
def stop_gradient(x):
    """x as a constant to every derivative (``Tensor.detach`` that a trace still replays)."""
    return x


def _cast_sample(draw: Draw) -> tuple[tuple, dict]:
    # float64 only: the checks difference in float64, and a float32 round trip would be the
    # rounding error, not the rule, that they measure
    return (array(draw, draw.shape()),), {"dtype": np.dtype(np.float64)}


@primitive(sample=_cast_sample, params=("dtype",))
def cast(x, dtype):
    """x converted to ``dtype`` (a no-op when it has it already)."""
    return np.asarray(x).astype(dtype, copy=False)


cast.defvjp(lambda grad_out, out, x, dtype: cast(grad_out, np.result_type(x)))  # dx/dx = 1


def _unbroadcast_forward(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    extra = np.ndim(x) - len(shape)
    x_shape = np.shape(x)
    if extra < 0 or any(c != s and s != 1 for c, s in zip(x_shape[extra:], shape)):
        raise ValueError(f"shape {x_shape} cannot be summed down to {tuple(shape)}")
    stretched = tuple(extra + i for i, side in enumerate(shape)
                      if side == 1 and x_shape[extra + i] != 1)
    axes = tuple(range(extra)) + stretched
    if axes:
        x = x.sum(axis=axes, keepdims=True)
    return x.reshape(shape) if extra else x


def _unbroadcast_sample(draw: Draw) -> tuple[tuple, dict]:
    small, large = draw.broadcastable_shapes(2)
    return (array(draw, np.broadcast_shapes(small, large)),), {"shape": tuple(small)}


@primitive(sample=_unbroadcast_sample, params=("shape",))
def unbroadcast(x, shape):
    """Sum x over the axes broadcasting added or stretched, down to ``shape`` (undo broadcasting).

    The reverse pass applies it to every cotangent whose shape differs from its input's.
    """
    return _unbroadcast_forward(x, shape)


unbroadcast.defvjp(lambda grad_out, out, x, shape: broadcast_to(grad_out, np.shape(x)))


def _plan_unbroadcast(params: dict, shapes: list[tuple[int, ...]]) -> Any:
    """For a compiled program, whose shapes are fixed: the axes planned once. When only leading
    axes are summed (a bias's gradient), one reduction writes the result directly."""
    shape, (x_shape,) = tuple(params["shape"]), shapes
    extra = len(x_shape) - len(shape)
    if extra <= 0 or any(side == 1 and x_shape[extra + i] != 1 for i, side in enumerate(shape)):
        return None
    axes = tuple(range(extra))

    def forward(x):
        return np.add.reduce(x, axis=axes)

    def into(out, x):
        return np.add.reduce(x, axis=axes, out=out)

    return forward, into


unbroadcast.plan = _plan_unbroadcast


def _comparison(name: str, ufunc: np.ufunc, symbol: str) -> Any:
    def forward(a, b):
        return ufunc(a, b)

    forward.__name__ = name
    forward.__doc__ = f"a {symbol} b, elementwise (a boolean mask: derivative 0)."
    sample = elementwise(2)  # uniform values: ties, where differences would flip it, never occur
    return primitive(forward, name=name, sample=sample, explain=_broadcast_explain,
                     forward_into=_ufunc_into(ufunc), differentiable=False)


def _ufunc_into(ufunc: np.ufunc) -> Any:
    """``forward_into`` for an op that is one NumPy ufunc: the ufunc with ``out=``.

    It carries the ufunc (``.ufunc``), so that compiled programs call it directly and may let it
    write over an input that is not needed afterwards (elementwise, that is safe).
    """
    def into(out, *inputs):
        return ufunc(*inputs, out=out)

    into.ufunc = ufunc
    return into


def _broadcast_explain(*inputs: Any) -> str:
    shapes = " and ".join(describe(np.asarray(v)) for v in inputs)
    return f"shapes {shapes} do not broadcast"


greater = _comparison("greater", np.greater, ">")
greater_equal = _comparison("greater_equal", np.greater_equal, ">=")
less = _comparison("less", np.less, "<")
less_equal = _comparison("less_equal", np.less_equal, "<=")
equal = _comparison("equal", np.equal, "==")
not_equal = _comparison("not_equal", np.not_equal, "!=")


def _where_sample(draw: Draw) -> tuple[tuple, dict]:
    shape_c, shape_a, shape_b = draw.broadcastable_shapes(3)
    condition = draw.rng().random(shape_c) < 0.5
    return (np.asarray(condition), array(draw, shape_a), array(draw, shape_b)), {}


@primitive(sample=_where_sample, explain=_broadcast_explain)
def where(condition, a, b):
    """a where ``condition`` holds, else b, broadcasting (``condition`` has no derivative)."""
    return np.where(condition, a, b)


where.defvjp(None,
             lambda grad_out, out, condition, a, b: where(condition, grad_out, 0),  # 1 where chosen
             lambda grad_out, out, condition, a, b: where(condition, 0, grad_out))


# ---------------------------------------------------------------------------------------------
# Elementwise arithmetic
# ---------------------------------------------------------------------------------------------

@primitive(sample=elementwise(2), explain=_broadcast_explain, forward_into=_ufunc_into(np.add))
def add(a, b):
    """a + b, broadcasting."""
    return np.add(a, b)


add.defvjp(lambda grad_out, out, a, b: grad_out,   # d(a+b)/da = 1
           lambda grad_out, out, a, b: grad_out)   # d(a+b)/db = 1


@primitive(sample=elementwise(2), explain=_broadcast_explain,
           forward_into=_ufunc_into(np.subtract))
def sub(a, b):
    """a - b, broadcasting."""
    return np.subtract(a, b)


sub.defvjp(lambda grad_out, out, a, b: grad_out,   # d(a-b)/da = 1
           lambda grad_out, out, a, b: -grad_out)  # d(a-b)/db = -1


@primitive(sample=elementwise(2), explain=_broadcast_explain,
           forward_into=_ufunc_into(np.multiply))
def mul(a, b):
    """a * b, broadcasting."""
    return np.multiply(a, b)


mul.defvjp(lambda grad_out, out, a, b: grad_out * b,   # d(ab)/da = b
           lambda grad_out, out, a, b: grad_out * a)   # d(ab)/db = a


def _div_sample(draw: Draw) -> tuple[tuple, dict]:
    shape_a, shape_b = draw.broadcastable_shapes(2)
    return (array(draw, shape_a), array(draw, shape_b, avoid=(0.0,), margin=0.5)), {}


@primitive(sample=_div_sample, explain=_broadcast_explain, forward_into=_ufunc_into(np.divide))
def div(a, b):
    """a / b, broadcasting."""
    return np.divide(a, b)


div.defvjp(lambda grad_out, out, a, b: grad_out / b,         # d(a/b)/da = 1/b
           lambda grad_out, out, a, b: -grad_out * out / b)  # d(a/b)/db = -a/b^2 = -out/b


@primitive(sample=elementwise(1), forward_into=_ufunc_into(np.negative))
def neg(x):
    """-x."""
    return np.negative(x)


neg.defvjp(lambda grad_out, out, x: (-grad_out,))


def _power_sample(draw: Draw) -> tuple[tuple, dict]:
    shape_x, shape_p = draw.broadcastable_shapes(2)
    return (array(draw, shape_x, 0.5, 2.0), array(draw, shape_p, -2.0, 2.0)), {}


def _power_exponent_vjp(grad_out, out, x, p):
    # d(x^p)/dp = x^p log x for x > 0 (taken as 0 elsewhere: there x^p is not smooth in p)
    positive = greater(x, 0)
    return grad_out * out * log(where(positive, x, 1)) * positive


@primitive(sample=_power_sample, explain=_broadcast_explain)
def power(x, p):
    """x ** p, broadcasting."""
    return np.power(x, p)


def _power_base_vjp(grad_out, out, x, p):
    """d(x^p)/dx = p x^(p-1), taken as 0 where p = 0 (x^0 = 1 is constant, even at x = 0)."""
    if not isinstance(p, Tensor) and np.ndim(p) == 0:  # a constant exponent, as in x ** 2
        return grad_out * (0 * x) if p == 0 else grad_out * p * x ** (p - 1)
    zero = equal(p, 0)
    # x replaced by 1 where p = 0, so that no 0 ** -1 appears even in the unchosen branch
    # (its inf would turn into NaN in the next derivative)
    return grad_out * where(zero, 0, p * where(zero, 1, x) ** (p - 1))


power.defvjp(_power_base_vjp, _power_exponent_vjp)


# ---------------------------------------------------------------------------------------------
# Elementwise functions
# ---------------------------------------------------------------------------------------------

@primitive(sample=elementwise(1), forward_into=_ufunc_into(np.exp))
def exp(x):
    """e ** x."""
    return np.exp(x)


exp.defvjp(lambda grad_out, out, x: (grad_out * out,))  # d/dx e^x = e^x


@primitive(sample=elementwise(1, 0.2, 3.0), forward_into=_ufunc_into(np.log))
def log(x):
    """Natural logarithm."""
    return np.log(x)


log.defvjp(lambda grad_out, out, x: (grad_out / x,))  # d/dx log x = 1/x


def _sigmoid_into(out, x):
    """1 / (1 + e^-x) = e^min(x, 0) / (1 + e^-|x|): exact and warning-free for any |x|.

    Neither exponent is ever positive, so nothing overflows; no np.where (several times
    slower than the whole formula on large arrays). The denominator is built in ``out`` and
    the numerator in one temporary: a full-batch step holds one extra array, not four.
    """
    x = np.asarray(x)
    if out is None:
        out = np.empty(x.shape, np.result_type(x, np.float16))
    numerator = np.minimum(x, 0, out=np.empty_like(out))
    np.exp(numerator, out=numerator)  # 1 for x >= 0, e^x otherwise
    np.abs(x, out=out)
    np.negative(out, out=out)
    np.exp(out, out=out)
    np.add(out, 1, out=out)
    return np.divide(numerator, out, out=out)


@primitive(sample=elementwise(1, -6.0, 6.0), forward_into=_sigmoid_into)
def sigmoid(x):
    """1 / (1 + e^-x), exact and warning-free for any |x| (see _sigmoid_into)."""
    return _sigmoid_into(None, x)


sigmoid.defvjp(lambda grad_out, out, x: (grad_out * out * (1 - out),))  # s' = s (1 - s)


@primitive(sample=elementwise(1, -3.0, 3.0), forward_into=_ufunc_into(np.tanh))
def tanh(x):
    """Hyperbolic tangent."""
    return np.tanh(x)


tanh.defvjp(lambda grad_out, out, x: (grad_out * (1 - out * out),))  # tanh' = 1 - tanh^2


@primitive(sample=elementwise(1, avoid=(0.0,)))
def relu(x):
    """max(x, 0)."""
    return np.maximum(x, 0)


relu.defvjp(lambda grad_out, out, x: (grad_out * greater(x, 0),))  # 1 where x > 0, else 0


# ---------------------------------------------------------------------------------------------
# Reductions
# ---------------------------------------------------------------------------------------------

def _reduction_sample(draw: Draw, distinct: bool = False) -> tuple[tuple, dict]:
    shape = draw.shape()
    x = distinct_array(draw, shape) if distinct else array(draw, shape)
    return (x,), {"axis": axis_for(draw, len(shape)), "keepdims": draw.choice([False, True])}


@primitive(name="sum", sample=_reduction_sample)
def reduce_sum(x, axis=None, keepdims=False):
    """Sum over ``axis`` (all axes when None)."""
    return np.sum(x, axis=axis, keepdims=keepdims)


@reduce_sum.defvjp
def sum_vjp(grad_out, out, x, axis=None, keepdims=False):
    """d(sum x)/dx = 1: the cotangent is spread back over the summed axes."""
    return (broadcast_to(_with_kept_dims(grad_out, np.shape(x), axis, keepdims), np.shape(x)),)


@primitive(name="max", sample=lambda draw: _reduction_sample(draw, distinct=True))
def reduce_max(x, axis=None, keepdims=False):
    """Maximum over ``axis`` (all axes when None)."""
    return np.max(x, axis=axis, keepdims=keepdims)


@reduce_max.defvjp
def max_vjp(grad_out, out, x, axis=None, keepdims=False):
    """d(max x)/dx = 1 at the maximum; ties share the cotangent equally."""
    shape = np.shape(x)
    is_max = equal(x, _with_kept_dims(out, shape, axis, keepdims))
    ties = reduce_sum(cast(is_max, out.dtype), axis=_normalize_axes(axis, len(shape)),
                      keepdims=True)
    return (_with_kept_dims(grad_out, shape, axis, keepdims) * is_max / ties,)


# ---------------------------------------------------------------------------------------------
# Shapes and indexing
# ---------------------------------------------------------------------------------------------

def _reshape_sample(draw: Draw) -> tuple[tuple, dict]:
    shape = draw.shape(max_dims=3)
    size = int(np.prod(shape, dtype=np.int64))
    new_shape = draw.choice([(size,), (1, size), (size, 1), (-1,), ()]) if size == 1 else \
        draw.choice([(size,), (1, size), (size, 1), (-1,)])
    return (array(draw, shape),), {"shape": new_shape}


@primitive(sample=_reshape_sample, params=("shape",))
def reshape(x, shape):
    """x with a new shape of the same size (a view; -1 infers one side)."""
    return np.reshape(x, shape)


reshape.defvjp(lambda grad_out, out, x, shape: (grad_out.reshape(np.shape(x)),))


def _transpose_sample(draw: Draw) -> tuple[tuple, dict]:
    shape = draw.shape()
    axes = draw.choice([None, tuple(draw.rng().permutation(len(shape)).tolist())])
    return (array(draw, shape),), {"axes": axes}


@primitive(sample=_transpose_sample)
def transpose(x, axes=None):
    """Permute the axes (reverse them when ``axes`` is None)."""
    return np.transpose(x, axes)


@transpose.defvjp
def transpose_vjp(grad_out, out, x, axes=None):
    """The cotangent goes back through the inverse permutation."""
    if axes is None:
        return (transpose(grad_out),)
    inverse = tuple(np.argsort(_normalize_axes(axes, np.ndim(x))).tolist())  # axes may be < 0
    return (transpose(grad_out, axes=inverse),)


def _broadcast_to_sample(draw: Draw) -> tuple[tuple, dict]:
    small, large = draw.broadcastable_shapes(2)
    target = np.broadcast_shapes(small, large)
    return (array(draw, small),), {"shape": target}


@primitive(sample=_broadcast_to_sample, params=("shape",))
def broadcast_to(x, shape):
    """x repeated along new or size-1 axes to ``shape`` (a view)."""
    return np.broadcast_to(x, shape)


broadcast_to.defvjp(lambda grad_out, out, x, shape: unbroadcast(grad_out, np.shape(x)))


def _is_basic_index(index: Any) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(p, (int, np.integer, slice)) or p is None or p is Ellipsis
               for p in parts)


def _index_sample(draw: Draw) -> tuple[Any, tuple[int, ...]]:
    """An index into an array of a drawn shape: int, slice, repeated int array, or a mix."""
    shape = draw.shape(min_dims=1)
    first = shape[0]
    kind = draw.choice(["int", "slice", "array", "mixed"])
    rows = draw.rng().integers(0, first, size=draw.integers(1, 5))  # repeats are likely
    if kind == "int":
        index: Any = draw.integers(-first, first - 1)
    elif kind == "slice":
        index = slice(draw.integers(0, first - 1), None, draw.choice([1, 2]))
    elif kind == "array":
        index = rows
    else:
        index = (rows, slice(None)) if len(shape) > 1 else (rows,)
    return index, shape


def _getitem_sample(draw: Draw) -> tuple[tuple, dict]:
    index, shape = _index_sample(draw)
    return (array(draw, shape),), {"index": index}


@primitive(name="getitem", sample=_getitem_sample, params=("index",))
def getitem(x, index):
    """x[index]: basic (a view) or integer-array indexing."""
    return x[index]


getitem.defvjp(lambda grad_out, out, x, index:  # scatter-add: repeated indices sum
               (scatter_add(grad_out, index=index, shape=np.shape(x)),))


def _scatter_add_sample(draw: Draw) -> tuple[tuple, dict]:
    index, shape = _index_sample(draw)
    values_shape = np.zeros(shape)[index].shape
    return (array(draw, values_shape),), {"index": index, "shape": shape}


@primitive(sample=_scatter_add_sample, params=("index", "shape"))
def scatter_add(values, index, shape):
    """zeros(shape) with ``values`` added at ``index`` (repeated positions add up)."""
    result = np.zeros(shape, dtype=np.result_type(values, np.float16))
    if _is_basic_index(index):
        result[index] = values  # basic indices never repeat a position
    else:
        np.add.at(result, index, values)
    return result


scatter_add.defvjp(lambda grad_out, out, values, index, shape: (grad_out[index],))


# ---------------------------------------------------------------------------------------------
# Linear algebra
# ---------------------------------------------------------------------------------------------

def _matmul_sample(draw: Draw) -> tuple[tuple, dict]:
    m, k, n = draw.integers(1, 4), draw.integers(1, 4), draw.integers(1, 4)
    case = draw.choice(["matrix", "vector-matrix", "matrix-vector", "vector", "batched"])
    if case == "matrix":
        shapes = (m, k), (k, n)
    elif case == "vector-matrix":
        shapes = (k,), draw.choice([(k, n), (2, k, n)])
    elif case == "matrix-vector":
        shapes = draw.choice([(m, k), (2, m, k)]), (k,)
    elif case == "vector":
        shapes = (k,), (k,)
    else:
        batch_a, batch_b = draw.broadcastable_shapes(2, min_dims=1, max_dims=2, max_side=3)
        shapes = (*batch_a, m, k), (*batch_b, k, n)
    return tuple(array(draw, s) for s in shapes), {}


def _matmul_explain(a: Any, b: Any) -> str:
    a, b = np.asarray(a), np.asarray(b)
    where = f"{describe(a)} @ {describe(b)}"
    if a.ndim == 0 or b.ndim == 0:
        return f"{where}: both operands need at least one dimension (use mul for scalars)"
    inner_a, inner_b = a.shape[-1], b.shape[-2] if b.ndim > 1 else b.shape[0]
    if inner_a != inner_b:
        return f"{where}: inner dimensions {inner_a} and {inner_b} differ"
    return f"{where}: batch dimensions {a.shape[:-2]} and {b.shape[:-2]} do not broadcast"


def _matmul_into(out, a, b):
    if type(a) is np.ndarray and type(b) is np.ndarray and a.ndim == 2 and b.ndim == 2:
        return np.dot(a, b, out=out)
    return np.matmul(a, b, out=out)


@primitive(sample=_matmul_sample, explain=_matmul_explain, forward_into=_matmul_into)
def matmul(a, b):
    """a @ b as np.matmul: 1-D, 2-D, or stacks of matrices with broadcast batch dims."""
    if type(a) is np.ndarray and type(b) is np.ndarray and a.ndim == 2 and b.ndim == 2:
        # np.dot goes to BLAS for thin shapes (the outer product of a batch-1 backward pass)
        # where np.matmul may loop in C: 5x faster there, the same bits elsewhere
        return np.dot(a, b)
    return np.matmul(a, b)


def _swap_last(x: Any) -> Any:
    """x with its last two axes swapped (the matrix transpose of a stack)."""
    axes = list(range(np.ndim(x)))
    axes[-2:] = axes[-1], axes[-2]
    return transpose(x, axes=tuple(axes))


def _column(x: Any) -> Any:
    """x[..., None]: a trailing axis of size 1."""
    return x.reshape((*np.shape(x), 1))


def _matmul_vjp_a(grad_out, out, a, b):
    """d(a @ b)/da: grad_out @ b^T, with 1-D operands promoted and squeezed as np.matmul does."""
    a_ndim, b_ndim = np.ndim(a), np.ndim(b)
    if b_ndim == 1:
        return grad_out * b if a_ndim == 1 else _column(grad_out) * b
    if a_ndim == 1:
        product = matmul(b, _column(grad_out))
        return product.reshape(np.shape(product)[:-1])
    if b_ndim == 2:
        return matmul(grad_out, b.T)
    return matmul(grad_out, _swap_last(b))


def _matmul_vjp_b(grad_out, out, a, b):
    """d(a @ b)/db: a^T @ grad_out, with 1-D operands promoted and squeezed as np.matmul does."""
    a_ndim, b_ndim = np.ndim(a), np.ndim(b)
    if a_ndim == 1:
        if b_ndim == 1:
            return grad_out * a
        row = grad_out.reshape((*np.shape(grad_out)[:-1], 1, np.shape(grad_out)[-1]))
        return _column(a) * row
    if b_ndim == 1:
        product = matmul(_swap_last(a), _column(grad_out))
        return product.reshape(np.shape(product)[:-1])
    if a_ndim == 2:
        return matmul(a.T, grad_out)
    return matmul(_swap_last(a), grad_out)


matmul.defvjp(_matmul_vjp_a, _matmul_vjp_b)


# ---------------------------------------------------------------------------------------------
# Softmax family (fused for numerical stability)
# ---------------------------------------------------------------------------------------------

def _log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    # the ufuncs' own reductions: np.max / np.sum's bits, without their Python wrappers
    shifted = x - np.maximum.reduce(x, axis=axis, keepdims=True)  # exp never overflows
    return shifted - np.log(np.add.reduce(np.exp(shifted), axis=axis, keepdims=True))


def _log_softmax_sample(draw: Draw) -> tuple[tuple, dict]:
    shape = draw.shape(min_dims=1)
    return (array(draw, shape, -3.0, 3.0),), {"axis": draw.integers(-len(shape), len(shape) - 1)}


@primitive(sample=_log_softmax_sample)
def log_softmax(x, axis=-1):
    """log(softmax(x)) = x - log(sum(exp(x))) along ``axis``, stable for any magnitude."""
    return _log_softmax(x, axis)


@log_softmax.defvjp
def log_softmax_vjp(grad_out, out, x, axis=-1):
    """d/dx_j (x_i - lse(x)) = [i = j] - softmax_j: grad_out - softmax * sum(grad_out)."""
    return (grad_out - exp(out) * grad_out.sum(axis=axis, keepdims=True),)


def _class_ids(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Check labels of shape (N,) as class ids in [0, C); return them as integers."""
    count, classes = logits.shape
    if labels.shape[0] != count:
        raise ValueError(f"got {labels.shape[0]} labels for {count} rows of logits {logits.shape}")
    if labels.dtype.kind == "f":
        whole = np.equal(labels, np.round(labels))
        if not whole.all():
            row = int(np.argmin(whole))
            raise ValueError(f"label {labels[row]} at row {row} is not an integer class id")
    elif labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be integer class ids, got dtype {labels.dtype}")
    if count == 0:
        return labels.astype(np.intp)
    low, high = labels.min(), labels.max()
    if low < 0:
        row = int(np.argmin(labels))
        raise ValueError(f"label {labels[row]} at row {row} is negative")
    if high >= classes:
        row = int(np.argmax(labels))
        raise ValueError(f"label {labels[row]} at row {row} is out of range for {classes} classes")
    return labels.astype(np.intp, copy=False)


def _check_cross_entropy(logits: np.ndarray, labels: Any) -> np.ndarray:
    if np.ndim(logits) != 2:
        raise ValueError(f"logits must be 2-D (N, C), got shape {np.shape(logits)}")
    labels = np.asarray(labels)
    if labels.ndim == 1:
        return _class_ids(logits, labels)
    if labels.ndim == 2:
        if labels.shape != logits.shape:
            raise ValueError(f"targets of shape {labels.shape} do not match logits {logits.shape}")
        if labels.dtype.kind not in "fiub":
            raise ValueError(f"targets must be numbers, got dtype {labels.dtype}")
        return labels
    raise ValueError(
        f"labels must be class ids of shape (N,) or targets of shape (N, C), got {labels.shape}"
    )


def _cross_entropy_sample(draw: Draw) -> tuple[tuple, dict]:
    count, classes = draw.integers(1, 4), draw.integers(2, 5)
    logits = array(draw, (count, classes), -3.0, 3.0)
    if draw.choice([True, False]):
        labels: Any = draw.rng().integers(0, classes, size=count)
    else:
        labels = draw.rng().dirichlet(np.ones(classes), size=count)
    return (logits, labels), {}


@primitive(sample=_cross_entropy_sample)
def softmax_cross_entropy(logits, labels):
    """mean_n -sum_c target[n, c] log softmax(logits[n])_c, with labels as ids or targets."""
    labels = _check_cross_entropy(logits, labels)
    return _cross_entropy_value(logits, labels, _log_softmax(logits, axis=1))


def _cross_entropy_value(logits: np.ndarray, labels: np.ndarray,
                         log_probs: np.ndarray) -> np.ndarray:
    count = logits.shape[0]
    if labels.ndim == 1:
        total = log_probs[np.arange(count), labels].sum()
    else:
        total = np.sum(labels * log_probs)
    return np.asarray(-total / max(count, 1), dtype=logits.dtype)


def _softmax_minus(log_probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    softmax = np.exp(log_probs)
    if labels.ndim == 1:
        ids = labels if labels.dtype.kind in "iu" else labels.astype(np.intp)
        softmax[np.arange(len(ids)), ids] -= 1  # a fresh array: in place is safe
        return softmax
    return softmax * labels.sum(axis=1, keepdims=True) - labels


def _cross_entropy_and_rule(logits: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """softmax_cross_entropy and softmax_minus_targets of the same inputs, sharing one
    log-softmax (same bits as the two ops apart): a compiled step computes them together."""
    checked = _check_cross_entropy(logits, labels)
    log_probs = _log_softmax(logits, axis=1)
    return (_cross_entropy_value(logits, checked, log_probs),
            _softmax_minus(log_probs, np.asarray(labels)))


# Not registered: an internal op, applied only to inputs softmax_cross_entropy has checked (so
# it checks nothing itself); its rules are checked through softmax_cross_entropy's second and
# third derivatives, which are made of them.
@primitive(sample=_cross_entropy_sample, register=False)
def softmax_minus_targets(logits, labels):
    """softmax(logits) * sum(target) - target along axis 1 (= softmax - target for ids).

    N times the cross-entropy's gradient: the cross-entropy's rule is this one op, which keeps
    the first-order pass as fast as a hand-fused rule, and has rules of its own for higher
    orders. ``labels`` are class ids (N,) or targets (N, C), as for softmax_cross_entropy.
    """
    return _softmax_minus(_log_softmax(logits, axis=1), np.asarray(labels))


def _softmax_minus_targets_vjp_logits(grad_out, out, logits, labels):
    """d(s_i T - t_i)/dz_j = T s_i ([i = j] - s_j), T = sum(t): T s (g - sum(g s))."""
    softmax = exp(log_softmax(logits, axis=1))
    if np.ndim(labels) != 1:
        grad_out = grad_out * reduce_sum(labels, axis=1, keepdims=True)
    return softmax * (grad_out - reduce_sum(grad_out * softmax, axis=1, keepdims=True))


def _softmax_minus_targets_vjp_labels(grad_out, out, logits, labels):
    """d(s_i T - t_i)/dt_j = s_i - [i = j]: sum(g s) - g; class ids have no derivative."""
    if np.ndim(labels) == 1:
        return None
    return reduce_sum(grad_out * exp(log_softmax(logits, axis=1)), axis=1, keepdims=True) \
        - grad_out


softmax_minus_targets.defvjp(_softmax_minus_targets_vjp_logits,
                             _softmax_minus_targets_vjp_labels)
# Ops that a compiled program may compute in one call with this one, on the same inputs.
softmax_cross_entropy.fusions = {softmax_minus_targets: _cross_entropy_and_rule}


def _cross_entropy_vjp_logits(grad_out, out, logits, labels):
    """d loss/d logits = (softmax(logits) * sum(target) - target) / N (= softmax - target)."""
    return softmax_minus_targets(logits, labels) * (grad_out / np.shape(logits)[0])


def _cross_entropy_vjp_labels(grad_out, out, logits, labels):
    """d loss/d target = -log softmax(logits) / N; class ids have no derivative."""
    if np.ndim(labels) == 1:
        return None
    return log_softmax(logits, axis=1) * (-grad_out / np.shape(logits)[0])


softmax_cross_entropy.defvjp(_cross_entropy_vjp_logits, _cross_entropy_vjp_labels)


# ---------------------------------------------------------------------------------------------
# Tensor operators: each one calls the primitive above
# ---------------------------------------------------------------------------------------------

def _shape_args(args: tuple) -> Any:
    """Accept both ``t.reshape(2, 3)`` and ``t.reshape((2, 3))``."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        return tuple(args[0])
    return args


def _plain_index(index: Any) -> Any:
    if isinstance(index, Tensor):  # Tensors hold integers as float64: index with them exactly
        data = index.data
        if data.dtype.kind == "f":
            if not np.array_equal(data, np.round(data)):
                raise IndexError(f"getitem: index values must be integers, got {data.ravel()[:4]}")
            return data.astype(np.intp)
        return data
    if isinstance(index, tuple):
        return tuple(_plain_index(part) for part in index)
    if isinstance(index, list):
        return np.asarray(index)
    return index


_plain_detach = Tensor.detach


def _detach(self: Tensor) -> Tensor:
    if STATE.tracing:  # a recorded constant: the replay recomputes it from the trace's inputs
        return stop_gradient(self)
    return _plain_detach(self)


def _install_operators() -> None:
    from tinygraph import composites

    operators = {
        "__add__": lambda self, other: add(self, other),
        "__radd__": lambda self, other: add(other, self),
        "__sub__": lambda self, other: sub(self, other),
        "__rsub__": lambda self, other: sub(other, self),
        "__mul__": lambda self, other: mul(self, other),
        "__rmul__": lambda self, other: mul(other, self),
        "__truediv__": lambda self, other: div(self, other),
        "__rtruediv__": lambda self, other: div(other, self),
        "__matmul__": lambda self, other: matmul(self, other),
        "__rmatmul__": lambda self, other: matmul(other, self),
        "__pow__": lambda self, other: power(self, other),
        "__rpow__": lambda self, other: power(other, self),
        "__neg__": lambda self: neg(self),
        "__pos__": lambda self: self,
        "__getitem__": lambda self, index: getitem(self, index=_plain_index(index)),
        "__lt__": lambda self, other: less(self, other),
        "__le__": lambda self, other: less_equal(self, other),
        "__gt__": lambda self, other: greater(self, other),
        "__ge__": lambda self, other: greater_equal(self, other),
        "detach": _detach,
        "T": property(lambda self: transpose(self)),
        "sum": lambda self, axis=None, keepdims=False: reduce_sum(self, axis=axis,
                                                                   keepdims=keepdims),
        "mean": lambda self, axis=None, keepdims=False: composites.mean(self, axis, keepdims),
        "max": lambda self, axis=None, keepdims=False: reduce_max(self, axis=axis,
                                                                   keepdims=keepdims),
        "reshape": lambda self, *shape: reshape(self, shape=_shape_args(shape)),
        "transpose": lambda self, *axes: transpose(self, axes=_shape_args(axes) or None),
        "exp": lambda self: exp(self),
        "log": lambda self: log(self),
        "sigmoid": lambda self: sigmoid(self),
        "tanh": lambda self: tanh(self),
        "relu": lambda self: relu(self),
    }
    for name, function in operators.items():
        setattr(Tensor, name, function)


_install_operators()
