"""Elementwise functions: exponentials and logarithms, trigonometric, hyperbolic, special.

Each is one NumPy ufunc (or ``np.sinc``); the rules are written in tinygraph ops, so they are
differentiable again. Samples keep inputs inside the domain and away from singularities.
"""

from __future__ import annotations

import math

import numpy as np

from tinygraph.ops._common import broadcast_explain, ufunc_into
from tinygraph.ops.elementwise import equal, sigmoid, where
from tinygraph.primitive import primitive
from tinygraph.sampling import Draw, array, elementwise

__all__ = [
    "sqrt",
    "cbrt",
    "exp2",
    "expm1",
    "log2",
    "log10",
    "log1p",
    "logaddexp",
    "logaddexp2",
    "sin",
    "cos",
    "tan",
    "arcsin",
    "arccos",
    "arctan",
    "arctan2",
    "sinh",
    "cosh",
    "arcsinh",
    "arccosh",
    "arctanh",
    "sinc",
]

# Python floats, so that a float32 cotangent times them stays float32
LN2 = math.log(2.0)
LN10 = math.log(10.0)


# ---------------------------------------------------------------------------------------------
# Roots, exponentials and logarithms
# ---------------------------------------------------------------------------------------------

@primitive(sample=elementwise(1, 0.2, 3.0), forward_into=ufunc_into(np.sqrt))
def sqrt(x):
    """The square root, x ** (1/2)."""
    return np.sqrt(x)


sqrt.defvjp(lambda grad_out, out, x: grad_out / (2 * out))  # d/dx sqrt x = 1 / (2 sqrt x)


@primitive(sample=elementwise(1, avoid=(0.0,)), forward_into=ufunc_into(np.cbrt))
def cbrt(x):
    """The real cube root, x ** (1/3) (negative for negative x)."""
    return np.cbrt(x)


cbrt.defvjp(lambda grad_out, out, x: grad_out / (3 * out * out))  # d/dx x^(1/3) = 1/(3 x^(2/3))


@primitive(sample=elementwise(1), forward_into=ufunc_into(np.exp2))
def exp2(x):
    """2 ** x."""
    return np.exp2(x)


exp2.defvjp(lambda grad_out, out, x: grad_out * out * LN2)  # d/dx 2^x = 2^x ln 2


@primitive(sample=elementwise(1), forward_into=ufunc_into(np.expm1))
def expm1(x):
    """e ** x - 1, exact for small x."""
    return np.expm1(x)


expm1.defvjp(lambda grad_out, out, x: grad_out * (out + 1))  # d/dx (e^x - 1) = e^x


@primitive(sample=elementwise(1, 0.2, 3.0), forward_into=ufunc_into(np.log2))
def log2(x):
    """Base-2 logarithm."""
    return np.log2(x)


log2.defvjp(lambda grad_out, out, x: grad_out / (x * LN2))  # d/dx log2 x = 1 / (x ln 2)


@primitive(sample=elementwise(1, 0.2, 3.0), forward_into=ufunc_into(np.log10))
def log10(x):
    """Base-10 logarithm."""
    return np.log10(x)


log10.defvjp(lambda grad_out, out, x: grad_out / (x * LN10))  # d/dx log10 x = 1 / (x ln 10)


@primitive(sample=elementwise(1, -0.8, 2.0), forward_into=ufunc_into(np.log1p))
def log1p(x):
    """log(1 + x), exact for small x."""
    return np.log1p(x)


log1p.defvjp(lambda grad_out, out, x: grad_out / (1 + x))  # d/dx log(1 + x) = 1 / (1 + x)


@primitive(sample=elementwise(2), explain=broadcast_explain, forward_into=ufunc_into(np.logaddexp))
def logaddexp(a, b):
    """log(e^a + e^b), broadcasting; never overflows (NumPy's ufunc shifts by the larger)."""
    return np.logaddexp(a, b)


# d/da log(e^a + e^b) = e^a / (e^a + e^b) = sigmoid(a - b): bounded, and exact for any |a - b|
logaddexp.defvjp(lambda grad_out, out, a, b: grad_out * sigmoid(a - b),
                 lambda grad_out, out, a, b: grad_out * sigmoid(b - a))


@primitive(sample=elementwise(2), explain=broadcast_explain,
           forward_into=ufunc_into(np.logaddexp2))
def logaddexp2(a, b):
    """log2(2^a + 2^b), broadcasting; never overflows."""
    return np.logaddexp2(a, b)


# d/da log2(2^a + 2^b) = 2^a / (2^a + 2^b) = sigmoid((a - b) ln 2)
logaddexp2.defvjp(lambda grad_out, out, a, b: grad_out * sigmoid((a - b) * LN2),
                  lambda grad_out, out, a, b: grad_out * sigmoid((b - a) * LN2))


# ---------------------------------------------------------------------------------------------
# Trigonometric
# ---------------------------------------------------------------------------------------------

@primitive(sample=elementwise(1, -3.0, 3.0), forward_into=ufunc_into(np.sin))
def sin(x):
    """Sine (radians)."""
    return np.sin(x)


sin.defvjp(lambda grad_out, out, x: grad_out * cos(x))  # d/dx sin x = cos x


@primitive(sample=elementwise(1, -3.0, 3.0), forward_into=ufunc_into(np.cos))
def cos(x):
    """Cosine (radians)."""
    return np.cos(x)


