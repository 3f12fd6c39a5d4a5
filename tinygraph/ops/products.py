"""Products: matmul, dot, tensordot and einsum, with NumPy's names and semantics.

Part of the linear algebra family, whose every name :mod:`~tinygraph.ops.linalg` re-exports. Each
is a primitive with its rule; the rules are products again (so differentiable to any order). The
helpers after matmul (inputs of composites, axes, errors) serve the whole family.
"""

from __future__ import annotations

import string
from typing import Any

import numpy as np

from tinygraph.ops.reshaping import moved, permuted, swap_last
from tinygraph.primitive import describe, primitive
from tinygraph.sampling import Draw, array
from tinygraph.tensor import Tensor

__all__ = [
    "matmul",
    "dot",
    "tensordot",
    "einsum",
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
    return matmul(grad_out, swap_last(b))


def _matmul_vjp_b(grad_out, out, a, b):
    """d(a @ b)/db: a^T @ grad_out, with 1-D operands promoted and squeezed as np.matmul does."""
    a_ndim, b_ndim = np.ndim(a), np.ndim(b)
    if a_ndim == 1:
        if b_ndim == 1:
            return grad_out * a
        row = grad_out.reshape((*np.shape(grad_out)[:-1], 1, np.shape(grad_out)[-1]))
        return _column(a) * row
    if b_ndim == 1:
        product = matmul(swap_last(a), _column(grad_out))
        return product.reshape(np.shape(product)[:-1])
    if a_ndim == 2:
        return matmul(a.T, grad_out)
    return matmul(swap_last(a), grad_out)


matmul.defvjp(_matmul_vjp_a, _matmul_vjp_b)
matmul.rule_reads("a", "b")  # not its result: a reverse pass may free x @ W


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
    return moved(tensordot(a, grad_out, axes=(lead, lead)), 0, _dot_contracted_axis(b_ndim))


dot.defvjp(_dot_vjp_a, _dot_vjp_b)


def tensordot_axes(axes: Any, a_ndim: int, b_ndim: int) -> tuple[tuple[int, ...], ...]:
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
        axes_a, axes_b = tensordot_axes(axes, len(a_shape), len(b_shape))
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
    axes_a, axes_b = tensordot_axes(axes, np.ndim(a), np.ndim(b))
    a_free = [axis for axis in range(np.ndim(a)) if axis not in axes_a]
    b_free = tuple(axis for axis in range(np.ndim(b)) if axis not in axes_b)
    product = tensordot(grad_out, b, axes=(tuple(range(len(a_free), np.ndim(grad_out))), b_free))
    # product's axes: a's free axes, then a's summed axes in the order b holds their partners
    held = a_free + [axes_a[i] for i in np.argsort(axes_b)]
    return permuted(product, np.argsort(held))


def _tensordot_vjp_b(grad_out, out, a, b, axes=2):
    """d/db: a contracted with grad_out over a's free axes; then b's axes put back in order."""
    axes_a, axes_b = tensordot_axes(axes, np.ndim(a), np.ndim(b))
    a_free = tuple(axis for axis in range(np.ndim(a)) if axis not in axes_a)
    b_free = [axis for axis in range(np.ndim(b)) if axis not in axes_b]
    product = tensordot(a, grad_out, axes=(a_free, tuple(range(len(a_free)))))
    held = [axes_b[i] for i in np.argsort(axes_a)] + b_free
    return permuted(product, np.argsort(held))


tensordot.defvjp(_tensordot_vjp_a, _tensordot_vjp_b)


# ---------------------------------------------------------------------------------------------
# einsum
# ---------------------------------------------------------------------------------------------

_SUBLIST_LABELS = string.ascii_uppercase + string.ascii_lowercase  # NumPy's ints 0..51


def einsum_specs(subscripts: str, shapes: list[tuple[int, ...]]) -> tuple[list[str], str]:
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
    specs, output = einsum_specs(subscripts, shapes)
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
