"""Run an exported network with ONNX Runtime: what ``models.predict --onnx`` and
``models.export``'s check use.

:func:`onnx_predict` gives class ids for rows of features, the same as ``models.network.predict``
computes with NumPy; :func:`onnx_logits` the class scores. Both need the ``onnx`` extra
(``pip install 'tinygraph[onnx]'``); :func:`missing_onnx` says, in one line, what is missing.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from models.data import DataError
from tinygraph.onnx_export import require


def missing_onnx(runtime: bool = False) -> str | None:
    """A one-line error if ``onnx`` (and, with ``runtime``, ``onnxruntime``) is not installed."""
    modules = ["onnx", "onnxruntime"] if runtime else ["onnx"]
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if not missing:
        return None
    return (f"error: ONNX export and inference need {' and '.join(missing)}; install them with "
            "pip install 'tinygraph[onnx]'")


def open_session(model_path: Path, threads: int = 0) -> Any:
    """An ONNX Runtime session on the CPU; a missing or unreadable file is a DataError."""
    ort = require("onnxruntime")
    if not model_path.is_file():
        raise DataError(f"{model_path}: no such ONNX model file (expected one written by "
                        "python -m models.export)")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: they are reported below, in one line
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(model_path), options,
                                    providers=["CPUExecutionProvider"])
    except Exception as exc:
        reason = " ".join(str(exc).split())
        reason = reason.split(" : ")[-1] if " : " in reason else reason
        raise DataError(f"{model_path}: ONNX Runtime cannot run it ({reason[:200]})") from None


_ELEMENT_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64,
                   "tensor(float16)": np.float16}


def onnx_logits(model_path: Path | str, features: np.ndarray, threads: int = 0) -> np.ndarray:
    """The class scores ONNX Runtime computes with the model at ``model_path`` for the rows of
    ``features`` (converted to the model's input dtype), in batches as ``models.network`` scores
    them. ``threads``: ONNX Runtime's intra-op threads (0: its default). Bad files and rows that
    do not fit the model are one-line DataErrors."""
    model_path = Path(model_path)
    session = open_session(model_path, threads)
    inputs = session.get_inputs()
    if len(inputs) != 1 or len(inputs[0].shape) != 2:
        raise DataError(f"{model_path}: expected a model with one input of rows (batch, pixels), "
                        f"got {[(i.name, i.shape) for i in inputs]}")
    spec = inputs[0]
    dtype = _ELEMENT_DTYPES.get(spec.type)
    if dtype is None:
        raise DataError(f"{model_path}: its input {spec.name} holds {spec.type}, not floats")
    features = np.asarray(features)
    width = spec.shape[1]
    if features.ndim != 2 or (isinstance(width, int) and features.shape[1] != width):
        raise DataError(f"{model_path}: the model reads rows of {width} pixels, got features of "
                        f"shape {features.shape}")
    rows = spec.shape[0]
    fixed = rows if isinstance(rows, int) else None
    meta = session.get_modelmeta().custom_metadata_map
    batch = fixed or int(meta.get("tinygraph.eval_batch", 1000))
    if fixed and len(features) % fixed:
        raise DataError(f"{model_path}: the model was exported for batches of exactly {fixed} "
                        f"rows (--fixed-batch), and {len(features)} rows do not split into them")
    features = features.astype(dtype, copy=False)
    try:
        outputs = run_in_batches(session, features, batch)
    except Exception as exc:
        reason = " ".join(str(exc).split())
        raise DataError(f"{model_path}: ONNX Runtime failed ({reason[:200]})") from None
    scores_shape = session.get_outputs()[0].shape
    if len(scores_shape) != 2 or any(isinstance(s, int) and s < 1 for s in scores_shape[1:]):
        raise DataError(f"{model_path}: its output {session.get_outputs()[0].name} has shape "
                        f"{scores_shape}; expected class scores (rows, classes)")
    if not outputs:
        classes = session.get_outputs()[0].shape[-1]
        return np.zeros((0, classes if isinstance(classes, int) else 0), dtype=dtype)
    return np.concatenate(outputs)


def run_in_batches(session: Any, features: np.ndarray, batch: int) -> list[np.ndarray]:
    """The first output of ``session`` for the rows of ``features``, ``batch`` rows a run (the
    model's one input takes them as they are: convert them to its dtype first)."""
    name = session.get_inputs()[0].name
    return [session.run(None, {name: features[start:start + batch]})[0]
            for start in range(0, len(features), batch)]


def onnx_predict(model_path: Path | str, features: np.ndarray, threads: int = 0) -> np.ndarray:
    """Class ids for the rows of ``features`` (N, 784), computed by ONNX Runtime: what
    ``models.network.predict(params, features, activation)`` computes with NumPy, from the file
    ``models.export`` wrote for those params. See :func:`onnx_logits` for the arguments."""
    if len(features) == 0:
        onnx_logits(model_path, np.zeros((0, np.shape(features)[-1] if np.ndim(features) == 2
                                          else 0)), threads)  # still checks the file
        return np.zeros(0, dtype=np.int64)
    return np.argmax(onnx_logits(model_path, features, threads), axis=1)
