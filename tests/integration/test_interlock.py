"""The interlock on the embedded AWS (issue 7.2): the header goes on only when every target is
ready for it, or there is none; otherwise the outcome is ``blocked`` and nothing is written."""

from __future__ import annotations

from typing import Any

from proxymx.aws import Clients
from proxymx.config import load_settings
from proxymx.loadbalancer.plan import PROXY_POLICY_NAME
from proxymx.loadbalancer.service import EnableProxyProtocol, ProxyProtocolResult, enable_proxy_protocol
from proxymx.loadbalancer.targets import TargetDiscovery
from proxymx.models.cloudtrail import parse_elb_event
from proxymx.reconcile import Reconcile
from proxymx_tools.recorder import CallRecorder
from proxymx_tools.seed import register_fleet_instances, seed_world
from support import load_event

SETTINGS = load_settings({})
# Instance TCP targets keep the client address (preserve_client_ip): the header is needed there
# only when the operator asks for it (issue 8), which these interlock tests do.
HEADER_ALWAYS = load_settings({"PROXY_PROTOCOL_WHEN_CLIENT_IP_PRESERVED": "true"})
REGION = "us-east-1"
PROVEN_25 = "ready;ports=25;v=any;doc=2;ip6=0;at=20261130T120501Z"
PROVEN_2525 = "ready;ports=2525;v=any;doc=2;ip6=0;at=20261130T120501Z"


def client(service: str) -> Any:
    import boto3

    return boto3.client(service, region_name=REGION)


def classic_world(name: str = "mx", instance_port: int = 25) -> None:
    client("elb").create_load_balancer(
        LoadBalancerName=name,
        Listeners=[
            {
                "Protocol": "TCP",
                "LoadBalancerPort": 25,
                "InstanceProtocol": "TCP",
                "InstancePort": instance_port,
            }
        ],
        AvailabilityZones=[f"{REGION}a"],
    )


def tag(instance_id: str, **tags: str) -> None:
    client("ec2").create_tags(Resources=[instance_id], Tags=[{"Key": k, "Value": v} for k, v in tags.items()])


def backend_policies(name: str) -> dict[int, list[str]]:
    lb = client("elb").describe_load_balancers(LoadBalancerNames=[name])["LoadBalancerDescriptions"][0]
    return {
        b["InstancePort"]: b["PolicyNames"]
        for b in lb.get("BackendServerDescriptions", [])
        if b["PolicyNames"]
    }


def ensure_classic(name: str = "mx") -> Any:
    return EnableProxyProtocol(SETTINGS, Clients(), sleep=lambda _s: None).ensure_classic(name)


# ----- Classic ELB -------------------------------------------------------------------------------


def test_sample_event_unready_fleet_is_blocked_with_zero_writes(calls: CallRecorder) -> None:
    # Given a Classic ELB already taking mail through two fleet instances never configured
    event = seed_world(load_event("elb-create-listeners-unready-fleet"))
    # When the SMTP listener's creation event arrives
    result = enable_proxy_protocol(parse_elb_event(event), SETTINGS, Clients(), sleep=lambda _s: None)
    # Then the header stays off, both instances are named with the reason, nothing is written
    assert result.outcome == "blocked"
    assert "2 target(s) not ready for PROXY v1 on ports 25" in result.reason
    assert "no proxymx:proxy-protocol tag; fleet" in result.reason
    assert calls.writes == []
    assert backend_policies("mx-legacy-unready-fleet") == {}


def test_all_targets_ready_switches(aws: Any) -> None:
    classic_world()
    ids = register_fleet_instances("mx", 2, {"proxymx:proxy-protocol": PROVEN_25})
    result = ensure_classic()
    assert (result.outcome, result.blocked) == ("changed", [])
    assert backend_policies("mx") == {25: [PROXY_POLICY_NAME]}
    assert len(ids) == 2


