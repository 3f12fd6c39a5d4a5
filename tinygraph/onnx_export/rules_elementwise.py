"""ONNX rules of the elementwise ops (:mod:`tinygraph.ops.arithmetic`, :mod:`~tinygraph.ops.
elementwise`, :mod:`~tinygraph.ops.functions`): identity and casts, comparisons and masks,
arithmetic, signs and rounding, extrema, and the elementary functions.

Each rule is ``rule(g, *inputs, **params) -> name`` (see :mod:`tinygraph.onnx_export`); where
ONNX has no operator of NumPy's meaning, the docstring gives the formula the nodes compute.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tinygraph.onnx_export.graph import OnnxGraph, Rule


def _unary(op_type: str) -> Rule:
    """The ONNX operator ``op_type`` of one input, in the result's dtype."""
    def rule(g: OnnxGraph, x: str) -> str:
        return g.op(op_type, g.cast(x, g.out_dtype))

    rule.__name__ = f"onnx_{op_type.lower()}"
    return rule


def _binary(op_type: str) -> Rule:
    """The ONNX operator ``op_type`` of two inputs, both in the result's dtype (ONNX broadcasts
    as NumPy does)."""
    def rule(g: OnnxGraph, a: str, b: str) -> str:
        return g.op(op_type, *g.operands(a, b))

    rule.__name__ = f"onnx_{op_type.lower()}"
    return rule


def _compare(op_type: str, negate: bool = False) -> Rule:
    """A comparison in the inputs' common dtype (``not_equal``: Not of Equal)."""
    def rule(g: OnnxGraph, a: str, b: str) -> str:
        dtype = g.common_dtype(a, b)
        if dtype == np.bool_ and op_type != "Equal":
            dtype = np.dtype(np.int32)  # ONNX orders numbers, not booleans
        out = g.op(op_type, g.cast(a, dtype), g.cast(b, dtype))
        return g.op("Not", out) if negate else out

    rule.__name__ = f"onnx_{op_type.lower()}"
    return rule


def _identity(g: OnnxGraph, x: str, **params: Any) -> str:
    """x itself in the result's dtype (the real part of a real number, stop_gradient, ...)."""
    return g.op("Identity", g.cast(x, g.out_dtype))


def _cast(g: OnnxGraph, x: str, dtype: Any) -> str:
    """x converted to ``dtype``."""
    return g.op("Identity", g.cast(x, dtype))


def _scaled(op_type: str | None, factor: float, divide: bool = False) -> Rule:
    """op_type(x) (x itself for None) times, or divided by, ``factor``: deg2rad, log2, ..."""
    def rule(g: OnnxGraph, x: str) -> str:
        x = g.cast(x, g.out_dtype)
        if op_type is not None:
            x = g.op(op_type, x)
        return g.op("Div" if divide else "Mul", x, g.scalar(factor, g.out_dtype))

    return rule


def log1p_of(g: OnnxGraph, x: str, dtype: Any) -> str:
    """log(1 + x), exact for small x: log(u) x / (u - 1) with u = 1 + x (x itself where u = 1)."""
    one, zero = g.scalar(1, dtype), g.scalar(0, dtype)
    u = g.op("Add", x, one)
    d = g.op("Sub", u, one)
    is_one = g.op("Equal", d, zero)
    ratio = g.op("Where", g.op("Equal", d, x), one,
                 g.op("Div", x, g.op("Where", is_one, one, d)))
    return g.op("Where", is_one, x, g.op("Mul", g.op("Log", u), ratio))


def _log1p(g: OnnxGraph, x: str) -> str:
    """log(1 + x), exact for small x (see log1p_of)."""
    return log1p_of(g, g.cast(x, g.out_dtype), g.out_dtype)


def _expm1(g: OnnxGraph, x: str) -> str:
    """e^x - 1, exact for small x: 2t / (1 - t) with t = tanh(x / 2) where |x| < 1."""
    dtype = g.out_dtype
    x = g.cast(x, dtype)
    t = g.op("Tanh", g.op("Mul", x, g.scalar(0.5, dtype)))
    small = g.op("Div", g.op("Add", t, t), g.op("Sub", g.scalar(1, dtype), t))
    large = g.op("Sub", g.op("Exp", x), g.scalar(1, dtype))
    return g.op("Where", g.op("Less", g.op("Abs", x), g.scalar(1, dtype)), small, large)


