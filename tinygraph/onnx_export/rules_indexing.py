"""ONNX rules of the indexing ops (:mod:`tinygraph.ops.indexing`): getitem and its scatter-add,
take_along_axis and its scatter-add, argsort.

Basic indices become a Slice, one integer array or mask a Gather on its axis (both exact at any
batch size); any other index is read as the flat positions NumPy would read, fixed at export. A
slice along an axis that follows the batch is refused when a bound makes its length stop
following the batch at some batch size (``x[:5]``, ``x[-3:]``, ``x[:100]``): checked exactly,
for every batch size, not just at the recorded ones.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import numpy as np

from tinygraph.onnx_export.batch import BatchDim, Dim, Dims
from tinygraph.onnx_export.graph import INT_MAX, INT_MIN, OnnxGraph, Rule


def _index_parts(index: Any, ndim: int) -> list[Any]:
    """The index as a list with the Ellipsis spelled out as full slices."""
    parts = list(index) if isinstance(index, tuple) else [index]
    used = sum(p.ndim if isinstance(p, np.ndarray) and p.dtype == np.bool_ else
               0 if p is None or p is Ellipsis else 1 for p in parts)
    if any(p is Ellipsis for p in parts):
        at = next(i for i, p in enumerate(parts) if p is Ellipsis)
        parts[at:at + 1] = [slice(None)] * (ndim - used)
    return parts


def _slice_bounds(part: Any) -> tuple[int, int, int] | None:
    """(start, end, step) of an int or slice for ONNX's Slice, or None for a whole axis."""
    if isinstance(part, (int, np.integer)):
        i = int(part)
        return i, (i + 1 if i != -1 else INT_MAX), 1
    step = 1 if part.step is None else int(part.step)
    if part.start is None and part.stop is None and step == 1:
        return None
    start = (0 if step > 0 else INT_MAX) if part.start is None else int(part.start)
    stop = (INT_MAX if step > 0 else INT_MIN) if part.stop is None else int(part.stop)
    return start, stop, step


def _sliced(g: OnnxGraph, x: str, parts: list[Any], skip: Collection[int] = ()) -> str:
    """x with the int and slice parts applied as one Slice (ints keep their axis)."""
    starts, ends, axes, steps = [], [], [], []
    axis = 0
    for part in parts:
        if part is None:
            continue
        if axis not in skip and not isinstance(part, np.ndarray):
            bounds = _slice_bounds(part)
            if bounds is not None:
                starts.append(bounds[0])
                ends.append(bounds[1])
                axes.append(axis)
                steps.append(bounds[2])
        axis += part.ndim if isinstance(part, np.ndarray) and part.dtype == np.bool_ else 1
    if not axes:
        return x
    return g.op("Slice", x, g.ints(starts), g.ints(ends), g.ints(axes), g.ints(steps))


def _check_batch_slices(g: OnnxGraph, x: str, parts: list[Any]) -> None:
    """Refuse (one line) a slice along an axis of ``x`` that follows the batch whose length is
    not the exported size at every batch size from 1 on (a bound that clamps)."""
    in_dims, out_dims = g.dims(x), g.out_dims
    axis = out = 0  # the input axis a part reads, and the result axis it makes
    for part in parts:
        if part is None:
            out += 1
        elif isinstance(part, np.ndarray):  # the one index array (or mask) of a Gather
            axis += part.ndim if part.dtype == np.bool_ else 1
            out += 1 if part.dtype == np.bool_ else part.ndim
        elif isinstance(part, slice):
            if isinstance(in_dims[axis], BatchDim):
                _check_slice_length(g, part, axis, in_dims[axis], out_dims[out])
            axis += 1
            out += 1
        else:  # an int drops its axis
            axis += 1


def _check_slice_length(g: OnnxGraph, part: slice, axis: int, length: BatchDim,
                        exported: Dim) -> None:
    """The length of ``range(n)[part]`` for an axis of ``length`` (k*batch + c) rows must be
    ``exported`` at every batch. It is piecewise: it changes form only near its bounds, and on
    each piece |step| + 2 consecutive batch sizes pin it down, so the sizes checked are those
    after batch 1 and around each bound."""
    if part == slice(None):
        return
    step = 1 if part.step is None else abs(int(part.step))
    window = step + 3
    batches = set(range(1, 1 + window))
    for bound in (part.start, part.stop):
        if bound is None:
            continue
        near = (abs(int(bound)) - length.offset) // max(length.scale, 1)
        batches.update(range(max(1, near - 2), max(1, near - 2) + window + 2))
    for batch in sorted(batches):
        rows = length.at(batch)
        if rows < 0:
            continue
        got = len(range(rows)[part])
        want = exported.at(batch) if isinstance(exported, BatchDim) else exported
        if got != want:
            text = ":".join("" if v is None else str(v) for v in (part.start, part.stop))
            text += "" if part.step is None else f":{part.step}"
            raise g.fail(f"the slice [{text}] along axis {axis}, whose length "
                         f"follows the batch, keeps {got} of {rows} rows at a batch of {batch}, "
                         f"not {want} as at the recorded batches: a bound that clamps cannot "
                         "follow the batch; export with dynamic_batch=False")


def _is_basic(part: Any) -> bool:
    """Whether an index part is basic (an int, a slice, or None, a new axis)."""
    return part is None or isinstance(part, slice) or (
        isinstance(part, (int, np.integer)) and not isinstance(part, (bool, np.bool_)))


