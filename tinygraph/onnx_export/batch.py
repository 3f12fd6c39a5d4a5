"""The dynamic batch dimension: which sizes and constants of a recorded program follow the batch.

``f`` is recorded at the example's batch size B and again at B + 1, B + 3, B + 61 and (when B >
1) at 1 (:func:`probe_batches`, :func:`with_batch`). :class:`BatchLayout` compares the
recordings: every size that changes with the batch must be ``k * batch + c`` for whole k and c (a
:class:`BatchDim`) at every probe, and a constant (of an op, or a result of ``f``) that changes
must be a :class:`BatchConstant`: all its entries one number, fixed or such a count or its
reciprocal (a mean's 1/N), and its sizes of that form too. Anything else that depends on the batch
(other ops, other parameters, other constants) is refused with a one-line error naming the op and
the user's line (or the result of ``f``). What five probes cannot see is said in the package's
docstring.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from tinygraph.onnx_export.errors import OnnxExportError, op_error
from tinygraph.program import Equation, Program
from tinygraph.pytree import flatten, unflatten


@dataclass(frozen=True)
class BatchDim:
    """A size ``scale * batch + offset`` (the batch is the first axis of every argument)."""

    scale: int
    offset: int = 0

    def at(self, batch: int) -> int:
        """This size for a batch of ``batch`` rows."""
        return self.scale * batch + self.offset

    def __str__(self) -> str:
        text = "batch" if self.scale == 1 else f"{self.scale}*batch"
        if self.offset:
            text += f"{'+' if self.offset > 0 else '-'}{abs(self.offset)}"
        return text


Dim = int | BatchDim  # a size: fixed, or following the batch
Dims = tuple[Dim, ...]

# Parameters that may change with the batch: the rules read the result's (symbolic) shape, never
# these numbers
BATCH_PARAMS = {"reshape": {"shape"}, "broadcast_to": {"shape"}, "unbroadcast": {"shape"},
                "scatter_add": {"shape"}, "scatter_add_along_axis": {"shape"}}


# How far above the example's batch the large probe goes: a slice or a branch that stops
# following the batch between B + 3 and B + 61 rows is seen
LARGE_PROBE = 61


def probe_batches(batch: int) -> list[int]:
    """The batch sizes ``f`` is recorded at: the example's B, then B + 1 and B + 3 (to fit k*batch +
    c), B + 61 (a size clamped above B: ``x[:40]``) and 1 when B > 1 (a size clamped below B:
    ``x[-3:]``, or a branch on one row). Just ``[0]`` without a batch axis."""
    if not batch:
        return [0]
    return [batch, batch + 1, batch + 3, batch + LARGE_PROBE] + ([1] if batch > 1 else [])


def with_batch(example: np.ndarray, batch: int) -> np.ndarray:
    """``example`` with ``batch`` rows along its first axis (its own rows, cycled)."""
    return example[np.arange(batch) % len(example)]


def fit_affine(values: Sequence[Any], batches: Sequence[int]) -> BatchDim | None:
    """The BatchDim that gives ``values`` at ``batches`` (whole numbers only), or None."""
    try:
        numbers = [float(v) for v in values]
    except (TypeError, ValueError):
        return None
    if not all(math.isfinite(v) and v == round(v) for v in numbers):
        return None
    scale = (numbers[1] - numbers[0]) / (batches[1] - batches[0])
    if scale != round(scale) or scale == 0:
        return None
    offset = numbers[0] - scale * batches[0]
    dim = BatchDim(int(scale), int(offset))
    return dim if all(dim.at(b) == v for b, v in zip(batches, numbers)) else None


def fit_number(values: Sequence[Any],
               batches: Sequence[int]) -> tuple[BatchDim, bool, float] | None:
    """How one number recorded at ``batches`` follows the batch: ``(count, reciprocal, factor)``
    for ``factor * count`` or (``reciprocal``) ``factor / count``, the count k*batch + c for
    whole k and c; or None. An integer must be an exact count; a float must match every probe to
    a few units in its last place (a mean's 1/N, a squared error's gradient seed 2/N, a
    ``float(len(x))``). The first candidates make NumPy's own roundings (factor 1, or a whole
    factor over the count)."""
    arrays = [np.asarray(v) for v in values]
    dtype = arrays[0].dtype
    if any(a.ndim for a in arrays) or dtype.kind not in "iuf":
        return None
    if dtype.kind in "iu":
        fit = fit_affine(values, batches)
        return (fit, False, 1.0) if fit is not None else None
    numbers = [float(v) for v in values]
    if not all(math.isfinite(v) for v in numbers):
        return None
    tolerance = 8 * float(np.finfo(dtype).eps)

    def matches(count: BatchDim, reciprocal: bool, factor: float) -> bool:
        for number, batch in zip(numbers, batches):
            size = count.at(batch)
            if reciprocal and size == 0:
                return False
            predicted = factor / size if reciprocal else factor * size
            if abs(predicted - number) > tolerance * max(abs(number), abs(predicted)):
                return False
        return True

    for reciprocal in (False, True):
        if reciprocal and 0 in numbers:
            continue
        series = [1 / v if reciprocal else v for v in numbers]  # lambda * (k*batch + c)
        for count, scale in _whole_counts(series, batches):
            # series = scale * count: the number is scale*count, or (1/scale)/count
            factor = 1 / scale if reciprocal else scale
            snapped = Fraction(factor).limit_denominator(64)
            if reciprocal and snapped.denominator > 1:
                # p/q over the count is p over q*count (2/(3N) as NumPy rounds it)
                whole = BatchDim(count.scale * snapped.denominator,
                                 count.offset * snapped.denominator)
                if matches(whole, True, float(snapped.numerator)):
                    return whole, True, float(snapped.numerator)
            for candidate in (float(snapped), factor):
                if candidate and matches(count, reciprocal, candidate):
                    return count, reciprocal, candidate
    return None


def _whole_counts(series: list[float], batches: Sequence[int]) -> list[tuple[BatchDim, float]]:
    """Candidates ``(k*batch + c, scale)`` with ``series ~ scale * (k*batch + c)``: the nearest
    whole k and c with scale 1, then the smallest whole k, c in the fitted ratio c/k."""
    if len(batches) < 2:
        return []
    far = max(range(1, len(batches)), key=lambda i: abs(batches[i] - batches[0]))
    slope = (series[far] - series[0]) / (batches[far] - batches[0])
    if slope == 0 or not math.isfinite(slope):
        return []
    intercept = series[0] - slope * batches[0]
    candidates = []
    if round(slope):
        candidates.append((BatchDim(round(slope), round(intercept)), 1.0))
    ratio = Fraction(intercept / slope).limit_denominator(64)
    count = BatchDim(ratio.denominator, ratio.numerator)
    if count.at(batches[0]):
        candidates.append((count, series[0] / count.at(batches[0])))
    return candidates


@dataclass(frozen=True)
class BatchConstant:
    """A constant of the recording that changes with the batch, rebuilt at run time: an array of
    sizes ``dims`` (some may follow the batch) whose entries are all one number: ``fill``, or,
    with ``count`` (k*batch + c), ``factor * count`` or (``reciprocal``) ``factor / count``. A
    mean's 1/N, a gradient's seed (ones of the output's shape; 2/N for a mean squared error)
    and ``float(len(x))`` are such constants."""

    dims: Dims
    fill: Any = None
    count: BatchDim | None = None
    reciprocal: bool = False
    factor: float = 1.0  # the number is factor * count, or factor / count


def fit_constant(values: Sequence[Any], batches: Sequence[int]) -> BatchConstant | None:
    """How a constant recorded as ``values`` at ``batches`` follows the batch (a
    :class:`BatchConstant`), or None when it is not one repeated number (fixed, a count, or its
    reciprocal) over sizes k*batch + c. NumPy numbers and arrays, and Python numbers."""
    arrays = [np.asarray(v) for v in values]
    if any(a.dtype.kind not in "biuf" for a in arrays) or len({a.dtype for a in arrays}) != 1:
        return None
    if len({a.ndim for a in arrays}) != 1:
        return None
    dims: list[Dim] = []
    for sizes in zip(*(a.shape for a in arrays)):
        fit = int(sizes[0]) if len(set(sizes)) == 1 else fit_affine(sizes, batches)
        if fit is None:
            return None
        dims.append(fit)
    seen = [(a.reshape(-1)[0], b) for a, b in zip(arrays, batches) if a.size]
    for a in arrays:
        flat = a.reshape(-1)
        if a.size and not np.array_equal(flat, np.full_like(flat, flat[0]),
                                         equal_nan=a.dtype.kind == "f"):
            return None  # not one repeated number
    if not seen:  # empty at every probe: any number will do
        return BatchConstant(tuple(dims), fill=arrays[0].dtype.type(0))
    if all(same_value(number, seen[0][0]) for number, _ in seen):
        return BatchConstant(tuple(dims), fill=seen[0][0])
    if len(seen) < 2:
        return None
    fit = fit_number([number for number, _ in seen], [b for _, b in seen])
    if fit is None:
        return None
    return BatchConstant(tuple(dims), count=fit[0], reciprocal=fit[1], factor=fit[2])


def same_value(a: Any, b: Any) -> bool:
    """Whether two recorded parameters or constants are the same (arrays by value, NaN equal to
    NaN)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape
                and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(map(same_value, a, b))
    if isinstance(a, slice) and isinstance(b, slice):
        return same_value((a.start, a.stop, a.step), (b.start, b.stop, b.step))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    try:
        return bool(type(a) is type(b) and a == b)
    except (TypeError, ValueError):
        return a is b


def short_repr(value: Any) -> str:
    """A value for an error message: a number, an array's shape, or a repr cut to 60 characters."""
    if isinstance(value, np.ndarray):
        return repr(value.item()) if value.size == 1 else f"an array of shape {value.shape}"
    text = repr(value)
    return text if len(text) < 60 else text[:57] + "..."


class BatchLayout:
    """The sizes of every value of a program (``dims``: value number -> ints and BatchDims), its
    constants that follow the batch (``batch_constants``: value number -> :class:`BatchConstant`)
    and its constant results that do (``output_constants``: position among the results ->
    :class:`BatchConstant`), read from the same ``f`` recorded at ``batches`` (one program and
    ``[0]``: every size fixed, as traced)."""

    def __init__(self, programs: list[Program], batches: list[int]) -> None:
        self.dims: dict[int, Dims] = {}
        self.batch_constants: dict[int, BatchConstant] = {}
        self.output_constants: dict[int, BatchConstant] = {}
        first = programs[0]
        if len(batches) == 1:
            for item in first.inputs:
                self.dims[item.value] = tuple(item.shape)
            for eq in first.equations:
                self.dims[eq.out] = tuple(eq.shape)
            for value, constant in first.constants.items():
                self.dims[value] = np.shape(constant)
            return
        _check_same_program(programs, batches)
        for number, item in enumerate(first.inputs):
            self.dims[item.value] = _fit_dims([p.inputs[number].shape for p in programs],
                                              batches, f"argument {item.path}", None)
        for number, eq in enumerate(first.equations):
            self.dims[eq.out] = _fit_dims([p.equations[number].shape for p in programs],
                                          batches, "its result", eq)
        users = {v: eq for eq in reversed(first.equations) for v in eq.inputs}
        for value, constant in first.constants.items():
            self.dims[value] = np.shape(constant)
            recorded = [p.constants[value] for p in programs]
            fit = _changing_constant(recorded, batches)
            if fit is None:
                continue
            if isinstance(fit, str):
                raise op_error(users.get(value), f"a constant it uses depends on the batch size "
                               f"({fit}), not as one number (fixed, or a*N or a/N of a count "
                               "N = k*batch + c) over sizes k*batch + c; compute it with "
                               "tinygraph ops from the input, or export with "
                               "dynamic_batch=False")
            self.batch_constants[value] = fit
            self.dims[value] = fit.dims
        paths = _result_paths(first)
        for position, value in enumerate(first.outputs):
            if value is not None:
                continue
            fit = _changing_constant([p.output_constants[position] for p in programs], batches)
            if fit is None:
                continue
            if isinstance(fit, str):
                raise OnnxExportError(
                    f"export_onnx: f's result{paths[position]} (output {position}) is a constant "
                    f"that depends on the batch size ({fit}), not as one number (fixed, or a*N "
                    "or a/N of a count N = k*batch + c) over sizes k*batch + c; compute it with "
                    "tinygraph ops from the input, or export with dynamic_batch=False")
            self.output_constants[position] = fit


def _changing_constant(recorded: list[Any], batches: list[int]) -> BatchConstant | str | None:
    """None when a constant is the same at every probe; else its :class:`BatchConstant`, or the
    text saying how it changes (for a refusal)."""
    first = recorded[0]
    for other, batch in zip(recorded[1:], batches[1:]):
        if not same_value(_plain(first), _plain(other)):
            fit = fit_constant(recorded, batches)
            if fit is not None:
                return fit
            return (f"{short_repr(_plain(first))} for a batch of {batches[0]}, "
                    f"{short_repr(_plain(other))} for {batch}")
    return None


def _plain(value: Any) -> Any:
    """A NumPy number as a 0-d array (compared by value and dtype like arrays)."""
    return np.asarray(value) if isinstance(value, np.generic) else value


def _result_paths(program: Program) -> list[str]:
    """Where each result sits in ``f``'s returned pytree (``[1]``, ``['count']``, ``''``)."""
    count = len(program.outputs)
    return flatten(unflatten(program.output_treedef, list(range(count))))[2]


def _check_same_program(programs: list[Program], batches: list[int]) -> None:
    """Refuse recordings that differ but in sizes and constants: other ops, other results, or
    parameters (but those of BATCH_PARAMS)."""
    first = programs[0]
    for program, batch in zip(programs[1:], batches[1:]):
        if (len(program.equations) != len(first.equations)
                or set(program.constants) != set(first.constants)
                or program.outputs != first.outputs
                or program.output_treedef != first.output_treedef):
            raise OnnxExportError(
                f"export_onnx: f records a different program for a batch of {batch} than "
                f"for {batches[0]} ({len(program.equations)} against {len(first.equations)}"
                f" ops, {len(program.outputs)} against {len(first.outputs)} results); a "
                "batch-dependent Python branch cannot be exported with dynamic_batch=True: "
                "export with dynamic_batch=False")
        for a, b in zip(first.equations, program.equations):
            if a.prim is not b.prim or a.inputs != b.inputs or a.out != b.out \
                    or set(a.params) != set(b.params):
                raise op_error(a, f"f records other ops for a batch of {batch} than for "
                               f"{batches[0]} (here {b.prim.name}); a batch-dependent Python "
                               "branch cannot be exported with dynamic_batch=True")
            allowed = BATCH_PARAMS.get(a.prim.name, set())
            for name, value in a.params.items():
                if not same_value(value, b.params[name]) and name not in allowed:
                    raise op_error(a, f"its parameter {name} depends on the batch size "
                                   f"({short_repr(value)} for a batch of {batches[0]}, "
                                   f"{short_repr(b.params[name])} for {batch}); export with "
                                   "dynamic_batch=False")


def _fit_dims(shapes: list[tuple[int, ...]], batches: list[int], what: str,
              eq: Equation | None) -> Dims:
    """One value's sizes from its shapes at ``batches``: an int where they agree, else a
    BatchDim (refused when it is not k*batch + c)."""
    if len({len(s) for s in shapes}) != 1:
        raise op_error(eq, f"{what} has a number of axes that depends on the batch size")
    dims: list[Dim] = []
    for axis, sizes in enumerate(zip(*shapes)):
        if len(set(sizes)) == 1:
            dims.append(int(sizes[0]))
            continue
        fit = fit_affine(sizes, batches)
        if fit is None:
            hint = (" (a slice bound that clamps, as x[:5] or x[-3:], does not follow the batch)"
                    if eq is not None and eq.prim.name == "getitem" else "")
            raise op_error(eq, f"axis {axis} of {what} has sizes {list(sizes)} for batches "
                           f"{batches}, not k*batch + c{hint}; export with dynamic_batch=False")
        dims.append(fit)
    return tuple(dims)