def _exp2(g: OnnxGraph, x: str) -> str:
    """2^x."""
    return g.op("Pow", g.scalar(2, g.out_dtype), g.cast(x, g.out_dtype))


def _cbrt(g: OnnxGraph, x: str) -> str:
    """sign(x) |x|^(1/3) (Pow of a negative base to 1/3 is NaN)."""
    x = g.cast(x, g.out_dtype)
    root = g.op("Pow", g.op("Abs", x), g.scalar(1 / 3, g.out_dtype))
    return g.op("Mul", g.op("Sign", x), root)


def _square(g: OnnxGraph, x: str) -> str:
    """x * x."""
    x = g.cast(x, g.out_dtype)
    return g.op("Mul", x, x)


def _reciprocal(g: OnnxGraph, x: str) -> str:
    """1 / x (ONNX's Reciprocal takes floats only: integers divide 1)."""
    x = g.cast(x, g.out_dtype)
    if g.out_dtype.kind == "f":
        return g.op("Reciprocal", x)
    return g.op("Div", g.scalar(1, g.out_dtype), x)


def _trunc(g: OnnxGraph, x: str) -> str:
    """Towards zero: ceil(x) below 0, floor(x) from 0 up."""
    x = g.cast(x, g.out_dtype)
    return g.op("Where", g.op("Less", x, g.scalar(0, g.out_dtype)), g.op("Ceil", x),
                g.op("Floor", x))


def _round(g: OnnxGraph, a: str, decimals: int = 0) -> str:
    """NumPy's round: half to even of a * 10^d, divided back (d < 0: a / 10^-d, times back)."""
    a = g.cast(a, g.out_dtype)
    if g.out_dtype.kind != "f":
        if decimals < 0:
            raise g.fail(f"rounding integers to decimals={decimals} (tens and up) is not mapped")
        return g.op("Identity", a)
    if decimals == 0:
        return g.op("Round", a)
    factor = g.scalar(10.0 ** abs(decimals), g.out_dtype)
    if decimals > 0:
        return g.op("Div", g.op("Round", g.op("Mul", a, factor)), factor)
    return g.op("Mul", g.op("Round", g.op("Div", a, factor)), factor)


def _imag(g: OnnxGraph, val: str) -> str:
    """Zeros of val's shape."""
    return g.full_like(val, 0, g.out_dtype)  # real input: no imaginary part


def _angle(g: OnnxGraph, z: str, deg: bool = False) -> str:
    """The argument of a real number: pi (180) below 0, 0 from 0 up, NaN for NaN."""
    z = g.cast(z, g.out_dtype)
    half_turn = g.scalar(180.0 if deg else math.pi, g.out_dtype)
    sign = g.op("Where", g.op("Less", z, g.scalar(0, g.out_dtype)), half_turn,
                g.scalar(0, g.out_dtype))
    return g.op("Where", g.op("IsNaN", z), z, sign)


def _float_test(which: str) -> Rule:
    """isnan, isinf or isfinite: IsNaN, IsInf, or neither (constant for integers)."""
    def rule(g: OnnxGraph, x: str) -> str:
        if g.dtype(x).kind != "f":  # integers are never NaN nor infinite
            return g.full_like(x, which == "isfinite", np.bool_)
        if which == "isnan":
            return g.op("IsNaN", x)
        if which == "isinf":
            return g.op("IsInf", x)
        return g.op("Not", g.op("Or", g.op("IsNaN", x), g.op("IsInf", x)))

    return rule


def _where(g: OnnxGraph, condition: str, a: str, b: str) -> str:
    """a where condition holds, else b."""
    return g.op("Where", g.cast(condition, np.bool_), *g.operands(a, b))


def _sinc(g: OnnxGraph, x: str) -> str:
    """sin(pi x) / (pi x), 1 at 0 (the division is kept away from 0/0)."""
    x = g.cast(x, g.out_dtype)
    zero, one = g.scalar(0, g.out_dtype), g.scalar(1, g.out_dtype)
    y = g.op("Mul", x, g.scalar(math.pi, g.out_dtype))
    at_zero = g.op("Equal", x, zero)
    y = g.op("Where", at_zero, one, y)
    return g.op("Where", at_zero, one, g.op("Div", g.op("Sin", y), y))


