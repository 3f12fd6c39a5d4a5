"""Linear algebra: products (matmul, dot, tensordot, einsum, ...), diagonals and triangles,
inverses, determinants and norms, with NumPy's names and semantics.

Primitives (a rule each): matmul, dot, tensordot, einsum, diagonal, inv, solve, det, logabsdet,
norm. Composites of them (no rule of their own): outer, inner, matrix_trace, diag, triu, tril,
kron, cross, slogdet. ``inv solve det slogdet norm`` are NumPy's ``numpy.linalg`` names: they
are public as ``tg.linalg.X`` (:mod:`tinygraph.linalg`), not in this family's ``__all__``.
"""

from __future__ import annotations

import string
from typing import Any, NamedTuple

import numpy as np

from tinygraph.ops._common import normalize_axes, with_kept_dims
from tinygraph.ops.elementwise import cast, equal, greater, less, mul, power, where
from tinygraph.ops.reductions import reduce_max, reduce_sum
from tinygraph.ops.shape import reshape, scatter_add, transpose
from tinygraph.primitive import describe, primitive, user_site
from tinygraph.sampling import Draw, array, distinct_array
from tinygraph.tensor import Tensor

__all__ = [
    "matmul",
    "dot",
    "tensordot",
    "einsum",
    "outer",
    "inner",
    "matrix_trace",  # np.trace (tg.trace is the tracer)
    "diagonal",
    "diag",
    "triu",
    "tril",
    "kron",
    "cross",
]


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
# Helpers: inputs of composites, axes, errors
# ---------------------------------------------------------------------------------------------

def _as_input(x: Any) -> Any:
    """A Tensor as it is; anything else (lists, numbers) as a NumPy array."""
    return x if isinstance(x, Tensor) else np.asarray(x)


def _dtype(x: Any) -> np.dtype:
    return x.dtype if isinstance(x, (Tensor, np.ndarray, np.generic)) else np.asarray(x).dtype


def _refuse(op: str, reason: str) -> ValueError:
    """The one-line error of a composite: the op, the reason with shapes, the user's line."""
    return ValueError(f"{op}: {reason} (at {user_site()})")


def _permuted(x: Any, order: Any) -> Any:
    """transpose(x, order), skipped when ``order`` keeps every axis in place."""
    order = tuple(int(axis) for axis in order)
    return x if order == tuple(range(len(order))) else transpose(x, axes=order)


def _moved(x: Any, source: int, destination: int) -> Any:
    """x with axis ``source`` moved to ``destination`` (np.moveaxis; both normalized)."""
    axes = list(range(np.ndim(x)))
    axes.insert(destination, axes.pop(source))
    return _permuted(x, axes)


def _matrices(x: Any) -> Any:
    """x[..., None, None]: a scalar per matrix, broadcast against a stack of matrices."""
    return x.reshape((*np.shape(x), 1, 1))


# ---------------------------------------------------------------------------------------------
# dot and tensordot
# ---------------------------------------------------------------------------------------------

def _dot_sample(draw: Draw) -> tuple[tuple, dict]:
    a_ndim, b_ndim, k = draw.integers(0, 3), draw.integers(0, 3), draw.integers(1, 3)
    a_shape = (*[draw.integers(1, 3) for _ in range(a_ndim - 1)], k) if a_ndim else ()
    if b_ndim < 2:
        b_shape = (k,) * b_ndim
    else:
        b_shape = (*[draw.integers(1, 3) for _ in range(b_ndim - 2)], k, draw.integers(1, 3))
    return (array(draw, a_shape), array(draw, b_shape)), {}


def _dot_explain(a: Any, b: Any) -> str:
    a_shape, b_shape = np.shape(a), np.shape(b)
    which = "second-to-last" if len(b_shape) > 1 else "only"
    return (f"shapes {a_shape} and {b_shape} are not aligned: the last axis of a "
            f"({a_shape[-1]}) and the {which} axis of b ({b_shape[-min(len(b_shape), 2)]}) differ")


@primitive(sample=_dot_sample, explain=_dot_explain)
def dot(a, b):
    """np.dot: a * b for a scalar; else the sum over the last axis of a and the second-to-last
    axis of b (its only axis when 1-D): dot(a, b)[i, j, k, m] = sum_n a[i, j, n] b[k, n, m]."""
    return np.dot(a, b)


