"""Recording state is per thread: threads training and evaluating at once get their own numbers."""

import threading

import numpy as np

import tinygraph as tg


def _network_loss(params, x, y):
    hidden = tg.sigmoid(x @ params["W1"] + params["b1"])
    return tg.softmax_cross_entropy(hidden @ params["W2"] + params["b2"], y)


def _train(seed: int, steps: int, results: dict) -> None:
    """value_and_grad steps, each followed by an evaluation under no_grad (the race of old)."""
    rng = np.random.default_rng(seed)
    params = {"W1": rng.normal(size=(6, 5)) * 0.5, "b1": np.zeros(5),
              "W2": rng.normal(size=(5, 3)) * 0.5, "b2": np.zeros(3)}
    x, y = rng.random((8, 6)), rng.integers(0, 3, size=8)
    step = tg.value_and_grad(_network_loss)
    losses = []
    for _ in range(steps):
        value, grads = step(params, x, y)
        with tg.no_grad():
            evaluated = _network_loss({k: tg.Tensor(v) for k, v in params.items()}, x, y)
            assert not evaluated.requires_grad
        params = {k: p - 0.5 * grads[k] for k, p in params.items()}
        losses.append(float(value))
    results[seed] = (losses, params)


def test_threads_training_and_evaluating_at_once_get_the_single_threaded_numbers():
    alone: dict = {}
    for seed in (1, 2, 3):
        _train(seed, 150, alone)
    together: dict = {}
    threads = [threading.Thread(target=_train, args=(seed, 150, together)) for seed in (1, 2, 3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(together) == [1, 2, 3]  # no thread died of a false error
    for seed in (1, 2, 3):
        assert together[seed][0] == alone[seed][0]  # bit for bit
        for name, value in alone[seed][1].items():
            assert np.array_equal(together[seed][1][name], value)
    assert tg.is_grad_enabled()  # never left off for the process


def test_no_grad_anomaly_and_scope_in_one_thread_leave_another_untouched():
    entered, checked = threading.Event(), threading.Event()
    seen = {}

    def other() -> None:
        with tg.no_grad(), tg.detect_anomaly(), tg.scope("elsewhere"):
            entered.set()
            checked.wait(10)

    thread = threading.Thread(target=other)
    thread.start()
    assert entered.wait(10)
    x = tg.Tensor(np.ones(2), requires_grad=True)
    y = x * 2
    seen["grad"], seen["scope"] = tg.is_grad_enabled(), y.scope
    with np.errstate(divide="ignore"):
        tg.log(tg.Tensor(np.zeros(1)))  # no anomaly check here: -inf passes
    checked.set()
    thread.join()
    assert seen == {"grad": True, "scope": ()} and y.requires_grad


def test_a_new_thread_starts_with_the_defaults():
    seen = {}
    with tg.no_grad():
        thread = threading.Thread(target=lambda: seen.update(grad=tg.is_grad_enabled()))
        thread.start()
        thread.join()
    assert seen == {"grad": True}


def test_threads_sharing_one_traced_step_get_the_eager_numbers():
    rng = np.random.default_rng(0)
    params = {"W1": rng.normal(size=(6, 5)), "b1": np.zeros(5),
              "W2": rng.normal(size=(5, 3)), "b2": np.zeros(3)}
    batches = [(rng.random((8, 6)), rng.integers(0, 3, size=8)) for _ in range(2)]
    eager = tg.value_and_grad(_network_loss)
    step = tg.trace(eager)
    step(params, *batches[0])
    wrong = []

    def work(x, y) -> None:
        want = eager(params, x, y)
        for _ in range(150):
            value, grads = step(params, x, y)
            if value != want[0] or any(not np.array_equal(grads[k], want[1][k]) for k in grads):
                wrong.append(1)

    threads = [threading.Thread(target=work, args=batch) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not wrong  # the compiled program's buffers are never shared by two calls at once