def _nan_to_num(g: OnnxGraph, x: str, copy: bool = True, nan: float = 0.0,
                posinf: float | None = None, neginf: float | None = None) -> str:
    """NaN, inf and -inf replaced by ``nan``, ``posinf`` and ``neginf`` (default: the dtype's
    largest and smallest finite numbers); ``copy`` means nothing in a graph."""
    x = g.cast(x, g.out_dtype)
    if g.out_dtype.kind != "f":
        return g.op("Identity", x)
    info = np.finfo(g.out_dtype)
    high = info.max if posinf is None else posinf
    low = info.min if neginf is None else neginf
    out = g.op("Where", g.op("IsInf", x, detect_negative=0), g.scalar(high, g.out_dtype), x)
    out = g.op("Where", g.op("IsInf", x, detect_positive=0), g.scalar(low, g.out_dtype), out)
    return g.op("Where", g.op("IsNaN", x), g.scalar(nan, g.out_dtype), out)


def _nan_ignoring(op_type: str) -> Rule:
    """fmax/fmin: the other value where one is NaN (NaN only where both are)."""
    def rule(g: OnnxGraph, a: str, b: str) -> str:
        a, b = g.operands(a, b)
        if g.out_dtype.kind != "f":
            return g.op(op_type, a, b)
        both = g.op(op_type, a, b)
        return g.op("Where", g.op("IsNaN", a), b, g.op("Where", g.op("IsNaN", b), a, both))

    return rule


def _clip(g: OnnxGraph, a: str, a_min: str | None, a_max: str | None) -> str:
    """NumPy's clip: minimum(maximum(a, a_min), a_max), broadcasting, NaN propagating."""
    out, a_min, a_max = g.operands(a, a_min, a_max)
    if a_min is not None:
        out = g.op("Max", out, a_min)
    if a_max is not None:
        out = g.op("Min", out, a_max)
    return out if out != a else g.op("Identity", out)


def _fmod_parts(g: OnnxGraph, a: str, b: str) -> tuple[str, str, str]:
    """(C's fmod(a, b), the mask where NumPy's remainder adds b to it, a zero) as NumPy's
    divmod computes them: the remainder takes the sign of b."""
    zero = g.scalar(0, g.out_dtype)
    rem = g.op("Mod", a, b, fmod=1)
    signs_differ = g.op("Xor", g.op("Less", b, zero), g.op("Less", rem, zero))
    return rem, g.op("And", g.op("Not", g.op("Equal", rem, zero)), signs_differ), zero


def _mod(g: OnnxGraph, a: str, b: str) -> str:
    """NumPy's remainder, with the sign of b: fmod(a, b), plus b where the signs differ."""
    a, b = g.operands(a, b)
    if g.out_dtype.kind != "f":
        return g.op("Mod", a, b, fmod=0)  # integers: ONNX's Mod is Python's
    rem, adjust, _ = _fmod_parts(g, a, b)
    return g.op("Where", adjust, g.op("Add", rem, b), rem)


def _floor_divide(g: OnnxGraph, a: str, b: str) -> str:
    """NumPy's floor_divide on floats: (a - fmod(a, b)) / b, one less where the remainder's sign
    is not b's, then rounded to the nearest whole number (a / b where b is 0)."""
    a, b = g.operands(a, b)
    if g.out_dtype.kind != "f":
        return g.op("Cast", g.op("Floor", g.op("Div", *g.operands(a, b, dtype=np.float64))),
                    to=g.onnx_dtype(g.out_dtype))
    rem, adjust, zero = _fmod_parts(g, a, b)
    one, half = g.scalar(1, g.out_dtype), g.scalar(0.5, g.out_dtype)
    div = g.op("Div", g.op("Sub", a, rem), b)
    div = g.op("Where", adjust, g.op("Sub", div, one), div)
    floor = g.op("Floor", div)
    floor = g.op("Where", g.op("Greater", g.op("Sub", div, floor), half),
                 g.op("Add", floor, one), floor)
    return g.op("Where", g.op("Equal", b, zero), g.op("Div", a, b), floor)


