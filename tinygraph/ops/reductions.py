"""Reductions over axes (sum max min prod var std logsumexp), running sums and products along an
axis (cumsum cumprod), and the positions of extremes (argmax argmin, plain integer arrays).

Axes follow NumPy: None (every axis), an int or a tuple of ints, negative ones counted from the
end; ``keepdims`` keeps the reduced axes as size-1 dims."""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygraph.ops._common import normalize_axes, with_kept_dims
from tinygraph.ops.elementwise import cast, equal, exp, greater, where
from tinygraph.ops.shape import broadcast_to, getitem, scatter_add, transpose
from tinygraph.primitive import primitive
from tinygraph.sampling import Draw, array, axis_for, distinct_array
from tinygraph.state import refuse_leaving_the_graph
from tinygraph.tensor import Tensor

__all__ = [
    "reduce_sum",
    "reduce_max",
    "amax",
    "reduce_min",
    "amin",
    "prod",
    "var",
    "std",
    "logsumexp",
    "cumsum",
    "cumprod",
    "argmax",
    "argmin",
]


def _reduction_sample(draw: Draw, distinct: bool = False) -> tuple[tuple, dict]:
    shape = draw.shape()
    x = distinct_array(draw, shape) if distinct else array(draw, shape)
    return (x,), {"axis": axis_for(draw, len(shape)), "keepdims": draw.choice([False, True])}


def _axes_for(draw: Draw, ndim: int) -> int | tuple[int, ...] | None:
    """None, one axis, or a tuple of distinct axes (each possibly negative)."""
    kind = draw.choice(["none", "int", "tuple"]) if ndim else "none"
    if kind == "none":
        return None
    chosen = draw.rng().permutation(ndim)[:1 if kind == "int" else draw.integers(1, ndim)]
    axes = tuple(int(a) - ndim * draw.integers(0, 1) for a in chosen)
    return axes[0] if kind == "int" else axes


def _count(shape: tuple[int, ...], axes: tuple[int, ...]) -> int:
    """How many entries each result of a reduction over ``axes`` of ``shape`` gathers."""
    return int(np.prod([shape[a] for a in axes], dtype=np.int64))


@primitive(name="sum", sample=_reduction_sample)
def reduce_sum(x, axis=None, keepdims=False):
    """Sum over ``axis`` (all axes when None)."""
    return np.sum(x, axis=axis, keepdims=keepdims)


@reduce_sum.defvjp
def sum_vjp(grad_out, out, x, axis=None, keepdims=False):
    """d(sum x)/dx = 1: the cotangent is spread back over the summed axes."""
    return (broadcast_to(with_kept_dims(grad_out, np.shape(x), axis, keepdims), np.shape(x)),)


reduce_sum.rule_reads()

@primitive(name="max", sample=lambda draw: _reduction_sample(draw, distinct=True))
def reduce_max(x, axis=None, keepdims=False):
    """Maximum over ``axis`` (all axes when None)."""
    return np.max(x, axis=axis, keepdims=keepdims)


@reduce_max.defvjp
def max_vjp(grad_out, out, x, axis=None, keepdims=False):
    """d(max x)/dx = 1 at the maximum; ties share the cotangent equally."""
    shape = np.shape(x)
    is_max = equal(x, with_kept_dims(out, shape, axis, keepdims))
    ties = reduce_sum(cast(is_max, out.dtype), axis=normalize_axes(axis, len(shape)),
                      keepdims=True)
    return (with_kept_dims(grad_out, shape, axis, keepdims) * is_max / ties,)


amax = reduce_max


@primitive(name="min", sample=lambda draw: _reduction_sample(draw, distinct=True))
def reduce_min(x, axis=None, keepdims=False):
    """Minimum over ``axis`` (all axes when None)."""
    return np.min(x, axis=axis, keepdims=keepdims)


@reduce_min.defvjp
def min_vjp(grad_out, out, x, axis=None, keepdims=False):
    """d(min x)/dx = 1 at the minimum; ties share the cotangent equally (max's rule: both send
    the cotangent to the entries equal to the result)."""
    return max_vjp(grad_out, out, x, axis=axis, keepdims=keepdims)


