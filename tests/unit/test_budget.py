"""The retry/timeout budget (issue 9, finding 3): derived in one place from each function's Timeout,
and the template says the same Timeout to the code as to Lambda."""

from __future__ import annotations

from typing import Any

import pytest
from proxymx.budget import MAX_ATTEMPTS, CallBudget, call_budget
from proxymx_tools import template as tpl


def _template() -> dict[str, Any]:
    return tpl.load_template()


def _functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: resource["Properties"]
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def test_every_function_tells_the_code_the_timeout_lambda_enforces() -> None:
    template = _template()
    default = template["Globals"]["Function"]["Timeout"]
    for name, properties in _functions(template).items():
        timeout = properties.get("Timeout", default)
        env = tpl.function_environment(template, name)
        assert int(env["FUNCTION_TIMEOUT_SECONDS"]) == timeout, name


def test_every_function_s_worst_call_fits_in_half_its_timeout_and_its_queue_s_visibility() -> None:
    template = _template()
    default = template["Globals"]["Function"]["Timeout"]
    for name, properties in _functions(template).items():
        timeout = properties.get("Timeout", default)
        assert call_budget(timeout).worst_case_seconds <= timeout / 2, name
        for event in (properties.get("Events") or {}).values():
            if event["Type"] == "SQS":
                queue = event["Properties"]["Queue"]["Fn::GetAtt"][0]
                visibility = template["Resources"][queue]["Properties"]["VisibilityTimeout"]
                # A record still in flight when its visibility ends is delivered twice.
                assert visibility >= timeout, name


def test_the_old_budget_outlived_a_30_s_function() -> None:
    # Given the budget before issue 9: 5 attempts, 5 s connect, 20 s read
    old = CallBudget(5, 5, 20)
    # Then its worst case was far beyond ConfigureInstance's 30 s; the derived one is not
    assert old.worst_case_seconds > 30
    assert call_budget(30).worst_case_seconds <= 15


@pytest.mark.parametrize("timeout", [1, 3, 6, 10, 30, 60, 120, 240, 900])
def test_the_budget_is_the_most_attempts_that_fit(timeout: int) -> None:
    budget = call_budget(timeout)
    # Then the budget fits, at least one attempt, and one more attempt would not fit (or the cap)
    assert 1 <= budget.attempts <= MAX_ATTEMPTS
    assert budget.attempts == 1 or budget.worst_case_seconds <= timeout / 2
    more = CallBudget(budget.attempts + 1, budget.connect_timeout, budget.read_timeout)
    assert budget.attempts == MAX_ATTEMPTS or more.worst_case_seconds > timeout / 2


def test_backoff_follows_botocore_standard_mode() -> None:
    # rand(0,1) * min(2 ** (n - 1), 20) before retry n: worst 1 + 2 + 4 + 8 for five attempts
    assert CallBudget(5, 0, 0).worst_case_seconds == 15
    assert CallBudget(7, 0, 0).worst_case_seconds == 1 + 2 + 4 + 8 + 16 + 20
