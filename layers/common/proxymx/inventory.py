"""What exists, for the reconcile sweep and ``proxymx audit``: listing reads in pages and batches.

Load balancers (issue 12): a sweep's cost grows with API pages, not with resources.

- Classic: ``DescribeLoadBalancers`` 400 a page (listeners, backend policy names and registered
  instances included), ``DescribeTags`` 20 names a call. ``DescribeLoadBalancerPolicies`` (no batch
  form) only for an in-scope ELB with an SMTP port whose backend policies are not already known to
  be the PROXY policy: a port that lists ``proxymx-ProxyProtocol`` is known (:func:`known_policies`).
- v2: ``DescribeLoadBalancers`` and ``DescribeTargetGroups`` 400 a page (a group lists its load
  balancers), ``DescribeTags`` 20 ARNs a call. ``DescribeListeners`` (one load balancer a call) and
  ``DescribeTargetGroupAttributes`` (one group a call) are left to the domain code, and only for
  groups in scope: :meth:`proxymx.loadbalancer.service.EnableProxyProtocol.ensure_listed_v2`.

So for L compliant Classic ELBs a sweep makes ceil(L/400) + ceil(L/20) calls; an NLB adds one
listener read and one attribute read per SMTP target group in scope (tests/integration/
test_inventory_pages.py counts them). ``DescribeTargetHealth`` is read only for a unit about to be
switched (the interlock), never for a compliant one -- unless a live fleet instance is stale for
what it sends: the sweep's refresh then reads the groups of that requirement (readiness itself
comes from one paged DescribeInstances per sweep, :class:`proxymx.loadbalancer.targets.
SweepReadiness`; docs/agreement.md, "The sweep", states the bound).

The sweep then drives the adapters the event paths use (``loadbalancer.classic``/``nlb`` for a
load balancer, ``launch.autoscaling``/``runcommand`` through ``launch.configure`` for an
instance). Every error is translated here, once (:func:`proxymx.errors.translate`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from proxymx.batching import chunked
from proxymx.errors import aws_errors, error_code, translate
from proxymx.frozen import frozen
from proxymx.loadbalancer.plan import (
    NLB_PROXY_PROTOCOLS,
    PROXY_POLICY_NAME,
    PROXY_POLICY_TYPE,
    ClassicPolicy,
    ClassicState,
    eligible_classic_ports,
)
from proxymx.scope import Tags, load_balancer_out_of_scope

if TYPE_CHECKING:
    from proxymx.aws import Clients
    from proxymx.config import Settings

# Instance ids per DescribeInstances filter: 50, as every instance listing of the launch flow.
INSTANCES_PER_CALL = 50
# DescribeLoadBalancers (Classic and v2) and DescribeTargetGroups return at most 400 a page.
PAGE_SIZE = 400
# DescribeTags takes at most 20 load balancer names (Classic) or 20 ARNs (v2) a call.
TAGS_PER_CALL = 20
# ListCommandInvocations statuses of an invocation that has not finished yet.
IN_FLIGHT_STATUSES = frozenset({"Pending", "InProgress", "Delayed", "Cancelling"})


@frozen
class ListedClassic:
    """One Classic ELB as its page described it, with its tags; ``state.policies`` are filled by
    :meth:`Inventory.classic_policies` (read only when needed)."""

    state: ClassicState
    # Policies.OtherPolicies: every non-stickiness policy of the ELB (empty: nothing to read).
    policy_names: tuple[str, ...]
    # Why its tags could not be read (its scope is then unknown: the sweep reports it failed).
    error: str | None = None

    @property
    def name(self) -> str:
        return self.state.name


@frozen
class ListedV2:
    """One v2 load balancer (any type: audit names ALBs as out of scope) with its tags and the
    target groups that list it (raw DescribeTargetGroups entries)."""

    arn: str
    name: str
    type: str
    ip_address_type: str
    tags: Tags
    target_groups: tuple[dict[str, Any], ...] = ()
    # Why its tags or its groups' could not be read (scope unknown: reported failed).
    error: str | None = None


@frozen
class V2Listing:
    load_balancers: tuple[ListedV2, ...]
    # Target group ARN -> its tags (groups of a network load balancer only).
    target_group_tags: dict[str, dict[str, str]]

    @property
    def network(self) -> tuple[ListedV2, ...]:
        return tuple(lb for lb in self.load_balancers if lb.type == "network")

    def ip_address_types(self) -> dict[str, str]:
        return {lb.arn: lb.ip_address_type for lb in self.load_balancers}


def _in_batches(
    read: Callable[[list[str]], dict[str, dict[str, str]]], keys: list[str], what: str
) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """Tags of ``keys``, 20 a call. A batch that fails is read again one key a call, so one load
    balancer that cannot be read (a Deny on it, deleted meanwhile) fails alone: (tags, key -> why)."""
    found: dict[str, dict[str, str]] = {}
    failed: dict[str, str] = {}
    for chunk in chunked(keys, TAGS_PER_CALL):
        try:
            found.update(read(chunk))
            continue
        except aws_errors() as exc:
            if len(chunk) == 1:
                _failed_or_gone(failed, chunk[0], exc, what)
                continue
        for key in chunk:
            try:
                found.update(read([key]))
            except aws_errors() as exc:
                _failed_or_gone(failed, key, exc, what)
    return found, failed


# Deleted between its page and its tags: not a failure, nothing left to check (docs/faults.md).
GONE = "gone"
NOT_FOUND = ("LoadBalancerNotFound", "TargetGroupNotFound", "AccessPointNotFound")


def _failed_or_gone(failed: dict[str, str], key: str, exc: Exception, what: str) -> None:
    failed[key] = GONE if error_code(exc) in NOT_FOUND else str(translate(exc, f"{what} {key}"))


def known_policies(listed: ListedClassic, settings: Settings) -> tuple[ClassicPolicy, ...] | None:
    """The policies the plan needs, when known without DescribeLoadBalancerPolicies; else None.

    Known: the ELB is out of scope or forwards no SMTP (the plan reads no policy), it has no policy
    at all, or every SMTP port lists ``proxymx-ProxyProtocol``. That name is proxymx's own: created
    only by proxymx as ProxyProtocolPolicyType with ProxyProtocol=true, and a Classic ELB policy
    cannot be modified (only deleted, which the DeleteLoadBalancerPolicy event and the port's list
    show). A port with any other policy name is read, since the name says nothing about the type.
    """
    state = listed.state
    if not listed.policy_names:
        return ()
    if load_balancer_out_of_scope([state.tags], settings) is not None:
        return ()
    ports = eligible_classic_ports(state.listeners, settings.smtp_ports)
    if not ports:
        return ()
    ours = PROXY_POLICY_NAME in listed.policy_names
    if ours and all(PROXY_POLICY_NAME in state.backend_policies.get(port, ()) for port in ports):
        return (ClassicPolicy(PROXY_POLICY_NAME, PROXY_POLICY_TYPE, {"ProxyProtocol": "true"}),)
    return None


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

    # ----- load balancers, in pages ------------------------------------------------------------

    def classic_load_balancers(self) -> list[ListedClassic]:
        """Every Classic ELB: pages of 400, then tags 20 names a call."""
        from proxymx.loadbalancer.classic import backend_policies, listener

        elb = self.clients.elb
        descriptions: list[dict[str, Any]] = []
        try:
            for page in elb.get_paginator("describe_load_balancers").paginate(
                PaginationConfig={"PageSize": PAGE_SIZE}
            ):
                descriptions.extend(dict(d) for d in page.get("LoadBalancerDescriptions", []))
        except aws_errors() as exc:
            raise translate(exc, "list Classic load balancers") from exc
        names = [d["LoadBalancerName"] for d in descriptions]

        def read_tags(chunk: list[str]) -> dict[str, dict[str, str]]:
            return {
                found.get("LoadBalancerName", ""): {
                    t["Key"]: t.get("Value", "") for t in found.get("Tags", [])
                }
                for found in elb.describe_tags(LoadBalancerNames=chunk)["TagDescriptions"]
            }

        tags, failed = _in_batches(read_tags, names, "tags of Classic load balancer")
        return [
            ListedClassic(
                ClassicState(
                    name=d["LoadBalancerName"],
                    listeners=tuple(listener(ld["Listener"]) for ld in d.get("ListenerDescriptions", [])),
                    backend_policies=backend_policies(d),
                    policies=(),
                    tags=tags.get(d["LoadBalancerName"], {}),
                    instances=tuple(i["InstanceId"] for i in d.get("Instances", []) if "InstanceId" in i),
                ),
                tuple(d.get("Policies", {}).get("OtherPolicies", [])),
                failed.get(d["LoadBalancerName"]),
            )
            for d in descriptions
            if failed.get(d["LoadBalancerName"]) != GONE
        ]

    def classic_policies(self, listed: ListedClassic, settings: Settings) -> ClassicState:
        """The ELB's state with the policies its plan needs: read (one call) only when not known."""
        from dataclasses import replace

        from proxymx.loadbalancer.classic import policy

        known = known_policies(listed, settings)
        if known is not None:
            return replace(listed.state, policies=known)
        try:
            descriptions = self.clients.elb.describe_load_balancer_policies(LoadBalancerName=listed.name)
        except aws_errors() as exc:
            raise translate(exc, f"Classic load balancer {listed.name}") from exc
        return replace(listed.state, policies=tuple(policy(p) for p in descriptions["PolicyDescriptions"]))

    def v2_load_balancers(self) -> V2Listing:
        """Every v2 load balancer and every target group: pages of 400; tags of the NLBs and of
        their TCP/TLS target groups, 20 ARNs a call."""
        elbv2 = self.clients.elbv2
        balancers: list[dict[str, Any]] = []
        groups: list[dict[str, Any]] = []
        try:
            for lb_page in elbv2.get_paginator("describe_load_balancers").paginate(
                PaginationConfig={"PageSize": PAGE_SIZE}
            ):
                balancers.extend(dict(lb) for lb in lb_page.get("LoadBalancers", []))
            if any(lb.get("Type") == "network" for lb in balancers):
                for tg_page in elbv2.get_paginator("describe_target_groups").paginate(
                    PaginationConfig={"PageSize": PAGE_SIZE}
                ):
                    groups.extend(dict(tg) for tg in tg_page.get("TargetGroups", []))
        except aws_errors() as exc:
            raise translate(exc, "list v2 load balancers and target groups") from exc
        network = {lb["LoadBalancerArn"] for lb in balancers if lb.get("Type") == "network"}
        by_lb: dict[str, list[dict[str, Any]]] = {}
        for tg in groups:
            for lb_arn in tg.get("LoadBalancerArns", []):
                by_lb.setdefault(lb_arn, []).append(tg)
        # Groups that can carry the header; a UDP group or an ALB's HTTP group needs no tag read.
        tagged_groups = [
            tg["TargetGroupArn"]
            for tg in groups
            if (tg.get("Protocol") or "").upper() in NLB_PROXY_PROTOCOLS
            and any(arn in network for arn in tg.get("LoadBalancerArns", []))
        ]
        tags, failed = self._v2_tags([*sorted(network), *tagged_groups])
        listed = tuple(
            ListedV2(
                arn=lb["LoadBalancerArn"],
                name=lb.get("LoadBalancerName", lb["LoadBalancerArn"]),
                type=lb.get("Type", "application"),
                ip_address_type=str(lb.get("IpAddressType", "ipv4")),
                tags=tags.get(lb["LoadBalancerArn"], {}),
                target_groups=tuple(by_lb.get(lb["LoadBalancerArn"], ())),
                error=next(
                    (
                        failed[arn]
                        for arn in (
                            lb["LoadBalancerArn"],
                            *(tg["TargetGroupArn"] for tg in by_lb.get(lb["LoadBalancerArn"], ())),
                        )
                        if arn in failed
                    ),
                    None,
                ),
            )
            for lb in balancers
        )
        return V2Listing(listed, {arn: tags.get(arn, {}) for arn in tagged_groups})

    def _v2_tags(self, arns: list[str]) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
        def read_tags(chunk: list[str]) -> dict[str, dict[str, str]]:
            return {
                d["ResourceArn"]: {t["Key"]: t.get("Value", "") for t in d.get("Tags", [])}
                for d in self.clients.elbv2.describe_tags(ResourceArns=chunk)["TagDescriptions"]
            }

        tags, failed = _in_batches(read_tags, list(dict.fromkeys(arns)), "tags of")
        # A v2 resource deleted meanwhile: no tags, no failure (its own reads find it gone).
        return tags, {arn: why for arn, why in failed.items() if why != GONE}

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

    def fleet_instances(self, tag_key: str, tag_value: str) -> dict[str, dict[str, str]]:
        """Running (or starting) instances tagged ``tag_key=tag_value``: id -> tags, in pages of
        1,000 (their readiness tag with them: no call per instance)."""
        found: dict[str, dict[str, str]] = {}
        try:
            pages = self.clients.ec2.get_paginator("describe_instances").paginate(
                Filters=[
                    {"Name": f"tag:{tag_key}", "Values": [tag_value]},
                    {"Name": "instance-state-name", "Values": ["pending", "running"]},
                ],
                PaginationConfig={"PageSize": 1000},
            )
            for page in pages:
                for reservation in page.get("Reservations", []):
                    for instance in reservation.get("Instances", []):
                        found[instance["InstanceId"]] = {
                            t["Key"]: t.get("Value", "") for t in instance.get("Tags", [])
                        }
        except aws_errors() as exc:
            raise translate(exc, "DescribeInstances of the fleet") from exc
        return found

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
