"""Reductions over axes: sum and max."""

from __future__ import annotations

import numpy as np

from tinygraph.ops._common import normalize_axes, with_kept_dims
from tinygraph.ops.elementwise import cast, equal
from tinygraph.ops.shape import broadcast_to
from tinygraph.primitive import primitive
from tinygraph.sampling import Draw, array, axis_for, distinct_array

__all__ = [
    "reduce_sum",
    "reduce_max",
]


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
    return (broadcast_to(with_kept_dims(grad_out, np.shape(x), axis, keepdims), np.shape(x)),)


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
