"""``python -m tinygraph.gradcheck`` / ``tinygraph-gradcheck``: the gradient-check suite.

Checks every registered primitive (built-ins and those registered by ``--import``-ed modules) on
drawn inputs against central differences, and model losses (``--model``) along random
directions, at derivative orders 1 and 2 unless ``--order`` says otherwise: order 1 checks the
gradient, order 2 the gradient of ``<grad f, v>`` for a random ``v`` (a Hessian-vector product,
so that rules differentiated again are proven too). Prints one row per (check, order) and a
summary; exit status 0 when all pass, 1 when one fails (a wrong rule, or anything a user's rule,
sample or model raises, ``SystemExit`` included), 2 when the request is wrong (unknown op or
model, a module that does not import, a tolerance that is negative or not finite, a ``--json``
path that cannot be written: all checked before the run) or the report could not be written,
130 when interrupted (Ctrl-C, or ``KeyboardInterrupt`` from user code), 141 when stdout is closed
early (``| head``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import math
import os
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

from tinygraph.files import write_atomic
from tinygraph.gradcheck.suite import DEFAULT_ORDERS, SuiteError, run_suite

# Exit statuses besides 0 (all passed), 1 (a check failed) and 2 (a bad request).
INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a process stopped by Ctrl-C
CLOSED_PIPE = 141  # 128 + SIGPIPE, as `cat` or `grep` report when `| head` stops reading


def _integer(least: int) -> Any:
    """An argparse type: an integer >= ``least``, or an error that says so."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"must be at least {least}, got {value}")
        return value
    return parse


