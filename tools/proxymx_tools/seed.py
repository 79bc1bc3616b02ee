"""Seed the embedded AWS with the world an event presumes, so any sample event can be invoked.

A registry keyed by the event's ``source``. Each seeder builds what must already exist when
the event arrives (the load balancer with its SMTP listener, its target groups, the backend
policies, the drifted state the event describes) and may return a translation of resource
identifiers: moto invents its own ARNs (the random suffix of a target group or load balancer
ARN cannot be chosen), so the runner rewrites the event's ARNs to the seeded ones before the
handler sees it. ``--json`` reports then show the embedded ARNs.

Seeding is best effort for malformed events: what cannot be read from the event is not seeded
(the handler rejects the event before any AWS call anyway).

Launch-flow events (``aws.autoscaling``, ``aws.ssm``) are seeded by
``proxymx_tools.seed_launch.seed(event)``, imported lazily; its absence is reported, not fatal.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable, Mapping
from typing import Any

Seeder = Callable[[dict[str, Any]], Mapping[str, str] | None]

REGION = "us-east-1"


def _region() -> str:
    """The embedded AWS's region (proxymx invoke places it in the event's own region)."""
    return os.environ.get("AWS_DEFAULT_REGION") or REGION


class SeedingUnavailable(RuntimeError):
    """No seeder can build the world this event presumes."""


def _client(service: str) -> Any:
    import boto3

    return boto3.client(service, region_name=_region())  # type: ignore[call-overload]


def _dig(data: Any, *path: str | int) -> Any:
    for key in path:
        if isinstance(key, int):
            if not isinstance(data, list) or len(data) <= key:
                return None
        elif not isinstance(data, dict):
            return None
        data = data[key]
    return data


# ----- Classic ELB ---------------------------------------------------------------------------

SMTP_LISTENER = {"Protocol": "TCP", "LoadBalancerPort": 25, "InstanceProtocol": "TCP", "InstancePort": 25}
STATUS_LISTENER = {
    "Protocol": "HTTP",
    "LoadBalancerPort": 80,
    "InstanceProtocol": "HTTP",
    "InstancePort": 8080,
}
PROXY_POLICY_ATTRIBUTES = [{"AttributeName": "ProxyProtocol", "AttributeValue": "true"}]


def _classic_listeners(raw: Any) -> list[dict[str, Any]]:
    listeners = []
    for item in raw if isinstance(raw, list) else []:
        try:
            listeners.append(
                {
                    "Protocol": str(item["protocol"]),
                    "LoadBalancerPort": int(item["loadBalancerPort"]),
                    "InstanceProtocol": str(item.get("instanceProtocol") or item["protocol"]),
                    "InstancePort": int(item["instancePort"]),
                }
            )
        except (KeyError, TypeError, ValueError):
            continue  # a malformed listener: the handler will say so
    return listeners


# A Classic ELB whose name ends so already takes mail through in-service fleet instances whose
# Postfix was never configured (issue 7: the interlock must block, not switch).
UNREADY_FLEET_SUFFIX = "-unready-fleet"


def register_fleet_instances(name: str, count: int, tags: Mapping[str, str] | None = None) -> list[str]:
    """Run ``count`` instances tagged ``proxymx:fleet=mx`` (plus ``tags``) and register them."""
    ec2 = _client("ec2")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    all_tags = {"proxymx:fleet": "mx", **(tags or {})}
    reservation = ec2.run_instances(
        ImageId=image,
        MinCount=count,
        MaxCount=count,
        InstanceType="t4g.small",
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in all_tags.items()]}
        ],
    )
    ids = [i["InstanceId"] for i in reservation["Instances"]]
    _client("elb").register_instances_with_load_balancer(
        LoadBalancerName=name, Instances=[{"InstanceId": i} for i in ids]
    )
    return ids


def _create_classic(
    name: str, listeners: list[dict[str, Any]], tags: list[dict[str, str]] | None = None
) -> Any:
    elb = _client("elb")
    # Deduplicate by load balancer port (moto, like AWS, refuses duplicates).
    unique = list({listener["LoadBalancerPort"]: listener for listener in listeners}.values())
    elb.create_load_balancer(
        LoadBalancerName=name,
        Listeners=unique,
        AvailabilityZones=[f"{_region()}a", f"{_region()}b"],
        **({"Tags": tags} if tags else {}),
    )
    return elb


def _sending_classic(name: str, tags: list[dict[str, str]] | None = None) -> None:
    """A Classic ELB (SMTP + status listeners) that already sends the header on port 25, as
    proxymx leaves it (its own policy, set on the instance port)."""
    elb = _create_classic(name, [SMTP_LISTENER, STATUS_LISTENER], tags)
    elb.create_load_balancer_policy(
        LoadBalancerName=name,
        PolicyName="proxymx-ProxyProtocol",
        PolicyTypeName="ProxyProtocolPolicyType",
        PolicyAttributes=PROXY_POLICY_ATTRIBUTES,
    )
    elb.set_load_balancer_policies_for_backend_server(
        LoadBalancerName=name, InstancePort=25, PolicyNames=["proxymx-ProxyProtocol"]
    )


def _seed_registration(name: str, request: dict[str, Any]) -> dict[str, str]:
    """A Classic ELB that already sends the header, and the event's instances as fleet instances
    never configured (SSM agents Online), registered behind it: the refresh configures them."""
    _sending_classic(name)
    named: list[str] = [
        i["instanceId"]
        for i in request.get("instances") or []
        if isinstance(i, dict) and isinstance(i.get("instanceId"), str)
    ]
    real = register_fleet_instances(name, len(named)) if named else []
    from proxymx_tools.embedded import current_extension
    from proxymx_tools.seed_launch import ensure_document

    extension = current_extension()
    for instance_id in real:
        if extension is not None:
            extension.register_instance(instance_id)
    ensure_document("proxymx-PostfixProxyProtocolDocument", _region())
    return dict(zip(named, real, strict=True))


def _seed_tagged_off(names: list[str], request: dict[str, Any]) -> None:
    """Classic ELBs that send the header in front of one fleet instance proven ready (a finished
    cutover), carrying the event's tags as after the call: the way back takes both ends back."""
    from proxymx_tools.embedded import current_extension
    from proxymx_tools.seed_launch import ensure_document

    tags = [
        {"Key": str(t.get("key")), "Value": str(t.get("value", ""))}
        for t in request.get("tags") or []
        if isinstance(t, dict) and t.get("key")
    ]
    extension = current_extension()
    ensure_document("proxymx-PostfixProxyProtocolDocument", _region())
    for name in names:
        _sending_classic(name, tags)
        for instance_id in register_fleet_instances(name, 1, {"proxymx:proxy-protocol": "ready"}):
            if extension is not None:
                extension.register_instance(instance_id)