cos.defvjp(lambda grad_out, out, x: -grad_out * sin(x))  # d/dx cos x = -sin x


@primitive(sample=elementwise(1, -1.2, 1.2), forward_into=ufunc_into(np.tan))
def tan(x):
    """Tangent (radians)."""
    return np.tan(x)


tan.defvjp(lambda grad_out, out, x: grad_out * (1 + out * out))  # d/dx tan x = 1 + tan^2 x


@primitive(sample=elementwise(1, -0.9, 0.9), forward_into=ufunc_into(np.arcsin))
def arcsin(x):
    """Inverse sine, in [-pi/2, pi/2]; defined on [-1, 1]."""
    return np.arcsin(x)


arcsin.defvjp(lambda grad_out, out, x: grad_out / sqrt(1 - x * x))  # 1 / sqrt(1 - x^2)


@primitive(sample=elementwise(1, -0.9, 0.9), forward_into=ufunc_into(np.arccos))
def arccos(x):
    """Inverse cosine, in [0, pi]; defined on [-1, 1]."""
    return np.arccos(x)


arccos.defvjp(lambda grad_out, out, x: -grad_out / sqrt(1 - x * x))  # -1 / sqrt(1 - x^2)


@primitive(sample=elementwise(1), forward_into=ufunc_into(np.arctan))
def arctan(x):
    """Inverse tangent, in (-pi/2, pi/2)."""
    return np.arctan(x)


arctan.defvjp(lambda grad_out, out, x: grad_out / (1 + x * x))  # d/dx arctan x = 1 / (1 + x^2)


def _arctan2_sample(draw: Draw) -> tuple[tuple, dict]:
    # y kept off 0: across y = 0 with x < 0 the angle jumps from pi to -pi (and the origin is
    # singular)
    shape_y, shape_x = draw.broadcastable_shapes(2)
    return (array(draw, shape_y, avoid=(0.0,)), array(draw, shape_x)), {}


@primitive(sample=_arctan2_sample, explain=broadcast_explain, forward_into=ufunc_into(np.arctan2))
def arctan2(y, x):
    """The angle of the point (x, y) from the x axis, in [-pi, pi], broadcasting."""
    return np.arctan2(y, x)


# d/dy atan2(y, x) = x / (x^2 + y^2),  d/dx atan2(y, x) = -y / (x^2 + y^2)
arctan2.defvjp(lambda grad_out, out, y, x: grad_out * x / (x * x + y * y),
               lambda grad_out, out, y, x: -grad_out * y / (x * x + y * y))


# ---------------------------------------------------------------------------------------------
# Hyperbolic
# ---------------------------------------------------------------------------------------------

@primitive(sample=elementwise(1), forward_into=ufunc_into(np.sinh))
def sinh(x):
    """Hyperbolic sine, (e^x - e^-x) / 2."""
    return np.sinh(x)


sinh.defvjp(lambda grad_out, out, x: grad_out * cosh(x))  # d/dx sinh x = cosh x


@primitive(sample=elementwise(1), forward_into=ufunc_into(np.cosh))
def cosh(x):
    """Hyperbolic cosine, (e^x + e^-x) / 2."""
    return np.cosh(x)


cosh.defvjp(lambda grad_out, out, x: grad_out * sinh(x))  # d/dx cosh x = sinh x


@primitive(sample=elementwise(1), forward_into=ufunc_into(np.arcsinh))
def arcsinh(x):
    """Inverse hyperbolic sine, log(x + sqrt(x^2 + 1))."""
    return np.arcsinh(x)


arcsinh.defvjp(lambda grad_out, out, x: grad_out / sqrt(x * x + 1))  # 1 / sqrt(x^2 + 1)


@primitive(sample=elementwise(1, 1.2, 3.0), forward_into=ufunc_into(np.arccosh))
def arccosh(x):
    """Inverse hyperbolic cosine, log(x + sqrt(x^2 - 1)); defined for x >= 1."""
    return np.arccosh(x)


arccosh.defvjp(lambda grad_out, out, x: grad_out / sqrt(x * x - 1))  # 1 / sqrt(x^2 - 1)


@primitive(sample=elementwise(1, -0.8, 0.8), forward_into=ufunc_into(np.arctanh))
def arctanh(x):
    """Inverse hyperbolic tangent, log((1 + x) / (1 - x)) / 2; defined on (-1, 1)."""
    return np.arctanh(x)


arctanh.defvjp(lambda grad_out, out, x: grad_out / (1 - x * x))  # d/dx atanh x = 1 / (1 - x^2)


# ---------------------------------------------------------------------------------------------
# Special
# ---------------------------------------------------------------------------------------------

@primitive(sample=elementwise(1, avoid=(0.0,)))
def sinc(x):
    """The normalized sinc, sin(pi x) / (pi x), and 1 at x = 0."""
    return np.sinc(x)


@sinc.defvjp
def sinc_vjp(grad_out, out, x):
    """d/dx sinc x = (cos(pi x) - sinc x) / x, and 0 at x = 0 (sinc is even)."""
    # at x = 0 the numerator is 1 - 1 = 0, so dividing by 1 there gives the limit 0
    return grad_out * (cos(math.pi * x) - out) / where(equal(x, 0), 1, x)