def _dot_contracted_axis(b_ndim: int) -> int:
    return b_ndim - 2 if b_ndim > 1 else 0


def _dot_vjp_a(grad_out, out, a, b):
    """d dot/da: grad_out contracted with b over b's free axes (a plain product for scalars)."""
    a_ndim, b_ndim = np.ndim(a), np.ndim(b)
    if a_ndim == 0 or b_ndim == 0:
        return grad_out * b
    contracted = _dot_contracted_axis(b_ndim)
    b_free = tuple(axis for axis in range(b_ndim) if axis != contracted)
    return tensordot(grad_out, b, axes=(tuple(range(a_ndim - 1, np.ndim(grad_out))), b_free))


def _dot_vjp_b(grad_out, out, a, b):
    """d dot/db: a contracted with grad_out over a's leading axes, the summed axis put back."""
    a_ndim, b_ndim = np.ndim(a), np.ndim(b)
    if a_ndim == 0 or b_ndim == 0:
        return grad_out * a
    lead = tuple(range(a_ndim - 1))
    return _moved(tensordot(a, grad_out, axes=(lead, lead)), 0, _dot_contracted_axis(b_ndim))


dot.defvjp(_dot_vjp_a, _dot_vjp_b)


def _tensordot_axes(axes: Any, a_ndim: int, b_ndim: int) -> tuple[tuple[int, ...], ...]:
    """(axes of a, axes of b) summed over, normalized to non-negative tuples."""
    if isinstance(axes, (int, np.integer)):
        return tuple(range(a_ndim - int(axes), a_ndim)), tuple(range(int(axes)))
    axes_a, axes_b = ((part,) if isinstance(part, (int, np.integer)) else tuple(part)
                      for part in axes)
    return (tuple(int(axis) % a_ndim for axis in axes_a),
            tuple(int(axis) % b_ndim for axis in axes_b))


def _tensordot_sample(draw: Draw) -> tuple[tuple, dict]:
    summed = [draw.integers(1, 3) for _ in range(draw.integers(0, 2))]
    a_free = [draw.integers(1, 3) for _ in range(draw.integers(0, 2))]
    b_free = [draw.integers(1, 3) for _ in range(draw.integers(0, 2))]
    if draw.choice([True, False]):  # axes=n: the last n of a against the first n of b
        shapes = (*a_free, *summed), (*summed, *b_free)
        return tuple(array(draw, shape) for shape in shapes), {"axes": len(summed)}
    rng = draw.rng()
    a_order = rng.permutation(len(a_free) + len(summed)).tolist()  # where each axis goes
    b_order = rng.permutation(len(b_free) + len(summed)).tolist()
    a_shape = np.empty(len(a_order), int)
    a_shape[a_order] = summed + a_free
    b_shape = np.empty(len(b_order), int)
    b_shape[b_order] = summed + b_free
    axes = (tuple(a_order[:len(summed)]),
            tuple(axis - len(b_order) for axis in b_order[:len(summed)]))  # negative for b
    return (array(draw, tuple(a_shape.tolist())), array(draw, tuple(b_shape.tolist()))), {
        "axes": axes}


def _tensordot_explain(a: Any, b: Any, axes: Any = 2) -> str:
    a_shape, b_shape = np.shape(a), np.shape(b)
    where = f"shapes {a_shape} and {b_shape} with axes={axes}"
    try:
        axes_a, axes_b = _tensordot_axes(axes, len(a_shape), len(b_shape))
    except (TypeError, ValueError, ZeroDivisionError):
        return f"{where}: axes must be an int or a pair of axis sequences of either operand"
    if len(axes_a) != len(axes_b):
        return f"{where}: {len(axes_a)} axes of a against {len(axes_b)} axes of b"
    sides_a = tuple(a_shape[axis] for axis in axes_a)
    sides_b = tuple(b_shape[axis] for axis in axes_b)
    return f"{where}: the summed sides {sides_a} and {sides_b} differ"