def test_no_targets_switches_at_once_as_before(aws: Any) -> None:
    classic_world()
    assert ensure_classic().outcome == "changed"
    assert backend_policies("mx") == {25: [PROXY_POLICY_NAME]}


def test_mixed_names_only_the_unready_target_and_a_baked_ami_counts_as_ready(calls: CallRecorder) -> None:
    # Given one instance tagged by proxymx, one baked AMI tagged bare `ready`, one never configured
    classic_world()
    proven, baked, plain = register_fleet_instances("mx", 3)
    tag(proven, **{"proxymx:proxy-protocol": PROVEN_25})
    tag(baked, **{"proxymx:proxy-protocol": "ready"})
    result = ensure_classic()
    # Then only the unconfigured one blocks the switch
    assert result.outcome == "blocked"
    assert plain in result.reason and proven not in result.reason and baked not in result.reason
    assert [c for c in calls.writes if c.service == "elb"] == []
    assert calls.of("send_command") == []
    assert backend_policies("mx") == {}


def test_outside_the_fleet_is_reported_as_such(aws: Any) -> None:
    classic_world()
    (outsider,) = register_fleet_instances("mx", 1, {"proxymx:fleet": "other"})
    result = ensure_classic()
    assert result.outcome == "blocked"
    assert f"{outsider} (no proxymx:proxy-protocol tag; outside the fleet)" in result.reason


def test_listener_25_to_2525_requires_port_2525(aws: Any) -> None:
    # Given listener 25 -> instance port 2525 and an instance proven on port 25 only
    classic_world(instance_port=2525)
    (instance,) = register_fleet_instances("mx", 1, {"proxymx:proxy-protocol": PROVEN_25})
    # Then the requirement is the port the ELB forwards to
    blocked = ensure_classic()
    assert blocked.outcome == "blocked"
    assert "PROXY v1 on ports 2525" in blocked.reason and "port 2525 not proven" in blocked.reason
    # And once proven on 2525 it switches
    tag(instance, **{"proxymx:proxy-protocol": PROVEN_2525})
    assert ensure_classic().outcome == "changed"
    assert backend_policies("mx") == {2525: [PROXY_POLICY_NAME]}


def test_dry_run_shows_the_same_decision(calls: CallRecorder) -> None:
    classic_world()
    register_fleet_instances("mx", 1)
    before = len(calls.writes)
    result = EnableProxyProtocol(load_settings({"DRY_RUN": "true"}), Clients()).ensure_classic("mx")
    assert (result.outcome, result.dry_run) == ("blocked", True)
    assert len(calls.writes) == before


def test_reconcile_never_switches_in_front_of_an_unready_target(calls: CallRecorder) -> None:
    # Given the account of issue 7: an MX behind a Classic ELB, never configured
    classic_world()
    register_fleet_instances("mx", 3)
    before = len(calls.writes)
    # When the sweep runs
    summary = Reconcile(SETTINGS, Clients()).run()
    # Then the load balancer is blocked, not switched, and no ELB write happened
    (check,) = summary.load_balancers
    assert check.outcome == "blocked"
    assert summary.to_dict()["load_balancers_blocked"] == 1
    assert {m.name: m.value for m in summary.metrics()}["LoadBalancersBlocked"] == 1
    assert [c for c in calls.writes[before:] if c.service == "elb"] == []
    assert backend_policies("mx") == {}


def test_a_pending_wait_launch_of_an_attached_group_counts() -> None:
    # Given an empty load balancer whose group holds one launch in Pending:Wait (moto never
    # enters that state: a recorded DescribeAutoScalingGroups answer stands in)
    groups = {
        "AutoScalingGroups": [
            {
                "AutoScalingGroupName": "mx",
                "LoadBalancerNames": [],
                "TrafficSources": [{"Identifier": "mx", "Type": "elb"}],
                "Instances": [
                    {"InstanceId": "i-0aaa", "LifecycleState": "Pending:Wait"},
                    {"InstanceId": "i-0bbb", "LifecycleState": "InService"},
                ],
            },
            {
                "AutoScalingGroupName": "other",
                "Instances": [{"InstanceId": "i-0ccc", "LifecycleState": "Pending:Wait"}],
            },
        ]
    }
    discovery = _discovery(autoscaling=_Paged(groups))
    # Then the launch is a target of the unit (the other group's is not)
    assert [t.target_id for t in discovery.classic_targets("mx", [])] == ["i-0aaa"]


