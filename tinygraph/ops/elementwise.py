"""Elementwise ops: identity and casts, comparison masks, selection, arithmetic, functions.

Results broadcast as NumPy's; a rule may return a cotangent of the broadcast shape, and the
reverse pass sums it back to the input's shape.

This module is the family's face: every name of the family is importable from here and listed in
``__all__``. The base (identity, casts, comparisons and masks, where, arithmetic, exp, log,
sigmoid, tanh, relu) is :mod:`~tinygraph.ops.arithmetic`; defined here are the ops built on it:
signs and rounding, extrema and clipping, angle units and the parts of a number."""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygraph.ops import arithmetic
from tinygraph.ops._common import broadcast_explain, nonfinite_sample, ufunc_into, zero_vjp
from tinygraph.ops.arithmetic import *  # noqa: F403 - the family's names, re-exported
from tinygraph.ops.arithmetic import (
    equal,
    greater,
    isfinite,
    less,
    less_equal,
    where,
)
from tinygraph.primitive import primitive
from tinygraph.sampling import Draw, elementwise

# The family's names: its modules' own lists, then the ops defined here.
__all__ = [
    *arithmetic.__all__,
    "absolute",
    "abs",
    "fabs",
    "sign",
    "floor",
    "ceil",
    "trunc",
    "rint",
    "round",
    "maximum",
    "minimum",
    "fmax",
    "fmin",
    "clip",
    "nan_to_num",
    "deg2rad",
    "radians",
    "rad2deg",
    "degrees",
    "real",
    "imag",
    "conj",
    "conjugate",
    "angle",
    "real_if_close",
]


# ---------------------------------------------------------------------------------------------
# Signs and rounding: derivative 0 almost everywhere, a zero cotangent (samples avoid the jumps)
# ---------------------------------------------------------------------------------------------

def _steps_sample(offset: float, scale: float = 1.0) -> Any:
    """Values (k + offset + u) * scale, k integer, u in [0.1, 0.9]: at least 0.1 * scale from the
    jumps at (k + offset) * scale (integers for floor, half-integers for rounding)."""

    def sample(draw: Draw) -> tuple[tuple, dict]:
        shape, rng = draw.shape(), draw.rng()
        values = (rng.integers(-3, 3, shape) + offset + rng.uniform(0.1, 0.9, shape)) * scale
        return (np.asarray(values, dtype=np.float64),), {}

    return sample


@primitive(name="abs", sample=elementwise(1, avoid=(0.0,)), forward_into=ufunc_into(np.absolute))
def absolute(x):
    """|x|."""
    return np.absolute(x)


absolute.defvjp(lambda grad_out, out, x: grad_out * sign(x))  # d|x|/dx = sign x (0 at 0)
abs = absolute  # NumPy's short name (shadows the builtin in this module only)
fabs = absolute


@primitive(sample=_steps_sample(0.0), forward_into=ufunc_into(np.sign))
def sign(x):
    """-1, 0 or 1 as x is negative, zero or positive (NaN for NaN)."""
    return np.sign(x)


sign.defvjp(zero_vjp)


@primitive(sample=_steps_sample(0.0), forward_into=ufunc_into(np.floor))
def floor(x):
    """The largest integer <= x."""
    return np.floor(x)


floor.defvjp(zero_vjp)


@primitive(sample=_steps_sample(0.0), forward_into=ufunc_into(np.ceil))
def ceil(x):
    """The smallest integer >= x."""
    return np.ceil(x)


ceil.defvjp(zero_vjp)


@primitive(sample=_steps_sample(0.0), forward_into=ufunc_into(np.trunc))
def trunc(x):
    """x rounded towards 0 (its integer part)."""
    return np.trunc(x)


trunc.defvjp(zero_vjp)


@primitive(sample=_steps_sample(-0.5), forward_into=ufunc_into(np.rint))
def rint(x):
    """x rounded to the nearest integer, halves to even."""
    return np.rint(x)


rint.defvjp(zero_vjp)


def _round_sample(draw: Draw) -> tuple[tuple, dict]:
    decimals = draw.choice([0, 1, -1])
    (values,), _ = _steps_sample(-0.5, 10.0 ** -decimals)(draw)
    return (values,), {"decimals": decimals}


