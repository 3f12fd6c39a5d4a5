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


def _sqrt_step(t):
    return tg.sum(tg.sqrt(t))  # SQRT-HERE: its rule divides by 2 sqrt(t), inf at 0


@pytest.mark.parametrize("first_call_clean", [True, False])
def test_an_anomaly_in_a_rules_own_op_names_the_rule_and_the_users_line(first_call_clean):
    """A traced step's backward pass is ops made by rules (sqrt's rule is a div): the report
    names the rule's op and the line that made it, whether the NaN/inf appears while the step is
    first recorded or when a compiled step is replayed."""
    step = tg.trace(tg.value_and_grad(_sqrt_step))
    if first_call_clean:
        step(np.array([1.0, 2.0]))
    with tg.detect_anomaly(), np.errstate(divide="ignore"), \
            pytest.raises(FloatingPointError) as info:
        step(np.array([0.0, 2.0]))
    message = str(info.value)
    where = "(in its div, compiled step)" if first_call_clean else "(in its div)"
    assert f"inf first appeared in the backward rule of sqrt {where}" in message
    assert f"the op was made at {__file__}:{_line_of('SQRT-HERE')}" in message
