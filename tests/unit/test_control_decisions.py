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


# ----- refresh: who is configured, who is only reported ------------------------------------------------


def test_refresh_configures_fleet_instances_only() -> None:
    from proxymx.loadbalancer.readiness import Requirement
    from proxymx.loadbalancer.refresh import plan_refresh, refresh_comment
    from proxymx.loadbalancer.targets import Unready

    # Given unready targets: two fleet instances, one outside the fleet, one unmapped IP target
    unready = [
        Unready("i-2", "port 2525 not proven", True),
        Unready("i-1", "no proxymx:proxy-protocol tag", True),
        Unready("i-9", "no proxymx:proxy-protocol tag", False),
        Unready("unknown:10.0.0.7", "no instance has this private IP", True),
    ]
    plan = plan_refresh("tg/arn:x", Requirement((2525,), "v2"), unready)
    # Then only the fleet instances are configured, for the unit's ports and version
    assert plan.fleet == ("i-1", "i-2")
    assert [u.target_id for u in plan.outside] == ["i-9", "unknown:10.0.0.7"]
    from proxymx.config import load_settings

    parameters = plan.parameters(load_settings({}))
    assert (parameters["Mode"], parameters["SmtpPorts"], parameters["ProxyProtocol"]) == (
        "configure",
        "2525",
        "v2",
    )
    # And the comment fits SendCommand's 100 characters whatever the unit key's length
    assert refresh_comment("tg/" + "a" * 400).startswith("proxymx:refresh:")
    assert len(refresh_comment("tg/" + "a" * 400)) <= 100
