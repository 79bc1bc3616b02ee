"""Issue 8 on the embedded AWS: never switch a target group into the SMTP deadlock, and leave
the header off where the client's address is preserved (proxymx.loadbalancer.nlbheader)."""

from __future__ import annotations

from typing import Any

import boto3
from proxymx.aws import Clients
from proxymx.config import load_settings
from proxymx.loadbalancer.service import EnableProxyProtocol, ProxyProtocolResult, enable_proxy_protocol
from proxymx.models.cloudtrail import parse_elb_event
from proxymx_tools.recorder import CallRecorder
from proxymx_tools.seed import seed_world
from support import load_event

ENABLED = "proxy_protocol_v2.enabled"
PLACEMENT = "proxy_protocol_v2.client_to_server.header_placement"
PRESERVE = "preserve_client_ip.enabled"
SETTINGS = load_settings({})


def attributes(arn: str) -> dict[str, str]:
    # A proxymx client: the embedded AWS overlays what AWS answers (preserve_client_ip.enabled).
    client = Clients().elbv2
    return {
        a["Key"]: a["Value"]
        for a in client.describe_target_group_attributes(TargetGroupArn=arn)["Attributes"]
    }


def setup(client: Any, arn: str, **values: str) -> None:
    client.modify_target_group_attributes(
        TargetGroupArn=arn, Attributes=[{"Key": k, "Value": v} for k, v in values.items()]
    )


def nlb_with_group(
    target_type: str = "ip", protocol: str = "TCP", ip_address_type: str = "ipv4"
) -> tuple[str, str, Any]:
    client = boto3.client("elbv2", region_name="us-east-1")
    ec2 = boto3.client("ec2", region_name="us-east-1")
    vpc = ec2.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.30.{i}.0/24", AvailabilityZone=f"us-east-1{z}")["Subnet"][
            "SubnetId"
        ]
        for i, z in enumerate("ab")
    ]
    lb = client.create_load_balancer(
        Name="mx-nlb", Subnets=subnets, Type="network", IpAddressType=ip_address_type
    )["LoadBalancers"][0]
    tg = client.create_target_group(
        Name="mx-smtp", Protocol=protocol, Port=25, VpcId=vpc, TargetType=target_type
    )["TargetGroups"][0]
    listener: dict[str, Any] = {"Protocol": protocol, "Port": 25}
    if protocol == "TLS":
        acm = boto3.client("acm", region_name="us-east-1")
        certificate = acm.request_certificate(DomainName="mx.example.com")["CertificateArn"]
        listener["Certificates"] = [{"CertificateArn": certificate}]
    client.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"],
        DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}],
        **listener,
    )
    return lb["LoadBalancerArn"], tg["TargetGroupArn"], client


def sweep(lb_arn: str, **env: str) -> ProxyProtocolResult:
    service = EnableProxyProtocol(load_settings(env), Clients(), sleep=lambda _s: None)
    return service.ensure_load_balancer_v2(lb_arn)


def writes(calls: CallRecorder) -> list[list[dict[str, str]]]:
    return [list(c.params["Attributes"]) for c in calls.writes]


def test_placement_already_on_first_ack_only_enables(aws: Any) -> None:
    # Given an ip target group whose account AWS Support already allowed: on_first_ack is set
    lb, tg, client = nlb_with_group()
    setup(client, tg, **{PLACEMENT: "on_first_ack"})
    # When the sweep finds it
    with CallRecorder() as calls:
        result = sweep(lb)
    # Then only the header is switched on (one write, one attribute)
    assert result.outcome == "changed"
    assert writes(calls) == [[{"Key": ENABLED, "Value": "true"}]]
    assert attributes(tg)[ENABLED] == "true"


def test_default_placement_one_call_sets_header_and_placement(aws: Any) -> None:
    # Given an ip target group with the default placement (the key is not even listed)
    lb, tg, _client = nlb_with_group()
    assert PLACEMENT not in attributes(tg)
    # When the sweep finds it
    with CallRecorder() as calls:
        result = sweep(lb)
    # Then ONE call carries both; both took
    assert result.outcome == "changed"
    assert writes(calls) == [[{"Key": ENABLED, "Value": "true"}, {"Key": PLACEMENT, "Value": "on_first_ack"}]]
    assert (attributes(tg)[ENABLED], attributes(tg)[PLACEMENT]) == ("true", "on_first_ack")


def test_refused_placement_is_blocked_and_nothing_is_enabled(aws: Any) -> None:
    # Given an account AWS Support has not allowed on_first_ack
    aws.launch.refuse_header_placement()
    lb, tg, _client = nlb_with_group()
    # When the sweep finds the target group
    with CallRecorder() as calls:
        result = sweep(lb)
    # Then the header stays off: blocked, with the support request and the command to check it
    assert result.outcome == "blocked"
    assert result.placement_blocked == [tg]
    assert attributes(tg).get(ENABLED, "false") == "false"
    assert "Ask AWS Support" in result.reason
    assert f"aws elbv2 describe-target-group-attributes --target-group-arn {tg}" in result.reason
    assert PLACEMENT in result.reason
    # And the only write was the refused combined call: no enabled=true ever landed alone
    assert writes(calls) == [[{"Key": ENABLED, "Value": "true"}, {"Key": PLACEMENT, "Value": "on_first_ack"}]]
    assert {m.name: m.value for m in result.metrics()}["HeaderPlacementBlocked"] == 1