amin = reduce_min


# ---------------------------------------------------------------------------------------------
# Products and running sums and products (axis=None runs over the flattened array, as NumPy).
# A product's derivative is the product of all the other entries. Dividing the product by the
# entry would fail at zeros (and lose precision near them), so the rules build those products
# from running products of the entries before and after each one: no division at all, exact
# with any number of zeros, and written in ops, so their own derivatives are exact too.
# ---------------------------------------------------------------------------------------------

def _with_zeros(draw: Draw, shape: tuple[int, ...]) -> np.ndarray:
    """Entries of magnitude 0.6 to 1.4 (products stay moderate), up to 3 of them exactly 0
    (products are polynomials: smooth there, so the checks also cover the rules at zeros)."""
    rng = draw.rng()
    x = rng.uniform(0.6, 1.4, size=shape) * rng.choice([-1.0, 1.0], size=shape)
    flat = x.reshape(-1)
    flat[rng.permutation(flat.size)[:draw.integers(0, 3)]] = 0.0
    return flat.reshape(shape)


def _flip(values: Any, axis: int) -> Any:
    """``values`` reversed along ``axis``."""
    return getitem(values, index=(slice(None),) * axis + (slice(None, None, -1),))


def _shift(values: Any, by: int, axis: int) -> Any:
    """``values`` moved ``by`` places along ``axis`` (towards the end when positive), 0 filling
    the places left empty: out_i = values_{i - by}."""
    shape = np.shape(values)
    side, lead = shape[axis], (slice(None),) * axis
    if abs(by) >= side:
        return values * 0
    source, target = (slice(None, side - by), slice(by, None)) if by > 0 else \
        (slice(-by, None), slice(None, side + by))
    return scatter_add(getitem(values, index=lead + (source,)), index=lead + (target,),
                       shape=shape)


def _exclusive(running_product: Any, axis: int) -> Any:
    """prod_{j < i} x_j from cumprod(x) along ``axis``: shifted by one place, 1 first."""
    shape = np.shape(running_product)
    first = (np.arange(shape[axis]) == 0).reshape([-1 if a == axis else 1
                                                    for a in range(len(shape))])
    return where(first, 1, _shift(running_product, 1, axis))


def _reversed_cumsum(values: Any, axis: int) -> Any:
    """sum_{k >= i} values_k along ``axis``: a running sum from the end."""
    return _flip(cumsum(_flip(values, axis), axis=axis), axis)


def _along(rule: Any, grad_out: Any, out: Any, x: Any, axis: Any) -> Any:
    """Apply ``rule(grad_out, out, x, axis)`` along one axis; axis=None runs over x flattened."""
    if axis is None:
        return rule(grad_out, out, x.reshape((-1,)), 0).reshape(np.shape(x))
    return rule(grad_out, out, x, int(axis) % np.ndim(x))


def _prod_sample(draw: Draw) -> tuple[tuple, dict]:
    shape = draw.shape(max_side=3)
    return (_with_zeros(draw, shape),), {"axis": _axes_for(draw, len(shape)),
                                         "keepdims": draw.choice([False, True])}


@primitive(sample=_prod_sample)
def prod(x, axis=None, keepdims=False):
    """Product over ``axis`` (all axes when None; 1 over none)."""
    return np.prod(x, axis=axis, keepdims=keepdims)


@prod.defvjp
def prod_vjp(grad_out, out, x, axis=None, keepdims=False):
    """d(prod x)/dx_i = prod_{j != i} x_j = (product before x_i) (product after x_i), the
    reduced axes taken as one (moved last and joined)."""
    shape = np.shape(x)
    axes = tuple(sorted(set(normalize_axes(axis, len(shape)))))
    kept = tuple(a for a in range(len(shape)) if a not in axes)
    order = kept + axes
    moved = x if order == tuple(range(len(shape))) else transpose(x, axes=order)
    rows = moved.reshape((*(shape[a] for a in kept), _count(shape, axes)))
    last = len(kept)
    others = (_exclusive(cumprod(rows, axis=last), last)
              * _flip(_exclusive(cumprod(_flip(rows, last), axis=last), last), last))
    others = others.reshape(tuple(shape[a] for a in order))
    if moved is not x:
        others = transpose(others, axes=tuple(np.argsort(order).tolist()))
    return (with_kept_dims(grad_out, shape, axis, keepdims) * others,)


