"""Rollout plans as a pure state machine, checked with explicit times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from bandit_service.core.plans import (
    Advance,
    Finish,
    Hold,
    PlanError,
    PlanStep,
    Stop,
    advance,
    cancel_plan,
    in_slice,
    shift_weights,
    slices_overlap,
    start_plan,
    validate_plan,
)

T0 = datetime(2026, 11, 22, tzinfo=UTC)
RAMP = [PlanStep(0.1, 86400), PlanStep(0.5, 172800), PlanStep(1.0)]


def test_a_ramp_walks_its_steps_when_holds_elapse():
    state, value = start_plan(RAMP, T0)
    assert value == 0.1
    assert isinstance(advance(RAMP, state, T0 + timedelta(hours=23), None), Hold)
    step = advance(RAMP, state, T0 + timedelta(days=1), None)
    assert isinstance(step, Advance) and step.value == 0.5 and step.state.step == 1
    assert isinstance(advance(RAMP, step.state, T0 + timedelta(days=2), None), Hold)
    last = advance(RAMP, step.state, T0 + timedelta(days=3), None)
    assert isinstance(last, Advance) and last.value == 1.0
    done = advance(RAMP, last.state, T0 + timedelta(days=3), None)
    assert isinstance(done, Finish) and done.state.status == "done"
    assert isinstance(advance(RAMP, done.state, T0 + timedelta(days=9), None), Hold)


def test_a_breach_stops_the_plan_with_its_reason():
    state, _ = start_plan(RAMP, T0)
    stop = advance(RAMP, state, T0 + timedelta(days=5), "error on arm b rose by 0.03 > 0.01")
    assert isinstance(stop, Stop)
    assert stop.state.status == "stopped" and "error" in (stop.state.reason or "")
    assert isinstance(advance(RAMP, stop.state, T0 + timedelta(days=6), None), Hold)


def test_advance_moves_one_step_per_call_even_after_a_long_gap():
    state, _ = start_plan(RAMP, T0)
    step = advance(RAMP, state, T0 + timedelta(days=30), None)
    assert isinstance(step, Advance) and step.state.step == 1


@pytest.mark.parametrize(
    ("steps", "match"),
    [
        pytest.param([], "at least one step", id="empty"),
        pytest.param([PlanStep(0.1), PlanStep(0.5)], r"steps\[0\]\.hold_s", id="missing-hold"),
        pytest.param([PlanStep(0.5, 10), PlanStep(0.1)], r"steps\[1\]\.value", id="backwards"),
    ],
)
def test_bad_plans_are_refused(steps, match):
    with pytest.raises(ValueError, match=match):
        validate_plan(steps)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"value": 1.5}', id="value-above-1"),
        pytest.param(b'{"value": 0.5, "hold_s": 0}', id="zero-hold"),
        pytest.param(b'{"value": 0.5, "extra": 1}', id="unknown-field"),
    ],
)
def test_bad_steps_fail_to_decode(body):
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(body, type=PlanStep)


def test_shift_weights_keeps_the_others_in_ratio_and_sums_to_one():
    w = shift_weights([0.5, 0.3, 0.2], winner=1, share=0.8)
    assert w == pytest.approx([0.2 * 0.5 / 0.7, 0.8, 0.2 * 0.2 / 0.7])
    assert sum(w) == pytest.approx(1.0)
    assert shift_weights([0.0, 1.0, 0.0], winner=1, share=0.6) == pytest.approx([0.2, 0.6, 0.2])


@pytest.mark.parametrize(
    ("winner", "share", "match"),
    [pytest.param(3, 0.5, "winner", id="bad-winner"), pytest.param(0, 1.5, "share", id="bad-share")],
)
def test_shift_weights_refuses_bad_input(winner, share, match):
    with pytest.raises(ValueError, match=match):
        shift_weights([0.5, 0.5], winner, share)


def test_slices():
    assert in_slice(0.25, 0.0, 0.5) and not in_slice(0.5, 0.0, 0.5)
    assert not slices_overlap((0.0, 0.5), (0.5, 1.0))
    assert slices_overlap((0.0, 0.6), (0.5, 1.0))


def test_plan_errors_name_the_field_in_the_callers_words():
    with pytest.raises(PlanError) as info:
        validate_plan([PlanStep(0.8, 60), PlanStep(0.5)], "plan", "share")
    assert info.value.field == "plan[1].share"
    with pytest.raises(PlanError) as info:
        validate_plan([PlanStep(0.1), PlanStep(0.5)], "steps", "exposure")
    assert info.value.field == "steps[0].hold_s"


def test_only_a_running_plan_can_be_cancelled_and_then_it_holds():
    state, _ = start_plan(RAMP, T0)
    cancelled = cancel_plan(state, "by hand")
    assert (cancelled.status, cancelled.reason, cancelled.step) == ("cancelled", "by hand", 0)
    assert isinstance(advance(RAMP, cancelled, T0 + timedelta(days=9), None), Hold)
    with pytest.raises(ValueError, match="status"):
        cancel_plan(cancelled, "again")
