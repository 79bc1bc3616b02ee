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
