"""tinygraph's NumPy forward vs ONNX Runtime on the 10,000 MNIST test images.

``python -m benchmarks.onnx --params runs/A/params.npz [--params runs/B/params.npz ...]`` exports
each trained network with ``models.export`` (into a temporary folder), scores the test split of
``--mnist DIR`` with both engines in the same batches (``models.network.EVAL_BATCH``), and prints
one Markdown row per network: accuracy of each, whether every prediction agrees, and the time per
10,000 images, median of ``--samples`` interleaved samples (see :mod:`benchmarks.harness`), one
thread each (BLAS through threadpoolctl, ONNX Runtime's intra-op and inter-op pools). Needs the
``onnx`` extra.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks.harness import interleaved, limited_threads, log
from models import network
from models.data import DataError, load_idx_dir, to_features
from models.export import export_network
from models.params import load_params
from models.runtime import missing_onnx, open_session, run_in_batches

DEFAULT_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def compare(params_file: Path, images: np.ndarray, labels: np.ndarray, folder: Path,
            samples: int, min_time: float) -> dict:
    """Accuracy and seconds per pass over ``images`` of one trained network, both engines."""
    params, config = load_params(params_file)
    activation = config["activation"]
    architecture = network.architecture(params)
    features = to_features(images, network.dtype_of(params))
    model_file = folder / f"{params_file.parent.name}.onnx"
    export_network(params, activation, model_file)
    session = open_session(model_file, threads=1)  # one intra-op and one inter-op thread
    batch = network.EVAL_BATCH[architecture]

    def with_numpy() -> np.ndarray:
        return network.predict(params, features, activation)

    def with_onnx_runtime() -> np.ndarray:
        return np.argmax(np.concatenate(run_in_batches(session, features, batch)), axis=1)

    with limited_threads(1):
        numpy_labels, onnx_labels = with_numpy(), with_onnx_runtime()
        timings = interleaved({"numpy": with_numpy, "onnxruntime": with_onnx_runtime},
                              samples=samples, min_time=min_time)
    return {"network": f"{network.describe(params)} ({architecture}, {activation}, "
                       f"{features.dtype})",
            "numpy_accuracy": float(np.mean(numpy_labels == labels)),
            "onnx_accuracy": float(np.mean(onnx_labels == labels)),
            "same": bool(np.array_equal(numpy_labels, onnx_labels)),
            "numpy_seconds": timings["numpy"].median,
            "onnx_seconds": timings["onnxruntime"].median,
            "images": len(images)}


def table(rows: list[dict]) -> str:
    """The results as the README's Markdown table (times per 10,000 images)."""
    lines = ["| network | accuracy, NumPy | accuracy, ONNX Runtime | same predictions | "
             "time, NumPy | time, ONNX Runtime |", "|---|---|---|---|---|---|"]
    for row in rows:
        scale = 10_000 / row["images"]
        lines.append(f"| {row['network']} | {100 * row['numpy_accuracy']:.2f}% | "
                     f"{100 * row['onnx_accuracy']:.2f}% | {'all' if row['same'] else 'NO'} | "
                     f"{_duration(row['numpy_seconds'] * scale)} | "
                     f"{_duration(row['onnx_seconds'] * scale)} |")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.onnx", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=Path, action="append", required=True,
                        help="a params.npz from models.train (repeatable)")
    parser.add_argument("--mnist", type=Path, default=DEFAULT_MNIST,
                        help=f"directory of the MNIST IDX files (default {DEFAULT_MNIST})")
    parser.add_argument("--samples", type=int, default=7, help="timed samples per engine")
    parser.add_argument("--min-time", type=float, default=0.2,
                        help="seconds each sample lasts at least")
    args = parser.parse_args(argv)
    if problem := missing_onnx(runtime=True):
        print(problem, file=sys.stderr)
        return 2
    rows = []
    try:
        test = load_idx_dir(args.mnist)
        with tempfile.TemporaryDirectory() as folder:
            for params_file in args.params:
                log(f"onnx: {params_file}")
                rows.append(compare(params_file, test.test_images, test.test_labels,
                                    Path(folder), args.samples, args.min_time))
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
