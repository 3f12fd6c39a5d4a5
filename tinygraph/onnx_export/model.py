"""The ONNX model around a built :class:`~tinygraph.onnx_export.graph.OnnxGraph`: the
``ModelProto`` with its opset, IR version and metadata, and the checks it must pass before it is
written (every value of the dtype tinygraph computes; ``onnx.checker`` with full inference)."""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np

from tinygraph.onnx_export.batch import BatchDim, Dims
from tinygraph.onnx_export.errors import OnnxExportError, op_error
from tinygraph.onnx_export.graph import OnnxGraph
from tinygraph.program import Program


def make_model(onnx: Any, graph: OnnxGraph, title: str, metadata: dict[str, str] | None) -> Any:
    """The ``onnx.ModelProto`` of ``graph`` (named after ``title``, the exported function), with
    ``metadata`` as its ``metadata_props``."""
    inputs = [_value_info(onnx, *spec) for spec in graph.inputs]
    outputs = [_value_info(onnx, *spec) for spec in graph.outputs]
    body = onnx.helper.make_graph(graph.nodes, re.sub(r"[^0-9A-Za-z_]", "_", title), inputs,
                                  outputs, initializer=graph.initializers)
    model = onnx.helper.make_model(body, opset_imports=[onnx.helper.make_opsetid("", graph.opset)],
                                   producer_name="tinygraph", producer_version=_tinygraph_version())
    model.ir_version = _ir_version(onnx, graph.opset)
    model.doc_string = f"{title}, exported by tinygraph.export_onnx"
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = str(key), str(value)
    return model


def check_model(onnx: Any, graph: OnnxGraph, model: Any, program: Program,
                names: dict[int, str]) -> None:
    """Every equation's result, as ONNX's type inference sees it, must have the dtype tinygraph
    computed (a wrong rule is caught here, naming its op); then onnx.checker with full type and
    shape inference. ``names``: the program's value numbers -> their names in the graph."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # the checker below says what is wrong
        inferred = model
    types = {info.name: info.type.tensor_type.elem_type for info in inferred.graph.value_info}
    for eq in program.equations:
        name = names[eq.out]
        expected = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(eq.dtype))
        if types.get(name) and types[name] != expected:
            got = onnx.helper.tensor_dtype_to_np_dtype(types[name])
            raise op_error(eq, f"its ONNX rule makes {got}, tinygraph computes "
                           f"{np.dtype(eq.dtype)}")
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:
        text = " ".join(str(exc).split())
        owner = next((eq for node_name, eq in graph.node_owner.items()
                      if eq is not None and node_name in text), None)
        where = ""
        if owner is not None:
            where = f" in the nodes of {owner.prim.name}" + (f" (at {owner.site})"
                                                               if owner.site else "")
        raise OnnxExportError(f"export_onnx: the ONNX checker refused the model{where}: "
                              f"{text[:300]}") from None


def _value_info(onnx: Any, name: str, dtype: np.dtype, dims: Dims) -> Any:
    """A graph input's or output's type: its dtype, and its sizes (a batch size by name)."""
    shape = [str(d) if isinstance(d, BatchDim) else int(d) for d in dims]
    return onnx.helper.make_tensor_value_info(
        name, onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype)), shape)


def _tinygraph_version() -> str:
    try:
        return version("tinygraph")
    except PackageNotFoundError:  # not installed as a distribution (a source checkout)
        return "0"


def _ir_version(onnx: Any, opset: int) -> int:
    """The oldest IR version that carries ``opset`` (older runtimes read the file)."""
    for _, ir, ai_onnx, *_ in onnx.helper.VERSION_TABLE:
        if ai_onnx >= opset:
            return ir
    return onnx.IR_VERSION
