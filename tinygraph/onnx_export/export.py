"""``export_onnx``: check the arguments, record ``f`` (at several batch sizes when the batch is
dynamic), bind the program's inputs, weights, constants and outputs to ONNX names, write each
equation with its rule, check the model and write it atomically."""

from __future__ import annotations

import errno
import inspect
import os
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tinygraph.files import PathLike, atomic_write
from tinygraph.onnx_export.batch import BatchLayout, probe_batches, short_repr, with_batch
from tinygraph.onnx_export.errors import OnnxExportError, require
from tinygraph.onnx_export.graph import OnnxGraph
from tinygraph.onnx_export.model import check_model, make_model
from tinygraph.onnx_export.table import onnx_rule_for, unmapped_reason
from tinygraph.primitive import Primitive
from tinygraph.program import Program
from tinygraph.pytree import flatten, unflatten
from tinygraph.tensor import Tensor
from tinygraph.tracing import make_program

DEFAULT_OPSET = 18
MIN_OPSET = 18  # reductions take their axes as an input from opset 18 on


def export_onnx(f: Callable[..., Any], example_args: Any, path: PathLike,
                input_names: Sequence[str] | None = None,
                output_names: Sequence[str] | None = None, dynamic_batch: bool = True,
                opset: int | None = None, *, params: Any = None,
                metadata: dict[str, str] | None = None) -> Any:
    """Record ``f(*example_args)`` (or ``f(params, *example_args)``) once and write it to ``path``
    as an ONNX model; returns the ``onnx.ModelProto``.

    ``example_args``: an array or a tuple of arrays, the graph's inputs (their dtypes are the
    inputs' dtypes; with ``dynamic_batch`` their first axis is the batch, any size at run time).
    ``params``: a pytree of arrays stored in the model as initializers named by their paths
    (``W1``), passed to ``f`` as its first argument. ``input_names``/``output_names`` name the
    graph's inputs and outputs (defaults: ``f``'s parameter names; ``output``, ``output_N`` or the
    keys of a returned dict). ``opset``: the ONNX opset (default and minimum 18). ``metadata``:
    strings stored in the model's ``metadata_props``. See :mod:`tinygraph.onnx_export` for the
    mapping, and what ``dynamic_batch`` requires of ``f``. Errors are one line
    (:class:`OnnxExportError`, naming the op and the line of ``f`` that applied it; an
    ``OSError`` naming ``path`` when its folder does not exist, said before recording, or the
    write fails); the file is written whole or not at all.
    """
    onnx = require("onnx")
    _check_options(f, path, dynamic_batch, metadata)
    opset = _checked_opset(opset, onnx.defs.onnx_opset_version())
    arrays, batch = _example_arrays(example_args, dynamic_batch)
    param_leaves, _, param_paths = flatten(params) if params is not None else ([], None, [])
    for leaf, where in zip(param_leaves, param_paths):
        if not isinstance(leaf, (np.ndarray, Tensor)):
            raise OnnxExportError(f"export_onnx: params{where} is a {type(leaf).__name__}, not "
                                  "an array")
    if not arrays:
        raise OnnxExportError("export_onnx: example_args is empty; give at least one example "
                              "array (the graph's inputs: a model without inputs computes "
                              "nothing new)")
    lead = (params,) if params is not None else ()
    program = _record(f, (*lead, *arrays))
    _refuse_unmapped(program)
    batches = probe_batches(batch)
    programs = [program]
    for size in batches[1:]:  # the same f at other batch sizes: which sizes follow the batch
        programs.append(_record_probe(f, lead, arrays, size, batches))
    layout = BatchLayout(programs, batches)

    graph = OnnxGraph(onnx, opset, example_batch=batch)
    chosen = _check_names(input_names, len(arrays), "input_names") or _parameter_names(
        f, len(arrays), skip=len(lead))
    names = _bind_inputs(graph, program, arrays, chosen, layout, first_leaf=len(param_leaves))
    names.update(_bind_weights(graph, program, param_leaves, param_paths))
    names.update(_bind_constants(graph, program, layout))
    for eq in program.equations:
        inputs = tuple(names.get(v) for v in eq.inputs)
        names[eq.out] = graph.write(eq, onnx_rule_for(eq.prim), inputs, layout.dims[eq.out])
    _bind_outputs(graph, program, names, layout, output_names)
    title = getattr(f, "__qualname__", None) or getattr(f, "__name__", "f")
    model = make_model(onnx, graph, title, metadata)
    check_model(onnx, graph, model, program, names)
    try:
        with atomic_write(path, "wb") as handle:
            handle.write(model.SerializeToString())
    except OSError as exc:  # about the file asked for, not the temporary one next to it
        raise _os_error(type(exc), exc.errno, f"export_onnx: cannot write {os.fspath(path)}: "
                        f"{exc.strerror or exc}") from None
    return model