@primitive(sample=_tensordot_sample, explain=_tensordot_explain)
def tensordot(a, b, axes=2):
    """Sum of a * b over the paired axes[0] of a and axes[1] of b (an int n: a's last n against
    b's first n); the result's axes are a's free axes, then b's."""
    return np.tensordot(a, b, axes=axes)


def _tensordot_vjp_a(grad_out, out, a, b, axes=2):
    """d/da: grad_out contracted with b over b's free axes; then a's axes put back in order."""
    axes_a, axes_b = _tensordot_axes(axes, np.ndim(a), np.ndim(b))
    a_free = [axis for axis in range(np.ndim(a)) if axis not in axes_a]
    b_free = tuple(axis for axis in range(np.ndim(b)) if axis not in axes_b)
    product = tensordot(grad_out, b, axes=(tuple(range(len(a_free), np.ndim(grad_out))), b_free))
    # product's axes: a's free axes, then a's summed axes in the order b holds their partners
    held = a_free + [axes_a[i] for i in np.argsort(axes_b)]
    return _permuted(product, np.argsort(held))


def _tensordot_vjp_b(grad_out, out, a, b, axes=2):
    """d/db: a contracted with grad_out over a's free axes; then b's axes put back in order."""
    axes_a, axes_b = _tensordot_axes(axes, np.ndim(a), np.ndim(b))
    a_free = tuple(axis for axis in range(np.ndim(a)) if axis not in axes_a)
    b_free = [axis for axis in range(np.ndim(b)) if axis not in axes_b]
    product = tensordot(a, grad_out, axes=(a_free, tuple(range(len(a_free)))))
    held = [axes_b[i] for i in np.argsort(axes_a)] + b_free
    return _permuted(product, np.argsort(held))


tensordot.defvjp(_tensordot_vjp_a, _tensordot_vjp_b)


# ---------------------------------------------------------------------------------------------
# einsum
# ---------------------------------------------------------------------------------------------

_SUBLIST_LABELS = string.ascii_uppercase + string.ascii_lowercase  # NumPy's ints 0..51


def _einsum_specs(subscripts: str, shapes: list[tuple[int, ...]]) -> tuple[list[str], str]:
    """Each operand's labels and the output's, explicit, with '...' spelled out in unused
    letters (right-aligned, as broadcasting aligns them)."""
    text = subscripts.replace(" ", "")
    inputs, arrow, output = text.partition("->")
    specs = inputs.split(",")
    unused = [c for c in string.ascii_letters if c not in text]
    counts = [len(shape) - len(spec.replace("...", "")) for spec, shape in zip(specs, shapes)
              if "..." in spec]
    broadcast = "".join(unused[:max(counts, default=0)])
    labels = [spec.replace("...", broadcast[len(broadcast) - len(shape)
                                            + len(spec.replace("...", "")):])
              for spec, shape in zip(specs, shapes)]
    if arrow:
        return labels, output.replace("...", broadcast)
    once = sorted(c for c in set(inputs) if c.isalpha() and inputs.count(c) == 1)
    return labels, broadcast + "".join(once)


def _einsum_sample(draw: Draw) -> tuple[tuple, dict]:
    subscripts = draw.choice(_EINSUM_CASES)
    sides = {label: draw.integers(1, 3) for label in set(subscripts) if label.isalpha()}
    specs = subscripts.partition("->")[0].split(",")
    broadcast = iter(draw.broadcastable_shapes(len(specs), max_dims=2, max_side=3))
    operands = []
    for spec in specs:
        leading = next(broadcast) if "..." in spec else ()
        operands.append(array(draw, (*leading, *(sides[c] for c in spec.replace("...", "")))))
    return tuple(operands), {"subscripts": subscripts}


_EINSUM_CASES = (
    "ij,jk->ik", "ij,jk", "i,i", "i,i->", "i,j->ij", "ij->ji", "ij->", "ij->j", "ij", "ii->i",
    "ii", "iij->j", "ii,i->i", "bij,bjk->bik", "...ij,...jk->...ik", "...i,...i->...", "...i",
    "ij,ij->ij", "i,ij,j->", "ijk,jl->kil", "i,->i", "ba,ab->", "Ab,bC->CA", "i...->...",
)


