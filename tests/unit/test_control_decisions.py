"""The pure decisions of proxymx.controls (issue 7.5): the kill switch's verdict."""

from __future__ import annotations

import pytest
from proxymx.controls import judge

NAME = "/proxymx/mx/enabled"


@pytest.mark.parametrize("value", ["true", " true\n"])
def test_only_true_lets_proxymx_write(value: str) -> None:
    assert judge(NAME, value) is None


@pytest.mark.parametrize("value", ["false", "False", "TRUE", "", "yes", "1", "paused by alice"])
def test_anything_else_pauses_and_quotes_the_value(value: str) -> None:
    # Given any value but "true" / Then paused, naming the parameter and what it holds
    reason = judge(NAME, value)
    assert reason is not None
    assert reason.startswith(f"kill switch {NAME} = {value.strip()!r}")


def test_a_missing_or_unreadable_switch_pauses_fail_safe() -> None:
    assert judge(NAME, None) == f"kill switch {NAME} not found: paused (fail safe)"
    unreadable = judge(NAME, None, "AccessDeniedException")
    assert unreadable is not None and "AccessDeniedException" in unreadable and "fail safe" in unreadable


# ----- the flapping guard's counting -----------------------------------------------------------------


def test_undos_outside_the_window_are_dropped_and_each_actor_counts_alone() -> None:
    from proxymx.controls import recent_undos, undos_by

    # Given undos at t=0 (iac), t=3000 (iac), t=3500 (bob) and a window of 3600 s ending at t=3700
    drifts = {"a": "0|iac", "b": "3000|iac", "c": "3500|bob"}
    recent = recent_undos(drifts, 3700, 3600)
    # Then the undo of t=0 has left the window, and iac and bob are counted apart
    assert recent == {"b": "3000|iac", "c": "3500|bob"}
    assert (undos_by(recent, "iac"), undos_by(recent, "bob"), undos_by(recent, "alice")) == (1, 1, 0)


def test_an_actor_with_a_pipe_in_its_name_is_counted_whole() -> None:
    from proxymx.controls import undos_by

    assert undos_by({"a": "1|arn:x|y", "b": "2|arn:x"}, "arn:x|y") == 1


# ----- notices: one per unit and state -----------------------------------------------------------------


def test_a_notice_state_names_its_kind_and_ignores_order() -> None:
    from proxymx.loadbalancer.notify import state_of

    assert state_of("blocked", ["i-1 why", "i-2 why"]) == state_of("blocked", ["i-2 why", "i-1 why"])
    assert state_of("blocked", ["i-1 why"]) != state_of("blocked", ["i-1 why", "i-2 why"])
    assert state_of("blocked", ["x"]) != state_of("unready", ["x"])
    assert state_of("blocked", ["x"]).startswith("blocked:")
