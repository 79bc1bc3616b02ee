"""The launch side agrees (issue 7.4): the pure decision from what a group's units send now."""

from __future__ import annotations

from proxymx.config import load_settings
from proxymx.launch.sends import UnitSends, attachments, decide_launch

SETTINGS = load_settings({"SMTP_PORTS": "25,587"})


def test_no_unit_means_plain_on_the_smtp_ports() -> None:
    decision = decide_launch([], SETTINGS)
    assert (decision.mode, decision.smtp_ports, decision.conflict) == ("revert", (25, 587), None)


def test_units_that_send_nothing_add_their_ports_to_the_plain_proof() -> None:
    decision = decide_launch([UnitSends("classic/mx", (2525,), None)], SETTINGS)
    assert (decision.mode, decision.smtp_ports) == ("revert", (25, 587, 2525))


def test_classic_sends_v1_nlb_sends_v2_both_any() -> None:
    classic = UnitSends("classic/mx", (2525,), "v1")
    nlb = UnitSends("tg/arn", (25,), "v2")
    assert decide_launch([classic], SETTINGS).parameters(SETTINGS)["ProxyProtocol"] == "v1"
    assert decide_launch([nlb], SETTINGS).parameters(SETTINGS)["ProxyProtocol"] == "v2"
    both = decide_launch([classic, nlb], SETTINGS)
    assert (both.mode, both.smtp_ports, both.proxy_protocol) == ("configure", (25, 2525), "any")
    assert both.parameters(SETTINGS)["Mode"] == "configure"
    assert both.parameters(SETTINGS)["SmtpPorts"] == "25,2525"


def test_a_port_with_and_without_the_header_is_a_conflict_naming_both_units() -> None:
    decision = decide_launch([UnitSends("classic/a", (25,), "v1"), UnitSends("tg/b", (25,), None)], SETTINGS)
    assert decision.conflict is not None
    assert "classic/a" in decision.conflict and "tg/b" in decision.conflict and "[25]" in decision.conflict


def test_header_on_one_port_and_plain_on_another_is_no_conflict() -> None:
    decision = decide_launch([UnitSends("classic/a", (25,), "v1"), UnitSends("tg/b", (587,), None)], SETTINGS)
    assert (decision.conflict, decision.mode, decision.smtp_ports) == (None, "configure", (25,))


def test_attachments_include_traffic_sources() -> None:
    tg = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/mx/0123456789abcdef"
    group = {
        "LoadBalancerNames": ["mx"],
        "TargetGroupARNs": [],
        "TrafficSources": [{"Identifier": tg, "Type": "elbv2"}, {"Identifier": "mx-2", "Type": "elb"}],
    }
    assert attachments(group) == (["mx", "mx-2"], [tg])