def _cumulative_sample(draw: Draw, zeros: bool = False) -> tuple[tuple, dict]:
    shape = draw.shape(max_side=3 if zeros else 4)
    x = _with_zeros(draw, shape) if zeros else array(draw, shape)
    return (x,), {"axis": axis_for(draw, len(shape))}


@primitive(sample=_cumulative_sample)
def cumsum(x, axis=None):
    """Running sum along ``axis``: out_k = sum_{i <= k} x_i (over x flattened when None)."""
    return np.cumsum(x, axis=axis)


def _cumsum_along(grad_out, out, x, axis):
    return _reversed_cumsum(grad_out, axis)


@cumsum.defvjp
def cumsum_vjp(grad_out, out, x, axis=None):
    """d out_k/dx_i = 1 for k >= i: the cotangent summed from the end."""
    return (_along(_cumsum_along, grad_out, out, x, axis),)


@primitive(sample=lambda draw: _cumulative_sample(draw, zeros=True))
def cumprod(x, axis=None):
    """Running product along ``axis``: out_k = prod_{i <= k} x_i (over x flattened when None)."""
    return np.cumprod(x, axis=axis)


def _cumprod_along(grad_out, out, x, axis):
    # sum_k grad_out_k d out_k/dx_i = (prod_{j < i} x_j) s_i, where
    # s_i = sum_{k >= i} grad_out_k prod_{i < j <= k} x_j, that is s_i = g_i + x_{i+1} s_{i+1}:
    # a linear recurrence from the end, solved by doubling (ceil(log2 n) rounds of shifts,
    # products and sums; no division). Invariant: s_i = total_i + factor_i s_{i+step}.
    side = np.shape(x)[axis]
    total, factor, step = grad_out, _shift(x, -1, axis), 1
    while step < side:
        total = total + factor * _shift(total, -step, axis)
        if 2 * step < side:
            factor = factor * _shift(factor, -step, axis)
        step *= 2
    return _exclusive(out, axis) * total


@cumprod.defvjp
def cumprod_vjp(grad_out, out, x, axis=None):
    """d out_k/dx_i = prod_{j <= k, j != i} x_j for k >= i (0 for k < i)."""
    return (_along(_cumprod_along, grad_out, out, x, axis),)


# ---------------------------------------------------------------------------------------------
# Spread: variance and standard deviation
# ---------------------------------------------------------------------------------------------

def _spread_sample(draw: Draw) -> tuple[tuple, dict]:
    shape = draw.shape()
    axis = _axes_for(draw, len(shape))
    count = _count(shape, normalize_axes(axis, len(shape)))
    ddof = draw.choice([0, 1]) if count > 1 else 0  # count - ddof > 0: a finite result
    return (array(draw, shape),), {"axis": axis, "ddof": ddof,
                                   "keepdims": draw.choice([False, True])}


def _centered(x: Any, axes: tuple[int, ...], count: int) -> Any:
    """x minus its mean over ``axes``."""
    return x - reduce_sum(x, axis=axes, keepdims=True) / max(count, 1)


def _spread_scale(count: int, ddof: int) -> float:
    """1 / (count - ddof), NaN where NumPy's result is not finite (count - ddof <= 0)."""
    return 1.0 / (count - ddof) if count > ddof else float("nan")


@primitive(sample=_spread_sample)
def var(x, axis=None, *, ddof=0, keepdims=False):
    """Variance over ``axis``: sum (x - mean)^2 / (count - ddof)."""
    return np.var(x, axis=axis, ddof=ddof, keepdims=keepdims)


@var.defvjp
def var_vjp(grad_out, out, x, axis=None, *, ddof=0, keepdims=False):
    """d var/dx_i = 2 (x_i - mean) / (count - ddof) (the mean's own terms sum to 0)."""
    shape = np.shape(x)
    axes = normalize_axes(axis, len(shape))
    count = _count(shape, axes)
    return (with_kept_dims(grad_out, shape, axis, keepdims) * _centered(x, axes, count)
            * (2 * _spread_scale(count, ddof)),)


