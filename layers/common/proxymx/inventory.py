"""What exists, for the reconcile sweep: the listing reads (boto3, paginated), and nothing else.

The sweep then drives the adapters the event paths use (``loadbalancer.classic``/``nlb`` for a
load balancer, ``launch.autoscaling``/``runcommand`` through ``launch.configure`` for an
instance). This module only adds the reads that no event path needs: every Classic ELB, every
NLB, the fleet's groups with their waiting instances, instance launch times, and the
invocations of our document on one instance. Every error is translated here, once
(:func:`proxymx.errors.translate`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from proxymx.batching import chunked
from proxymx.errors import aws_errors, translate
from proxymx.frozen import frozen

if TYPE_CHECKING:
    from proxymx.aws import Clients

# Instance ids per DescribeInstances filter: 50, as every instance listing of the launch flow.
INSTANCES_PER_CALL = 50
# ListCommandInvocations statuses of an invocation that has not finished yet.
IN_FLIGHT_STATUSES = frozenset({"Pending", "InProgress", "Delayed", "Cancelling"})


@frozen
class WaitingInstance:
    instance_id: str
    state: str


@frozen
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


@frozen
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
    """The sweep's reads, across five services: each client is built at first use (a sweep that
    lists no waiting instance never creates the EC2 or SSM one)."""

    def __init__(self, clients: Clients) -> None:
        self.clients = clients

    # ----- load balancers ---------------------------------------------------------------------

    def classic_load_balancer_names(self) -> list[str]:
        elb = self.clients.elb
        names: list[str] = []
        try:
            for page in elb.get_paginator("describe_load_balancers").paginate():
                names.extend(d["LoadBalancerName"] for d in page.get("LoadBalancerDescriptions", []))
        except aws_errors() as exc:
            raise translate(exc, "list Classic load balancers") from exc
        return names

    def network_load_balancer_arns(self) -> list[str]:
        """Every NLB (application and gateway load balancers do not carry the PROXY protocol)."""
        elbv2 = self.clients.elbv2
        arns: list[str] = []
        try:
            for page in elbv2.get_paginator("describe_load_balancers").paginate():
                arns.extend(
                    lb["LoadBalancerArn"]
                    for lb in page.get("LoadBalancers", [])
                    if lb.get("Type") == "network"
                )
        except aws_errors() as exc:
            raise translate(exc, "list v2 load balancers") from exc
        return arns

    # ----- the launch fleet -----------------------------------------------------------------

    def fleet_groups(
        self, tag_key: str, tag_value: str, names: Sequence[str] = (), waiting_states: Iterable[str] = ()
    ) -> list[FleetGroup]:
        """Groups tagged ``tag_key=tag_value`` (and named ``names``, when given) with their
        instances in ``waiting_states``."""
        autoscaling = self.clients.autoscaling
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
        except aws_errors() as exc:
            raise translate(exc, "DescribeAutoScalingGroups") from exc
        return groups

    def launch_times(self, instance_ids: Iterable[str]) -> dict[str, datetime]:
        """When each instance was launched (absent: EC2 no longer knows it)."""
        ec2 = self.clients.ec2
        found: dict[str, datetime] = {}
        # A filter rather than InstanceIds: an id that vanished meanwhile is simply not listed,
        # instead of failing the whole call with InvalidInstanceID.NotFound.
        for chunk in chunked(sorted(set(instance_ids)), INSTANCES_PER_CALL):
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
            except aws_errors() as exc:
                raise translate(exc, "DescribeInstances") from exc
        return found

    def our_invocations(self, instance_id: str, document_name: str) -> list[OurInvocation]:
        """The invocations of ``document_name`` on the instance (SSM keeps 30 days of them)."""
        ssm = self.clients.ssm
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
        except aws_errors() as exc:
            raise translate(exc, "ListCommandInvocations") from exc
        return found