def seed_classic(event: dict[str, Any]) -> Mapping[str, str] | None:
    detail = event.get("detail") or {}
    request = detail.get("requestParameters") or {}
    if detail.get("eventName") == "AddTags":
        names = [n for n in request.get("loadBalancerNames") or [] if isinstance(n, str) and n]
        _seed_tagged_off(names, request)
        return None
    name = request.get("loadBalancerName")
    if not isinstance(name, str) or not name:
        return None
    event_name = detail.get("eventName")
    if event_name == "RegisterInstancesWithLoadBalancer":
        return _seed_registration(name, request)
    if event_name == "CreateLoadBalancer":
        tags = [
            {"Key": str(t.get("key")), "Value": str(t.get("value", ""))}
            for t in request.get("tags") or []
            if isinstance(t, dict) and t.get("key")
        ]
        _create_classic(name, _classic_listeners(request.get("listeners")) or [SMTP_LISTENER], tags)
    elif event_name == "CreateLoadBalancerListeners":
        # The load balancer existed with a status page; the event added the SMTP listener. moto
        # only creates backend entries for listeners given at creation, so create them all now.
        _create_classic(name, [STATUS_LISTENER, *_classic_listeners(request.get("listeners"))])
        if name.endswith(UNREADY_FLEET_SUFFIX):
            # In service: their SSM agents are Online and our document exists (the local stack's
            # name, as the config default), so the cutover can reach them.
            from proxymx.config import Settings

            from proxymx_tools.embedded import current_extension
            from proxymx_tools.seed_launch import ensure_document

            extension = current_extension()
            ensure_document(Settings().document_name, _region())
            for instance_id in register_fleet_instances(name, count=2):
                if extension is not None:
                    extension.register_instance(instance_id)
    elif event_name == "SetLoadBalancerPoliciesForBackendServer":
        port = request.get("instancePort")
        port = int(port) if isinstance(port, int | str) and str(port).isdigit() else 25
        listener = {**SMTP_LISTENER, "LoadBalancerPort": port, "InstancePort": port}
        elb = _create_classic(name, [listener, STATUS_LISTENER])
        # Our policy exists (it was attached until this call); the other policies on the port
        # are whatever the event set, kept by the repair.
        elb.create_load_balancer_policy(
            LoadBalancerName=name,
            PolicyName="proxymx-ProxyProtocol",
            PolicyTypeName="ProxyProtocolPolicyType",
            PolicyAttributes=PROXY_POLICY_ATTRIBUTES,
        )
        names = [n for n in request.get("policyNames") or [] if isinstance(n, str)]
        for policy in names:
            if policy != "proxymx-ProxyProtocol":
                elb.create_load_balancer_policy(
                    LoadBalancerName=name,
                    PolicyName=policy,
                    PolicyTypeName="BackendServerAuthenticationPolicyType",
                    PolicyAttributes=[
                        {"AttributeName": "PublicKeyPolicyName", "AttributeValue": f"{policy}-key"}
                    ],
                )
        elb.set_load_balancer_policies_for_backend_server(
            LoadBalancerName=name, InstancePort=port, PolicyNames=names
        )
    elif event_name == "DeleteLoadBalancerPolicy":
        # After the call: an SMTP listener, and no PROXY protocol policy anywhere.
        _create_classic(name, [SMTP_LISTENER, STATUS_LISTENER])
    else:
        _create_classic(name, [SMTP_LISTENER])
    return None