def _discovery(**stubs: Any) -> TargetDiscovery:
    """Target discovery whose clients answer recorded pages (``autoscaling=``, ``elbv2=``)."""
    clients = Clients()
    for service, stub in stubs.items():
        setattr(clients, service, stub)
    return TargetDiscovery("mx", clients)


class _Paged:
    """A client whose only paginated read answers one recorded page."""

    def __init__(self, page: dict[str, Any]) -> None:
        self.page = page

    def get_paginator(self, _name: str) -> Any:
        page = self.page

        class _Paginator:
            def paginate(self, **_kwargs: Any) -> list[dict[str, Any]]:
                return [page]

        return _Paginator()

    def describe_target_health(self, **_kwargs: Any) -> dict[str, Any]:
        return self.page


# ----- NLB target groups -------------------------------------------------------------------------


def nlb_world(target_type: str = "instance") -> tuple[str, str, Any]:
    from proxymx_tools.seed import _V2World

    world = _V2World()
    lb = world.load_balancer("mx-nlb")
    tg = world.elbv2.create_target_group(
        Name="mx-smtp", Protocol="TCP", Port=25, VpcId=world.vpc, TargetType=target_type
    )["TargetGroups"][0]["TargetGroupArn"]
    world.listener(lb, "TCP", 25, tg)
    return lb, tg, world


def run_instances(world: Any, count: int, **tags: str) -> list[str]:
    image = world.ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    reservation = world.ec2.run_instances(
        ImageId=image,
        MinCount=count,
        MaxCount=count,
        SubnetId=world.subnets[0],
        TagSpecifications=[
            {
                "ResourceType": "instance",
                "Tags": [{"Key": k, "Value": v} for k, v in {"proxymx:fleet": "mx", **tags}.items()],
            }
        ],
    )
    return [i["InstanceId"] for i in reservation["Instances"]]


def proxy_v2(world: Any, tg: str) -> str:
    attributes = world.elbv2.describe_target_group_attributes(TargetGroupArn=tg)["Attributes"]
    return {a["Key"]: a["Value"] for a in attributes}.get("proxy_protocol_v2.enabled", "false")


def test_nlb_instance_targets_unready_block_and_ready_switch(aws: Any) -> None:
    lb, tg, world = nlb_world()
    (instance,) = run_instances(world, 1)
    world.elbv2.register_targets(TargetGroupArn=tg, Targets=[{"Id": instance, "Port": 2525}])
    service = EnableProxyProtocol(HEADER_ALWAYS, Clients(), sleep=lambda _s: None)
    # Given a target on per-target port 2525 proven on 25 only -> blocked for port 2525
    tag(instance, **{"proxymx:proxy-protocol": PROVEN_25})
    blocked = service.ensure_load_balancer_v2(lb)
    assert blocked.outcome == "blocked" and "port 2525 not proven" in blocked.reason
    assert proxy_v2(world, tg) == "false"
    # When proven on 2525 -> switched
    tag(instance, **{"proxymx:proxy-protocol": PROVEN_2525})
    assert service.ensure_load_balancer_v2(lb).outcome == "changed"
    assert proxy_v2(world, tg) == "true"


