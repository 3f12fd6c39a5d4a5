"""``import tinygraph.numpy as np``: NumPy's names, differentiable where tinygraph has the op.

NumPy code written against this module runs on Tensors and records a graph, so ``tg.grad``
differentiates it (as ``autograd.numpy`` does for autograd)::

    import tinygraph.numpy as np

    def loss(W, x, y):
        return np.sum((np.tanh(np.dot(x, W)) - y) ** 2)

    tg.grad(loss)(W, x, y)

A name is looked up when first used (a module ``__getattr__``), in this order:

- ``array``, ``asarray`` (and ``asanyarray``, ``ascontiguousarray``, ``copy``): defined here;
  a (nested) list holding Tensors becomes one recorded Tensor, stacked with ``tg.stack``, so
  that ``np.array([t1, t2, 3.0])`` keeps the graph. ``where`` with one argument is NumPy's
  ``nonzero``.
- ``linalg``: a namespace of ``tg.linalg``'s ops, NumPy's ``numpy.linalg`` for the rest
  (also importable as ``tinygraph.numpy.linalg``).
- a NumPy name tinygraph has an op for: that op (``np.sin`` is ``tg.sin``, ``np.sum`` is ``tg.sum``,
  ``np.trace`` is the matrix trace). The few names that differ are the table ``ALIASES`` of
  :mod:`tinygraph.ops.dispatch`, shared with NumPy dispatch; NumPy's other spellings
  (``np.acos``, ``np.pow``) are found through the function's own name (``arccos``, ``power``).
  On plain arrays an op returns plain arrays: NumPy code keeps working unchanged.
- anything else: NumPy's own object. Dtypes, constants (``pi``, ``e``, ``inf``, ``nan``,
  ``newaxis``), classes and submodules (``random``, ``fft``) as they are. NumPy functions that
  dispatch (most of them) raise TypeError naming themselves when given a Tensor (see
  :mod:`tinygraph.ops.dispatch`); the array creators that do not dispatch (``zeros``, ``ones``,
  ``arange``, ``eye``, ``full``, ``empty``, ...) run NumPy on plain arguments and raise the same
  TypeError if one of them is a Tensor.

Ufunc methods (``np.add.reduce``) need NumPy's ufunc: use ``numpy.add.reduce(t)``, which
dispatches to ``tg.sum``. NumPy's ``numpy.array([t, u])`` cannot keep the graph (NumPy builds it
without asking the Tensors); this module's ``array`` does.
"""

from __future__ import annotations

import functools
import sys
import types
from typing import Any

import numpy

from tinygraph.ops.dispatch import astype as _astype
from tinygraph.ops.dispatch import holds_tensor, no_op_error, resolve
from tinygraph.primitive import convert_sequences_with
from tinygraph.tensor import Tensor

_DISPATCHED = type(numpy.concatenate)  # NumPy functions that hand Tensors to __array_function__


def _stack(parts: list) -> Any:
    stack = resolve("stack")
    if stack is None:
        raise no_op_error("array", "building an array from Tensors needs tg.stack")
    return stack(parts)


def _build(value: Any) -> Any:
    """A (nested) sequence holding Tensors as one Tensor, stacked along new leading axes."""
    if isinstance(value, Tensor):
        return value
    if isinstance(value, (list, tuple)) and holds_tensor(value):
        return _stack([_build(part) for part in value])
    return numpy.asarray(value)


def array(object: Any, dtype: Any = None, **options: Any) -> Any:
    """``numpy.array``; a Tensor, or a (nested) list holding Tensors, gives a recorded Tensor.

    Tensors are never written in place, so the Tensor result shares its inputs' data where it
    can (``copy=`` and ``order=`` change nothing); ``ndmin=`` adds leading axes.
    """
    if not holds_tensor(object):
        return numpy.array(object, dtype=dtype, **options)
    ndmin = options.pop("ndmin", 0)
    for ignored in ("copy", "order", "subok"):
        options.pop(ignored, None)
    if options:
        raise TypeError(f"tinygraph.numpy.array: {', '.join(sorted(options))} not supported "
                        "for Tensors")
    result = _build(object)
    if dtype is not None and numpy.dtype(dtype) != result.dtype:
        result = _astype(result, dtype)
    if result.ndim < ndmin:
        result = resolve("reshape")(result, shape=(1,) * (ndmin - result.ndim) + result.shape)
    return result