@primitive(sample=_round_sample)
def round(a, decimals=0):  # noqa: A001 - NumPy's name (shadows the builtin in this module only)
    """a rounded to ``decimals`` decimal places (negative: to tens, hundreds...), halves to even."""
    return np.round(a, decimals)


round.defvjp(zero_vjp)


# ---------------------------------------------------------------------------------------------
# Extrema and clipping
# ---------------------------------------------------------------------------------------------

def _picked(grad_out, out, chosen, other):
    """An extremum's cotangent for ``chosen``: all of it where the result is ``chosen``, half at
    a tie (as tg.max shares ties), none where the result is ``other`` (or NaN)."""
    return where(equal(chosen, other), 0.5 * grad_out, grad_out * equal(out, chosen))


def _extremum(name: str, ufunc: np.ufunc, math: str) -> Any:
    def forward(a, b):
        return ufunc(a, b)

    forward.__name__ = name
    forward.__doc__ = f"{math}, elementwise, broadcasting."
    # uniform samples: ties (where the derivative jumps) never occur
    op = primitive(forward, name=name, sample=elementwise(2), explain=broadcast_explain,
                   forward_into=ufunc_into(ufunc))
    op.defvjp(lambda grad_out, out, a, b: _picked(grad_out, out, a, b),
              lambda grad_out, out, a, b: _picked(grad_out, out, b, a))
    return op


maximum = _extremum("maximum", np.maximum, "The larger of a and b (NaN if either is NaN)")
minimum = _extremum("minimum", np.minimum, "The smaller of a and b (NaN if either is NaN)")
fmax = _extremum("fmax", np.fmax, "The larger of a and b, ignoring a NaN (NaN if both are)")
fmin = _extremum("fmin", np.fmin, "The smaller of a and b, ignoring a NaN (NaN if both are)")


def _clip_sample(draw: Draw) -> tuple[tuple, dict]:
    """Bounds in [-1, -0.6] and [0.6, 1]; a in bands wholly below, between or above them, so no
    value of a is near a bound whatever the broadcasting pairs."""
    shape_a, shape_min, shape_max = draw.broadcastable_shapes(3)
    rng = draw.rng()
    band = rng.integers(0, 3, shape_a)
    a = np.where(band == 0, rng.uniform(-2.0, -1.2, shape_a),
                 np.where(band == 1, rng.uniform(-0.4, 0.4, shape_a),
                          rng.uniform(1.2, 2.0, shape_a)))
    a_min = np.asarray(rng.uniform(-1.0, -0.6, shape_min))
    a_max = np.asarray(rng.uniform(0.6, 1.0, shape_max))
    # (a bound of None, one-sided clipping, is tested in tests/test_ops_elementwise.py: registry
    # walkers make every sampled input a Tensor)
    return (a, a_min, a_max), {}


def _clip_explain(a, a_min, a_max) -> str | None:
    given = [value for value in (a, a_min, a_max) if value is not None]
    try:
        np.broadcast_shapes(*(np.shape(value) for value in given))
    except ValueError:
        return broadcast_explain(*given)
    return None  # another failure: the default message says it


@primitive(sample=_clip_sample, explain=_clip_explain)
def clip(a, a_min, a_max):
    """min(max(a, a_min), a_max), broadcasting; one bound may be None (NumPy's clip).

    The bounds are inputs like a (arrays or numbers), so they may be differentiated too. Where
    a equals a bound, the derivative goes to the bound (d/da is 1 strictly inside, 0 on and
    outside the bounds; PyTorch's clamp gives a the 1 on the bound instead).
    """
    return np.clip(a, a_min, a_max)


def _clip_a_vjp(grad_out, out, a, a_min, a_max):
    """d clip/da = 1 strictly between the bounds, 0 on and outside them."""
    if a_min is not None:
        grad_out = grad_out * greater(a, a_min)
    if a_max is not None:
        grad_out = grad_out * less(a, a_max)
    return grad_out


def _clip_min_vjp(grad_out, out, a, a_min, a_max):
    """d clip/da_min = 1 where the result is a_min: a <= a_min < a_max."""
    grad_out = grad_out * less_equal(a, a_min)
    return grad_out if a_max is None else grad_out * less(a_min, a_max)


