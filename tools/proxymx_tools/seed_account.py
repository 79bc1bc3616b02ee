"""Seed an account of realistic size: hundreds of load balancers, thousands of instances, every state
``proxymx audit`` names (issue 12). For the tests, ``make bench`` and ``proxymx audit --backend moto``.

Plain boto3 through whatever endpoint the environment names (the embedded AWS in-process, or a
``moto_server`` reached through ``AWS_ENDPOINT_URL`` as a real account is): the same builder serves
both, so the two audits of the tests see the same world. Built with the public API only, in bulk
where the API allows it (``RunInstances`` with ``MinCount``, registrations of 100 at a time).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from proxymx.config import FLEET_TAG_KEY
from proxymx.loadbalancer.nlbheader import HEADER_PLACEMENT, ON_FIRST_ACK
from proxymx.loadbalancer.plan import PAUSE_TAG_KEY, PROXY_POLICY_NAME, PROXY_POLICY_TYPE, PROXY_PROTOCOL_V2
from proxymx.loadbalancer.readiness import READINESS_TAG_KEY

FLEET = "mx"
OPT_OUT_TAG = "proxymx:opt-out"
READY = "ready"
SMTP = {"Protocol": "TCP", "LoadBalancerPort": 25, "InstanceProtocol": "TCP", "InstancePort": 25}
WEB = {"Protocol": "HTTP", "LoadBalancerPort": 80, "InstanceProtocol": "HTTP", "InstancePort": 8080}
PROXY_ATTRIBUTES = [{"AttributeName": "ProxyProtocol", "AttributeValue": "true"}]

# What each seeded load balancer (or target group) should be audited as.
CLASSIC_KINDS = (
    "compliant",
    "compliant-foreign-policy",
    "drifted",
    "blocked",
    "blocked-outside-fleet",
    "paused",
    "opted-out",
    "no-smtp",
)
NLB_KINDS = ("compliant", "drifted", "broken", "preserved", "opted-out", "blocked")


def _region() -> str:
    return os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def _client(service: str) -> Any:
    import boto3

    return boto3.client(service, region_name=_region())  # type: ignore[call-overload]


def _tags(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


@dataclass
class SeededAccount:
    """What was built, and what the audit must say of it."""

    # Classic name / target group ARN -> expected audit state.
    expected: dict[str, str] = field(default_factory=dict)
    fleet_ready: list[str] = field(default_factory=list)
    fleet_unready: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)
    albs: list[str] = field(default_factory=list)


class AccountBuilder:
    def __init__(self) -> None:
        self.elb = _client("elb")
        self.elbv2 = _client("elbv2")
        self.ec2 = _client("ec2")
        self._image: str | None = None
        self._vpc: tuple[str, list[str]] | None = None
        self.seeded = SeededAccount()

    # ----- instances --------------------------------------------------------------------------

    def instances(self, count: int, tags: Mapping[str, str]) -> list[str]:
        if count <= 0:
            return []
        if self._image is None:
            self._image = self.ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        ids: list[str] = []
        while len(ids) < count:
            batch = min(500, count - len(ids))
            reservation = self.ec2.run_instances(
                ImageId=self._image,
                MinCount=batch,
                MaxCount=batch,
                InstanceType="t4g.small",
                TagSpecifications=[{"ResourceType": "instance", "Tags": _tags(tags)}] if tags else [],
            )
            ids.extend(i["InstanceId"] for i in reservation["Instances"])
        return ids

    def fleet(self, count: int, *, ready: bool) -> list[str]:
        tags = {FLEET_TAG_KEY: FLEET, **({READINESS_TAG_KEY: READY} if ready else {})}
        ids = self.instances(count, tags)
        (self.seeded.fleet_ready if ready else self.seeded.fleet_unready).extend(ids)
        return ids

    def outside_fleet(self, count: int) -> list[str]:
        ids = self.instances(count, {"team": "web"})
        self.seeded.outside.extend(ids)
        return ids

    # ----- Classic ----------------------------------------------------------------------------

    def classic(self, name: str, kind: str, instances: Iterable[str] = ()) -> str:
        tags: dict[str, str] = {}
        if kind == "opted-out":
            tags[OPT_OUT_TAG] = "true"
        if kind == "paused":
            tags[PAUSE_TAG_KEY] = "2999-01-01T00:00:00Z"
        listeners = [WEB] if kind == "no-smtp" else [SMTP, WEB]
        self.elb.create_load_balancer(
            LoadBalancerName=name,
            Listeners=listeners,
            AvailabilityZones=[f"{_region()}a"],
            **({"Tags": _tags(tags)} if tags else {}),
        )
        if kind in ("compliant", "compliant-foreign-policy", "opted-out"):
            policy = PROXY_POLICY_NAME if kind != "compliant-foreign-policy" else "EnableProxyProtocol"
            self.elb.create_load_balancer_policy(
                LoadBalancerName=name,
                PolicyName=policy,
                PolicyTypeName=PROXY_POLICY_TYPE,
                PolicyAttributes=PROXY_ATTRIBUTES,
            )
            self.elb.set_load_balancer_policies_for_backend_server(
                LoadBalancerName=name, InstancePort=25, PolicyNames=[policy]
            )
        ids = list(instances)
        for start in range(0, len(ids), 100):
            self.elb.register_instances_with_load_balancer(
                LoadBalancerName=name, Instances=[{"InstanceId": i} for i in ids[start : start + 100]]
            )
        self.seeded.expected[name] = {
            "compliant-foreign-policy": "compliant",
            "blocked-outside-fleet": "blocked",
            "opted-out": "out of scope",
            "no-smtp": "out of scope",
        }.get(kind, kind)
        return name

    # ----- v2 ---------------------------------------------------------------------------------

    def _subnets(self) -> tuple[str, list[str]]:
        if self._vpc is None:
            vpc = self.ec2.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
            subnets = [
                self.ec2.create_subnet(
                    VpcId=vpc, CidrBlock=f"10.30.{i}.0/24", AvailabilityZone=f"{_region()}{z}"
                )["Subnet"]["SubnetId"]
                for i, z in enumerate("ab")
            ]
            self._vpc = (vpc, subnets)
        return self._vpc

    def nlb(self, name: str, kind: str, targets: Iterable[str] = ()) -> str:
        """One NLB with one SMTP target group (returned: the group's ARN, the audited unit)."""
        vpc, subnets = self._subnets()
        tags = {OPT_OUT_TAG: "true"} if kind == "opted-out" else {}
        lb = self.elbv2.create_load_balancer(
            Name=name,
            Subnets=subnets,
            Type="network",
            Scheme="internet-facing",
            **({"Tags": _tags(tags)} if tags else {}),
        )["LoadBalancers"][0]["LoadBalancerArn"]
        target_type = "instance" if kind in ("preserved", "blocked") else "ip"
        tg = self.elbv2.create_target_group(
            Name=f"{name}-smtp", Protocol="TCP", Port=25, VpcId=vpc, TargetType=target_type
        )["TargetGroups"][0]["TargetGroupArn"]
        self.elbv2.create_listener(
            LoadBalancerArn=lb,
            Protocol="TCP",
            Port=25,
            DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}],
        )
        attributes: list[dict[str, str]] = []
        if kind in ("compliant", "opted-out"):
            attributes = [
                {"Key": PROXY_PROTOCOL_V2, "Value": "true"},
                {"Key": HEADER_PLACEMENT, "Value": ON_FIRST_ACK},
            ]
        elif kind == "broken":
            attributes = [{"Key": PROXY_PROTOCOL_V2, "Value": "true"}]
        elif kind == "blocked":
            # Instance targets with preservation off: the header is needed, and the target is not ready.
            attributes = [{"Key": "preserve_client_ip.enabled", "Value": "false"}]
        if attributes:
            self.elbv2.modify_target_group_attributes(TargetGroupArn=tg, Attributes=attributes)
        ids = list(targets)
        if ids:
            self.elbv2.register_targets(TargetGroupArn=tg, Targets=[{"Id": i, "Port": 25} for i in ids])
        # Preserved: instance targets see the client's own address; no header needed, compliant.
        self.seeded.expected[tg] = {"opted-out": "out of scope", "preserved": "compliant"}.get(kind, kind)
        return str(tg)

    def alb(self, name: str) -> str:
        _, subnets = self._subnets()
        arn = str(
            self.elbv2.create_load_balancer(Name=name, Subnets=subnets, Type="application")["LoadBalancers"][
                0
            ]["LoadBalancerArn"]
        )
        self.seeded.albs.append(arn)
        return arn


