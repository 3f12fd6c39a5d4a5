"""The paper's network as a tinygraph expression: 784 -> 64 sigmoid -> 10, softmax cross-entropy.

Depth, widths and the hidden activation are parameters; ``(784, 64, 10)`` with sigmoid is the
paper's. Parameters are a plain dict ``{"W1", "b1", "W2", "b2", ...}`` of NumPy arrays, so the
functional transforms and optimizers work on them directly.

The functions here serve both architectures, told apart by the parameters' names
(:func:`architecture`): the MLP above (``"mlp"``) and the LeNet-style convolutional network of
:mod:`models.cnn` (``"cnn"``, ``conv1_w``, ...). Both read flat rows of 784 pixels.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

import tinygraph as tg
from models import cnn

ACTIVATIONS = {"sigmoid": tg.sigmoid, "tanh": tg.tanh, "relu": tg.relu}
ARCHITECTURES = ("mlp", "cnn")
EVAL_BATCH = {"mlp": 10_000, "cnn": 1_000}  # a CNN batch's windows take 25x its pixels


_MLP_KEY = re.compile(r"([Wb])([1-9][0-9]*)")
_CNN_KEY = re.compile(r"conv[0-9]+_[wb]|fc[0-9]+_[wb]")
_FLOATS = {np.dtype(t) for t in ("float16", "float32", "float64")}  # what tinygraph computes in


def architecture(params: dict[str, Any]) -> str:
    """``"mlp"`` (W1, b1, ...) or ``"cnn"`` (conv1_w, ...), checked array by array; a ValueError
    of one line naming the array for anything else.

    Checked: the names (none missing, none foreign), each array's number of dimensions and
    shape against its neighbours (an MLP's ``W{i}`` is (inputs, outputs), ``b{i}`` (outputs,),
    each layer reading what the one before gives; the CNN's as :func:`models.cnn.layout` checks
    them), no empty dimension, and a floating-point dtype (float16, float32 or float64). The
    values themselves are not read: see :func:`check_finite`.
    """
    keys = set(params)
    if any(_CNN_KEY.fullmatch(key) for key in keys):
        cnn.layout(params)  # raises, naming the arrays, on a damaged layout
        kind = "cnn"
    elif any(_MLP_KEY.fullmatch(key) for key in keys):
        _check_mlp(params)
        kind = "mlp"
    else:
        if any(key.startswith("param/") for key in keys):
            raise ValueError("this is a training checkpoint (param/..., opt/...), not a "
                             "params.npz: use the params.npz of the same run folder")
        names = ", ".join(sorted(keys)[:8]) + (", ..." if len(keys) > 8 else "")
        raise ValueError(f"unknown network layout ({names or 'no arrays'}): expected the MLP's "
                         "W1, b1, W2, b2, ... or the CNN's conv1_w, conv1_b, conv2_w, ..., "
                         "fc1_w, ...")
    for key in sorted(keys, key=_natural):
        value = params[key]
        shape = tuple(np.shape(value))
        if 0 in shape:
            raise ValueError(f"{key} has shape {shape}: a layer without units or inputs")
        dtype = getattr(value, "dtype", None)
        dtype = np.asarray(value).dtype if dtype is None else np.dtype(dtype)
        if dtype not in _FLOATS:
            raise ValueError(f"{key} holds {dtype.name} values: weights must be float16, float32 "
                             "or float64")
    return kind


def _natural(key: str) -> tuple[str, int, bool, str]:
    """Sort key for messages: W1, b1, W2, ..., W10 (not W1, W10, W2), conv1_w before conv2_w."""
    match = re.fullmatch(r"([A-Za-z_]*?)([0-9]+)(.*)", key)
    if match is None:
        return (key, -1, False, "")
    prefix = match.group(1).lower()
    return ("" if prefix in ("w", "b") else prefix, int(match.group(2)), prefix == "b",
            match.group(3))


def _check_mlp(params: dict[str, Any]) -> None:
    """The MLP's names and shapes, one ValueError naming the first array that is wrong."""
    keys = set(params)
    count = max(int(m.group(2)) for key in keys if (m := _MLP_KEY.fullmatch(key)))
    expected = {f"{p}{i}" for i in range(1, count + 1) for p in "Wb"}
    missing = sorted(expected - keys, key=_natural)
    extra = sorted(keys - expected, key=_natural)
    if missing or extra:
        names = (", ".join(sorted(expected, key=_natural)) if count <= 3
                 else f"W1, b1, ..., W{count}, b{count}")
        problems = [f"{word} {', '.join(found)}" for word, found in
                    (("missing", missing), ("unexpected", extra)) if found]
        layers = f"{count} layer{'s' if count > 1 else ''}"
        raise ValueError(f"{'; '.join(problems)} (an MLP of {layers} has {names})")
    previous: tuple[int, ...] | None = None
    for i in range(1, count + 1):
        w, b = tuple(np.shape(params[f"W{i}"])), tuple(np.shape(params[f"b{i}"]))
        if len(w) != 2:
            raise ValueError(f"W{i} has shape {w}: expected a 2-D matrix (inputs, outputs)")
        if previous is not None and w[0] != previous[1]:
            raise ValueError(f"the MLP's weights do not chain: W{i} has shape {w}, but W{i - 1} "
                             f"{previous} gives it {previous[1]} inputs")
        if b != (w[1],):
            raise ValueError(f"b{i} has shape {b}: expected ({w[1]},), one bias per output of "
                             f"W{i} {w}")
        previous = w