@primitive(name="einsum", sample=_einsum_sample)
def _einsum(*operands, subscripts, optimize=False):
    """Einstein summation (np.einsum): products of the operands over their labelled axes,
    summed over every label the output lacks."""
    return np.einsum(subscripts, *operands, optimize=optimize)


@_einsum.defvjp
def _einsum_vjp(grad_out, out, *operands, subscripts, optimize=False):
    """d/d(operand i): the einsum of grad_out with the other operands, onto operand i's labels.

    A label that operand i repeats ('ii') is tied to a fresh label by an identity matrix (the
    cotangent lives on the diagonal); a label no other operand or the output has is broadcast by
    a vector of ones (it was summed over in operand i alone).
    """
    shapes = [np.shape(x) for x in operands]
    specs, output = _einsum_specs(subscripts, shapes)
    unused = [c for c in string.ascii_letters if c not in "".join(specs) + output]
    dtype = grad_out.dtype
    recorded = isinstance(grad_out, Tensor)
    cotangents = []
    for i, (spec, shape) in enumerate(zip(specs, shapes)):
        if recorded and not isinstance(operands[i], Tensor):
            cotangents.append(None)  # a constant of a recorded pass: no cotangent needed
            continue
        others = [*operands[:i], *operands[i + 1:], grad_out]
        labels = [*specs[:i], *specs[i + 1:], output]
        elsewhere = set("".join(labels))
        fresh_labels = iter(unused)
        target = ""
        for position, (label, side) in enumerate(zip(spec, shape)):
            if label in spec[:position]:  # a repeat: fresh label, tied to the first by I
                fresh = next(fresh_labels)
                others.append(np.eye(side, dtype=dtype))
                labels.append(label + fresh)
                target += fresh
                continue
            if label not in elsewhere and spec.count(label) == 1:
                others.append(np.ones(side, dtype=dtype))
                labels.append(label)
            target += label
        cotangents.append(_einsum(*others, subscripts=",".join(labels) + "->" + target,
                                  optimize=optimize))
    return tuple(cotangents)


def _from_sublists(arguments: tuple) -> tuple[str, tuple]:
    """np.einsum's interleaved form (op, [0, 1], op, [1, 2], [0, 2]) as subscripts, operands."""
    def labels(sublist: Any) -> str:
        return "".join("..." if item is Ellipsis else _SUBLIST_LABELS[int(item)]
                       for item in sublist)

    operands, sublists = arguments[0:-1:2], arguments[1::2]
    subscripts = ",".join(labels(sublist) for sublist in sublists)
    if len(arguments) % 2:
        subscripts += "->" + labels(arguments[-1])
    return subscripts, tuple(operands)


def einsum(subscripts: Any, *operands: Any, optimize: bool | str = False) -> Any:
    """Einstein summation as np.einsum: ``einsum('ij,jk->ik', a, b)`` is ``a @ b``,
    ``einsum('ii', a)`` the trace; implicit output, '...' and the interleaved form too."""
    if not isinstance(subscripts, str):
        subscripts, operands = _from_sublists((subscripts, *operands))
    return _einsum(*operands, subscripts=subscripts, optimize=optimize)


# ---------------------------------------------------------------------------------------------
# Products built from the primitives
# ---------------------------------------------------------------------------------------------

def outer(a: Any, b: Any) -> Any:
    """np.outer: out[i, j] = a[i] * b[j] over both inputs flattened."""
    return mul(reshape(_as_input(a), shape=(-1, 1)), reshape(_as_input(b), shape=(1, -1)))


def inner(a: Any, b: Any) -> Any:
    """np.inner: the sum of products over the last axes (a plain product for a scalar)."""
    a, b = _as_input(a), _as_input(b)
    if np.ndim(a) == 0 or np.ndim(b) == 0:
        return mul(a, b)
    if np.shape(a)[-1] != np.shape(b)[-1]:
        raise _refuse("inner", f"shapes {np.shape(a)} and {np.shape(b)}: the last axes "
                               f"{np.shape(a)[-1]} and {np.shape(b)[-1]} differ")
    return tensordot(a, b, axes=((-1,), (-1,)))


