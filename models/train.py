"""Train the paper's network: ``python -m models.train [--preset paper|tuned] [--data SOURCE] ...``,
or the LeNet-style convolutional network of ``models.cnn`` with ``--arch cnn`` (its own preset).

Writes into ``--out DIR`` (default: a new directory under ``runs/``): ``metrics.json``, a
loss/accuracy plot ``curves.png``, a confusion matrix (``confusion.png``, ``confusion.txt``), the
trained parameters ``params.npz``, the network's graph with its gradients on one batch
(``graph.svg``, ``graph.dot``; only the ``.dot`` without Graphviz installed) and
``checkpoint.npz`` (resume with ``--resume DIR``). Every file is written atomically.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import itertools
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

import tinygraph as tg
from models import cnn, missing_extra, network, optim
from models import data as datasets
from models.augment import random_affine
from models.cli import blas_threads
from models.init import INIT_METHODS, init_params
from models.render import draw
from models.report import write_reports


@dataclass
class Config:
    """Every setting of a run; ``metrics.json`` records all of them."""

    preset: str = "tuned"
    arch: str = "mlp"              # mlp: the paper's network | cnn: models.cnn's LeNet
    data: str = "sample"
    epochs: int = 40
    batch_size: int = 128          # 0 means the whole training set (full-batch gradient descent)
    lr: float = 0.5
    schedule: str = "cosine"       # constant | cosine
    warmup_epochs: float = 1.0
    optimizer: str = "nesterov"
    weight_decay: float = 5e-5     # L2 on the weight matrices only, not the biases
    hidden: list[int] = field(default_factory=lambda: [64])
    channels: list[int] = field(default_factory=lambda: [32, 64])  # the CNN's conv1, conv2
    activation: str = "sigmoid"
    init: str = "he"
    init_scale: float = 1.0
    augment: str = "affine"        # none | affine
    val_fraction: float = 0.0
    seed: int = 0
    dtype: str = "float32"
    trace: bool = True             # replay a traced step (tg.trace): same numbers, less overhead
    threads: int = 0               # BLAS threads (through threadpoolctl); 0 leaves them as they are
    train_eval: int = 0            # training images scored after each epoch; 0 means all


# The paper, literally: N(0, 1) init, mean loss, full-batch gradient descent, lr 0.01, 100 epochs,
# 80/20 train/validation split. "tuned" keeps the 784-64-10 sigmoid network and trains it better:
# Nesterov momentum with a cosine schedule, He init, L2 on the weights, mild random affine
# augmentation. Its values were chosen on the last 10,000 training images held out as
# validation (about 60 settings compared), never on the test set. "cnn" trains models.cnn's
# LeNet-style network (the default preset of --arch cnn): AdamW on a cosine schedule, the same
# augmentation, BLAS held to one thread, and the training accuracy after each epoch read on a
# fixed 10,000 of the training images (scoring all 60,000 would add a third to an epoch).
PRESETS: dict[str, dict[str, Any]] = {
    "paper": dict(epochs=100, batch_size=0, lr=0.01, schedule="constant", warmup_epochs=0.0,
                  optimizer="sgd", weight_decay=0.0, init="normal", init_scale=1.0,
                  augment="none", val_fraction=0.2, dtype="float64"),
    "tuned": dict(epochs=40, batch_size=128, lr=0.5, schedule="cosine", warmup_epochs=1.0,
                  optimizer="nesterov", weight_decay=5e-5, init="he", init_scale=1.0,
                  augment="affine", val_fraction=0.0, dtype="float32", trace=True,
                  threads=1),  # the other core prepares the next epoch (see prefetched)
    "cnn": dict(arch="cnn", epochs=6, batch_size=128, lr=2e-3, schedule="cosine",
                warmup_epochs=0.5, optimizer="adamw", weight_decay=1e-2, hidden=[256],
                channels=[32, 64], activation="relu", init="he", init_scale=1.0,
                augment="affine", val_fraction=0.0, dtype="float32", trace=True,
                threads=cnn.BLAS_THREADS,
                train_eval=10_000),
}
DEFAULT_PRESET = {"mlp": "tuned", "cnn": "cnn"}  # the preset when only --arch is given


class UsageError(Exception):
    """A bad setting, path or checkpoint: reported as one line and exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    """The command line (the README's list of flags is checked against it by a test)."""
    parser = argparse.ArgumentParser(
        prog="python -m models.train",
        description="Train the paper's 784-64-10 network (or a LeNet-style CNN) with tinygraph.")
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None,
                        help="paper: the paper's exact setup; tuned (default): better training; "
                             "cnn: the convolutional network's recipe (default of --arch cnn)")
    parser.add_argument("--arch", metavar="{mlp,cnn}",  # checked in build_config: one line
                        help="mlp (default): the paper's network; cnn: conv 5x5 > pool > "
                             "conv 5x5 > pool > dense > dense (models/cnn.py)")
    parser.add_argument("--data", default=None,
                        help="sample (default, offline), mnist, fashion-mnist, a directory of "
                             "IDX files, or a Kaggle train.csv")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int, help="0 = full batch")
    parser.add_argument("--lr", type=float)
    parser.add_argument("--schedule", choices=["constant", "cosine"])
    parser.add_argument("--warmup-epochs", type=float)
    parser.add_argument("--optimizer", choices=["sgd", "momentum", "nesterov", "adam", "adamw"])
    parser.add_argument("--weight-decay", type=float)
    parser.add_argument("--hidden", type=_widths, help="hidden widths, e.g. 64 or 128,64 (the "
                        "CNN's dense layers)")
    parser.add_argument("--channels", type=_channels, help="the CNN's conv1,conv2 channels, "
                        "e.g. 16,32")
    parser.add_argument("--activation", choices=sorted(network.ACTIVATIONS))
    parser.add_argument("--init", choices=INIT_METHODS)
    parser.add_argument("--init-scale", type=float, help="std of the 'normal' init")
    parser.add_argument("--augment", choices=["none", "affine"])
    parser.add_argument("--val-fraction", type=float)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--dtype", choices=["float32", "float64"])
    parser.add_argument("--trace", action=argparse.BooleanOptionalAction, default=None,
                        help="the training step (forward, backward, update) as one compiled "
                             "program (tg.trace; the same numbers as --no-trace)")
    parser.add_argument("--threads", type=int, help="BLAS threads (0: leave as they are)")
    parser.add_argument("--train-eval", type=int, metavar="N",
                        help="score N training images after each epoch (0: all of them)")
    parser.add_argument("--out", type=Path, help="output directory (default: runs/<new>)")
    parser.add_argument("--resume", type=Path, metavar="DIR",
                        help="continue the run whose checkpoint.npz is in DIR")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, set[str]]:
    args = build_parser().parse_args(argv)
    given = {f.name for f in fields(Config) if getattr(args, f.name, None) is not None}
    return args, given


