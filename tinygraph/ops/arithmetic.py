"""The elementwise base: identity and casts, comparison masks, selection (where), arithmetic, and
the functions exp, log, sigmoid, tanh and relu.

Part of the elementwise family, whose every name :mod:`~tinygraph.ops.elementwise` re-exports.
Results broadcast as NumPy's; a rule may return a cotangent of the broadcast shape, and the
reverse pass sums it back to the input's shape."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tinygraph.ops._common import broadcast_explain, nonfinite_sample, ufunc_into, zero_vjp
from tinygraph.primitive import primitive
from tinygraph.sampling import Draw, array, elementwise
from tinygraph.tensor import Tensor

__all__ = [
    "identity",
    "stop_gradient",
    "cast",
    "greater",
    "greater_equal",
    "less",
    "less_equal",
    "equal",
    "not_equal",
    "isfinite",
    "isnan",
    "isinf",
    "where",
    "add",
    "sub",
    "mul",
    "div",
    "neg",
    "power",
    "exp",
    "log",
    "sigmoid",
    "tanh",
    "relu",
    "subtract",
    "multiply",
    "divide",
    "true_divide",
    "negative",
    "square",
    "reciprocal",
    "mod",
    "remainder",
    "floor_divide",
]


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


def _comparison(name: str, ufunc: np.ufunc, symbol: str) -> Any:
    def forward(a, b):
        return ufunc(a, b)

    forward.__name__ = name
    forward.__doc__ = f"a {symbol} b, elementwise (a boolean mask: derivative 0)."
    sample = elementwise(2)  # uniform values: ties, where differences would flip it, never occur
    return primitive(forward, name=name, sample=sample, explain=broadcast_explain,
                     forward_into=ufunc_into(ufunc), differentiable=False)


greater = _comparison("greater", np.greater, ">")
greater_equal = _comparison("greater_equal", np.greater_equal, ">=")
less = _comparison("less", np.less, "<")
less_equal = _comparison("less_equal", np.less_equal, "<=")
equal = _comparison("equal", np.equal, "==")
not_equal = _comparison("not_equal", np.not_equal, "!=")


def _mask(name: str, ufunc: np.ufunc, what: str) -> Any:
    def forward(x):
        return ufunc(x)

    forward.__name__ = name
    forward.__doc__ = f"Whether x is {what}, elementwise (a boolean mask: derivative 0)."
    return primitive(forward, name=name, sample=nonfinite_sample,
                     forward_into=ufunc_into(ufunc), differentiable=False)


isfinite = _mask("isfinite", np.isfinite, "finite (neither NaN nor infinite)")
isnan = _mask("isnan", np.isnan, "NaN")
isinf = _mask("isinf", np.isinf, "+inf or -inf")


def _where_sample(draw: Draw) -> tuple[tuple, dict]:
    shape_c, shape_a, shape_b = draw.broadcastable_shapes(3)
    condition = draw.rng().random(shape_c) < 0.5
    return (np.asarray(condition), array(draw, shape_a), array(draw, shape_b)), {}


@primitive(sample=_where_sample, explain=broadcast_explain)
def where(condition, a, b):
    """a where ``condition`` holds, else b, broadcasting (``condition`` has no derivative)."""
    return np.where(condition, a, b)


where.defvjp(None,
             lambda grad_out, out, condition, a, b: where(condition, grad_out, 0),  # 1 where chosen
             lambda grad_out, out, condition, a, b: where(condition, 0, grad_out))


# ---------------------------------------------------------------------------------------------
# Elementwise arithmetic
# ---------------------------------------------------------------------------------------------

@primitive(sample=elementwise(2), explain=broadcast_explain, forward_into=ufunc_into(np.add))
def add(a, b):
    """a + b, broadcasting."""
    return np.add(a, b)


add.defvjp(lambda grad_out, out, a, b: grad_out,   # d(a+b)/da = 1
           lambda grad_out, out, a, b: grad_out)   # d(a+b)/db = 1
add.rule_reads()  # (shapes only: a reverse pass may free x @ W before + b)


@primitive(sample=elementwise(2), explain=broadcast_explain,
           forward_into=ufunc_into(np.subtract))
def sub(a, b):
    """a - b, broadcasting."""
    return np.subtract(a, b)


sub.defvjp(lambda grad_out, out, a, b: grad_out,   # d(a-b)/da = 1
           lambda grad_out, out, a, b: -grad_out)  # d(a-b)/db = -1
sub.rule_reads()


@primitive(sample=elementwise(2), explain=broadcast_explain,
           forward_into=ufunc_into(np.multiply))
def mul(a, b):
    """a * b, broadcasting."""
    return np.multiply(a, b)


mul.defvjp(lambda grad_out, out, a, b: grad_out * b,   # d(ab)/da = b
           lambda grad_out, out, a, b: grad_out * a)   # d(ab)/db = a
mul.rule_reads("a", "b")


def _div_sample(draw: Draw) -> tuple[tuple, dict]:
    shape_a, shape_b = draw.broadcastable_shapes(2)
    return (array(draw, shape_a), array(draw, shape_b, avoid=(0.0,), margin=0.5)), {}


@primitive(sample=_div_sample, explain=broadcast_explain, forward_into=ufunc_into(np.divide))
def div(a, b):
    """a / b, broadcasting."""
    return np.divide(a, b)


div.defvjp(lambda grad_out, out, a, b: grad_out / b,         # d(a/b)/da = 1/b
           lambda grad_out, out, a, b: -grad_out * out / b)  # d(a/b)/db = -a/b^2 = -out/b


@primitive(sample=elementwise(1), forward_into=ufunc_into(np.negative))
def neg(x):
    """-x."""
    return np.negative(x)


neg.defvjp(lambda grad_out, out, x: (-grad_out,))
neg.rule_reads()


def _power_sample(draw: Draw) -> tuple[tuple, dict]:
    shape_x, shape_p = draw.broadcastable_shapes(2)
    return (array(draw, shape_x, 0.5, 2.0), array(draw, shape_p, -2.0, 2.0)), {}


def _power_exponent_vjp(grad_out, out, x, p):
    # d(x^p)/dp = x^p log x for x > 0 (taken as 0 elsewhere: there x^p is not smooth in p)
    positive = greater(x, 0)
    return grad_out * out * log(where(positive, x, 1)) * positive


@primitive(sample=_power_sample, explain=broadcast_explain)
def power(x, p):
    """x ** p, broadcasting."""
    # ndarray's own ** where x is an array: some NumPy versions compute x ** 0.5 and x ** 2 as
    # sqrt and square (other bits than np.power), and a traced step must give eager's bits
    return x ** p if isinstance(x, np.ndarray) else np.power(x, p)


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

@primitive(sample=elementwise(1), forward_into=ufunc_into(np.exp))
def exp(x):
    """e ** x."""
    return np.exp(x)


exp.defvjp(lambda grad_out, out, x: (grad_out * out,))  # d/dx e^x = e^x
exp.rule_reads("out")


@primitive(sample=elementwise(1, 0.2, 3.0), forward_into=ufunc_into(np.log))
def log(x):
    """Natural logarithm."""
    return np.log(x)


log.defvjp(lambda grad_out, out, x: (grad_out / x,))  # d/dx log x = 1/x


_SIGMOID_BLOCK = 1 << 16  # elements per block of a large sigmoid (256 KiB of float32 scratch)
_SIGMOID_COMPARE = 1 << 12  # from this size on, the numerator by a comparison is faster


def _sigmoid_into(out, x):
    """1 / (1 + e^-x) = e^min(x, 0) / (1 + e^-|x|): exact and warning-free for any |x|.

    Neither exponent is ever positive, so nothing overflows; no np.where (several times
    slower than the whole formula on large arrays). One exponential: e^-|x| <= 1, and
    e^min(x, 0) is 1 where x >= 0 and e^-|x| elsewhere, which is max(e^-|x|, sign(x)) or
    max(e^-|x|, [x >= 0]) (NaN stays NaN; the first is faster on small arrays). The
    denominator is built in ``out``, the numerator in a scratch array; a large input goes block
    by block, so that the scratch is one block (a full-batch step then holds no extra array of
    the layer's size) and each block's passes stay in cache. Elementwise: the bits depend
    neither on the blocks nor on the numerator's formula (tested).
    """
    x = np.asarray(x)
    if out is None:
        out = np.empty(x.shape, np.result_type(x, np.float16))
    if x.dtype.kind == "b" or out is x:  # (np.sign has no boolean loop; out is written first)
        x = x.astype(out.dtype)
    # The formula is chosen by size alone, as a compiled program's plan chooses it: the same
    # bits, NaN's sign bit included.
    if x.size < _SIGMOID_COMPARE:
        return _sigmoid_by_sign(out, x, np.empty_like(out))
    if not (x.flags.c_contiguous and out.flags.c_contiguous):
        return _sigmoid_by_comparison(out, x, np.empty_like(out), np.empty(out.shape, bool))
    return _sigmoid_plan(x.shape, out.dtype)(out, x)


def _sigmoid_plan(shape: tuple[int, ...], dtype: np.dtype) -> Any:
    """``into(out, x)``: the sigmoid of arrays of this shape, its scratch allocated here."""
    size = math.prod(shape)
    blocked = size > _SIGMOID_BLOCK
    numerator = np.empty(_SIGMOID_BLOCK if blocked else shape, dtype)
    if size < _SIGMOID_COMPARE:
        def small(out, x):
            return _sigmoid_by_sign(out, x, numerator)
        return small
    at_least_0 = np.empty(numerator.shape, bool)
    if not blocked:
        def whole(out, x):
            return _sigmoid_by_comparison(out, x, numerator, at_least_0)
        return whole

    def by_blocks(out, x):
        flat_x, flat_out = x.reshape(-1), out.reshape(-1)
        for start in range(0, size, _SIGMOID_BLOCK):
            block = slice(start, start + _SIGMOID_BLOCK)
            part = flat_out[block]
            length = len(part)
            _sigmoid_by_comparison(part, flat_x[block], numerator[:length], at_least_0[:length])
        return out

    return by_blocks


def _sigmoid_by_sign(out, x, numerator):
    np.copysign(x, -1, out=out)
    np.exp(out, out=out)  # e^-|x|
    np.sign(x, out=numerator)
    np.maximum(numerator, out, out=numerator)  # e^min(x, 0)
    np.add(out, 1, out=out)
    return np.divide(numerator, out, out=out)


def _sigmoid_by_comparison(out, x, numerator, at_least_0):
    np.copysign(x, -1, out=out)
    np.exp(out, out=out)  # e^-|x|
    np.greater_equal(x, 0, out=at_least_0)
    np.maximum(out, at_least_0, out=numerator)  # e^min(x, 0)
    np.add(out, 1, out=out)
    return np.divide(numerator, out, out=out)


def _plan_sigmoid(params: dict, shapes: list[tuple[int, ...]], dtypes: list[np.dtype]) -> Any:
    """For a compiled program, whose shapes are fixed: the scratch allocated once."""
    (shape,), (dtype,) = shapes, dtypes
    if dtype.kind != "f":
        return None
    return sigmoid.forward, _sigmoid_plan(shape, dtype)


@primitive(sample=elementwise(1, -6.0, 6.0), forward_into=_sigmoid_into)
def sigmoid(x):
    """1 / (1 + e^-x), exact and warning-free for any |x| (see _sigmoid_into)."""
    return _sigmoid_into(None, x)


sigmoid.plan = _plan_sigmoid


sigmoid.defvjp(lambda grad_out, out, x: (grad_out * out * (1 - out),))  # s' = s (1 - s)
sigmoid.rule_reads("out")


@primitive(sample=elementwise(1, -3.0, 3.0), forward_into=ufunc_into(np.tanh))
def tanh(x):
    """Hyperbolic tangent."""
    return np.tanh(x)


tanh.defvjp(lambda grad_out, out, x: (grad_out * (1 - out * out),))  # tanh' = 1 - tanh^2
tanh.rule_reads("out")


@primitive(sample=elementwise(1, avoid=(0.0,)))
def relu(x):
    """max(x, 0)."""
    return np.maximum(x, 0)


# 1 where x > 0, else 0; read from the output (max(x, 0) > 0 exactly where x > 0, NaN neither),
# so that a reverse pass may free x
relu.defvjp(lambda grad_out, out, x: (grad_out * greater(out, 0),))
relu.rule_reads("out")


# NumPy's other names for the arithmetic above (the same objects)
subtract = sub
multiply = mul
divide = div
true_divide = div
negative = neg


@primitive(sample=elementwise(1), forward_into=ufunc_into(np.square))
def square(x):
    """x * x."""
    return np.square(x)


square.defvjp(lambda grad_out, out, x: grad_out * 2 * x)  # d/dx x^2 = 2x


def _reciprocal_sample(draw: Draw) -> tuple[tuple, dict]:
    return (array(draw, draw.shape(), avoid=(0.0,), margin=0.3),), {}


@primitive(sample=_reciprocal_sample, forward_into=ufunc_into(np.reciprocal))
def reciprocal(x):
    """1 / x (for integer x, NumPy's integer reciprocal)."""
    return np.reciprocal(x)


reciprocal.defvjp(lambda grad_out, out, x: -grad_out * out * out)  # d/dx 1/x = -1/x^2


def _mod_sample(draw: Draw) -> tuple[tuple, dict]:
    """a = b (k + u), u in [0.1, 0.9]: a / b is at least 0.1 from the integers, where a mod b
    jumps. a has the broadcast shape (each of its values is tied to the b it meets)."""
    shape_a, shape_b = draw.broadcastable_shapes(2)
    shape = np.broadcast_shapes(shape_a, shape_b)
    rng = draw.rng()
    b = np.asarray(rng.uniform(0.5, 2.0, shape_b) * rng.choice([-1.0, 1.0], shape_b))
    quotient = rng.integers(-3, 3, shape) + rng.uniform(0.1, 0.9, shape)
    return (np.asarray(quotient * b), b), {}


@primitive(sample=_mod_sample, explain=broadcast_explain, forward_into=ufunc_into(np.remainder))
def mod(a, b):
    """a - b floor(a / b), broadcasting: the result has the sign of b (NumPy's and Python's %)."""
    return np.remainder(a, b)


mod.defvjp(lambda grad_out, out, a, b: grad_out,                         # d(a mod b)/da = 1
           lambda grad_out, out, a, b: -grad_out * floor_divide(a, b))  # d/db = -floor(a/b)
remainder = mod


@primitive(sample=_mod_sample, explain=broadcast_explain,
           forward_into=ufunc_into(np.floor_divide))
def floor_divide(a, b):
    """floor(a / b), broadcasting (Python's //); derivative 0 almost everywhere."""
    return np.floor_divide(a, b)


floor_divide.defvjp(zero_vjp)