def asarray(a: Any, dtype: Any = None, **options: Any) -> Any:
    """``numpy.asarray``; a Tensor stays the Tensor (cast to ``dtype`` if given), a (nested)
    list holding Tensors becomes one recorded Tensor."""
    if not holds_tensor(a):
        return numpy.asarray(a, dtype=dtype, **options)
    if isinstance(a, Tensor):
        if dtype is None or numpy.dtype(dtype) == a.dtype:
            return a
        return _astype(a, dtype)
    return array(a, dtype=dtype, **options)


def _keeping_tensors(convert: Any) -> Any:
    """NumPy's ``convert`` (``asanyarray``, ``ascontiguousarray``), as ``asarray`` for Tensors."""

    @functools.wraps(convert)
    def call(a: Any, dtype: Any = None, **options: Any) -> Any:
        if holds_tensor(a):
            return asarray(a, dtype=dtype)
        return convert(a, dtype=dtype, **options)

    return call


# Every op takes a (nested) list or tuple operand as this ``array`` makes it: ``W * [W[0], 1.]``
# stacks the Tensors into a recorded Tensor, so that the gradient flows through it.
convert_sequences_with(array)

asanyarray = _keeping_tensors(numpy.asanyarray)
ascontiguousarray = _keeping_tensors(numpy.ascontiguousarray)


def copy(a: Any, **options: Any) -> Any:
    """``numpy.copy``; Tensors, never written in place, need no copy: as ``asarray``."""
    return asarray(a) if holds_tensor(a) else numpy.copy(a, **options)


def where(condition: Any, *choices: Any) -> Any:
    """``numpy.where``: ``tg.where(condition, a, b)``; with the condition alone, its nonzero
    indices (no derivative: NumPy's, answered on the data)."""
    if not choices:
        return numpy.nonzero(condition)
    return resolve("where")(condition, *choices)


def _refusing(function: Any, what: str) -> Any:
    """NumPy's ``function`` (which does not dispatch), refusing Tensor arguments by name."""

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        if holds_tensor(args) or holds_tensor(kwargs):
            raise no_op_error(what)
        return function(*args, **kwargs)

    return call


def _lookup(name: str, numpy_module: Any, namespace: str) -> Any:
    """What ``name`` of this module (or of ``linalg``) stands for; see the module docstring.

    NumPy's private and dunder names are not mirrored (NumPy's ``__path__`` would make this
    module look like a package holding NumPy's submodules).
    """
    original = None if name.startswith("_") else getattr(numpy_module, name, None)
    if original is None and name != "newaxis":
        prefix = "tinygraph.numpy" + (f".{namespace}" if namespace else "")
        raise AttributeError(f"module {prefix!r} has no attribute {name!r}")
    if isinstance(original, types.ModuleType):
        return original
    op = resolve(name, namespace)
    own_name = getattr(original, "__name__", None)
    if op is None and isinstance(own_name, str) and own_name != name and callable(original):
        op = resolve(own_name, namespace)  # np.acos is the ufunc arccos
    if op is not None:
        return op
    if callable(original) and not isinstance(original, (type, numpy.ufunc, _DISPATCHED)):
        return _refusing(original, f"{namespace}.{name}" if namespace else name)
    return original


class _LinalgNamespace(types.ModuleType):
    """``tinygraph.numpy.linalg``: ``tg.linalg``'s ops, NumPy's ``numpy.linalg`` otherwise."""

    def __getattr__(self, name: str) -> Any:
        value = _lookup(name, numpy.linalg, "linalg")
        setattr(self, name, value)
        return value

    def __dir__(self) -> list[str]:
        return sorted(set(dir(numpy.linalg)) | set(self.__dict__))


linalg = _LinalgNamespace(__name__ + ".linalg", _LinalgNamespace.__doc__)
sys.modules[linalg.__name__] = linalg


# ``from tinygraph.numpy import *`` gives NumPy's public names, each resolved as above.
__all__ = sorted({name for name in numpy.__all__ if not name.startswith("_")}
                 | {"array", "asarray", "asanyarray", "ascontiguousarray", "copy", "linalg",
                    "where"})


def __getattr__(name: str) -> Any:
    value = _lookup(name, numpy, "")
    globals()[name] = value  # the answer is fixed once the op families are loaded
    return value


def __dir__() -> list[str]:
    return sorted(set(dir(numpy)) | set(globals()))
