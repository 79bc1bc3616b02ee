"""What exists, for the reconcile sweep: the listing reads (boto3, paginated), and nothing else.

The sweep then drives the adapters the event paths use (``loadbalancer.classic``/``nlb`` for a
load balancer, ``launch.autoscaling``/``ssm`` through ``launch.configure`` for an instance). This
module only adds the reads that no event path needs: every Classic ELB, every NLB, the fleet's
groups with their waiting instances, instance launch times, and the invocations of our document
on one instance. Every ``ClientError`` is translated here, once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from proxymx import aws
from proxymx.launch import awserrors
from proxymx.launch.ssm import chunked
from proxymx.loadbalancer import errors as elb_errors

if TYPE_CHECKING:
    from mypy_boto3_autoscaling import AutoScalingClient
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_elb import ElasticLoadBalancingClient
    from mypy_boto3_elbv2 import ElasticLoadBalancingv2Client
    from mypy_boto3_ssm import SSMClient

# ListCommandInvocations statuses of an invocation that has not finished yet.
IN_FLIGHT_STATUSES = frozenset({"Pending", "InProgress", "Delayed", "Cancelling"})


@dataclass(frozen=True)
class WaitingInstance:
    instance_id: str
    state: str


@dataclass(frozen=True)
class FleetGroup:
    name: str
    arn: str
    waiting: tuple[WaitingInstance, ...]

    @property
    def account(self) -> str:
        # arn:aws:autoscaling:REGION:ACCOUNT:autoScalingGroup:UUID:autoScalingGroupName/NAME
        parts = self.arn.split(":")
        return parts[4] if len(parts) > 4 else ""

    @property
    def region(self) -> str:
        parts = self.arn.split(":")
        return parts[3] if len(parts) > 3 else ""


@dataclass(frozen=True)
class OurInvocation:
    command_id: str
    status: str
    requested: datetime | None

    @property
    def in_flight(self) -> bool:
        return self.status in IN_FLIGHT_STATUSES


def _when(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


class Inventory:
    """The sweep's reads; every client is optional (tests inject moto-backed or stubbed ones)."""

    def __init__(
        self,
        *,
        elb: ElasticLoadBalancingClient | None = None,
        elbv2: ElasticLoadBalancingv2Client | None = None,
        autoscaling: AutoScalingClient | None = None,
        ec2: EC2Client | None = None,
        ssm: SSMClient | None = None,
    ) -> None:
        self._elb = elb
        self._elbv2 = elbv2
        self._autoscaling = autoscaling
        self._ec2 = ec2
        self._ssm = ssm

    # ----- load balancers ---------------------------------------------------------------------

    def classic_load_balancer_names(self) -> list[str]:
        from botocore.exceptions import ClientError

        elb: ElasticLoadBalancingClient = self._elb or aws.client("elb")
        names: list[str] = []
        try:
            for page in elb.get_paginator("describe_load_balancers").paginate():
                names.extend(d["LoadBalancerName"] for d in page.get("LoadBalancerDescriptions", []))
        except ClientError as exc:
            raise elb_errors.translate(exc, "list Classic load balancers") from exc
        return names

    def network_load_balancer_arns(self) -> list[str]:
        """Every NLB (application and gateway load balancers do not carry the PROXY protocol)."""
        from botocore.exceptions import ClientError

        elbv2: ElasticLoadBalancingv2Client = self._elbv2 or aws.client("elbv2")
        arns: list[str] = []
        try:
            for page in elbv2.get_paginator("describe_load_balancers").paginate():
                arns.extend(
                    lb["LoadBalancerArn"]
                    for lb in page.get("LoadBalancers", [])
                    if lb.get("Type") == "network"
                )
        except ClientError as exc:
            raise elb_errors.translate(exc, "list v2 load balancers") from exc
        return arns

    # ----- the launch fleet -----------------------------------------------------------------

    def fleet_groups(
        self, tag_key: str, tag_value: str, names: Sequence[str] = (), waiting_states: Iterable[str] = ()
    ) -> list[FleetGroup]:
        """Groups tagged ``tag_key=tag_value`` (and named ``names``, when given) with their
        instances in ``waiting_states``."""
        from botocore.exceptions import ClientError

        autoscaling: AutoScalingClient = self._autoscaling or aws.client("autoscaling")
        states = set(waiting_states)
        kwargs: dict[str, Any] = {"Filters": [{"Name": f"tag:{tag_key}", "Values": [tag_value]}]}
        if names:
            kwargs["AutoScalingGroupNames"] = list(names)
        groups: list[FleetGroup] = []
        try:
            for page in autoscaling.get_paginator("describe_auto_scaling_groups").paginate(**kwargs):
                for group in page.get("AutoScalingGroups", []):
                    waiting = tuple(
                        WaitingInstance(i["InstanceId"], i["LifecycleState"])
                        for i in group.get("Instances", [])
                        if i.get("LifecycleState") in states
                    )
                    groups.append(
                        FleetGroup(
                            group["AutoScalingGroupName"], group.get("AutoScalingGroupARN", ""), waiting
                        )
                    )
        except ClientError as exc:
            raise awserrors.translate(exc, "DescribeAutoScalingGroups") from exc
        return groups

    def launch_times(self, instance_ids: Iterable[str]) -> dict[str, datetime]:
        """When each instance was launched (absent: EC2 no longer knows it)."""
        from botocore.exceptions import ClientError

        ec2: EC2Client = self._ec2 or aws.client("ec2")
        found: dict[str, datetime] = {}
        # A filter rather than InstanceIds: an id that vanished meanwhile is simply not listed,
        # instead of failing the whole call with InvalidInstanceID.NotFound.
        for chunk in chunked(sorted(set(instance_ids))):
            try:
                pages = ec2.get_paginator("describe_instances").paginate(
                    Filters=[{"Name": "instance-id", "Values": chunk}]
                )
                for page in pages:
                    for reservation in page.get("Reservations", []):
                        for instance in reservation.get("Instances", []):
                            when = _when(instance.get("LaunchTime"))
                            if when is not None and "InstanceId" in instance:
                                found[instance["InstanceId"]] = when
            except ClientError as exc:
                raise awserrors.translate(exc, "DescribeInstances") from exc
        return found

    def our_invocations(self, instance_id: str, document_name: str) -> list[OurInvocation]:
        """The invocations of ``document_name`` on the instance (SSM keeps 30 days of them)."""
        from botocore.exceptions import ClientError

        ssm: SSMClient = self._ssm or aws.client("ssm")
        found: list[OurInvocation] = []
        try:
            pages = ssm.get_paginator("list_command_invocations").paginate(
                InstanceId=instance_id, Filters=[{"key": "DocumentName", "value": document_name}]
            )
            for page in pages:
                found.extend(
                    OurInvocation(
                        row["CommandId"], row.get("Status", ""), _when(row.get("RequestedDateTime"))
                    )
                    for row in page.get("CommandInvocations", [])
                    # The filter says so already; checked again in case a caller drops it.
                    if row.get("DocumentName") == document_name and "CommandId" in row
                )
        except ClientError as exc:
            raise awserrors.translate(exc, "ListCommandInvocations") from exc
        return found