def _tolerance(text: str) -> float:
    """An argparse type: a finite number >= 0 (a negative tolerance passes any rule)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, not {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tinygraph-gradcheck",
        description="Check every registered primitive's backward rule (and model losses) "
                    "against central differences.",
        epilog="With --model and no --op only the models are checked. Each op and model gets "
               "one row per order; a row names its order, and the command printed for a "
               "failed row reruns exactly that row. Exit status: 0 all passed, 1 a check "
               "failed, 2 a bad request (or --json not written), 130 interrupted, 141 stdout "
               "closed early.")
    parser.add_argument("--op", action="append", metavar="NAME",
                        help="check only this op (repeatable); default: every registered op")
    parser.add_argument("--import", dest="imports", action="append", default=[],
                        metavar="MODULE", help="import a module that registers ops (repeatable)")
    parser.add_argument("--model", action="append", default=[], metavar="NAME|MODULE:FUNCTION",
                        help="check a model's loss: an installed tinygraph.models entry point "
                             "or module:function (repeatable)")
    parser.add_argument("--examples", type=_integer(1), default=100, metavar="N",
                        help="inputs drawn per op (default 100)")
    parser.add_argument("--seed", type=_integer(0), default=0, metavar="S",
                        help="seed of the run: the same seed draws the same inputs, whatever "
                             "the order (default 0)")
    parser.add_argument("--order", dest="orders", type=_integer(1), action="append",
                        metavar="N",
                        help="check derivatives of order N, ops and models alike (repeatable; "
                             "default: --order 1 --order 2). Order 1 checks the gradient; "
                             "order 2 the gradient of <grad f, v> for a random v (H v), after "
                             "checking order 1 on the same input. Only the orders given get rows: "
                             "--order 2 alone gives order-2 rows only")
    parser.add_argument("--atol", type=_tolerance, default=1e-5,
                        help="absolute tolerance, finite and >= 0 (default 1e-5)")
    parser.add_argument("--rtol", type=_tolerance, default=1e-4,
                        help="relative tolerance, finite and >= 0 (default 1e-4)")
    parser.add_argument("--no-shrink", action="store_true",
                        help="report the drawn failing input; do not ask hypothesis to shrink it")
    parser.add_argument("--json", metavar="FILE",
                        help="also write the results as JSON to FILE (replaced atomically; its "
                             "folder must exist and be writable, checked before the run)")
    return parser


def write_json_atomically(path: str, data: Any) -> None:
    """Write ``data`` as JSON to ``path``, atomically (see :func:`tinygraph.files.write_atomic`)."""
    text = json.dumps(data, indent=2, allow_nan=False) + "\n"
    write_atomic(path, text.encode("utf-8"))


def checked_output_path(path: str) -> str:
    """The file ``path`` names (symlinks resolved, so that a link is kept and its target
    replaced), once a file could be created beside it; else a one-line ValueError saying why.

    Checked before the run, so that an hour of checks is not lost to a typo. The report is
    written by replacing the file atomically, so only a regular file (or none) can be the target.
    """
    if not path:
        raise ValueError("an empty path")
    if path.endswith(os.sep) or (os.altsep and path.endswith(os.altsep)):
        raise ValueError("ends with a path separator; give a file name")
    target = os.path.realpath(path)
    if os.path.isdir(target):
        raise ValueError("is a directory")
    if os.path.exists(target) and not os.path.isfile(target):
        raise ValueError("is not a regular file (the report replaces a file atomically)")
    folder = os.path.dirname(target)
    if not os.path.exists(folder):
        raise ValueError(f"the directory does not exist ({folder})")
    if not os.path.isdir(folder):
        raise ValueError(f"{folder} is not a directory")
    try:  # as write_atomic will: a temporary file beside the target (permissions, read-only FS)
        handle, probe = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".tmp",
                                         dir=folder)
    except OSError as error:
        raise ValueError(f"cannot create a file in {folder}: {error.strerror or error}") from None
    os.close(handle)
    os.unlink(probe)
    return target


def _say(line: str) -> None:
    """Print one line to stderr; a closed stderr is not worth a traceback."""
    with contextlib.suppress(OSError, ValueError):
        print(line, file=sys.stderr, flush=True)


def _print_unless_closed(text: str) -> bool:
    """Print ``text`` to stdout; False if its reader has gone (``| head``)."""
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:
        # What is still buffered would fail again when the interpreter flushes stdout at exit
        # ("Exception ignored ... BrokenPipeError"): send it to /dev/null, as the recipe in
        # Python's signal documentation does.
        with contextlib.suppress(AttributeError, OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, sys.stdout.fileno())
            finally:
                os.close(devnull)
        return False
    return True


def _import_modules(names: Sequence[str]) -> None:
    # As `python -m` does, let modules in the current directory be found (the console script's
    # sys.path[0] is its bin directory instead).
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    for name in names:
        try:
            importlib.import_module(name)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # SystemExit in a module's body counts too
            raise SuiteError(f"--import {name}: {type(exc).__name__}: {exc}") from None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the suite as the command line says; return the exit status.

    0 all passed, 1 a check failed, 2 a bad request (checked before the run) or the report
    could not be written, 130 interrupted, 141 stdout closed before the report was printed.
    """
    args = build_parser().parse_args(argv)
    target = None
    if args.json is not None:
        try:
            target = checked_output_path(args.json)
        except ValueError as error:
            _say(f"tinygraph-gradcheck: error: --json {args.json or repr('')}: {error}")
            return 2
    written = False
    try:
        _import_modules(args.imports)
        ops = args.op or ([] if args.model else None)  # None: every registered op
        report = run_suite(ops, args.model, examples=args.examples, seed=args.seed,
                           orders=args.orders or DEFAULT_ORDERS, shrink=not args.no_shrink,
                           atol=args.atol, rtol=args.rtol)
        write_error = None
        if target is not None:  # before printing: a closed stdout must not lose the file
            try:
                write_json_atomically(target, report.to_json())
                written = True
            except OSError as error:  # the folder went away, the disk filled up...
                write_error = (f"--json {args.json}: could not write the report: "
                               f"{type(error).__name__}: {error.strerror or error}")
        printed = _print_unless_closed(str(report))
    except SuiteError as error:
        _say(f"tinygraph-gradcheck: error: {error}")
        return 2
    except KeyboardInterrupt:  # Ctrl-C, or raised by a user's rule, sample or model
        lost = f"; {args.json} not written" if target is not None and not written else ""
        _say(f"tinygraph-gradcheck: interrupted{lost}")
        return INTERRUPTED
    if write_error is not None:
        _say(f"tinygraph-gradcheck: error: {write_error}")
        return 2
    if not printed:
        return CLOSED_PIPE
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
