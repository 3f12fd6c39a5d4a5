"""Model-level gradient checks, found by ``tinygraph-gradcheck --model NAME``.

Each function here takes no required argument and returns a
:class:`tinygraph.gradcheck.ModelCheck`: a scalar loss ``f``, its arguments, and which of them
to differentiate. They are registered in the entry-point group ``tinygraph.models`` (see
pyproject.toml), so tinygraph finds them without importing ``models``; without the install,
``--model models.checks:mnist_mlp`` names one directly.
"""

from __future__ import annotations

import numpy as np

from models import cnn, network
from models.init import init_params
from tinygraph.gradcheck import ModelCheck


def mnist_mlp(batch: int = 32, seed: int = 0) -> ModelCheck:
    """The paper's 784-64-10 sigmoid network, mean softmax cross-entropy on a random batch.

    ``L(W1, b1, W2, b2) = mean_n -log softmax(sigmoid(x_n W1 + b1) W2 + b2)[y_n]`` with
    ``batch`` uniform [0, 1) images ``x`` and uniform labels ``y``; the check is of ``dL/dparams``
    (``argnums=0``: the pixels are data). Weights are Glorot-normal, so the hidden sigmoids sit in
    their sensitive range (pre-activations ~ N(0, 0.8^2)): with the paper's N(0, 1) weights they
    saturate, every W1 gradient is ~0 and a wrong sigmoid rule would pass unnoticed.
    """
    rng = np.random.default_rng(seed)
    params = init_params((784, 64, 10), method="xavier", seed=seed)
    images = rng.random((batch, 784))
    labels = rng.integers(0, 10, batch)
    return ModelCheck(network.loss, (params, images, labels), argnums=0)


def mnist_cnn(batch: int = 4, seed: int = 0) -> ModelCheck:
    """A small LeNet-style network of ``models.cnn`` (4 and 6 channels, 16 dense units), mean
    softmax cross-entropy on a random batch, ``dL/dparams``.

    The weights are He-normal, and the images uniform [0, 1) pixels, so every max-pooling window
    has one maximum well clear of the others (its kink is a tie) and about half the relus are on.
    """
    rng = np.random.default_rng(seed)
    params = cnn.init_params((4, 6), (16,), seed=seed, dtype=np.float64)
    images = rng.random((batch, 784))
    labels = rng.integers(0, 10, batch)
    return ModelCheck(lambda p, x, y: network.loss(p, x, y, "relu"), (params, images, labels),
                      argnums=0)
