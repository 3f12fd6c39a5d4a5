"""``python -m tinygraph.gradcheck`` / ``tinygraph-gradcheck``: the gradient-check suite.

Checks every registered primitive (built-ins and those registered by ``--import``-ed modules) on
drawn inputs against central differences, and model losses (``--model``) along random
directions, at derivative orders 1 and 2 unless ``--order`` says otherwise: order 1 checks the
gradient, order 2 the gradient of ``<grad f, v>`` for a random ``v`` (a Hessian-vector product,
so that rules differentiated again are proven too). Prints one row per (check, order) and a
summary; exit status 0 when all pass, 1 when one fails, 2 when the request is wrong (unknown op
or model, a module that does not import).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from tinygraph.files import write_atomic
from tinygraph.gradcheck.suite import DEFAULT_ORDERS, SuiteError, run_suite


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _seed(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tinygraph-gradcheck",
        description="Check every registered primitive's backward rule (and model losses) "
                    "against central differences.",
        epilog="With --model and no --op only the models are checked. Each op and model gets "
               "one row per order; a row names its order, and the command printed for a "
               "failed row reruns exactly that row. Exit status: 0 all passed, 1 a check "
               "failed, 2 a bad request.")
    parser.add_argument("--op", action="append", metavar="NAME",
                        help="check only this op (repeatable); default: every registered op")
    parser.add_argument("--import", dest="imports", action="append", default=[],
                        metavar="MODULE", help="import a module that registers ops (repeatable)")
    parser.add_argument("--model", action="append", default=[], metavar="NAME|MODULE:FUNCTION",
                        help="check a model's loss: an installed tinygraph.models entry point "
                             "or module:function (repeatable)")
    parser.add_argument("--examples", type=_positive, default=100, metavar="N",
                        help="inputs drawn per op (default 100)")
    parser.add_argument("--seed", type=_seed, default=0, metavar="S",
                        help="seed of the run: the same seed draws the same inputs, whatever "
                             "the order (default 0)")
    parser.add_argument("--order", dest="orders", type=_positive, action="append",
                        metavar="N",
                        help="check derivatives of order N, ops and models alike (repeatable; "
                             "default: --order 1 --order 2). Order 1 checks the gradient; "
                             "order 2 the gradient of <grad f, v> for a random v (H v), after "
                             "checking order 1 on the same input. Only the orders given get rows: "
                             "--order 2 alone gives order-2 rows only")
    parser.add_argument("--atol", type=float, default=1e-5, help="absolute tolerance (1e-5)")
    parser.add_argument("--rtol", type=float, default=1e-4, help="relative tolerance (1e-4)")
    parser.add_argument("--no-shrink", action="store_true",
                        help="report the drawn failing input; do not ask hypothesis to shrink it")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    return parser


def write_json_atomically(path: str, data: Any) -> None:
    """Write ``data`` as JSON to ``path``, atomically (see :func:`tinygraph.files.write_atomic`)."""
    text = json.dumps(data, indent=2, allow_nan=False) + "\n"
    write_atomic(path, text.encode("utf-8"))


def _import_modules(names: Sequence[str]) -> None:
    # As `python -m` does, let modules in the current directory be found (the console script's
    # sys.path[0] is its bin directory instead).
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    for name in names:
        try:
            importlib.import_module(name)
        except BaseException as exc:  # SystemExit in a module's body counts too
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise SuiteError(f"--import {name}: {type(exc).__name__}: {exc}") from None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the suite as the command line says; return the exit status."""
    args = build_parser().parse_args(argv)
    if args.json and not os.path.isdir(os.path.dirname(os.path.abspath(args.json))):
        print(f"tinygraph-gradcheck: error: --json {args.json}: the directory does not exist",
              file=sys.stderr)
        return 2
    try:
        _import_modules(args.imports)
        ops = args.op or ([] if args.model else None)  # None: every registered op
        report = run_suite(ops, args.model, examples=args.examples, seed=args.seed,
                           orders=args.orders or DEFAULT_ORDERS, shrink=not args.no_shrink,
                           atol=args.atol, rtol=args.rtol)
    except SuiteError as exc:
        print(f"tinygraph-gradcheck: error: {exc}", file=sys.stderr)
        return 2
    print(report)
    if args.json:
        write_json_atomically(args.json, report.to_json())
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