def _getitem(g: OnnxGraph, x: str, index: Any) -> str:
    """x[index]: basic indices as a Slice and a reshape; one integer array or mask as a Gather
    on its axis (both exact at any batch size); any other index as a Gather of the flat
    positions NumPy would read (sizes fixed at export)."""
    ndim = g.ndim(x)
    parts = _index_parts(index, ndim)
    if all(_is_basic(p) for p in parts):
        _check_batch_slices(g, x, parts)
        return g.reshape(_sliced(g, x, parts))
    arrays = [i for i, p in enumerate(parts) if not _is_basic(p)]
    single = parts[arrays[0]] if len(arrays) == 1 else None
    if isinstance(single, np.ndarray) and single.dtype.kind in "iub" and all(
            p is None or isinstance(p, slice) for i, p in enumerate(parts) if i != arrays[0]):
        axis = sum(1 for p in parts[:arrays[0]] if p is not None)
        _check_batch_slices(g, x, parts)
        sliced = _sliced(g, x, parts, skip={axis})
        if single.dtype == np.bool_:
            k = single.ndim
            if k > 1:  # the mask's axes as one, then the positions of its True entries
                dims = g.dims(x)
                merged = (*dims[:axis], int(np.prod(single.shape)), *dims[axis + k:])
                sliced = g.op("Reshape", sliced, g.shape_tensor(merged))
            positions = np.flatnonzero(single)
        else:
            positions = single
        gathered = g.op("Gather", sliced, g.const(np.asarray(positions, np.int64), name="index"),
                        axis=axis)
        return g.reshape(gathered)
    g.require_static("getitem with several index arrays", x)
    positions = np.arange(int(np.prod(g.shape(x), dtype=np.int64))).reshape(g.shape(x))[index]
    flat = g.op("Reshape", x, g.ints([-1]))
    return g.op("Gather", flat, g.const(np.asarray(positions, np.int64), name="index"), axis=0)


def _argsort(g: OnnxGraph, a: str, axis: int = -1, kind: Any = None) -> str:
    """The positions that sort ``a``: TopK of all of it, smallest first (ties keep their order, as
    a stable sort; ``sort`` reads values through them, so a tie's order never shows)."""
    ndim = g.ndim(a)
    axis = int(axis) % ndim
    count = g.op("Shape", a, start=axis, end=axis + 1)
    _, positions = g.op("TopK", a, count, axis=axis, largest=0, sorted=1, outputs=2)
    return positions


def _scatter_add(g: OnnxGraph, values: str, index: Any, shape: Any) -> str:
    """zeros(shape) with values added at index: a ScatterElements (reduction add) at the flat
    positions NumPy's ``np.add.at`` would write (sizes fixed at export)."""
    g.require_static("its index (read as flat positions)")
    size = int(np.prod(g.out_shape, dtype=np.int64))
    positions = np.arange(size).reshape(g.out_shape)[index]
    values = g.cast(values, g.out_dtype)
    spread = g.expand(values, positions.shape)
    flat_values = g.op("Reshape", spread, g.ints([-1]))
    zeros = g.constant_of_shape(g.ints([size]), 0, g.out_dtype)
    flat = g.op("ScatterElements", zeros, g.const(positions.reshape(-1).astype(np.int64),
                                                  name="index"),
                flat_values, axis=0, reduction="add")
    return g.op("Reshape", flat, g.ints(list(g.out_shape)))


def _along_axis_dims(g: OnnxGraph, indices: str, axis: int, shape_dims: Dims) -> Dims:
    """The shape take_along_axis's full index broadcasts to: the indices' sizes on ``axis``,
    elsewhere the array's where the indices have 1."""
    own = g.dims(indices)
    return tuple(own[k] if k == axis or own[k] != 1 else shape_dims[k]
                 for k in range(len(shape_dims)))


def _take_along_axis(g: OnnxGraph, arr: str, indices: str, axis: int | None = -1) -> str:
    """arr's entries at ``indices`` along ``axis`` (GatherElements, both broadcast to one
    shape but along ``axis``; the flattened arr without one)."""
    x = g.cast(arr, g.out_dtype)
    idx = g.cast(indices, np.int64)
    if axis is None:
        return g.op("GatherElements", g.op("Reshape", x, g.ints([-1])), idx, axis=0)
    ndim = g.ndim(arr)
    axis = int(axis) % ndim
    target = g.out_dims
    arr_dims = tuple(g.dims(arr)[k] if k == axis else target[k] for k in range(ndim))
    x = g.expand(x, arr_dims)
    idx = g.expand(idx, target)
    return g.op("GatherElements", x, idx, axis=axis)


def _scatter_add_along_axis(g: OnnxGraph, values: str, indices: str, shape: Any,
                            axis: int | None = -1) -> str:
    """take_along_axis's adjoint: zeros of the result's shape, ``values`` added at the entries
    take_along_axis reads (ScatterElements with reduction add)."""
    values = g.cast(values, g.out_dtype)
    idx = g.cast(indices, np.int64)
    if axis is None:
        g.require_static("scatter_add_along_axis over a flattened array")
        size = int(np.prod(g.out_shape, dtype=np.int64))
        zeros = g.constant_of_shape(g.ints([size]), 0, g.out_dtype)
        flat = g.op("ScatterElements", zeros, idx, g.expand(values, g.dims(indices)), axis=0,
                    reduction="add")
        return g.op("Reshape", flat, g.ints(list(g.out_shape)))
    zeros = g.constant_of_shape(g.shape_tensor(g.out_dims), 0, g.out_dtype)
    axis = int(axis) % len(g.out_shape)
    full = _along_axis_dims(g, indices, axis, g.out_dims)
    return g.op("ScatterElements", zeros, g.expand(idx, full), g.expand(values, full),
                axis=axis, reduction="add")


RULES: dict[str, Rule] = {
    "getitem": _getitem, "scatter_add": _scatter_add, "take_along_axis": _take_along_axis,
    "scatter_add_along_axis": _scatter_add_along_axis, "argsort": _argsort,
}