def compliant_classic(count: int, prefix: str = "mx") -> list[str]:
    """``count`` Classic ELBs with the PROXY policy on their SMTP port (the sweep's best case)."""
    builder = AccountBuilder()
    return [builder.classic(f"{prefix}-{n:04d}", "compliant") for n in range(count)]


def compliant_nlbs(count: int, prefix: str = "nlb") -> list[str]:
    """``count`` NLBs, each with one SMTP target group sending the header on the first ACK."""
    builder = AccountBuilder()
    return [builder.nlb(f"{prefix}-{n:04d}", "compliant") for n in range(count)]


def realistic_account(load_balancers: int = 200, instances: int = 2000) -> SeededAccount:
    """About ``load_balancers`` Classic ELBs and NLBs in every state, ``instances`` instances
    (most in the fleet and ready, some not ready, some outside the fleet), and two ALBs."""
    builder = AccountBuilder()
    ready = builder.fleet(int(instances * 0.85), ready=True)
    unready = builder.fleet(int(instances * 0.05), ready=False)
    outside = builder.outside_fleet(instances - len(ready) - len(unready))
    kinds = [("classic", k) for k in CLASSIC_KINDS] + [("nlb", k) for k in NLB_KINDS]
    # Mostly compliant, as a real account: every other slot compliant, the rest cycles the states.
    ready_iter = iter(ready)
    for n in range(load_balancers):
        # Every third one cycles through the states; the others are compliant, as in a real account.
        if n % 3 == 0:
            flavour, kind = kinds[(n // 3) % len(kinds)]
        else:
            flavour, kind = ("classic", "compliant") if n % 2 else ("nlb", "compliant")
        if flavour == "classic":
            registered = [next(ready_iter) for _ in range(3)]
            if kind == "blocked":
                registered.append(unready[n % len(unready)])
            if kind == "blocked-outside-fleet":
                registered.append(outside[n % len(outside)])
            builder.classic(f"mx-{n:04d}", kind, registered)
        else:
            targets = [unready[n % len(unready)]] if kind == "blocked" else []
            builder.nlb(f"nlb-{n:04d}", kind, targets)
    builder.alb("web-alb-0")
    builder.alb("web-alb-1")
    return builder.seeded