@primitive(sample=_spread_sample)
def std(x, axis=None, *, ddof=0, keepdims=False):
    """Standard deviation over ``axis``: sqrt(var(x, axis, ddof))."""
    return np.std(x, axis=axis, ddof=ddof, keepdims=keepdims)


@std.defvjp
def std_vjp(grad_out, out, x, axis=None, *, ddof=0, keepdims=False):
    """d std/dx_i = (x_i - mean) / ((count - ddof) std); 0 where std = 0 (there x_i = mean:
    with one entry std is 0 whatever x, with several equal ones 0 is a subgradient)."""
    shape = np.shape(x)
    axes = normalize_axes(axis, len(shape))
    count = _count(shape, axes)
    kept = with_kept_dims(out, shape, axis, keepdims)
    return (with_kept_dims(grad_out, shape, axis, keepdims) * _centered(x, axes, count)
            * _spread_scale(count, ddof) / where(greater(kept, 0), kept, 1),)


# ---------------------------------------------------------------------------------------------
# logsumexp
# ---------------------------------------------------------------------------------------------

def _logsumexp_sample(draw: Draw) -> tuple[tuple, dict]:
    shape = draw.shape()
    return (array(draw, shape, -3.0, 3.0),), {"axis": _axes_for(draw, len(shape)),
                                              "keepdims": draw.choice([False, True])}


@primitive(sample=_logsumexp_sample)
def logsumexp(x, axis=None, keepdims=False):
    """log(sum(exp(x))) over ``axis``, as m + log1p(sum(exp(x - m)) - 1), m = max(x): no
    overflow for any finite x, and the sum's 1 from the maximum is kept out of the rounding (so a
    result near 0 keeps its digits). -inf over no entries or only -inf ones, +inf with a +inf."""
    x = np.asarray(x)
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    axes = normalize_axes(axis, x.ndim)
    shift = np.max(x, axis=axes, keepdims=True, initial=-np.inf)
    shift = np.where(np.isfinite(shift), shift, 0)  # infinities pass through the sum unshifted
    at_shift = x == shift  # the maxima, each contributing exp(0) = 1 to the sum
    with np.errstate(divide="ignore", over="ignore"):  # -inf and +inf are the answers there
        rest = np.sum(np.exp(x - shift, where=~at_shift, out=np.zeros_like(x, dtype=shift.dtype)),
                      axis=axes, keepdims=True)
        maxima = np.sum(at_shift, axis=axes, keepdims=True, dtype=shift.dtype)
        out = np.log1p(rest + (maxima - 1)) + shift
    return out if keepdims else np.squeeze(out, axis=axes)


@logsumexp.defvjp
def logsumexp_vjp(grad_out, out, x, axis=None, keepdims=False):
    """d logsumexp/dx_i = exp(x_i - logsumexp x): the softmax of x over ``axis``."""
    shape = np.shape(x)
    return (with_kept_dims(grad_out, shape, axis, keepdims)
            * exp(x - with_kept_dims(out, shape, axis, keepdims)),)


# ---------------------------------------------------------------------------------------------
# Positions of extremes: integer arrays, no derivative (not primitives)
# ---------------------------------------------------------------------------------------------

def _plain(x: Any, name: str) -> Any:
    """The array behind ``x``; a Tensor's value may leave the graph only where that is safe."""
    if isinstance(x, Tensor):
        refuse_leaving_the_graph(f"tg.{name}")
        return x.data
    return x


def argmax(x: Any, axis: int | None = None, keepdims: bool = False) -> Any:
    """The index of the maximum over ``axis`` (of x flattened when None), as np.argmax: first
    index on ties; a NumPy integer array (an index has no derivative)."""
    return np.argmax(_plain(x, "argmax"), axis=axis, keepdims=keepdims)


def argmin(x: Any, axis: int | None = None, keepdims: bool = False) -> Any:
    """The index of the minimum over ``axis`` (of x flattened when None), as np.argmin."""
    return np.argmin(_plain(x, "argmin"), axis=axis, keepdims=keepdims)