def _clip_max_vjp(grad_out, out, a, a_min, a_max):
    """d clip/da_max = 1 where the result is a_max: a >= a_max, or a_min >= a_max (then NumPy's
    clip is a_max whatever a is). The three cotangents add up to grad_out everywhere."""
    kept = grad_out * less(a, a_max)
    return grad_out - (kept if a_min is None else kept * less(a_min, a_max))


clip.defvjp(_clip_a_vjp, _clip_min_vjp, _clip_max_vjp)


def _nan_to_num_sample(draw: Draw) -> tuple[tuple, dict]:
    # finite replacements for the infinities: the default (the largest float) would overflow
    # the checks' weighted sums
    (x,), _ = nonfinite_sample(draw)
    return (x,), {"nan": draw.choice([0.0, 1.5]), "posinf": 3.0, "neginf": -3.0}


@primitive(sample=_nan_to_num_sample)
def nan_to_num(x, copy=True, nan=0.0, posinf=None, neginf=None):
    """x with NaN replaced by ``nan``, inf by ``posinf`` and -inf by ``neginf`` (by default the
    largest and smallest finite numbers of x's dtype).

    Always a new array: ``copy=False`` (NumPy then writes into x) is accepted and ignored, since
    an op never changes its inputs.
    """
    return np.nan_to_num(x, copy=True, nan=nan, posinf=posinf, neginf=neginf)


# d/dx = 1 where x is kept (finite), 0 where it was replaced by a constant
nan_to_num.defvjp(lambda grad_out, out, x, **params: grad_out * isfinite(x))


# ---------------------------------------------------------------------------------------------
# Angle units, and the parts of a number (real input; complex values are refused upstream)
# ---------------------------------------------------------------------------------------------

@primitive(sample=elementwise(1, -360.0, 360.0), forward_into=ufunc_into(np.deg2rad))
def deg2rad(x):
    """x degrees in radians, x pi / 180."""
    return np.deg2rad(x)


deg2rad.defvjp(lambda grad_out, out, x: grad_out * (np.pi / 180))  # a Python float: keeps float32
radians = deg2rad


@primitive(sample=elementwise(1, -6.0, 6.0), forward_into=ufunc_into(np.rad2deg))
def rad2deg(x):
    """x radians in degrees, x 180 / pi."""
    return np.rad2deg(x)


rad2deg.defvjp(lambda grad_out, out, x: grad_out * (180 / np.pi))
degrees = rad2deg


@primitive(sample=elementwise(1))
def real(val):
    """The real part: val itself for real input."""
    return np.real(val)


real.defvjp(lambda grad_out, out, val: grad_out)  # the identity on reals


@primitive(sample=elementwise(1))
def imag(val):
    """The imaginary part: zeros for real input."""
    return np.array(np.imag(val))  # a fresh array: NumPy's is a read-only view for real input


imag.defvjp(zero_vjp)  # a constant 0 on reals


@primitive(sample=elementwise(1), forward_into=ufunc_into(np.conjugate))
def conj(x):
    """The complex conjugate: x itself for real input."""
    return np.conjugate(x)


conj.defvjp(lambda grad_out, out, x: grad_out)  # the identity on reals
conjugate = conj


def _angle_sample(draw: Draw) -> tuple[tuple, dict]:
    (z,), _ = _steps_sample(0.0)(draw)  # never 0, where the angle jumps from pi to 0
    return (z,), {"deg": draw.choice([False, True])}


@primitive(sample=_angle_sample)
def angle(z, deg=False):
    """The complex argument: 0 for real z >= 0, pi (or 180 with ``deg``) for real z < 0."""
    return np.angle(z, deg=deg)


angle.defvjp(zero_vjp)  # a step function on reals


@primitive(sample=elementwise(1))
def real_if_close(a, tol=100):
    """a as a real array when its imaginary parts are within ``tol`` machine epsilons of 0:
    a itself for real input."""
    return np.real_if_close(a, tol=tol)


real_if_close.defvjp(lambda grad_out, out, a, tol=100: grad_out)  # the identity on reals