def check_finite(params: dict[str, Any]) -> None:
    """A ValueError of one line naming the first array holding NaN or infinite values.

    Such weights come from a training run that diverged; the network would score every image
    NaN and ``argmax`` would call them all 0.
    """
    for key in sorted(params, key=_natural):
        values = np.asarray(params[key])
        bad = values.size - int(np.count_nonzero(np.isfinite(values)))
        if bad:
            nan = int(np.count_nonzero(np.isnan(values)))
            what = " and ".join(part for part in (f"{nan} NaN" if nan else "",
                                                  f"{bad - nan} infinite" if bad - nan else "")
                                if part)
            raise ValueError(f"{key} holds {what} values (of {values.size}): the training run "
                             "that wrote them diverged; retrain it (e.g. with a smaller --lr)")


def output_size(params: dict[str, Any]) -> int:
    """Scores per input row (classes) the network gives."""
    if architecture(params) == "cnn":
        return int(cnn.layout(params)[1][-1])
    return int(layer_sizes(params)[-1])


def describe(params: dict[str, Any]) -> str:
    """The network in a few words: ``784-64-10`` or the CNN's layers."""
    if architecture(params) == "cnn":
        return cnn.describe(params)
    return "-".join(map(str, layer_sizes(params)))


def input_size(params: dict[str, Any]) -> int:
    """Pixels per input row the network reads (784 for the CNN)."""
    if architecture(params) == "cnn":
        return cnn.IMAGE * cnn.IMAGE
    return int(np.shape(params["W1"])[0])


def dtype_of(params: dict[str, Any]) -> np.dtype:
    """The parameters' floating-point type (inputs are converted to it)."""
    return np.result_type(*params.values())


def layer_sizes(params: dict[str, Any]) -> tuple[int, ...]:
    """(inputs, hidden..., outputs) read off the weight shapes W1, W2, ..."""
    count = sum(1 for key in params if key.startswith("W"))
    shapes = [np.shape(params[f"W{i}"]) for i in range(1, count + 1)]
    return (shapes[0][0], *(shape[1] for shape in shapes))


def logits(params: dict[str, Any], x: Any, activation: str = "sigmoid") -> Any:
    """The network's output scores: ``act(x @ W1 + b1) ... @ Wn + bn``, one scope per layer (or
    the CNN's, for its parameters)."""
    act = ACTIVATIONS[activation]
    if "conv1_w" in params:
        return cnn.logits(params, x, act)
    count = len(layer_sizes(params)) - 1
    h = x
    for i in range(1, count + 1):
        last = i == count
        with tg.scope("output" if last else f"hidden{i}" if count > 2 else "hidden"):
            h = h @ params[f"W{i}"] + params[f"b{i}"]
            if not last:
                h = act(h)
    return h


def loss(params: dict[str, Any], x: Any, labels: Any, activation: str = "sigmoid") -> Any:
    """Mean softmax cross-entropy of the network on a batch (labels: ids or one-hot)."""
    scores = logits(params, x, activation)
    with tg.scope("loss"):
        return tg.softmax_cross_entropy(scores, labels)


def scores(params: dict[str, Any], x: np.ndarray, activation: str = "sigmoid",
           batch_size: int | None = None) -> np.ndarray:
    """The output scores (N, classes) for the rows of ``x``, in batches (plain NumPy: no graph
    is recorded)."""
    batch_size = batch_size or EVAL_BATCH[architecture(params)]
    if not len(x):
        return np.zeros((0, output_size(params)), dtype=dtype_of(params))
    return np.concatenate([np.asarray(logits(params, x[i:i + batch_size], activation))
                           for i in range(0, len(x), batch_size)])


def predict(params: dict[str, Any], x: np.ndarray, activation: str = "sigmoid",
            batch_size: int | None = None) -> np.ndarray:
    """Class ids for the rows of ``x`` (plain NumPy: no graph is recorded)."""
    if not len(x):
        return np.zeros(0, dtype=np.int64)
    return np.argmax(scores(params, x, activation, batch_size), axis=1)


def evaluate(params: dict[str, Any], x: np.ndarray, labels: np.ndarray,
             activation: str = "sigmoid", batch_size: int | None = None) -> tuple[float, float]:
    """(mean loss, accuracy) over a data set, in batches, recording nothing."""
    batch_size = batch_size or EVAL_BATCH[architecture(params)]
    total_loss, correct = 0.0, 0
    for i in range(0, len(x), batch_size):
        xb, yb = x[i:i + batch_size], labels[i:i + batch_size]
        scores = np.asarray(logits(params, xb, activation))
        total_loss += float(tg.softmax_cross_entropy(scores, yb)) * len(xb)
        correct += int(np.sum(np.argmax(scores, axis=1) == yb))
    count = max(len(x), 1)
    return total_loss / count, correct / count