# ----- ELBv2 ---------------------------------------------------------------------------------


def _arn_name(arn: Any, kind: str) -> str | None:
    """The name in an ARN: ``loadbalancer/net/NAME/ID`` or ``targetgroup/NAME/ID``."""
    if not isinstance(arn, str) or f":{kind}/" not in arn:
        return None
    parts = arn.split(f":{kind}/", 1)[1].split("/")
    if kind == "loadbalancer" and len(parts) >= 3:
        return parts[1]
    return parts[0] or None


class _V2World:
    def __init__(self) -> None:
        self.ec2 = _client("ec2")
        self.elbv2 = _client("elbv2")
        vpc = self.ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
        self.vpc = vpc
        self.subnets = [
            self.ec2.create_subnet(
                VpcId=vpc, CidrBlock=f"10.20.{i}.0/24", AvailabilityZone=f"{_region()}{zone}"
            )["Subnet"]["SubnetId"]
            for i, zone in enumerate("ab")
        ]
        self.arns: dict[str, str] = {}

    def load_balancer(self, name: str, lb_type: str = "network", event_arn: Any = None) -> str:
        lb = self.elbv2.create_load_balancer(
            Name=name, Subnets=self.subnets, Type=lb_type, Scheme="internet-facing"
        )
        arn = str(lb["LoadBalancers"][0]["LoadBalancerArn"])
        if isinstance(event_arn, str):
            self.arns[event_arn] = arn
        return arn

    def target_group(
        self, name: str, protocol: str, port: int, event_arn: Any = None, target_type: Any = None
    ) -> str:
        # The event's target type, else "ip": the client's address is hidden and the header is
        # needed. Instance targets (TCP, preservation on) need none (loadbalancer.nlbheader).
        tg = self.elbv2.create_target_group(
            Name=name,
            Protocol=protocol,
            Port=port,
            VpcId=self.vpc,
            TargetType=target_type if target_type in ("instance", "ip") else "ip",
        )
        arn = str(tg["TargetGroups"][0]["TargetGroupArn"])
        if isinstance(event_arn, str):
            self.arns[event_arn] = arn
        return arn

    def listener(self, lb_arn: str, protocol: str, port: int, tg_arn: str, event_arn: Any = None) -> str:
        listener = self.elbv2.create_listener(
            LoadBalancerArn=lb_arn,
            Protocol=protocol,
            Port=port,
            DefaultActions=[{"Type": "forward", "TargetGroupArn": tg_arn}],
        )
        arn = str(listener["Listeners"][0]["ListenerArn"])
        if isinstance(event_arn, str):
            self.arns[event_arn] = arn
        return arn


