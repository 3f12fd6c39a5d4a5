""":class:`OnnxGraph`: the ONNX graph being built, and what a rule may ask about its values.

The exporter declares the graph's inputs, weights and constants, then writes each equation of the
program with its rule (:meth:`OnnxGraph.write`); a rule, built in or a user's, adds nodes with
``g.op`` and constants with ``g.const``, ``g.ints``, ``g.scalar``, and reads the dtypes and sizes
of its inputs and result. Sizes that follow the batch (:class:`~tinygraph.onnx_export.batch.
BatchDim`) are computed at run time by ``g.reshape``, ``g.expand``, ``g.shape_tensor`` and
``g.count``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinygraph.onnx_export.batch import BatchConstant, BatchDim, Dim, Dims
from tinygraph.onnx_export.errors import OnnxExportError, op_error
from tinygraph.program import Equation

INT_MAX = 2 ** 63 - 1  # "to the end" for Slice (clamped to the axis' length)
INT_MIN = -(2 ** 63)   # "past the beginning" for a Slice with a negative step

Rule = Callable[..., str]  # rule(g, *input_names, **params) -> the result's name


@dataclass
class _ValueInfo:
    """What the graph knows of a value: its dtype and sizes; for a program constant, its value
    (made an initializer per dtype on first use) and how it follows the batch, if it does (then
    it is computed at run time)."""

    dtype: np.dtype
    dims: Dims
    constant: Any = None
    is_constant: bool = False
    batch_constant: BatchConstant | None = None


class OnnxGraph:
    """Nodes and initializers of the ONNX graph being built, and what rules may ask about values.

    Rules receive it as ``g``; see :mod:`tinygraph.onnx_export` for how a rule uses it.
    ``example_batch`` is the batch size ``f`` was traced at (0: no batch axis).
    """

    def __init__(self, onnx: Any, opset: int, example_batch: int = 0) -> None:
        self._onnx = onnx
        self.opset = opset
        self.example_batch = example_batch
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.inputs: list[tuple[str, np.dtype, Dims]] = []   # the graph's (name, dtype, dims)
        self.outputs: list[tuple[str, np.dtype, Dims]] = []
        self.node_owner: dict[str, Equation | None] = {}  # node name -> the equation that made it
        self.out_dims: Dims = ()  # the current op's result's sizes
        self._info: dict[str, _ValueInfo] = {}
        self._taken: set[str] = set()  # names of values and nodes
        self._bound: set[str] = set()  # names of the program's values (inputs and results)
        self._made: dict[tuple, str] = {}  # shared constants, and (constant, dtype) -> initializer
        self._batch_source: str | None = None  # a graph input whose first axis is the batch
        self._batch_size: str | None = None
        self._eq: Equation | None = None  # the equation being written
        self._op_inputs: tuple[str | None, ...] = ()  # its input names
        self._prefix = "node"  # of the names of its nodes

    # -- building: inputs, weights, program constants, equations, outputs ----------------------
    def add_input(self, name: str, dtype: Any, dims: Dims) -> None:
        """Declare the graph input ``name``; the first whose first axis follows the batch gives
        the batch size at run time."""
        self._declare(name, dtype, dims)
        self._bound.add(name)
        self.inputs.append((name, np.dtype(dtype), tuple(dims)))
        if self._batch_source is None and dims and isinstance(dims[0], BatchDim):
            self._batch_source = name

    def add_weight(self, array: np.ndarray, name: str) -> str:
        """An initializer holding a parameter of ``f``; returns its name (``name`` if free)."""
        made = self.const(array, name=name)
        self._bound.add(made)
        return made

    def add_program_constant(self, key: str, constant: Any, dtype: Any, dims: Dims,
                             batch_constant: BatchConstant | None) -> None:
        """Make ``key`` stand for a constant of the program: an initializer is made only when a
        rule uses it, in the dtype it asks for (or, following the batch, computed at run time)."""
        self._info[key] = _ValueInfo(np.dtype(dtype), tuple(dims), constant=constant,
                                     is_constant=True, batch_constant=batch_constant)

    def write(self, eq: Equation, rule: Rule, inputs: tuple[str | None, ...],
              out_dims: Dims) -> str:
        """Write equation ``eq`` with ``rule`` over the values named ``inputs``; returns the name
        of its result, checked to be a value of the dtype tinygraph computes."""
        self._eq, self._op_inputs, self.out_dims = eq, inputs, tuple(out_dims)
        self._prefix = f"{eq.prim.name}_{eq.out}".replace(" ", "_")
        try:
            out = rule(self, *inputs, **eq.params)
        except OnnxExportError:
            raise
        except Exception as exc:
            first = str(exc).splitlines()[0] if str(exc) else ""
            raise self.fail(f"its ONNX rule failed ({type(exc).__name__}: {first})") from None
        if not isinstance(out, str):
            raise self.fail(f"its ONNX rule returned {type(out).__name__}, not the name of a "
                            "value")
        out = self._materialize(out)
        if out in self._bound:  # an input or an earlier result itself: its own name stays its own
            out = self.op("Identity", out)
        made = self._info.get(out)
        if made is not None and made.dtype != np.dtype(eq.dtype):
            raise self.fail(f"its ONNX rule returned a {made.dtype} value, tinygraph computes "
                            f"{np.dtype(eq.dtype)}")
        self._bound.add(out)
        self._info[out] = _ValueInfo(np.dtype(eq.dtype), self.out_dims)
        self._eq, self._op_inputs, self._prefix = None, (), "node"
        return out

    def add_output(self, name: str, source: str, dtype: Any, dims: Dims) -> None:
        """The graph output ``name`` (already reserved): an Identity of the value ``source``."""
        self.nodes.append(self._onnx.helper.make_node("Identity", [source], [name],
                                                      name=f"{name}/Identity"))
        self.outputs.append((name, np.dtype(dtype), tuple(dims)))

    # -- names ---------------------------------------------------------------------------------
    def fresh(self, hint: str) -> str:
        """A name no value or node has yet, from ``hint``."""
        base = re.sub(r"[^0-9A-Za-z_.]", "_", hint) or "v"
        name, number = base, 1
        while name in self._taken:
            number += 1
            name = f"{base}_{number}"
        self._taken.add(name)
        return name

    def is_taken(self, name: str) -> bool:
        """Whether a value or node of the graph is named ``name``."""
        return name in self._taken

    def reserve(self, name: str) -> None:
        """Keep ``name`` for the caller (a graph input or output chosen by the user)."""
        self._taken.add(name)

    # -- what a rule asks about values ---------------------------------------------------------
    def dtype(self, name: str) -> np.dtype:
        """The NumPy dtype of a value tinygraph knows (an input of the op, or a cast of one)."""
        return self._require_info(name).dtype

    def dims(self, name: str) -> Dims:
        """The sizes of a value: ints, and :class:`BatchDim` for those that follow the batch."""
        return self._require_info(name).dims

    def shape(self, name: str) -> tuple[int, ...]:
        """The shape of a value as traced (batch-following sizes at the example's batch)."""
        return tuple(d if isinstance(d, int) else d.at(self.example_batch)
                     for d in self.dims(name))

    def ndim(self, name: str) -> int:
        """The number of axes of a value."""
        return len(self.dims(name))

    def dynamic(self, name: str) -> bool:
        """Whether some size of ``name`` follows the batch."""
        return any(isinstance(d, BatchDim) for d in self.dims(name))

    def value(self, name: str | None) -> Any:
        """The value of a constant input (an array or a number), or None for other values and
        for a constant that follows the batch (known only at run time)."""
        info = self._info.get(name) if name is not None else None
        if info is None or not info.is_constant or info.batch_constant is not None:
            return None
        return info.constant

    def is_constant(self, name: str) -> bool:
        """Whether ``name`` is a constant of the program (its value: :meth:`value`)."""
        info = self._info.get(name)
        return info is not None and info.is_constant

    @property
    def out_dtype(self) -> np.dtype:
        """The dtype of the op's result, as tinygraph computed it."""
        return np.dtype(self._eq.dtype)

    @property
    def out_shape(self) -> tuple[int, ...]:
        """The shape of the op's result as traced."""
        return tuple(self._eq.shape)

    @property
    def out_dynamic(self) -> bool:
        """Whether some size of the op's result follows the batch."""
        return any(isinstance(d, BatchDim) for d in self.out_dims)

    def common_dtype(self, *names: str | None) -> np.dtype:
        """NumPy's result dtype for these inputs (a Python number adopts the arrays' dtype)."""
        kinds = []
        for name in names:
            if name is None:
                continue
            info = self._info.get(name)
            value = info.constant if info is not None and info.is_constant else None
            if isinstance(value, (bool, int, float)) and not isinstance(value, np.generic):
                kinds.append(value)
            else:
                kinds.append(self.dtype(name))
        return np.result_type(*kinds)

    def onnx_dtype(self, dtype: Any) -> int:
        """ONNX's element type for a NumPy dtype (the ``to=`` of a Cast)."""
        return self._onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))

    # -- nodes and constants -------------------------------------------------------------------
    def op(self, op_type: str, *inputs: str | None, outputs: int = 1, domain: str = "",
           **attributes: Any) -> Any:
        """Add the node ``op_type(*inputs, **attributes)``; return its output's name (a list of
        names when ``outputs > 1``). ``None`` among the inputs is an omitted optional input."""
        names = [self.fresh(f"{self._prefix}_{op_type.lower()}") for _ in range(outputs)]
        args = ["" if x is None else self._materialize(x) for x in inputs]
        node = self._onnx.helper.make_node(op_type, args, names, name=self.fresh(
            f"{self._prefix}/{op_type}"), domain=domain or None, **attributes)
        self.nodes.append(node)
        self.node_owner[node.name] = self._eq
        return names[0] if outputs == 1 else names

    def const(self, value: Any, dtype: Any = None, name: str | None = None) -> str:
        """A new initializer holding ``np.asarray(value, dtype)``; returns its name."""
        array = np.asarray(value, dtype=dtype)
        if array.dtype.kind in "OUSV":
            raise self.fail(f"a constant of dtype {array.dtype} cannot be stored in ONNX")
        name = self.fresh(name or f"{self._prefix}_const")
        self.initializers.append(self._onnx.numpy_helper.from_array(array, name))
        self._declare(name, array.dtype, array.shape)
        return name

    def ints(self, values: Sequence[int] | int) -> str:
        """An int64 1-D initializer (axes, shapes, pads), shared between identical uses."""
        array = np.asarray(values, dtype=np.int64).reshape(-1)
        key = ("ints", array.tobytes())
        if key not in self._made:
            self._made[key] = self.const(array, name="ints")
        return self._made[key]

    def scalar(self, value: Any, dtype: Any) -> str:
        """A 0-d initializer of ``dtype``, shared between identical uses."""
        array = np.asarray(value, dtype=dtype)
        key = ("scalar", array.dtype.str, array.tobytes())
        if key not in self._made:
            self._made[key] = self.const(array, name="scalar")
        return self._made[key]

    def constant_of_shape(self, shape: str, value: Any, dtype: Any) -> str:
        """An array of the shape held by the 1-D int64 value ``shape``, filled with ``value`` of
        ``dtype`` (ONNX's ConstantOfShape)."""
        filled = self._onnx.numpy_helper.from_array(np.asarray([value], dtype=dtype), "value")
        return self.op("ConstantOfShape", shape, value=filled)

    def full_like(self, name: str, value: Any, dtype: Any) -> str:
        """An array of ``name``'s shape (at run time) filled with ``value`` of ``dtype``."""
        return self.constant_of_shape(self.op("Shape", name), value, dtype)

    def cast(self, name: str | None, dtype: Any) -> str | None:
        """``name`` converted to ``dtype`` (a constant is stored in that dtype directly)."""
        if name is None:
            return None
        dtype = np.dtype(dtype)
        info = self._require_info(name)
        if info.is_constant:
            return self._materialize(name, dtype)
        if info.dtype == dtype:
            return name
        out = self.op("Cast", name, to=self.onnx_dtype(dtype))
        self._declare(out, dtype, info.dims)
        return out

    def operands(self, *names: str | None, dtype: Any = None) -> list[str | None]:
        """The inputs converted to ``dtype`` (default: the result's dtype)."""
        dtype = self.out_dtype if dtype is None else dtype
        return [self.cast(name, dtype) for name in names]

    # -- sizes that follow the batch -----------------------------------------------------------
    def batch_size(self) -> str:
        """A 1-D int64 value holding the batch size at run time."""
        if self._batch_size is None:
            if self._batch_source is None:
                raise self.fail("internal: a size follows the batch but no input has one")
            self._batch_size = self.op("Shape", self._batch_source, start=0, end=1)
        return self._batch_size

    def shape_tensor(self, dims: Sequence[Dim], infer: bool = False) -> str:
        """A 1-D int64 value holding ``dims`` at run time (:class:`BatchDim` entries computed from
        the batch size). ``infer``: for a Reshape, one batch size may be written -1."""
        dims = tuple(dims)
        moving = [i for i, d in enumerate(dims) if isinstance(d, BatchDim)]
        if not moving:
            return self.ints(dims)
        if infer and len(moving) == 1 and all(d != 0 for d in dims if isinstance(d, int)):
            return self.ints([-1 if isinstance(d, BatchDim) else d for d in dims])
        parts: list[str] = []
        run: list[int] = []  # fixed sizes since the last batch-following one
        for d in dims:
            if isinstance(d, BatchDim):
                if run:
                    parts.append(self.ints(run))
                    run = []
                parts.append(self._batch_dim(d))
            else:
                run.append(d)
        if run:
            parts.append(self.ints(run))
        return parts[0] if len(parts) == 1 else self.op("Concat", *parts, axis=0)

    def reshape(self, name: str, dims: Sequence[Dim] | None = None) -> str:
        """``name`` reshaped to ``dims`` (default: the result's), exact at any batch size."""
        dims = self.out_dims if dims is None else tuple(dims)
        return self.op("Reshape", name, self.shape_tensor(dims, infer=True))

    def expand(self, name: str, dims: Sequence[Dim]) -> str:
        """``name`` broadcast to ``dims`` (NumPy's broadcast_to), exact at any batch size."""
        dims, own = tuple(dims), self.dims(name)
        lead = len(dims) - len(own)
        target = [d if i < lead or own[i - lead] != d else 1 for i, d in enumerate(dims)]
        if lead == 0 and all(t == 1 for t in target):
            return name
        return self.op("Expand", name, self.shape_tensor(target))

    def count(self, name: str, axes: Sequence[int], dtype: Any) -> str:
        """How many entries of ``name`` a reduction over ``axes`` gathers, as a scalar of
        ``dtype`` (computed at run time when one of those sizes follows the batch)."""
        dims = self.dims(name)
        chosen = [dims[a] for a in axes]
        if not any(isinstance(d, BatchDim) for d in chosen):
            return self.scalar(int(np.prod(chosen, dtype=np.int64)), dtype)
        sizes = self.op("Gather", self.op("Shape", name), self.ints(list(axes)), axis=0)
        product = self.op("ReduceProd", sizes, keepdims=0)
        return self.op("Cast", product, to=self.onnx_dtype(dtype))

    def require_static(self, what: str, *names: str) -> None:
        """Refuse the op (one line) if a size of its result or of ``names`` (default: every input
        and the result) follows the batch: ``what`` says which part of the op needs fixed sizes."""
        values = names or tuple(n for n in self._op_inputs if n is not None)
        if (self.out_dynamic and not names) or any(self.dynamic(n) for n in values):
            raise self.fail(f"{what} needs sizes fixed at export, but here they follow the "
                            "batch; export with dynamic_batch=False")

    def fixed_length(self, dim: Dim, what: str) -> int:
        """``dim`` as an int; the op is refused (one line) if it follows the batch: ``what`` names
        the axis that needs its length fixed ("roll along the batch axis")."""
        if isinstance(dim, BatchDim):
            raise self.fail(f"{what} needs its length fixed at export; export with "
                            "dynamic_batch=False")
        return dim

    def fail(self, message: str) -> OnnxExportError:
        """The error to raise from a rule: one line naming the op and the user's line."""
        return op_error(self._eq, message)

    def batch_constant(self, constant: BatchConstant, dtype: Any) -> str:
        """A constant that follows the batch, computed at run time in ``dtype``: its number (a
        fill, or a count k*batch + c or its reciprocal) over its sizes (ConstantOfShape, or an
        Expand of the count, with the batch-following sizes from the batch size)."""
        dtype = np.dtype(dtype)
        if constant.count is None:
            fill = np.asarray(constant.fill).astype(dtype)
            if not constant.dims:
                return self.scalar(fill, dtype)
            return self.constant_of_shape(self.shape_tensor(constant.dims), fill, dtype)
        count = self.op("Cast", self.op("Reshape", self._batch_dim(constant.count),
                                        self.ints([])), to=self.onnx_dtype(dtype))
        factor = constant.factor
        if constant.reciprocal:
            count = self.op("Div", self.scalar(factor, dtype), count)
        elif factor != 1 and (1 / factor).is_integer():  # N/2 as NumPy rounds it
            count = self.op("Div", count, self.scalar(1 / factor, dtype))
        elif factor != 1:
            count = self.op("Mul", count, self.scalar(factor, dtype))
        return self.op("Expand", count, self.shape_tensor(constant.dims)) if constant.dims \
            else count

    # -- inside --------------------------------------------------------------------------------
    def _declare(self, name: str, dtype: Any, dims: Sequence[Dim]) -> None:
        self._taken.add(name)
        self._info[name] = _ValueInfo(np.dtype(dtype), tuple(dims))

    def _require_info(self, name: str) -> _ValueInfo:
        info = self._info.get(name)
        if info is None:
            raise self.fail(f"internal: no dtype or shape is known for the value {name!r}")
        return info

    def _batch_dim(self, dim: BatchDim) -> str:
        """A 1-D int64 value holding ``dim`` (k*batch + c) at run time."""
        size = self.batch_size()
        if dim.scale != 1:
            size = self.op("Mul", size, self.ints(dim.scale))
        if dim.offset:
            size = self.op("Add", size, self.ints(dim.offset))
        return size

    def _materialize(self, name: str, dtype: Any = None) -> str:
        """The initializer of a program constant (in ``dtype``, or its own), made on first use; a
        constant that follows the batch is computed from the batch size."""
        info = self._info.get(name)
        if info is None or not info.is_constant:
            return name
        dtype = np.dtype(info.dtype if dtype is None else dtype)
        key = (name, dtype.str)
        if key not in self._made:
            if info.batch_constant is not None:
                made = self.batch_constant(info.batch_constant, dtype)
            else:
                made = self.const(info.constant, dtype, name=name.lstrip("~"))
            self._made[key] = made
            self._declare(made, dtype, info.dims)
        return self._made[key]
