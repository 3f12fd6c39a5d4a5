"""Export a trained network to ONNX: ``python -m models.export --params P --out model.onnx``.

Reads the ``params.npz`` that ``models.train`` wrote (the paper's MLP or the CNN, told apart by
the parameters' names, with the activation stored beside them) and writes one ONNX file that ONNX
Runtime, PyTorch, TensorRT and most deployment tools run: input ``pixels``, rows of 784 pixels
scaled to 0..1 as ``models.data.to_features`` makes them (any number of rows), output ``logits``,
the 10 class scores of each row; the weights are stored inside the file. When ONNX Runtime is
installed, the file is run once on random rows and compared with tinygraph's NumPy forward.

:mod:`models.runtime` is the prediction side (``models.predict --onnx``). Both need the
``onnx`` extra: ``pip install 'tinygraph[onnx]'``.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models import network
from models.cli import one_line_errors
from models.data import DataError
from models.params import check_out, load_params
from models.runtime import missing_onnx, onnx_logits, onnx_predict
from tinygraph.onnx_export import OnnxExportError, export_onnx

__all__ = ["check_against_numpy", "export_network", "main", "missing_onnx", "onnx_logits",
           "onnx_predict"]

DEFAULT_BATCH = 32   # the example batch the network is recorded with (any batch runs)
CHECK_ROWS = 64      # random rows the written model is checked on against NumPy
INPUT_NAME, OUTPUT_NAME = "pixels", "logits"


def export_network(params: dict[str, np.ndarray], activation: str, out: Path,
                   batch: int = DEFAULT_BATCH, opset: int | None = None,
                   dynamic_batch: bool = True) -> Any:
    """Write the network of ``params`` (MLP or CNN) to ``out`` as ONNX; returns the model.

    The input is ``pixels`` (batch, 784) in the parameters' dtype, the output ``logits``
    (batch, classes); ``dynamic_batch=False`` fixes the batch at ``batch`` rows.
    """
    architecture = network.architecture(params)
    dtype = network.dtype_of(params)
    example = np.zeros((batch, network.input_size(params)), dtype=dtype)

    def logits(weights: dict[str, Any], pixels: Any) -> Any:
        return network.logits(weights, pixels, activation)

    metadata = {"tinygraph.architecture": architecture,
                "tinygraph.network": network.describe(params),
                "tinygraph.activation": activation,
                "tinygraph.eval_batch": str(network.EVAL_BATCH[architecture]),
                "tinygraph.input": "rows of 784 pixels scaled to 0..1 (models.data.to_features)"}
    return export_onnx(logits, (example,), out, input_names=[INPUT_NAME],
                       output_names=[OUTPUT_NAME], dynamic_batch=dynamic_batch, opset=opset,
                       params=params, metadata=metadata)


def check_against_numpy(model_path: Path, params: dict[str, np.ndarray], activation: str,
                        rows: int = CHECK_ROWS) -> str:
    """Run the written model on random rows with ONNX Runtime and compare with tinygraph's
    forward; returns a line to print (a note when ONNX Runtime is missing or cannot run it)."""
    if importlib.util.find_spec("onnxruntime") is None:
        return "note: onnxruntime is not installed, so the file was not run"
    rng = np.random.default_rng(0)
    features = rng.random((rows, network.input_size(params))).astype(network.dtype_of(params))
    try:
        got = onnx_logits(model_path, features)
    except DataError as exc:
        return f"warning: the file is written, but ONNX Runtime cannot run it: {exc}"
    expected = np.asarray(network.logits(params, features, activation))
    worst = float(np.max(np.abs(got - expected)))
    scale = float(np.max(np.abs(expected)))
    tolerance = (1e-4 if expected.dtype == np.float32 else 1e-10) * max(scale, 1.0)
    if got.shape != expected.shape or not worst <= tolerance:
        raise RuntimeError(f"{model_path}: ONNX Runtime's logits differ from tinygraph's by "
                           f"{worst:.3g} on {rows} random rows (tolerance {tolerance:.3g})")
    same = np.array_equal(np.argmax(got, axis=1), np.argmax(expected, axis=1))
    return (f"checked with ONNX Runtime on {rows} random rows: largest logit difference "
            f"{worst:.2g}, {'same' if same else 'NOT the same'} predicted classes")


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------

def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=Path, required=True, help="params.npz from training")
    parser.add_argument("--out", type=Path, required=True, help="the .onnx file to write")
    parser.add_argument("--batch", type=_positive, default=DEFAULT_BATCH,
                        help=f"rows of the example the network is recorded with (default "
                             f"{DEFAULT_BATCH}); the file runs on any number of rows")
    parser.add_argument("--fixed-batch", action="store_true",
                        help="fix the batch at --batch rows instead (for tools that need static "
                             "shapes)")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default 18)")
    args = parser.parse_args(argv)
    if problem := missing_onnx():
        print(problem, file=sys.stderr)
        return 2
    def export() -> tuple:
        check_out(args.out, args.params, None)
        params, config = load_params(args.params)
        activation = config.get("activation", "sigmoid")
        try:
            model = export_network(params, activation, args.out, batch=args.batch,
                                   opset=args.opset, dynamic_batch=not args.fixed_batch)
        except OnnxExportError as exc:  # a bad --opset; our networks always map
            raise DataError(str(exc).removeprefix("export_onnx: ")) from None
        return params, activation, model

    result = one_line_errors(export, args.out)
    if result is None:
        return 2
    params, activation, model = result
    rows = args.batch if args.fixed_batch else "batch"
    classes = model.graph.output[0].type.tensor_type.shape.dim[-1].dim_value
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes): {network.describe(params)} "
          f"({network.architecture(params)}, {activation}), opset "
          f"{model.opset_import[0].version}; input {INPUT_NAME} ({rows}, "
          f"{network.input_size(params)}) {network.dtype_of(params)}, output {OUTPUT_NAME} "
          f"({rows}, {classes})")
    try:
        line = check_against_numpy(args.out, params, activation,
                                   rows=args.batch if args.fixed_batch else CHECK_ROWS)
        print(line, file=sys.stderr if line.startswith(("note:", "warning:")) else sys.stdout)
    except RuntimeError as exc:  # an exporter bug: say so in one line, keep the file to inspect
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
