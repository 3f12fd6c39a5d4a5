"""detect_anomaly names the user's line that made the op, eager and in compiled steps."""

import re

import numpy as np
import pytest

import tinygraph as tg


def _line_of(marker: str) -> int:
    with open(__file__) as source:
        return next(i for i, line in enumerate(source, 1)
                    if marker in line and "_line_of" not in line)


def test_a_backward_anomaly_names_the_line_that_made_the_op():
    x = tg.Tensor(np.array([0.0, 2.0]), requires_grad=True)
    with tg.detect_anomaly(), np.errstate(divide="ignore"):
        y = tg.sqrt(x)  # MADE-HERE: finite forward, inf in its rule at 0
        with pytest.raises(FloatingPointError) as info:
            tg.sum(y).backward()
    message = str(info.value)
    assert "backward rule of sqrt" in message
    assert f"the op was made at {__file__}:{_line_of('MADE-HERE')}" in message


def test_a_compiled_step_under_detect_anomaly_checks_every_value_and_names_the_line():
    def loss(t):
        return tg.sum(tg.log(t))  # LOG-HERE

    step = tg.trace(tg.value_and_grad(loss))
    step(np.array([1.0, 2.0]))  # traced on good values
    with np.errstate(divide="ignore"):
        value, _ = step(np.array([0.0, 2.0]))  # anomaly mode off: no check, -inf comes back
        assert value == -np.inf
        with tg.detect_anomaly(), pytest.raises(FloatingPointError) as info:
            step(np.array([0.0, 2.0]))
    message = str(info.value)
    assert re.search(r"inf first appeared in the compiled step of log", message)
    assert f"the op was made at {__file__}:{_line_of('LOG-HERE')}" in message


def test_sites_are_not_recorded_outside_anomaly_mode_and_tracing():
    y = tg.Tensor(np.ones(2), requires_grad=True) * 2
    assert getattr(y, "_site", None) is None  # no cost on the ordinary path