# -- the arguments --------------------------------------------------------------------------------

def _check_options(f: Any, path: Any, dynamic_batch: Any, metadata: Any) -> None:
    """Refuse, in one line, an ``f`` that is not callable, a ``path`` that is not a file name or
    whose folder does not exist (before recording anything), a ``dynamic_batch`` that is not a
    bool, and ``metadata`` that is not a dict of strings."""
    if not callable(f):
        raise OnnxExportError(f"export_onnx: f must be a function (or a tinygraph op), got "
                              f"{type(f).__name__}")
    if not isinstance(path, (str, os.PathLike)):
        raise OnnxExportError(f"export_onnx: path must be a file name, got {type(path).__name__}")
    folder = Path(path).parent
    if not folder.is_dir():
        raise _os_error(FileNotFoundError, errno.ENOENT, f"export_onnx: cannot write "
                        f"{os.fspath(path)}: the folder {folder} does not exist")
    if not isinstance(dynamic_batch, (bool, np.bool_)):
        raise OnnxExportError(f"export_onnx: dynamic_batch must be True or False, got "
                              f"{dynamic_batch!r}")
    if metadata is not None:
        if not isinstance(metadata, Mapping):
            raise OnnxExportError(f"export_onnx: metadata must be a dict of strings to strings, "
                                  f"got {type(metadata).__name__}")
        for key, value in metadata.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise OnnxExportError(f"export_onnx: metadata must be a dict of strings to "
                                      f"strings, got {key!r}: {short_repr(value)}")


def _os_error(kind: type[OSError], number: int | None, message: str) -> OSError:
    """An OSError of ``kind`` whose text is just ``message`` (one line), with ``errno`` set."""
    error = kind(message)
    error.errno = number
    return error


def _checked_opset(opset: int | None, newest: int) -> int:
    opset = DEFAULT_OPSET if opset is None else opset
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= newest:
        raise OnnxExportError(f"export_onnx: opset must be an int from {MIN_OPSET} to {newest} "
                              f"(this onnx's newest), got {opset!r}")
    return opset


def _example_arrays(example_args: Any, dynamic_batch: bool) -> tuple[list[np.ndarray], int]:
    """The example arguments as arrays, and their batch size (0 without dynamic_batch)."""
    args = (example_args,) if isinstance(example_args, (np.ndarray, Tensor)) else example_args
    if not isinstance(args, (tuple, list)):
        raise OnnxExportError(f"export_onnx: example_args must be an array or a tuple of arrays, "
                              f"got {type(example_args).__name__}")
    arrays = []
    for number, arg in enumerate(args):
        if isinstance(arg, Tensor):
            arg = arg.data
        if not isinstance(arg, np.ndarray):
            raise OnnxExportError(
                f"export_onnx: example argument {number} is a {type(arg).__name__}, not an "
                "array; every argument becomes a graph input (close over other values in f, or "
                "pass np.asarray(...))")
        if arg.dtype.kind not in "biuf":
            raise OnnxExportError(f"export_onnx: example argument {number} has dtype "
                                  f"{arg.dtype}; inputs are numbers or booleans")
        arrays.append(arg)
    if not dynamic_batch or not arrays:
        return arrays, 0
    sizes = {np.shape(a)[0] if np.ndim(a) else None for a in arrays}
    if None in sizes:
        raise OnnxExportError("export_onnx: dynamic_batch needs every example argument to have "
                              "a first (batch) axis; a 0-d one has none (or pass "
                              "dynamic_batch=False)")
    if len(sizes) != 1 or 0 in sizes:
        raise OnnxExportError(f"export_onnx: dynamic_batch reads the first axis of every example "
                              f"argument as the batch, but their sizes are {sorted(sizes)}; give "
                              "them one nonzero batch size (or pass dynamic_batch=False)")
    return arrays, sizes.pop()