def kron(a: Any, b: Any) -> Any:
    """np.kron: the block matrix of blocks a[i, j] * b (the shorter shape padded with 1s)."""
    a, b = _as_input(a), _as_input(b)
    ndim = max(np.ndim(a), np.ndim(b))
    a_shape = (1,) * (ndim - np.ndim(a)) + np.shape(a)
    b_shape = (1,) * (ndim - np.ndim(b)) + np.shape(b)
    spread_a = reshape(a, shape=tuple(side for pair in zip(a_shape, (1,) * ndim) for side in pair))
    spread_b = reshape(b, shape=tuple(side for pair in zip((1,) * ndim, b_shape) for side in pair))
    return reshape(mul(spread_a, spread_b), shape=tuple(p * q for p, q in zip(a_shape, b_shape)))


def _levi_civita(dtype: np.dtype) -> np.ndarray:
    """epsilon[i, j, k]: +1 for even permutations of (0, 1, 2), -1 for odd ones, else 0."""
    epsilon = np.zeros((3, 3, 3), dtype=dtype)
    for i, j, k in ((0, 1, 2), (1, 2, 0), (2, 0, 1)):
        epsilon[i, j, k], epsilon[i, k, j] = 1, -1
    return epsilon


def cross(a: Any, b: Any, axisa: int = -1, axisb: int = -1, axisc: int = -1,
          axis: int | None = None) -> Any:
    """np.cross of 3-vectors: c_i = epsilon_ijk a_j b_k, vectors along axisa, axisb, axisc
    (``axis`` sets all three), other axes broadcast."""
    a, b = _as_input(a), _as_input(b)
    if axis is not None:
        axisa = axisb = axisc = axis
    if np.ndim(a) == 0 or np.ndim(b) == 0:
        raise _refuse("cross", f"shapes {np.shape(a)} and {np.shape(b)}: need vectors")
    a = _moved(a, axisa % np.ndim(a), np.ndim(a) - 1)
    b = _moved(b, axisb % np.ndim(b), np.ndim(b) - 1)
    if np.shape(a)[-1] != 3 or np.shape(b)[-1] != 3:
        raise _refuse("cross", f"vectors of {np.shape(a)[-1]} and {np.shape(b)[-1]} components "
                               "(only 3-vectors are supported)")
    product = einsum("ijk,...j,...k->...i", _levi_civita(np.result_type(_dtype(a), _dtype(b))),
                     a, b)
    return _moved(product, np.ndim(product) - 1, axisc % np.ndim(product))


# ---------------------------------------------------------------------------------------------
# Diagonals, traces and triangles
# ---------------------------------------------------------------------------------------------

def _diagonal_index(shape: tuple[int, ...], offset: int, axis1: int,
                    axis2: int) -> tuple[tuple, int]:
    """The integer index that picks the diagonal, and the axis where indexing puts it."""
    first, second = axis1 % len(shape), axis2 % len(shape)
    length = max(0, min(shape[first] + min(offset, 0), shape[second] - max(offset, 0)))
    steps = np.arange(length)
    index: list[Any] = [slice(None)] * len(shape)
    index[first], index[second] = steps - min(offset, 0), steps + max(offset, 0)
    # NumPy puts the axis of two adjacent integer indices where they were, otherwise first
    return tuple(index), min(first, second) if abs(first - second) == 1 else 0


def _diagonal_sample(draw: Draw) -> tuple[tuple, dict]:
    shape = draw.shape(min_dims=2, max_dims=3)
    first, second = draw.rng().choice(len(shape), size=2, replace=False).tolist()
    return (array(draw, shape),), {"offset": draw.integers(-2, 2), "axis1": first,
                                   "axis2": second - draw.choice([0, len(shape)])}


def _diagonal_explain(x: Any, offset: int = 0, axis1: int = 0, axis2: int = 1) -> str:
    return f"shape {np.shape(x)} with axis1={axis1}, axis2={axis2}: need two distinct axes"


@primitive(sample=_diagonal_sample, explain=_diagonal_explain)
def diagonal(x, offset=0, axis1=0, axis2=1):
    """x[..., i, i + offset] over axes axis1 and axis2, as a last axis (np.diagonal)."""
    return np.diagonal(x, offset=offset, axis1=axis1, axis2=axis2)


