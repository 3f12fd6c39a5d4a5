"""The README example as a script: the paper's 784-64-10 network, its gradient, a gradient check."""

import time

import numpy as np

import tinygraph as tg


def loss(params: dict, x: np.ndarray, y: np.ndarray) -> tg.Tensor:
    """Mean softmax cross-entropy of the 784-64-10 sigmoid network."""
    h = tg.sigmoid(x @ params["W1"] + params["b1"])
    return tg.softmax_cross_entropy(h @ params["W2"] + params["b2"], y)


def main() -> None:
    rng = np.random.default_rng(0)
    params = {"W1": rng.normal(0, 0.1, (784, 64)), "b1": np.zeros(64),
              "W2": rng.normal(0, 0.1, (64, 10)), "b2": np.zeros(10)}
    x, y = rng.random((32, 784)), rng.integers(0, 10, 32)
    value, grads = tg.value_and_grad(loss)(params, x, y)
    print(f"loss {value:.4f}; gradient shapes", {k: v.shape for k, v in grads.items()})
    start = time.perf_counter()
    report = tg.check_grads(loss, params, x, y)
    print(f"gradient check passed in {time.perf_counter() - start:.2f} s:\n{report}")


if __name__ == "__main__":
    main()
