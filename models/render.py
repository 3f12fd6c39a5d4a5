"""Draw the paper's network: ``python -m models.render [--params P] [--out graph.svg] ...``
(``--arch cnn``: the LeNet-style convolutional network).

The network is built as a tinygraph expression on a small batch of the embedded sample, with one
scope per layer, differentiated, and drawn with its gradients (or collapsed to one box per layer,
or as the reverse pass).

Every expected failure is one line ``error: ...`` on stderr and exit status 2: a ``--batch``
outside 1 .. the sample's 1,000 test images, an ``--out`` that is a directory or has a suffix
other than .svg/.png/.pdf (without ``--format``), an ``--out`` ending in .svg, .png or .pdf
that ``--format`` contradicts (``--out r.png --format svg`` would draw ``r.svg``, a name not
given; ``--out r`` gets the suffix), an ``--arch`` that contradicts ``--params``, a
parameter file ``models.params.load_params`` refuses (another architecture, damaged arrays,
NaN weights), and a failure to write the picture or its ``.dot`` source (disk full, a read-only
folder).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import tinygraph as tg
from models import cnn, missing_extra, network
from models import data as datasets
from models.cli import blas_threads, one_line_errors
from models.init import init_params
from models.params import load_params


def draw(params: dict[str, np.ndarray], images: np.ndarray, labels: np.ndarray, path: Path,
         activation: str = "sigmoid", format: str = "svg", **options: object) -> Path:
    """Build the loss on one batch with named tensors, run backward, render it to ``path``."""
    tensors = {key: tg.Tensor(value, requires_grad=True, name=key)
               for key, value in params.items()}
    with tg.scope("input"):
        x = tg.Tensor(images, name="images")
    loss = network.loss(tensors, x, labels, activation)
    loss.name = "loss"
    loss.backward(retain_grads=True)
    options.setdefault("show_grads", True)
    kind = "" if network.architecture(params) == "mlp" else "convolutional "
    options.setdefault("title", f"the {network.describe(params)} {activation} {kind}network")
    return tg.render(loss, path, format=format, **options)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.render", description=__doc__)
    parser.add_argument("--params", type=Path, help="params.npz from models.train "
                        "(default: a freshly initialised network of --arch)")
    parser.add_argument("--arch", choices=network.ARCHITECTURES,
                        help="the network drawn without --params: mlp (784-64-10 sigmoid, the "
                             "default) or cnn (the LeNet-style network, relu); with --params, "
                             "what the file must hold")
    parser.add_argument("--out", type=Path, default=Path("graph.svg"))
    parser.add_argument("--format", choices=["svg", "png", "pdf"])
    parser.add_argument("--batch", type=int, default=32, help="examples in the drawn batch")
    parser.add_argument("--collapse", action="store_true", help="one box per layer")
    parser.add_argument("--backward", action="store_true", help="draw the reverse pass")
    args = parser.parse_args(argv)
    if problem := missing_extra():
        print(problem, file=sys.stderr)
        return 2
    if args.batch < 1:
        print(f"error: --batch must be at least 1 (images in the drawn batch), got {args.batch}",
              file=sys.stderr)
        return 2
    if args.out.is_dir():
        print(f"error: --out {args.out}: is a directory; give a file name such as "
              f"{args.out / 'graph.svg'}", file=sys.stderr)
        return 2
    suffix = args.out.suffix
    drawn_as = suffix[1:].lower()
    if args.format and drawn_as in ("svg", "png", "pdf") and drawn_as != args.format:
        # Drawing r.png as SVG would write r.svg, a file the user did not name.
        print(f"error: --out {args.out} ends in {suffix} but --format is {args.format}: give "
              f"--out {args.out.with_suffix('.' + args.format)}, or drop --format to draw "
              f"{drawn_as}", file=sys.stderr)
        return 2
    fmt = args.format or drawn_as or "svg"
    if fmt not in ("svg", "png", "pdf"):
        print(f"error: cannot draw {args.out}: use a .svg, .png or .pdf name, or --format",
              file=sys.stderr)
        return 2

    def draw_network() -> Path:
        sample = datasets.load("sample")
        available = len(sample.test_images)
        if args.batch > available:
            raise datasets.DataError(f"--batch {args.batch}: the embedded sample has {available} "
                                     f"test images; use --batch 1 .. {available}")
        if args.params is not None:
            params, config = load_params(args.params)
            kind = network.architecture(params)
            if args.arch is not None and args.arch != kind:
                raise datasets.DataError(f"--arch {args.arch}, but {args.params} holds the "
                                         f"{kind}'s parameters; drop --arch or give the "
                                         f"{args.arch}'s params.npz")
            activation = config["activation"]
            threads = config["threads"]
        elif args.arch == "cnn":
            params, activation, threads = cnn.init_params(), "relu", cnn.BLAS_THREADS
        else:
            params, activation = init_params((784, 64, 10), method="xavier"), "sigmoid"
            threads = 0
        images = datasets.to_features(sample.test_images[:args.batch], network.dtype_of(params))
        with blas_threads(threads):
            return draw(params, images, sample.test_labels[:args.batch], args.out, activation,
                        fmt, collapse=args.collapse, backward=args.backward)

    written = one_line_errors(draw_network, args.out)
    if written is None:
        return 2
    print(f"wrote {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