def seed_v2(event: dict[str, Any]) -> Mapping[str, str] | None:
    detail = event.get("detail") or {}
    request = detail.get("requestParameters") or {}
    response = detail.get("responseElements") or {}
    event_name = detail.get("eventName")
    world = _V2World()
    if event_name == "CreateLoadBalancer":
        name = request.get("name")
        if isinstance(name, str) and name:
            lb_type = request.get("type") or "application"
            world.load_balancer(name, lb_type, _dig(response, "loadBalancers", 0, "loadBalancerArn"))
    elif event_name == "CreateTargetGroup":
        name, protocol, port = request.get("name"), request.get("protocol"), request.get("port")
        if isinstance(name, str) and isinstance(protocol, str) and isinstance(port, int):
            world.target_group(
                name,
                protocol,
                port,
                _dig(response, "targetGroups", 0, "targetGroupArn"),
                request.get("targetType"),
            )
    elif event_name == "CreateListener":
        lb_event_arn = request.get("loadBalancerArn")
        lb_name = _arn_name(lb_event_arn, "loadbalancer") or "mx-nlb"
        protocol = str(request.get("protocol") or "TCP")
        raw_port = request.get("port")
        port = raw_port if isinstance(raw_port, int) else 25
        lb_type = "application" if protocol in ("HTTP", "HTTPS") else "network"
        lb_arn = world.load_balancer(lb_name, lb_type, lb_event_arn)
        for action in request.get("defaultActions") or []:
            tg_event_arn = _dig(action, "targetGroupArn")
            tg_name = _arn_name(tg_event_arn, "targetgroup")
            if tg_name:
                tg_arn = world.target_group(tg_name, protocol, port, tg_event_arn)
                world.listener(lb_arn, protocol, port, tg_arn)
    elif event_name == "ModifyListener":
        # After the call: an NLB whose SMTP listener forwards to an existing target group that
        # has never had the PROXY protocol (a blue/green switch, say). Only the listener ARN is
        # translated: the function derives the load balancer from it.
        listener_event_arn = request.get("listenerArn")
        parts = str(listener_event_arn).split(":listener/", 1)[-1].split("/")
        lb_name = parts[1] if len(parts) == 4 else "mx-nlb"
        protocol = str(request.get("protocol") or "TCP")
        raw_port = request.get("port")
        port = raw_port if isinstance(raw_port, int) else 25
        lb_arn = world.load_balancer(lb_name, "network")
        for action in request.get("defaultActions") or []:
            tg_event_arn = _dig(action, "targetGroupArn")
            tg_name = _arn_name(tg_event_arn, "targetgroup")
            if tg_name:
                tg_arn = world.target_group(tg_name, protocol, port, tg_event_arn)
                world.listener(lb_arn, protocol, port, tg_arn, listener_event_arn)
    elif event_name == "ModifyTargetGroupAttributes":
        tg_event_arn = request.get("targetGroupArn")
        tg_name = _arn_name(tg_event_arn, "targetgroup")
        if tg_name:
            lb_arn = world.load_balancer("mx-nlb")
            tg_arn = world.target_group(tg_name, "TCP", 25, tg_event_arn)
            world.listener(lb_arn, "TCP", 25, tg_arn)
            attributes = [
                {"Key": str(a["key"]), "Value": str(a["value"])}
                for a in request.get("attributes") or []
                if isinstance(a, dict) and "key" in a and "value" in a
            ]
            if attributes:
                # The state the event describes (e.g. proxy_protocol_v2.enabled=false: the drift).
                world.elbv2.modify_target_group_attributes(TargetGroupArn=tg_arn, Attributes=attributes)
    return world.arns


def seed_elb(event: dict[str, Any]) -> Mapping[str, str] | None:
    api_version = _dig(event, "detail", "apiVersion")
    if api_version == "2012-06-01":
        return seed_classic(event)
    if api_version == "2015-12-01":
        return seed_v2(event)
    return None


# ----- Scheduled Event (the Reconcile sweep) ----------------------------------------------------

SWEPT_CLASSIC = "mx-swept-classic"
SWEPT_NLB = "mx-swept-nlb"
SWEPT_TARGET_GROUP = "mx-swept-smtp"


