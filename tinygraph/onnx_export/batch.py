"""The dynamic batch dimension: which sizes and constants of a recorded program follow the batch.

``f`` is recorded at the example's batch size B and again at B + 1 and B + 3
(:func:`probe_batches`, :func:`with_batch`). :class:`BatchLayout` compares the recordings: every
size that changes with the batch must be ``k * batch + c`` for whole k and c (a
:class:`BatchDim`), and a scalar constant that changes must be such a count or its reciprocal (a
mean's 1/N). Anything else that depends on the batch (other ops, other parameters) is refused with
a one-line error naming the op and the user's line.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinygraph.onnx_export.errors import OnnxExportError, op_error
from tinygraph.program import Equation, Program


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


def probe_batches(batch: int) -> list[int]:
    """The batch sizes ``f`` is recorded at: the example's, then two more to fit k*batch + c
    (just the example's, 0, without a batch axis)."""
    return [batch, batch + 1, batch + 3] if batch else [0]


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


def fit_batch_constant(values: list[Any],
                       batches: Sequence[int]) -> tuple[BatchDim, bool] | None:
    """How a scalar constant follows the batch: (k*batch + c, False) for a count, (k*batch + c,
    True) for its reciprocal (a mean's 1/N, exactly as NumPy rounds it), or None."""
    if not all(np.ndim(v) == 0 and np.asarray(v).dtype.kind in "biuf" for v in values):
        return None
    fit = fit_affine(values, batches)
    if fit is not None:
        return fit, False
    if any(float(v) == 0 for v in values):
        return None
    counts = [round(1 / float(v)) for v in values]
    for value, count in zip(values, counts):
        dtype = np.asarray(value).dtype if np.asarray(value).dtype.kind == "f" else np.float64
        if count == 0 or np.asarray(1, dtype) / np.asarray(count, dtype) != np.asarray(value):
            return None
    fit = fit_affine(counts, batches)
    return (fit, True) if fit is not None else None


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
    """The sizes of every value of a program (``dims``: value number -> ints and BatchDims), and
    its scalar constants that follow the batch (``batch_constants``: value number -> (k*batch +
    c, whether the constant is its reciprocal)), read from the same ``f`` recorded at
    ``batches`` (one program and ``[0]``: every size fixed, as traced)."""

    def __init__(self, programs: list[Program], batches: list[int]) -> None:
        self.dims: dict[int, Dims] = {}
        self.batch_constants: dict[int, tuple[BatchDim, bool]] = {}
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
            others = [p.constants[value] for p in programs[1:]]
            self.dims[value] = np.shape(constant)
            if all(same_value(constant, other) for other in others):
                continue
            fit = fit_batch_constant([constant, *others], batches)
            if fit is None:
                raise op_error(users.get(value), "a constant it uses depends on the batch size "
                               f"({short_repr(constant)} for a batch of {batches[0]}, "
                               f"{short_repr(others[0])} for {batches[1]}), and neither as "
                               "k*batch + c nor as its reciprocal; compute it with tinygraph "
                               "ops from the input, or export with dynamic_batch=False")
            self.batch_constants[value] = fit


def _check_same_program(programs: list[Program], batches: list[int]) -> None:
    """Refuse recordings that differ but in sizes: other ops, constants, outputs, or parameters
    (but those of BATCH_PARAMS)."""
    first = programs[0]
    for program, batch in zip(programs[1:], batches[1:]):
        if (len(program.equations) != len(first.equations)
                or set(program.constants) != set(first.constants)
                or program.outputs != first.outputs):
            raise OnnxExportError(
                f"export_onnx: f records a different program for a batch of {batch} than "
                f"for {batches[0]} ({len(program.equations)} against {len(first.equations)}"
                " ops); a batch-dependent Python branch cannot be exported with "
                "dynamic_batch=True: export with dynamic_batch=False")
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
            raise op_error(eq, f"axis {axis} of {what} has sizes {list(sizes)} for batches "
                           f"{batches}, not k*batch + c; export with dynamic_batch=False")
        dims.append(fit)
    return tuple(dims)