def _widths(text: str) -> list[int]:
    try:
        widths = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected widths like 64 or 128,64, got {text!r}") from None
    if not widths or min(widths) <= 0:
        raise argparse.ArgumentTypeError(f"widths must be positive, got {text!r}")
    return widths


def _channels(text: str) -> list[int]:
    channels = _widths(text)
    if len(channels) != cnn.CONVS:
        raise argparse.ArgumentTypeError(f"expected {cnn.CONVS} channel counts like 16,32, "
                                         f"got {text!r}")
    return channels


# What a resumed run may change: none of these alters what the finished epochs computed or what
# the saved optimizer state means. More --epochs extends the run (a cosine schedule is then
# stretched over the new total from the next step on: the per-epoch "lr" in metrics.json shows
# it); the others change speed or what is scored, never the parameters.
RESUMABLE = ("epochs", "trace", "threads", "train_eval")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _refuse_changes(args: argparse.Namespace, given: set[str], saved: dict[str, Any],
                    saved_history: list[dict]) -> None:
    """A resumed run keeps its settings: a flag that would change one it cannot honour (the
    learning rate, the optimizer, the network, the data...) is refused, naming each, instead of
    continuing a run whose metrics.json would then describe epochs that never ran that way."""
    defaults = asdict(Config())
    changed = []
    for name in sorted(given - set(RESUMABLE)):  # (--preset among them)
        old, new = saved.get(name, defaults[name]), getattr(args, name)
        if new != old:
            changed.append(f"{_flag(name)} {_show(new)} (was {_show(old)})")
    done = len(saved_history)
    if "epochs" in given and args.epochs < done:
        raise UsageError(f"--resume {args.resume}: the run has trained {done} epochs already; "
                         f"--epochs {args.epochs} would end before them (give --epochs >= "
                         f"{done})")
    if args.out is not None and args.out.resolve() != args.resume.resolve():
        raise UsageError(f"--resume {args.resume} continues the run in its own folder; drop "
                         f"--out {args.out} (or copy the folder first and resume the copy)")
    if changed:
        raise UsageError(f"--resume {args.resume}: a resumed run keeps the settings it was "
                         f"trained with, and cannot continue with {', '.join(changed)}; drop "
                         f"{'this flag' if len(changed) == 1 else 'these flags'}, or start a "
                         f"new run (only {', '.join(map(_flag, RESUMABLE))} may change)")