def _logaddexp(base2: bool) -> Rule:
    """log(e^a + e^b) as max + log1p(e^-|a - b|) (a + log 2 where a = b, infinities included);
    base 2 likewise."""
    def rule(g: OnnxGraph, a: str, b: str) -> str:
        dtype = g.out_dtype
        a, b = g.operands(a, b)
        top = g.op("Max", a, b)
        gap = g.op("Neg", g.op("Abs", g.op("Sub", a, b)))
        if base2:
            tail = g.op("Div", log1p_of(g, g.op("Pow", g.scalar(2, dtype), gap), dtype),
                        g.scalar(math.log(2), dtype))
            same = g.op("Add", a, g.scalar(1, dtype))
        else:
            tail = log1p_of(g, g.op("Exp", gap), dtype)
            same = g.op("Add", a, g.scalar(math.log(2), dtype))
        return g.op("Where", g.op("Equal", a, b), same, g.op("Add", top, tail))

    return rule


def _arctan2(g: OnnxGraph, y: str, x: str) -> str:
    """atan(y / x), turned by pi where x < 0; +-pi/2 or 0 on the y axis (signed zeros aside)."""
    dtype = g.out_dtype
    y, x = g.operands(y, x)
    zero, pi = g.scalar(0, dtype), g.scalar(math.pi, dtype)
    base = g.op("Atan", g.op("Div", y, x))
    turned = g.op("Where", g.op("Less", y, zero), g.op("Sub", base, pi), g.op("Add", base, pi))
    axis = g.op("Mul", g.op("Sign", y), g.scalar(math.pi / 2, dtype))
    return g.op("Where", g.op("Less", x, zero), turned,
                g.op("Where", g.op("Equal", x, zero), axis, base))



RULES: dict[str, Rule] = {
    # identity, casts, parts of a real number
    "identity": _identity, "stop_gradient": _identity, "real": _identity, "conj": _identity,
    "real_if_close": _identity, "imag": _imag, "angle": _angle, "cast": _cast,
    # masks and selection
    "greater": _compare("Greater"), "greater_equal": _compare("GreaterOrEqual"),
    "less": _compare("Less"), "less_equal": _compare("LessOrEqual"),
    "equal": _compare("Equal"), "not_equal": _compare("Equal", negate=True),
    "isfinite": _float_test("isfinite"), "isnan": _float_test("isnan"),
    "isinf": _float_test("isinf"), "where": _where,
    # arithmetic
    "add": _binary("Add"), "sub": _binary("Sub"), "mul": _binary("Mul"), "div": _binary("Div"),
    "power": _binary("Pow"), "neg": _unary("Neg"), "square": _square,
    "reciprocal": _reciprocal, "mod": _mod, "floor_divide": _floor_divide,
    # signs, rounding, extrema
    "abs": _unary("Abs"), "sign": _unary("Sign"), "floor": _unary("Floor"),
    "ceil": _unary("Ceil"), "trunc": _trunc, "rint": _unary("Round"), "round": _round,
    "maximum": _binary("Max"), "minimum": _binary("Min"), "fmax": _nan_ignoring("Max"),
    "fmin": _nan_ignoring("Min"), "clip": _clip, "nan_to_num": _nan_to_num,
    "deg2rad": _scaled(None, math.pi / 180), "rad2deg": _scaled(None, 180 / math.pi),
    # functions
    "exp": _unary("Exp"), "log": _unary("Log"), "sigmoid": _unary("Sigmoid"),
    "tanh": _unary("Tanh"), "relu": _unary("Relu"), "sqrt": _unary("Sqrt"), "cbrt": _cbrt,
    "exp2": _exp2, "expm1": _expm1, "log2": _scaled("Log", math.log(2), divide=True),
    "log10": _scaled("Log", math.log(10), divide=True), "log1p": _log1p,
    "logaddexp": _logaddexp(base2=False), "logaddexp2": _logaddexp(base2=True),
    "sin": _unary("Sin"), "cos": _unary("Cos"), "tan": _unary("Tan"),
    "arcsin": _unary("Asin"), "arccos": _unary("Acos"), "arctan": _unary("Atan"),
    "arctan2": _arctan2, "sinh": _unary("Sinh"), "cosh": _unary("Cosh"),
    "arcsinh": _unary("Asinh"), "arccosh": _unary("Acosh"), "arctanh": _unary("Atanh"),
    "sinc": _sinc,
}