@diagonal.defvjp
def diagonal_vjp(grad_out, out, x, offset=0, axis1=0, axis2=1):
    """The cotangent goes back onto the diagonal; zero elsewhere."""
    index, position = _diagonal_index(np.shape(x), offset, axis1, axis2)
    return scatter_add(_moved(grad_out, np.ndim(grad_out) - 1, position), index=index,
                       shape=np.shape(x))


def matrix_trace(a: Any, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Any:
    """np.trace: the sum of diagonal(a, offset, axis1, axis2) over its last axis."""
    a = _as_input(a)
    if np.ndim(a) < 2:
        raise _refuse("trace", f"shape {np.shape(a)}: needs at least 2 dimensions")
    return reduce_sum(diagonal(a, offset=offset, axis1=axis1, axis2=axis2), axis=-1)


def diag(v: Any, k: int = 0) -> Any:
    """np.diag: a 1-D v laid on the k-th diagonal of a square matrix; a 2-D v's k-th diagonal."""
    v = _as_input(v)
    shape = np.shape(v)
    if len(shape) == 2:
        return diagonal(v, offset=k)
    if len(shape) != 1:
        raise _refuse("diag", f"shape {shape}: the input must be 1-D or 2-D")
    side = shape[0] + abs(k)
    steps = np.arange(shape[0])
    return scatter_add(v, index=(steps - min(k, 0), steps + max(k, 0)), shape=(side, side))


def _triangle(name: str, m: Any, keep_lower: bool, k: int) -> Any:
    m = _as_input(m)
    shape = np.shape(m)
    if not shape:
        raise _refuse(name, "a 0-d input has no diagonal")
    lower = np.tri(*shape[-2:], k=k if keep_lower else k - 1, dtype=bool)
    return where(lower, m, 0) if keep_lower else where(lower, 0, m)


def triu(m: Any, k: int = 0) -> Any:
    """np.triu: m with the entries below its k-th diagonal (last two axes) set to 0."""
    return _triangle("triu", m, keep_lower=False, k=k)


def tril(m: Any, k: int = 0) -> Any:
    """np.tril: m with the entries above its k-th diagonal (last two axes) set to 0."""
    return _triangle("tril", m, keep_lower=True, k=k)


# ---------------------------------------------------------------------------------------------
# numpy.linalg: inv, solve, det, slogdet, norm (public as tg.linalg.X)
# ---------------------------------------------------------------------------------------------

def _square_shape(draw: Draw) -> tuple[int, ...]:
    side = draw.integers(1, 3)
    return (*draw.choice([(), (), (2,)]), side, side)


def _well_conditioned(draw: Draw, shape: tuple[int, ...]) -> np.ndarray:
    """I + noise, |noise| <= 0.25, rows flipped in sign at random: for sides <= 3 every
    singular value is >= 1 - |noise|_F >= 0.25, and determinants take both signs."""
    noise = array(draw, shape, -0.25, 0.25)
    signs = draw.rng().choice([-1.0, 1.0], size=(*shape[:-1], 1))
    return (np.eye(shape[-1]) + noise) * signs


def _square_sample(draw: Draw) -> tuple[tuple, dict]:
    return (_well_conditioned(draw, _square_shape(draw)),), {}


def _not_square(shape: tuple[int, ...]) -> str | None:
    """Why ``shape`` is not a (stack of) square matrices, or None."""
    if len(shape) < 2:
        return f"shape {shape} is not a matrix (it needs at least 2 dimensions)"
    if shape[-1] != shape[-2]:
        return f"shape {shape} is not square (its last two axes are {shape[-2]} and {shape[-1]})"
    return None


def _square_explain(a: Any) -> str:
    return _not_square(np.shape(a)) or f"singular matrix of shape {np.shape(a)}"


@primitive(name="inv", sample=_square_sample, explain=_square_explain)
def inv(a):
    """The matrix inverse a^-1 (of each matrix in a stack)."""
    return np.linalg.inv(a)


# d(a^-1) = -a^-1 da a^-1, so the cotangent is -a^-T grad_out a^-T
inv.defvjp(lambda grad_out, out, a: -matmul(_swap_last(out), matmul(grad_out, _swap_last(out))))


def _solve_sample(draw: Draw) -> tuple[tuple, dict]:
    shape = _square_shape(draw)
    side = shape[-1]
    b_shape = draw.choice([(side,), (*shape[:-2], side, draw.integers(1, 2)), (side, 2)])
    return (_well_conditioned(draw, shape), array(draw, b_shape)), {}


def _solve_explain(a: Any, b: Any) -> str:
    a_shape, b_shape = np.shape(a), np.shape(b)
    reason = _not_square(a_shape)
    if reason:
        return f"a: {reason}"
    if not b_shape:
        return f"a {a_shape} and b {b_shape}: b must be a vector or a (stack of) matrices"
    rows = b_shape[0] if len(b_shape) == 1 else b_shape[-2]
    if rows != a_shape[-1]:
        part = "length" if len(b_shape) == 1 else "row count"
        return f"a {a_shape} and b {b_shape}: b's {part} {rows} is not a's side {a_shape[-1]}"
    try:
        np.broadcast_shapes(a_shape[:-2], b_shape[:-2] if len(b_shape) > 1 else ())
    except ValueError:
        return f"a {a_shape} and b {b_shape}: the batch dimensions do not broadcast"
    return f"singular matrix a of shape {a_shape} (b {b_shape})"


@primitive(name="solve", sample=_solve_sample, explain=_solve_explain)
def solve(a, b):
    """x with a x = b: b a vector (M,) or a (stack of) matrices (..., M, K), as np.linalg.solve."""
    return np.linalg.solve(a, b)


@solve.defvjp
def solve_vjp(grad_out, out, a, b):
    """x = a^-1 b: db = a^-T grad_out, da = -db x^T (a vector b as a one-column matrix)."""
    vector = np.ndim(b) == 1
    grad, x = (grad_out.reshape((*np.shape(grad_out), 1)), out.reshape((*np.shape(out), 1))) \
        if vector else (grad_out, out)
    grad_b = solve(_swap_last(a), grad)
    grad_a = -matmul(grad_b, _swap_last(x))
    return grad_a, grad_b.reshape(np.shape(grad_b)[:-1]) if vector else grad_b


@primitive(name="det", sample=_square_sample, explain=_square_explain)
def det(a):
    """The determinant (of each matrix in a stack)."""
    return np.linalg.det(a)


# d det(a)/da = det(a) a^-T (Jacobi's formula)
det.defvjp(lambda grad_out, out, a: _matrices(grad_out * out) * _swap_last(inv(a)))


@primitive(name="logabsdet", sample=_square_sample, explain=_square_explain)
def logabsdet(a):
    """log |det a| (of each matrix in a stack), computed without forming det a."""
    return np.linalg.slogdet(a)[1]


# d log|det a|/da = a^-T
logabsdet.defvjp(lambda grad_out, out, a: _matrices(grad_out) * _swap_last(inv(a)))


# Not registered: a sign has derivative 0, and the registry's mask check expects booleans.
@primitive(name="slogdet_sign", differentiable=False, register=False)
def _slogdet_sign(a):
    """The sign of det a (-1, 0 or 1), a constant to every derivative."""
    return np.linalg.slogdet(a)[0]


class SlogdetResult(NamedTuple):
    """What slogdet returns, as NumPy's: det a = sign * exp(logabsdet)."""

    sign: Any
    logabsdet: Any


def slogdet(a: Any) -> SlogdetResult:
    """(sign, log |det a|) as np.linalg.slogdet; the sign is a constant with no derivative."""
    reason = _not_square(np.shape(a))
    if reason:
        raise _refuse("slogdet", reason)
    return SlogdetResult(_slogdet_sign(a), logabsdet(a))


# ---------------------------------------------------------------------------------------------
# norm
# ---------------------------------------------------------------------------------------------

_VECTOR_ORDS = "None, 2, 1, inf, -inf, 0 and any other real p"
_MATRIX_ORDS = "None, 'fro', 1, -1, inf, -inf"


def _norm_axes(ndim: int, ord: Any, axis: Any) -> tuple[tuple[int, ...] | None, bool]:
    """(the axes the norm reduces, None for all of x as one vector; whether it is a matrix
    norm), as np.linalg.norm reads ord and axis."""
    if axis is None and ord is None:
        return None, False
    axes = tuple(range(ndim)) if axis is None else normalize_axes(axis, ndim)
    return axes, len(axes) == 2


def _norm_sample(draw: Draw) -> tuple[tuple, dict]:
    matrix = draw.choice([False, True])
    shape = draw.shape(min_dims=2 if matrix else 1)
    if matrix:
        ord = draw.choice([None, "fro", 1, -1, np.inf, -np.inf])
        first, second = draw.rng().choice(len(shape), size=2, replace=False).tolist()
        axis = (first, second - draw.choice([0, len(shape)]))
        if len(shape) == 2 and draw.choice([True, False]):
            axis = None
    else:
        ord = draw.choice([None, 2, 1, np.inf, -np.inf, 0, 3, 1.5, -2])
        axis = draw.choice([None, draw.integers(-len(shape), len(shape) - 1)])
        if axis is None and ord is not None:
            shape = shape[-1:]  # a vector ord with no axis needs a vector
    # magnitudes distinct (no ties for the inf-norms) and away from 0 (the kinks of |x|)
    signs = draw.rng().choice([-1.0, 1.0], size=shape)
    x = distinct_array(draw, shape, 0.2, 2.0) * signs
    return (x,), {"ord": ord, "axis": axis, "keepdims": draw.choice([False, True])}


@primitive(name="norm", sample=_norm_sample)
def norm(x, ord=None, axis=None, keepdims=False):
    """np.linalg.norm: vector norms (sum |x|^p)^(1/p), max |x|, min |x|, count of nonzeros;
    matrix norms over two axes: Frobenius, max/min column (1) or row (inf) sum of |x|."""
    return np.linalg.norm(x, ord=ord, axis=axis, keepdims=keepdims)


def _share_extreme(values: Any, axis: Any, largest: bool) -> Any:
    """1/count where ``values`` hits its max (or min) along ``axis``, else 0 (ties share)."""
    signed = values if largest else -values
    hits = cast(equal(signed, reduce_max(signed, axis=axis, keepdims=True)), values.dtype)
    return hits / reduce_sum(hits, axis=axis, keepdims=True)


@norm.defvjp
def norm_vjp(grad_out, out, x, ord=None, axis=None, keepdims=False):
    """d|x|/dx for each ord, with the cotangent spread back over the reduced axes."""
    shape = np.shape(x)
    axes, matrix = _norm_axes(len(shape), ord, axis)
    grad = with_kept_dims(grad_out, shape, axes, keepdims)
    value = with_kept_dims(out, shape, axes, keepdims)
    sign = cast(greater(x, 0), x.dtype) - cast(less(x, 0), x.dtype)  # d|x|/dx (0 at 0)
    if ord is None or ord == "fro" or (ord == 2 and not matrix):
        # d|x|_2/dx = x / |x|_2, taken as 0 at x = 0 (where no derivative exists)
        return grad * x / where(equal(value, 0), 1, value)
    if matrix and ord in (1, -1, np.inf, -np.inf):
        # the max (min) over columns (ord 1) or rows (ord inf) of the sums of |x| along the
        # other axis: sign(x) in the extreme column or row
        summed, across = axes if ord in (1, -1) else axes[::-1]
        sums = reduce_sum(x * sign, axis=summed, keepdims=True)
        return grad * sign * _share_extreme(sums, across, largest=ord > 0)
    if matrix:
        raise NotImplementedError(f"norm: no derivative for the matrix ord={ord!r} "
                                  f"(supported: {_MATRIX_ORDS})")
    if ord == 0:
        return grad * (0 * x)  # a count of nonzeros: derivative 0
    if ord in (np.inf, -np.inf):  # max (min) |x|: sign(x) at the extreme element
        return grad * sign * _share_extreme(x * sign, axes, largest=ord > 0)
    if ord == 1:
        return grad * sign
    # d (sum |x|^p)^(1/p)/dx = sign(x) (|x| / |x|_p)^(p - 1)
    return grad * sign * power(x * sign / value, ord - 1)