def _show(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def build_config(args: argparse.Namespace, given: set[str],
                 saved: dict[str, Any] | None = None,
                 saved_history: list[dict] | None = None) -> Config:
    """Defaults, then the preset (or the resumed run's settings), then the flags given."""
    values = asdict(Config())
    if saved is not None:
        _refuse_changes(args, given, saved, saved_history or [])
        values.update(saved)
    arch = getattr(args, "arch", None)
    if arch is not None and arch not in network.ARCHITECTURES:
        raise UsageError(f"unknown architecture --arch {arch!r}: use "
                         f"{' or '.join(network.ARCHITECTURES)}")
    preset = args.preset or (DEFAULT_PRESET[arch] if arch and saved is None
                             else values["preset"])
    if saved is None:  # (a resumed run's preset cannot change: _refuse_changes)
        values.update(PRESETS[preset])
    values["preset"] = preset
    for name in given:
        values[name] = getattr(args, name)
    config = Config(**values)
    _check_numbers(config)
    if not 0 <= config.val_fraction < 1:
        raise UsageError(f"--val-fraction must be in [0, 1), got {config.val_fraction}")
    return config


def _check_numbers(config: Config) -> None:
    """Each numeric setting finite and in range, each with its own message (a NaN learning
    rate used to train to NaN parameters and exit 0)."""
    for flag, value, low, strict in (("--lr", config.lr, 0.0, True),
                                     ("--weight-decay", config.weight_decay, 0.0, False),
                                     ("--warmup-epochs", config.warmup_epochs, 0.0, False),
                                     ("--init-scale", config.init_scale, 0.0, True)):
        if not math.isfinite(value) or value < low or (strict and value == low):
            bound = f"> {low:g}" if strict else f">= {low:g}"
            raise UsageError(f"{flag} must be a finite number {bound}, got {value}")
    for flag, value in (("--epochs", config.epochs), ("--batch-size", config.batch_size),
                        ("--threads", config.threads), ("--train-eval", config.train_eval)):
        if value < 0:
            raise UsageError(f"{flag} must be >= 0, got {value}")


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite: the run stops, its last good checkpoint kept."""


@dataclass
class Prepared:
    """The data of a run as float features and integer labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray | None
    y_val: np.ndarray | None
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    classes: list[str]


def prepare_data(config: Config) -> Prepared:
    dataset = datasets.load(config.data)
    dtype = np.dtype(config.dtype)
    images, labels = dataset.train_images, dataset.train_labels
    x_val = y_val = None
    if config.val_fraction > 0:
        split = datasets.train_val_split(images, labels, config.val_fraction, seed=config.seed)
        images, labels = split.train_images, split.train_labels
        if len(split.val_images) == 0 or len(images) == 0:
            total = len(dataset.train_labels)
            empty = "validation" if len(images) else "training"
            raise UsageError(f"--val-fraction {config.val_fraction} of {total} images leaves no "
                             f"{empty} image: use 0 (no validation) or a fraction from "
                             f"{0.5 / total:.2g} to {1 - 0.5 / total:.6g}")
        x_val, y_val = datasets.to_features(split.val_images, dtype), split.val_labels
    x_test = y_test = None
    if dataset.test_images is not None:
        x_test = datasets.to_features(dataset.test_images, dtype)
        y_test = dataset.test_labels
    return Prepared(datasets.to_features(images, dtype), labels, x_val, y_val, x_test, y_test,
                    dataset.classes)


def make_schedule(config: Config, steps_per_epoch: int) -> optim.Schedule:
    """The learning rate of each step (0-based) of the whole run."""
    total = max(config.epochs * steps_per_epoch, 1)
    warmup = min(int(round(config.warmup_epochs * steps_per_epoch)), total - 1)
    return (optim.cosine(config.lr, total_steps=total, warmup_steps=warmup)
            if config.schedule == "cosine" else optim.constant(config.lr))


def make_optimizer(config: Config, steps_per_epoch: int) -> optim.Optimizer:
    schedule = make_schedule(config, steps_per_epoch)
    # The old state is never reused, so the moment buffers may be updated in place.
    return optim.get_optimizer(config.optimizer, lr=schedule, weight_decay=config.weight_decay,
                               weight_decay_mask=lambda path, p: p.ndim > 1, inplace_state=True)


def init_network(config: Config, features: int, classes: int) -> dict[str, np.ndarray]:
    """Fresh parameters of the network ``config`` asks for."""
    dtype = np.dtype(config.dtype)
    if config.arch == "cnn":  # the data sources hold 28x28 images only
        return cnn.init_params(config.channels, config.hidden, classes, method=config.init,
                               scale=config.init_scale, seed=config.seed, dtype=dtype)
    sizes = (features, *config.hidden, classes)
    return init_params(sizes, method=config.init, scale=config.init_scale, seed=config.seed,
                       dtype=dtype)


def new_out_dir(config: Config, root: Path = Path("runs")) -> Path:
    """A new directory under ``root``, created here and never one that exists: runs started in
    the same second (several at once) get suffixes -2, -3, ... (mkdir is atomic)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = Path(config.data).name.replace(".", "-") or "data"
    root.mkdir(parents=True, exist_ok=True)
    base = root / f"{stamp}-{config.preset}-{name}"
    for number in itertools.count(1):
        directory = base if number == 1 else base.with_name(f"{base.name}-{number}")
        try:
            directory.mkdir()
        except FileExistsError:
            continue
        return directory
    raise AssertionError("unreachable")


def ensure_writable(directory: Path) -> None:
    """Create ``directory`` and prove a file can be written there, before any training."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with datasets.atomic_write(directory / ".write-test", "w") as handle:
            handle.write("ok")
        (directory / ".write-test").unlink()
    except OSError as exc:
        raise UsageError(f"cannot write to output directory {directory}: "
                         f"{exc.strerror or exc}") from None


def save_checkpoint(path: Path, config: Config, params: dict, state: dict, epoch: int,
                    history: list[dict], optimizer: optim.Optimizer,
                    resumes: list[dict] | None = None, wall_seconds: float = 0.0) -> None:
    arrays = {f"param/{k}": v for k, v in params.items()}
    arrays.update({f"opt/{k}": v for k, v in optimizer.state_to_arrays(state).items()})
    arrays["meta"] = np.array(json.dumps({"config": asdict(config), "epoch": epoch,
                                          "history": history, "resumes": resumes or [],
                                          "wall_seconds": wall_seconds}))
    with datasets.atomic_write(path, "wb") as handle:
        np.savez(handle, **arrays)


def load_checkpoint(directory: Path) -> tuple[dict, dict, dict[str, np.ndarray]]:
    """(meta, params, optimizer arrays) of the checkpoint in ``directory``."""
    path = directory / "checkpoint.npz"
    if not path.is_file():
        raise UsageError(f"--resume {directory}: no checkpoint.npz there")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
        meta = json.loads(str(arrays.pop("meta")))
    except Exception as exc:  # any damage to the file is one clear line
        raise UsageError(f"{path}: not a readable checkpoint ({exc})") from None
    params = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("param/")}
    opt_arrays = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("opt/")}
    return meta, params, opt_arrays