def test_nlb_ip_targets_map_to_instances_or_are_unknown(aws: Any) -> None:
    lb, tg, world = nlb_world("ip")
    (instance,) = run_instances(world, 1, **{"proxymx:proxy-protocol": PROVEN_25})
    ip = world.ec2.describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0][
        "PrivateIpAddress"
    ]
    world.elbv2.register_targets(TargetGroupArn=tg, Targets=[{"Id": ip}, {"Id": "10.20.0.250"}])
    result = EnableProxyProtocol(SETTINGS, Clients()).ensure_load_balancer_v2(lb)
    # Then the mapped IP is the ready instance; the unmapped one is unknown and blocks
    assert result.outcome == "blocked"
    assert "unknown:10.20.0.250 (IP target with no instance (unknown); outside the fleet)" in result.reason
    assert instance not in result.reason
    assert proxy_v2(world, tg) == "false"


def test_a_draining_target_does_not_count() -> None:
    health = {
        "TargetHealthDescriptions": [
            {"Target": {"Id": "i-0draining", "Port": 25}, "TargetHealth": {"State": "draining"}},
            {"Target": {"Id": "i-0healthy"}, "TargetHealth": {"State": "healthy"}},
        ],
        "AutoScalingGroups": [],
    }
    paged = _Paged(health)
    discovery = _discovery(elbv2=paged, autoscaling=paged)
    targets = discovery.target_group_targets("arn:tg", 25)
    assert [(t.target_id, t.port) for t in targets] == [("i-0healthy", 25)]


def test_event_path_notifies_the_topic_and_counts_the_blocked_unit(calls: CallRecorder) -> None:
    # Given an operator topic and the unready-fleet sample
    topic = client("sns").create_topic(Name="mx-ops")["TopicArn"]
    event = seed_world(load_event("elb-create-listeners-unready-fleet"))
    config = load_settings({"NOTIFICATION_TOPIC_ARN": topic})
    # When the event is handled
    result = enable_proxy_protocol(parse_elb_event(event), config, Clients(), sleep=lambda _s: None)
    # Then one notice names the unit, and the metric counts it
    (publish,) = [c for c in calls.writes if c.operation == "publish"]
    assert publish.params["Subject"] == "proxymx: PROXY protocol blocked on classic/mx-legacy-unready-fleet"
    assert "Every unready target is in the fleet" in publish.params["Message"]
    assert metric_values(result) == {"LoadBalancersBlocked": 1}


def metric_values(result: ProxyProtocolResult) -> dict[str, float]:
    return {m.name: m.value for m in result.metrics()}


# ----- registration is a write too --------------------------------------------------------------


def registration(event_name: str, api_version: str, request: dict[str, Any]) -> Any:
    event = load_event("elb-create-listeners")
    event["detail"].update(eventName=event_name, apiVersion=api_version, requestParameters=request)
    return parse_elb_event(event)


def switch_classic_on(name: str = "mx") -> None:
    elb = client("elb")
    elb.create_load_balancer_policy(
        LoadBalancerName=name,
        PolicyName=PROXY_POLICY_NAME,
        PolicyTypeName="ProxyProtocolPolicyType",
        PolicyAttributes=[{"AttributeName": "ProxyProtocol", "AttributeValue": "true"}],
    )
    elb.set_load_balancer_policies_for_backend_server(
        LoadBalancerName=name, InstancePort=25, PolicyNames=[PROXY_POLICY_NAME]
    )


def test_an_unready_instance_registered_behind_a_sending_elb_is_reported(calls: CallRecorder) -> None:
    # Given a Classic ELB that sends the header, and two instances outside the fleet registered:
    # one ready, one not (fleet instances are refreshed instead: tests/integration/test_controls.py)
    classic_world()
    switch_classic_on()
    ready, unready = register_fleet_instances("mx", 2, {"proxymx:fleet": "other"})
    tag(ready, **{"proxymx:proxy-protocol": PROVEN_25})
    event = registration(
        "RegisterInstancesWithLoadBalancer",
        "2012-06-01",
        {"loadBalancerName": "mx", "instances": [{"instanceId": ready}, {"instanceId": unready}]},
    )
    # When the registration event arrives
    result = enable_proxy_protocol(event, SETTINGS, Clients())
    # Then the unready one is named, counted for the alarm, and nothing is written
    assert result.outcome == "blocked"
    assert result.unready_behind_header == [f"{unready} (no proxymx:proxy-protocol tag; outside the fleet)"]
    assert result.blocked == []
    assert metric_values(result) == {"UnreadyTargetsBehindHeader": 1}
    assert [c for c in calls.writes if c.service == "elb"] == []
    assert calls.of("send_command") == []