def seed_schedule(event: dict[str, Any]) -> Mapping[str, str] | None:
    """What a sweep exists to find: a Classic ELB whose PROXY protocol policy is gone (a missed
    DeleteLoadBalancerPolicy) and an NLB whose SMTP target group has proxy_protocol_v2 off."""
    _create_classic(SWEPT_CLASSIC, [SMTP_LISTENER, STATUS_LISTENER])
    world = _V2World()
    lb_arn = world.load_balancer(SWEPT_NLB)
    world.listener(lb_arn, "TCP", 25, world.target_group(SWEPT_TARGET_GROUP, "TCP", 25))
    return None


def _seed_attach(event: dict[str, Any]) -> Mapping[str, str] | None:
    """An Auto Scaling attach call: the group (fleet-tagged, one InService instance never
    configured, its SSM agent Online) and the Classic ELBs it names, already sending the header."""
    from proxymx_tools.embedded import current_extension
    from proxymx_tools.seed_launch import LAUNCH_TEMPLATE, SEED_IMAGE_ID, ensure_document

    request = _dig(event, "detail", "requestParameters") or {}
    group = request.get("autoScalingGroupName")
    if not isinstance(group, str) or not group:
        return None
    names = [n for n in request.get("loadBalancerNames") or [] if isinstance(n, str)]
    names += [
        str(t["identifier"])
        for t in request.get("trafficSources") or []
        if isinstance(t, dict) and t.get("type") == "elb" and isinstance(t.get("identifier"), str)
    ]
    for name in names:
        _seed_registration(name, {})
    ec2, autoscaling = _client("ec2"), _client("autoscaling")
    ec2.create_launch_template(
        LaunchTemplateName=LAUNCH_TEMPLATE,
        LaunchTemplateData={"ImageId": SEED_IMAGE_ID, "InstanceType": "t3.small"},
    )
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=group,
        LaunchTemplate={"LaunchTemplateName": LAUNCH_TEMPLATE, "Version": "$Latest"},
        MinSize=1,
        MaxSize=1,
        DesiredCapacity=1,
        AvailabilityZones=[f"{_region()}a"],
        Tags=[
            {
                "Key": "proxymx:fleet",
                "Value": "mx",
                "PropagateAtLaunch": True,
                "ResourceId": group,
                "ResourceType": "auto-scaling-group",
            }
        ],
    )
    extension = current_extension()
    for instance in autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group])[
        "AutoScalingGroups"
    ][0]["Instances"]:
        if extension is not None:
            extension.register_instance(instance["InstanceId"])
    ensure_document("proxymx-PostfixProxyProtocolDocument", _region())
    return None


def _seed_autoscaling(event: dict[str, Any]) -> Mapping[str, str] | None:
    # CloudTrail API calls of Auto Scaling (attach) and its lifecycle events share the source.
    if event.get("detail-type") == "AWS API Call via CloudTrail":
        return _seed_attach(event)
    return _seed_launch(event)


def _seed_launch(event: dict[str, Any]) -> Mapping[str, str] | None:
    try:
        module = importlib.import_module("proxymx_tools.seed_launch")
    except ImportError as exc:
        raise SeedingUnavailable(
            f"cannot seed {event.get('source')} events: proxymx_tools.seed_launch is missing ({exc})"
        ) from exc
    module.seed(event)
    return None


SEEDERS: dict[str, Seeder] = {
    "aws.elasticloadbalancing": seed_elb,
    "aws.autoscaling": _seed_autoscaling,
    "aws.ssm": _seed_launch,
    "aws.events": seed_schedule,
}


def register_seeder(source: str, seeder: Seeder) -> None:
    SEEDERS[source] = seeder


def seed_world(event: Any) -> Any:
    """Build the world ``event`` presumes in the embedded AWS; return the event to invoke.

    The returned event is ``event`` with seeded ARNs substituted for the ones it names. An
    event that is not a JSON object, or whose source has no seeder, is returned as it is.
    """
    if not isinstance(event, dict):
        return event
    seeder = SEEDERS.get(str(event.get("source")))
    if seeder is None:
        return event
    translation = seeder(event) or {}
    if not translation:
        return event
    text = json.dumps(event)
    for old, new in translation.items():
        text = text.replace(old, new)
    rewritten: dict[str, Any] = json.loads(text)
    return rewritten