def save_params(path: Path, params: dict, config: Config) -> None:
    """``params.npz``: the weights plus the settings predict needs (activation, classes)."""
    with datasets.atomic_write(path, "wb") as handle:
        np.savez(handle, **params, __config__=np.array(json.dumps(asdict(config))))


def eager_step(optimizer: optim.Optimizer) -> Any:
    """``step(params, state, x, y, activation) -> (loss, params, state)``: the gradient by
    ``tg.value_and_grad``, then ``optimizer.update`` (``--no-trace``)."""
    loss_and_grad = tg.value_and_grad(network.loss)

    def step(params: dict, state: dict, x: np.ndarray, y: np.ndarray, activation: str) -> tuple:
        value, grads = loss_and_grad(params, x, y, activation)
        params, state = optimizer.update(params, grads, state)
        return value, params, state

    return step


def compiled_step(optimizer: optim.Optimizer) -> Any:
    """The same step as :func:`eager_step`, bit for bit, as one compiled program: forward,
    backward and the optimizer's update (``tg.trace``), the parameters and the optimizer's
    slots donated (updated in place). The step's learning rate and other per-step numbers
    (``optimizer.scalars``) are inputs of the program, as 0-d arrays of the parameters' dtype,
    so that a schedule does not retrace it."""

    def train_step(params: dict, slots: dict, scalars: dict, x: Any, y: Any,
                   activation: str) -> tuple:
        value, grads = tg.value_and_grad(network.loss)(params, x, y, activation)
        return (value, *optimizer.apply(params, grads, slots, scalars))

    program = tg.trace(train_step, donate_argnums=(0, 1))

    def step(params: dict, state: dict, x: np.ndarray, y: np.ndarray, activation: str) -> tuple:
        t = int(state["step"])
        dtype = network.dtype_of(params)
        scalars = {k: np.asarray(v, dtype) for k, v in optimizer.scalars(t).items()}
        slots = {slot: state[slot] for slot in optimizer.slots}
        value, params, slots = program(params, slots, scalars, x, y, activation)
        return value, params, {"step": np.asarray(t + 1, dtype=np.int64), **slots}

    step.program = program  # type: ignore[attr-defined] - for its source and trace count
    return step


