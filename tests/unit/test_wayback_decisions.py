"""The way back's pure decisions (issue 7.3): who asked for off, which backend lists lose which
policy, which targets go back to plain."""

from __future__ import annotations

from proxymx.loadbalancer.plan import BackendPolicies, ClassicPolicy, ClassicState
from proxymx.loadbalancer.readiness import Readiness
from proxymx.loadbalancer.targets import TargetReadiness
from proxymx.loadbalancer.wayback import classic_off_plan, revert_candidates, wants_off

PROXY = ClassicPolicy("proxymx-ProxyProtocol", "ProxyProtocolPolicyType", {"ProxyProtocol": "true"})
OTHER_PROXY = ClassicPolicy("hand-made", "ProxyProtocolPolicyType", {"ProxyProtocol": "true"})
PROXY_FALSE = ClassicPolicy("disabled", "ProxyProtocolPolicyType", {"ProxyProtocol": "false"})
AUTH = ClassicPolicy("auth", "BackendServerAuthenticationPolicyType", {})


def state(backends: dict[int, tuple[str, ...]]) -> ClassicState:
    return ClassicState("mx", (), backends, (PROXY, OTHER_PROXY, PROXY_FALSE, AUTH), {})


def test_off_is_asked_by_the_tag_on_any_of_the_tag_sets() -> None:
    assert wants_off({"proxymx:proxy-protocol": "off"})
    assert wants_off({}, {"proxymx:proxy-protocol": " OFF "})
    assert not wants_off({"proxymx:proxy-protocol": "ready"}, {})
    assert not wants_off({"proxymx:opt-out": "off"})


def test_only_the_proxy_policies_leave_each_list_and_only_ports_that_hold_one() -> None:
    plan = classic_off_plan(
        state(
            {25: ("auth", "proxymx-ProxyProtocol"), 587: ("hand-made",), 2525: ("auth", "disabled"), 22: ()}
        )
    )
    assert plan == (BackendPolicies(25, ("auth",)), BackendPolicies(587, ()))


def test_an_elb_that_sends_nothing_has_nothing_to_turn_off() -> None:
    assert classic_off_plan(state({25: ("auth",)})) == ()


def target(target_id: str, tag: str | None, in_fleet: bool = True) -> TargetReadiness:
    return TargetReadiness(target_id, Readiness.parse(tag), in_fleet)


def test_revert_only_configured_fleet_targets_no_other_unit_sends_to() -> None:
    targets = [
        target("i-ready", "ready;ports=25;v=any;doc=2;ip6=0;at=20261130T120501Z"),
        target("i-baked", "ready"),
        target("i-shared", "ready"),
        target("i-plain", "plain;doc=2;at=20261130T120501Z"),
        target("i-untagged", None),
        target("i-outsider", "ready", in_fleet=False),
        target("unknown:10.0.0.9", "ready"),
    ]
    assert revert_candidates(targets, {"i-shared"}) == ["i-baked", "i-ready"]
