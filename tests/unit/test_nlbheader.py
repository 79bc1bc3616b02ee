"""Unit: the header placement and preserved-address decisions (proxymx.loadbalancer.nlbheader)."""

from __future__ import annotations

import pytest
from proxymx.loadbalancer.nlbheader import (
    HEADER_PLACEMENT,
    ON_FIRST_ACK,
    ON_FIRST_ACK_WITH_PAYLOAD,
    PRESERVE_CLIENT_IP,
    PROXY_PROTOCOL_V2,
    decide_header,
    header_attributes,
    support_request,
)

ARN = "arn:aws:elasticloadbalancing:eu-west-1:210987654321:targetgroup/mx-smtp/0a1b2c3d"


def test_absent_keys_mean_aws_defaults() -> None:
    # Given an attribute list without the placement or preservation keys (AWS does not list the
    # placement for accounts that may not set it)
    ip = header_attributes({}, "ip", "TCP")
    instance = header_attributes({}, "instance", "TCP")
    # Then: header off, default placement; preservation on for instance, off for ip TCP
    assert (ip.enabled, ip.placement, ip.preserve_client_ip) == (False, ON_FIRST_ACK_WITH_PAYLOAD, False)
    assert instance.preserve_client_ip is True


@pytest.mark.parametrize(
    ("values", "group", "listeners", "action", "write"),
    [
        # placement already on_first_ack -> only enabled
        ({HEADER_PLACEMENT: ON_FIRST_ACK}, "ip/TCP", ("TCP",), "enable", ((PROXY_PROTOCOL_V2, "true"),)),
        # default placement -> both in one call
        (
            {},
            "ip/TCP",
            ("TCP",),
            "enable",
            ((PROXY_PROTOCOL_V2, "true"), (HEADER_PLACEMENT, ON_FIRST_ACK)),
        ),
        # header on with on_first_ack -> compliant, no write
        ({PROXY_PROTOCOL_V2: "true", HEADER_PLACEMENT: ON_FIRST_ACK}, "ip/TCP", (), "compliant", ()),
        # header on, default placement -> broken, repair the placement only
        ({PROXY_PROTOCOL_V2: "true"}, "ip/TCP", (), "broken", ((HEADER_PLACEMENT, ON_FIRST_ACK),)),
        # ... even where the address is preserved: the header is sent, SMTP hangs
        ({PROXY_PROTOCOL_V2: "true"}, "instance/TCP", (), "broken", ((HEADER_PLACEMENT, ON_FIRST_ACK),)),
        # instance + TCP + preservation (default) -> no header needed
        ({}, "instance/TCP", ("TCP",), "preserved", ()),
        ({PRESERVE_CLIENT_IP: "true"}, "instance/TCP", (), "preserved", ()),
        # preservation off, TLS group, TLS listener -> header needed
        ({PRESERVE_CLIENT_IP: "false"}, "instance/TCP", (), "enable", None),
        ({}, "instance/TLS", ("TLS",), "enable", None),
        ({}, "instance/TCP", ("TLS",), "enable", None),
        # ip targets with preservation switched on are still "header needed" (rule 3: instance only)
        ({PRESERVE_CLIENT_IP: "true"}, "ip/TCP", (), "enable", None),
    ],
)
def test_decisions(
    values: dict[str, str],
    group: str,
    listeners: tuple[str, ...],
    action: str,
    write: tuple[tuple[str, str], ...] | None,
) -> None:
    # Given the attributes of a target group ("target type/protocol") / When deciding
    target_type, protocol = group.split("/")
    decision = decide_header(header_attributes(values, target_type, protocol), protocol, listeners)
    # Then
    assert decision.action == action
    if write is not None:
        assert decision.write == write
    if action == "enable":
        assert (PROXY_PROTOCOL_V2, "true") in decision.write


def test_a_dualstack_load_balancer_hides_ipv6_clients() -> None:
    attributes = header_attributes({}, "instance", "TCP")
    assert decide_header(attributes, "TCP", ("TCP",), ("ipv4",)).action == "preserved"
    assert decide_header(attributes, "TCP", ("TCP",), ("dualstack",)).action == "enable"


def test_the_parameter_asks_for_the_header_where_the_address_is_preserved() -> None:
    attributes = header_attributes({}, "instance", "TCP")
    decision = decide_header(attributes, "TCP", ("TCP",), when_client_ip_preserved=True)
    assert decision.action == "enable"
    assert decision.write == ((PROXY_PROTOCOL_V2, "true"), (HEADER_PLACEMENT, ON_FIRST_ACK))


def test_support_request_names_account_region_attribute_and_the_check() -> None:
    text = support_request(ARN)
    assert "account 210987654321 in eu-west-1" in text
    assert f"{HEADER_PLACEMENT} to {ON_FIRST_ACK}" in text
    assert f"aws elbv2 describe-target-group-attributes --target-group-arn {ARN}" in text


@pytest.mark.parametrize(("outcome", "code"), [("blocked", 2), ("broken", 2), ("changed", 0), ("failed", 1)])
def test_invoke_reports_a_refused_placement_with_its_own_exit_status(outcome: str, code: int) -> None:
    # Given what the handler answered / When `proxymx invoke` judges it
    from proxymx_tools.runner import InvokeReport, _outcome_of

    judged = _outcome_of({"outcome": outcome}, writes=1)
    report = InvokeReport(event_source=None, event_name=None, outcome=judged)
    # Then a blocked/broken NLB is neither "changed" (it wrote) nor a plain failure
    assert (judged, report.exit_code) == (outcome, code)