def prefetched(make: Any, items: Sequence[int]) -> Any:
    """Yield ``(item, make(item))`` for each item, making the next one in a second thread
    meanwhile. A training epoch's shuffled and augmented images are made while the previous
    epoch trains (NumPy releases the GIL): the same arrays, and with BLAS on one thread the
    tuned MNIST run takes 20.7 s instead of 29.5 s on 2 cores (28.5 s with BLAS on both and no
    second thread), for one more epoch of training images in memory. An error in ``make`` is
    raised here; the thread is shut down when the loop ends or is left."""
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="tinygraph-data") as pool:
        upcoming = pool.submit(make, items[0]) if len(items) else None
        for position, item in enumerate(items):
            made = upcoming.result()
            if position + 1 < len(items):
                upcoming = pool.submit(make, items[position + 1])
            yield item, made


def train(config: Config, out: Path, *, progress: bool = True,
          resume: tuple[dict, dict, dict] | None = None) -> dict[str, Any]:
    """Run the training described by ``config``; write every output into ``out``."""
    started = time.perf_counter()
    data = prepare_data(config)
    dtype = np.dtype(config.dtype)
    count = len(data.x_train)
    batch = count if config.batch_size == 0 else min(config.batch_size, count)
    steps_per_epoch = math.ceil(count / batch)
    optimizer = make_optimizer(config, steps_per_epoch)
    schedule = make_schedule(config, steps_per_epoch)
    params = init_network(config, data.x_train.shape[1], len(data.classes))
    state = optimizer.init(params)
    history: list[dict] = []
    resumes: list[dict] = []
    first_epoch = 0
    earlier = 0.0  # wall seconds of the sessions before a resume
    if resume is not None:
        meta, saved_params, opt_arrays = resume
        expected = {k: v.shape for k, v in params.items()}
        found = {k: v.shape for k, v in saved_params.items()}
        if expected != found:
            raise UsageError(f"checkpoint holds a network of shapes {found}, but the settings "
                             f"ask for {expected}")
        params = {k: saved_params[k].astype(dtype) for k in params}
        state = optimizer.state_from_arrays(opt_arrays, params)
        first_epoch, history = meta["epoch"], meta["history"]
        earlier = float(meta.get("wall_seconds", 0.0))
        # What ran: each resume, the epoch it continued from and the settings it changed.
        was = {**asdict(Config()), **meta["config"]}
        resumes = [*meta.get("resumes", []), {
            "after_epoch": first_epoch,
            "changed": {k: {"was": was[k], "now": v} for k, v in asdict(config).items()
                        if was[k] != v}}]

    step = compiled_step(optimizer) if config.trace else eager_step(optimizer)
    # A fixed subset of the training set, when scoring all of it each epoch costs too much time.
    scored = (slice(None) if config.train_eval == 0 or config.train_eval >= count else
              np.sort(np.random.default_rng([config.seed, 10**6]).choice(
                  count, config.train_eval, replace=False)))
    x_scored, y_scored = data.x_train[scored], data.y_train[scored]
    bar = _progress(first_epoch, config.epochs, progress)
    def epoch_data(epoch: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([config.seed, epoch])  # per-epoch: resuming needs no RNG state
        order = rng.permutation(count)
        x_epoch, y_epoch = data.x_train[order], data.y_train[order]
        if config.augment == "affine":
            x_epoch = random_affine(x_epoch, rng)
        return x_epoch, y_epoch

    for epoch, (x_epoch, y_epoch) in prefetched(epoch_data, range(first_epoch, config.epochs)):
        epoch_start = time.perf_counter()
        for start in range(0, count, batch):
            xb, yb = x_epoch[start:start + batch], y_epoch[start:start + batch]
            value, params, state = step(params, state, xb, yb, config.activation)
            if not np.isfinite(value):  # diverged: keep the last good checkpoint, stop
                kept = (f"the last good state is {out / 'checkpoint.npz'} (after epoch {epoch})"
                        if epoch > 0 else "no epoch had finished, so nothing was kept")
                raise TrainingDiverged(
                    f"the loss became {float(value)} in epoch {epoch + 1}, step "
                    f"{start // batch + 1} (learning rate too large?); {kept}")
        record = {"epoch": epoch + 1, "seconds": round(time.perf_counter() - epoch_start, 3),
                  "lr": schedule((epoch + 1) * steps_per_epoch - 1)}  # the epoch's last step
        record["train_loss"], record["train_accuracy"] = network.evaluate(
            params, x_scored, y_scored, config.activation)
        record["val_loss"] = record["val_accuracy"] = None
        if data.x_val is not None and len(data.x_val):
            record["val_loss"], record["val_accuracy"] = network.evaluate(
                params, data.x_val, data.y_val, config.activation)
        history.append(record)
        save_checkpoint(out / "checkpoint.npz", config, params, state, epoch + 1, history,
                        optimizer, resumes, earlier + time.perf_counter() - started)
        bar.update(1)
        bar.set_postfix(train_loss=f"{record['train_loss']:.4f}",
                        train_acc=f"{record['train_accuracy']:.4f}",
                        **({"val_acc": f"{record['val_accuracy']:.4f}"}
                           if record["val_accuracy"] is not None else {}))
    bar.close()

    test_accuracy = None
    # The confusion matrix is of the test split, or of validation when the source has no test.
    split, x_eval, y_eval = (("test", data.x_test, data.y_test) if data.x_test is not None
                             else ("validation", data.x_val, data.y_val))
    predictions = None
    if x_eval is not None and len(x_eval):
        predictions = network.predict(params, x_eval, config.activation)
        if split == "test":
            test_accuracy = float(np.mean(predictions == y_eval))
    metrics = {
        "config": asdict(config),
        "network": network.describe(params),
        "layer_sizes": list(network.layer_sizes(params)) if config.arch == "mlp" else None,
        "epochs": history,
        "resumes": resumes,
        "test_accuracy": test_accuracy,
        "wall_seconds": round(earlier + time.perf_counter() - started, 3),  # every session
        "tinygraph_version": tg.__version__,
    }
    save_params(out / "params.npz", params, config)
    write_reports(out, metrics, data.classes, y_eval, predictions, split)
    draw(params, data.x_train[:32], data.y_train[:32], out / "graph.svg", config.activation)
    with datasets.atomic_write(out / "metrics.json", "w") as handle:
        json.dump(metrics, handle, indent=2)
    return metrics


def _progress(done: int, total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, initial=done, unit="epoch", disable=not enabled,
                dynamic_ncols=True, file=sys.stderr)


def _discard_if_empty(folder: Path | None) -> None:
    """Remove the run folder this call made, if the run failed before writing anything."""
    if folder is not None:
        with contextlib.suppress(OSError):  # not empty, or gone: leave it as it is
            folder.rmdir()


def _kept(out: Path | None) -> str:
    """What an interrupted or failed run leaves behind, and how to go on."""
    if out is None or not out.exists():
        return "nothing was written"
    checkpoint = out / "checkpoint.npz"
    if checkpoint.is_file():
        try:
            epoch = load_checkpoint(out)[0]["epoch"]
        except UsageError:
            return f"{checkpoint} is damaged: start a new run"
        return f"continue the run after epoch {epoch} with --resume {out}"
    return f"no epoch had finished, so nothing was saved in {out}"


def main(argv: Sequence[str] | None = None) -> int:
    args, given = parse_args(argv)
    if problem := missing_extra():
        print(problem, file=sys.stderr)
        return 2
    tg.keep_freed_memory()  # reuse freed per-step arrays instead of faulting pages in anew
    out: Path | None = None
    made: Path | None = None  # the run folder this call created (removed again if left empty)
    try:
        resume = None
        if args.resume is not None:
            resume = load_checkpoint(args.resume)
            config = build_config(args, given, saved=resume[0]["config"],
                                  saved_history=resume[0]["history"])
            out = args.resume
        else:
            config = build_config(args, given)
            if args.out is None:
                out = made = new_out_dir(config)
            else:
                out, made = args.out, None if args.out.exists() else args.out
            if (out / "metrics.json").exists() or (out / "checkpoint.npz").exists():
                raise UsageError(f"{out} holds a run already: continue it with --resume {out}, "
                                 "or choose another --out")
        ensure_writable(out)
        with blas_threads(config.threads):
            metrics = train(config, out, progress=not args.no_progress, resume=resume)
    except (UsageError, datasets.DataError) as exc:
        _discard_if_empty(made)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except TrainingDiverged as exc:
        _discard_if_empty(made)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # disk full, folder made read-only mid-run: one line, what was kept
        _discard_if_empty(made)
        where = exc.filename or out
        print(f"error: cannot write {where}: {exc.strerror or exc}; {_kept(out)}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        _discard_if_empty(made)
        print(f"interrupted: {_kept(out)}", file=sys.stderr)
        return 130
    last = metrics["epochs"][-1] if metrics["epochs"] else {}
    summary = [f"preset {config.preset} ({config.arch}) on {config.data}: "
               f"{len(metrics['epochs'])} epochs"]
    if last:
        summary.append(f"train accuracy {last['train_accuracy']:.4f}")
        if last["val_accuracy"] is not None:
            summary.append(f"val accuracy {last['val_accuracy']:.4f}")
    if metrics["test_accuracy"] is not None:
        summary.append(f"test accuracy {metrics['test_accuracy']:.4f}")
    summary.append(f"{metrics['wall_seconds']:.1f} s")
    print(", ".join(summary))
    print(f"outputs in {out}{os.sep}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