def test_a_ready_instance_registered_behind_a_sending_elb_is_compliant(aws: Any) -> None:
    classic_world()
    switch_classic_on()
    (instance,) = register_fleet_instances("mx", 1, {"proxymx:proxy-protocol": "ready"})
    event = registration(
        "RegisterInstancesWithLoadBalancer",
        "2012-06-01",
        {"loadBalancerName": "mx", "instances": [{"instanceId": instance}]},
    )
    assert enable_proxy_protocol(event, SETTINGS, Clients()).outcome == "compliant"


def test_a_registration_behind_an_elb_that_does_not_send_runs_the_interlocked_plan(aws: Any) -> None:
    # Given an ELB without the header (never switched): the registration runs the normal plan
    classic_world()
    (instance,) = register_fleet_instances("mx", 1)
    event = registration(
        "RegisterInstancesWithLoadBalancer",
        "2012-06-01",
        {"loadBalancerName": "mx", "instances": [{"instanceId": instance}]},
    )
    result = enable_proxy_protocol(event, SETTINGS, Clients())
    # Then the interlock blocks the switch in front of the unready instance
    assert result.outcome == "blocked" and result.blocked
    assert backend_policies("mx") == {}


def test_an_unready_target_registered_behind_a_sending_target_group_is_reported(aws: Any) -> None:
    _lb, tg, world = nlb_world()
    world.elbv2.modify_target_group_attributes(
        TargetGroupArn=tg, Attributes=[{"Key": "proxy_protocol_v2.enabled", "Value": "true"}]
    )
    (instance,) = run_instances(world, 1, **{"proxymx:proxy-protocol": PROVEN_25, "proxymx:fleet": "other"})
    world.elbv2.register_targets(TargetGroupArn=tg, Targets=[{"Id": instance, "Port": 2525}])
    event = registration(
        "RegisterTargets", "2015-12-01", {"targetGroupArn": tg, "targets": [{"id": instance, "port": 2525}]}
    )
    result = enable_proxy_protocol(event, SETTINGS, Clients())
    assert result.outcome == "blocked"
    assert result.unready_behind_header == [f"{instance} (port 2525 not proven; outside the fleet)"]


# ----- the pause tag (issue 7.5) -----------------------------------------------------------------


def test_a_paused_elb_is_not_written_until_its_pause_expires(calls: CallRecorder) -> None:
    # Given a new Classic ELB with no targets, paused by its operator for an hour
    from datetime import UTC, datetime, timedelta

    classic_world()
    until = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    client("elb").add_tags(LoadBalancerNames=["mx"], Tags=[{"Key": "proxymx:pause-until", "Value": until}])
    # When it is reconciled / Then paused, with the plan it would apply, and nothing written
    result = ensure_classic()
    assert result.outcome == "paused" and until[:16] in result.reason
    assert result.changes and [c for c in calls.writes if c.service == "elb"] == []
    # And once the pause is over, it is switched as usual
    past = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    client("elb").add_tags(LoadBalancerNames=["mx"], Tags=[{"Key": "proxymx:pause-until", "Value": past}])
    assert ensure_classic().outcome == "changed"


def test_a_paused_target_group_is_not_written(aws: Any) -> None:
    lb, tg, world = nlb_world()
    world.elbv2.add_tags(ResourceArns=[tg], Tags=[{"Key": "proxymx:pause-until", "Value": "garbage"}])
    result = EnableProxyProtocol(HEADER_ALWAYS, Clients()).ensure_load_balancer_v2(lb)
    assert result.outcome == "paused" and "unreadable" in result.reason
    assert proxy_v2(world, tg) == "false"