def _check_names(names: Sequence[str] | None, count: int, what: str) -> list[str] | None:
    """The user's ``input_names`` or ``output_names`` as a list (None if not given), refused
    unless they are ``count`` distinct non-empty strings."""
    if names is None:
        return None
    names = list(names)
    if len(names) != count or not all(isinstance(n, str) and n for n in names):
        raise OnnxExportError(f"export_onnx: {what} must be {count} non-empty string(s), got "
                              f"{names!r}")
    if len(set(names)) != len(names):
        raise OnnxExportError(f"export_onnx: {what} {names!r} repeat a name")
    return names


def _parameter_names(f: Callable[..., Any], count: int, skip: int) -> list[str]:
    """Default input names: ``f``'s positional parameter names (after ``skip``), else input_N."""
    try:
        parameters = [p for p in inspect.signature(f).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        parameters = []
    names = [p.name for p in parameters[skip:skip + count]]
    if len(names) < count or len(set(names)) < count:
        return ["input" if count == 1 else f"input_{i}" for i in range(count)]
    return names


# -- recording ------------------------------------------------------------------------------------

def _record(f: Callable[..., Any], args: tuple) -> Program:
    """The program ``tg.trace(f)`` records for ``args``."""
    if isinstance(f, Primitive):  # an op itself (tg.exp): traced through a plain function
        op = f

        def f(*inputs: Any) -> Any:
            return op(*inputs)

    return make_program(f)(*args)


def _record_probe(f: Callable[..., Any], lead: tuple, arrays: list[np.ndarray], size: int,
                  batches: list[int]) -> Program:
    """The program of ``f`` on the examples with ``size`` rows (cycled), for the dynamic batch;
    NumPy's warnings at a size the user did not ask for (a variance of one row) are silenced,
    and a failure is a one-line error naming the size."""
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            return _record(f, (*lead, *[with_batch(a, size) for a in arrays]))
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise OnnxExportError(
            f"export_onnx: f fails for a batch of {size} ({type(exc).__name__}: {first}); "
            f"dynamic_batch records f at batches {batches} to see which sizes follow the "
            "batch, so f must run at each: export with dynamic_batch=False") from None


def _refuse_unmapped(program: Program) -> None:
    """One error naming every op of the program that has no rule (and where it was applied)."""
    missing: dict[str, str] = {}
    for eq in program.equations:
        if onnx_rule_for(eq.prim) is None and eq.prim.name not in missing:
            reason = unmapped_reason(eq.prim)
            where = f" at {eq.site}" if eq.site else ""
            hint = f": {reason}" if reason else f"; give it one with @{eq.prim.name}.defonnx"
            missing[eq.prim.name] = f"{eq.prim.name!r}{where}{hint}"
    if missing:
        listed = "; ".join(missing.values())
        noun = "primitive" if len(missing) == 1 else "primitives"
        raise OnnxExportError(f"export_onnx: no ONNX mapping for the {noun} {listed}")


# -- the program's values as ONNX names -------------------------------------------------------

def _bind_inputs(graph: OnnxGraph, program: Program, arrays: list[np.ndarray], chosen: list[str],
                 layout: BatchLayout, first_leaf: int) -> dict[int, str]:
    """Declare a graph input per example array (named ``chosen``); value number -> name. The
    arrays are the recorded arguments' leaves from ``first_leaf`` on (after the parameters')."""
    names: dict[int, str] = {}
    by_leaf = {item.leaf: item for item in program.inputs}
    for number, (name, array) in enumerate(zip(chosen, arrays)):
        item = by_leaf.get(first_leaf + number)
        graph.reserve(name)
        dims = layout.dims[item.value] if item is not None else tuple(np.shape(array))
        graph.add_input(name, array.dtype, dims)
        if item is not None:
            names[item.value] = name
    return names


def _bind_weights(graph: OnnxGraph, program: Program, param_leaves: list[Any],
                  param_paths: list[str]) -> dict[int, str]:
    """An initializer per parameter that the program uses, named by its path (``layers.0.w``);
    value number -> name."""
    names: dict[int, str] = {}
    by_leaf = {item.leaf: item for item in program.inputs}
    used = {v for eq in program.equations for v in eq.inputs} | set(program.outputs)
    for position, (leaf, path) in enumerate(zip(param_leaves, param_paths)):
        item = by_leaf.get(position)
        if item is None or item.value not in used:
            continue
        data = leaf.data if isinstance(leaf, Tensor) else leaf
        names[item.value] = graph.add_weight(np.asarray(data), _path_name(path))
    return names


def _bind_constants(graph: OnnxGraph, program: Program, layout: BatchLayout) -> dict[int, str]:
    """A key per constant operand of the program (``~const_N``, made an initializer when a rule
    uses it); value number -> key."""
    names: dict[int, str] = {}
    for value, constant in program.constants.items():
        if not isinstance(constant, (np.ndarray, np.generic, bool, int, float)):
            continue  # None, or not an operand (a rule never reads it as a value)
        key = f"~const_{value}"
        graph.add_program_constant(key, constant, _constant_dtype(constant), layout.dims[value],
                                   layout.batch_constants.get(value))
        names[value] = key
    return names


def _constant_dtype(constant: Any) -> np.dtype:
    """The dtype tinygraph gives a constant: a Python number's is NumPy's default of its kind."""
    if isinstance(constant, bool):
        return np.dtype(np.bool_)
    if isinstance(constant, int):
        return np.dtype(np.int64)
    if isinstance(constant, float):
        return np.dtype(np.float64)
    return np.asarray(constant).dtype


def _bind_outputs(graph: OnnxGraph, program: Program, names: dict[int, str],
                  layout: BatchLayout, output_names: Sequence[str] | None) -> None:
    """Name the results: an Identity per output (a constant output is an initializer)."""
    count = len(program.outputs)
    # the paths of the outputs in f's result (['logits'] for a dict), from placeholders
    _, _, paths = flatten(unflatten(program.output_treedef, list(range(count))))
    chosen = _check_names(output_names, count, "output_names")
    if chosen is not None:
        for name in chosen:
            if graph.is_taken(name):
                raise OnnxExportError(f"export_onnx: the output name {name!r} is taken by an "
                                      "input or a weight; choose other output_names")
            graph.reserve(name)
    elif count == 1:
        chosen = [graph.fresh("output")]
    elif all(p.startswith("['") for p in paths) and len({_path_name(p) for p in paths}) == count:
        # a dict's keys (a gradient's "W1" is taken by the weight: "output_W1")
        keys = [_path_name(p) for p in paths]
        chosen = [graph.fresh(key if not graph.is_taken(key) else f"output_{key}")
                  for key in keys]
    else:
        chosen = [graph.fresh(f"output_{i}") for i in range(count)]
    for position, (name, value, constant) in enumerate(zip(chosen, program.outputs,
                                                           program.output_constants)):
        if value is None:
            array = np.asarray(constant.data if isinstance(constant, Tensor) else constant)
            moving = layout.output_constants.get(position)
            if moving is not None:  # follows the batch: computed from the batch size
                graph.add_output(name, graph.batch_constant(moving, array.dtype), array.dtype,
                                 moving.dims)
            else:
                graph.add_output(name, graph.const(array, name=f"{name}_value"), array.dtype,
                                 array.shape)
        else:
            source = names[value]
            graph.add_output(name, source, graph.dtype(source), layout.dims[value])


def _path_name(path: str) -> str:
    """``['W1']`` -> ``W1``, ``['layers'][0]['w']`` -> ``layers.0.w``."""
    parts = re.findall(r"\[('(?:[^'\\]|\\.)*'|\"[^\"]*\"|[^\]]*)\]|\.(\w+)", path)
    words = [(a.strip("'\"") if a else b) for a, b in parts]
    return ".".join(words) or "param"