def test_header_switched_on_by_hand_is_broken_and_repair_is_tried(aws: Any) -> None:
    # Given a target group someone switched on by hand, in an account that refuses on_first_ack
    lb, tg, client = nlb_with_group()
    setup(client, tg, **{ENABLED: "true"})
    aws.launch.refuse_header_placement()
    # When the sweep finds it
    with CallRecorder() as calls:
        result = sweep(lb)
    # Then it tried to set on_first_ack (only the placement) and reports broken, loudly
    assert writes(calls) == [[{"Key": PLACEMENT, "Value": "on_first_ack"}]]
    assert result.outcome == "broken"
    assert result.broken == [tg]
    assert "hangs SMTP" in result.reason and "Ask AWS Support" in result.reason
    assert {m.name: m.value for m in result.metrics()}["HeaderPlacementBroken"] == 1


def test_header_switched_on_by_hand_is_repaired_where_aws_allows(aws: Any) -> None:
    # Given the same hand-made group in an account that may set on_first_ack
    lb, tg, client = nlb_with_group()
    setup(client, tg, **{ENABLED: "true"})
    # When the sweep finds it
    result = sweep(lb)
    # Then the placement is repaired: drift
    assert result.outcome == "changed"
    assert result.drift_repaired
    assert attributes(tg)[PLACEMENT] == "on_first_ack"


def test_placement_drift_event_is_repaired(aws: Any) -> None:
    # Given someone set the default placement back on a header-on group (the sample event)
    event = seed_world(load_event("nlb-drift-header-placement"))
    parsed = parse_elb_event(event)
    tg = parsed.detail.request_parameters.target_group_arn  # type: ignore[union-attr]
    assert attributes(tg)[PLACEMENT] == "on_first_ack_with_payload"
    # When the event arrives
    with CallRecorder() as calls:
        result = enable_proxy_protocol(parsed, SETTINGS, Clients(), sleep=lambda _s: None)
    # Then it is drift, repaired, with only the placement written
    assert parsed.detail.is_drift
    assert (result.outcome, result.drift_repaired) == ("changed", True)
    assert writes(calls) == [[{"Key": PLACEMENT, "Value": "on_first_ack"}]]
    assert attributes(tg)[PLACEMENT] == "on_first_ack"


def test_preserved_client_address_needs_no_header(aws: Any) -> None:
    # Given instance targets over TCP with preservation on (AWS's default for instance targets)
    lb, tg, _client = nlb_with_group(target_type="instance")
    assert attributes(tg)[PRESERVE] == "true"
    # When the sweep finds it
    with CallRecorder() as calls:
        result = sweep(lb)
    # Then compliant without a write: Postfix already sees the client's address
    assert result.outcome == "compliant"
    assert result.reason.startswith("client address preserved")
    assert calls.writes == []


def test_preserved_client_address_with_the_parameter_true_gets_the_header(aws: Any) -> None:
    # Given the same group, and ProxyProtocolWhenClientIpPreserved=true
    lb, tg, _client = nlb_with_group(target_type="instance")
    # When the sweep finds it
    result = sweep(lb, PROXY_PROTOCOL_WHEN_CLIENT_IP_PRESERVED="true")
    # Then the header goes on (with on_first_ack)
    assert result.outcome == "changed"
    assert (attributes(tg)[ENABLED], attributes(tg)[PLACEMENT]) == ("true", "on_first_ack")


def test_instance_targets_with_preservation_off_get_the_header(aws: Any) -> None:
    # Given instance targets whose platform team switched preservation off
    lb, tg, client = nlb_with_group(target_type="instance")
    setup(client, tg, **{PRESERVE: "false"})
    # When the sweep finds it / Then the header is needed
    assert sweep(lb).outcome == "changed"
    assert attributes(tg)[ENABLED] == "true"


def test_instance_targets_behind_a_dualstack_nlb_get_the_header(aws: Any) -> None:
    # Given instance targets with preservation on, behind a dualstack NLB (IPv6 clients reach
    # instance targets with the load balancer's IPv4 address)
    lb, tg, _client = nlb_with_group(target_type="instance", ip_address_type="dualstack")
    # When the sweep finds it
    with CallRecorder() as calls:
        result = sweep(lb)
    # Then the header is needed, and the load balancer's IpAddressType was what decided it
    assert result.outcome == "changed"
    assert attributes(tg)[ENABLED] == "true"
    assert [c.operation for c in calls.calls].count("describe_load_balancers") == 2


def test_instance_targets_behind_tls_get_the_header(aws: Any) -> None:
    # Given instance targets behind a TLS listener (the NLB terminates: the address is hidden)
    lb, tg, _client = nlb_with_group(target_type="instance", protocol="TLS")
    # When the sweep finds it / Then the header is needed
    assert sweep(lb).outcome == "changed"
    assert attributes(tg)[ENABLED] == "true"


def test_ip_target_group_gets_the_header(aws: Any) -> None:
    # Given ip targets over TCP (preservation off by default)
    lb, tg, _client = nlb_with_group(target_type="ip")
    assert attributes(tg)[PRESERVE] == "false"
    # When the sweep finds it / Then the header is needed
    assert sweep(lb).outcome == "changed"
    assert attributes(tg)[ENABLED] == "true"


def test_embedded_aws_rejects_an_unknown_placement_value(aws: Any) -> None:
    # Given a proxymx client (the extension's checks apply to it)
    from botocore.exceptions import ClientError

    _lb, tg, _client = nlb_with_group()
    # When a placement AWS does not know is sent / Then ValidationError, nothing applied
    try:
        Clients().elbv2.modify_target_group_attributes(
            TargetGroupArn=tg, Attributes=[{"Key": PLACEMENT, "Value": "on_syn"}]
        )
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "ValidationError"
    else:
        raise AssertionError("on_syn was accepted")
    assert PLACEMENT not in attributes(tg)
