"""Who is behind a unit, and is each of them ready? (issue 7.2; the only EC2 code of this flow)

A *unit* is what the PROXY setting is switched on: a Classic ELB (all its SMTP instance ports at
once) or one NLB target group. Its targets are:

- Classic: the registered instances (DescribeLoadBalancers ``Instances``).
- NLB: DescribeTargetHealth of the group minus ``draining`` targets (they take no new
  connections); instance targets by id, IP targets mapped to an instance by private IP, or
  ``unknown`` (never ready) when no instance has that address.
- Both: instances in ``Pending:Wait``/``Warmed:Pending:Wait`` of every Auto Scaling group attached
  to the unit (``LoadBalancerNames``, ``TargetGroupARNs``, ``TrafficSources``): a launch racing a
  switch must count, or it is released plain behind a header.

Tags, state and private IPs come from DescribeInstances with an ``instance-id`` filter, at most
200 values a call: one call per 200 targets, never one per instance.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from proxymx.aws import Clients
from proxymx.config import FLEET_TAG_KEY
from proxymx.errors import ProxymxError, aws_errors, translate
from proxymx.frozen import frozen
from proxymx.loadbalancer.readiness import READINESS_TAG_KEY, Readiness, Requirement

# A DescribeInstances filter takes at most 200 values.
FILTER_VALUES_PER_CALL = 200
# DescribeInstances returns at most 1,000 instances a page (MaxResults) when it is given filters.
INSTANCES_PER_PAGE = 1000
# Instances that take (or are about to take) traffic: a stopped or terminated fleet instance
# proves nothing about the units that send.
LIVE_STATES = frozenset({"pending", "running"})
_Read = TypeVar("_Read")
WAITING_STATES = frozenset({"Pending:Wait", "Warmed:Pending:Wait"})
UNKNOWN = "unknown"


@frozen
class Target:
    """One target of a unit: an instance id (or ``unknown:<ip>``) and the port it is sent to."""

    target_id: str
    port: int | None
    source: str  # "registered", "ip", "pending-wait"


@frozen
class TargetReadiness:
    target_id: str
    readiness: Readiness
    in_fleet: bool
    # The port the unit sends to this target (an NLB per-target override); None: every port of
    # the requirement (a Classic ELB sends to every eligible instance port).
    port: int | None = None
    # Held in Pending:Wait by an attached group: the launch flow configures it (the cutover waits).
    launching: bool = False


@frozen
class Unready:
    target_id: str
    why: str
    in_fleet: bool
    launching: bool = False

    def describe(self) -> str:
        fleet = "fleet" if self.in_fleet else "outside the fleet"
        return f"{self.target_id} ({self.why}; {fleet})"


def unready_targets(requirement: Requirement, targets: Sequence[TargetReadiness]) -> tuple[Unready, ...]:
    """Pure: the targets whose readiness does not cover the requirement (empty: switch allowed)."""
    unready = []
    for target in targets:
        wanted = requirement if target.port is None else replace(requirement, ports=(target.port,))
        covered, why = target.readiness.covers(wanted)
        if not covered:
            unready.append(Unready(target.target_id, why, target.in_fleet, target.launching))
    return tuple(unready)


@frozen
class InstanceFacts:
    instance_id: str
    tags: Mapping[str, str]
    state: str
    private_ips: tuple[str, ...]


class TargetDiscovery:
    """Reads targets and their readiness through ``clients`` (EC2, ELB, ELBv2, Auto Scaling)."""

    def __init__(self, fleet_tag_value: str, clients: Clients) -> None:
        self.fleet_tag_value = fleet_tag_value
        self.clients = clients
        # Read-only reports (``proxymx audit`` without writes) read the account's Auto Scaling
        # groups once per run instead of once per unit. A path that writes never sets this: its
        # Pending:Wait check must be read right before the switch, or a launch that started a
        # minute ago is released plain behind a header.
        self.snapshot_groups = False
        self._groups: list[Mapping[str, Any]] | None = None

    # ----- targets of a unit -----------------------------------------------------------------

    def classic_targets(self, name: str, instance_ids: Sequence[str]) -> list[Target]:
        """The registered instances (read with the load balancer) plus attached groups' launches."""
        # A Classic ELB sends to every eligible instance port: the requirement's ports (port None).
        registered = [Target(i, None, "registered") for i in instance_ids]
        return _merge(registered, self.pending_wait(load_balancer_name=name))

    def target_group_targets(self, arn: str, group_port: int | None) -> list[Target]:
        registered = self.registered_targets(arn, group_port)
        waiting = [Target(t.target_id, group_port, t.source) for t in self.pending_wait(target_group_arn=arn)]
        return _merge(registered, waiting)

    def registered_targets(
        self, arn: str, group_port: int | None, known_ips: Mapping[str, str] | None = None
    ) -> list[Target]:
        """DescribeTargetHealth of one group (no batch form in the API), without the launches held
        by attached groups. ``known_ips``: private IP -> instance already read in pages (the
        sweep's :class:`SweepReadiness`); only the IPs it does not know cost a DescribeInstances."""
        try:
            descriptions = self.clients.elbv2.describe_target_health(TargetGroupArn=arn)[
                "TargetHealthDescriptions"
            ]
        except aws_errors() as exc:
            raise translate(exc, f"targets of {arn}") from exc
        instance_targets: list[Target] = []
        ip_targets: dict[str, int | None] = {}
        for description in descriptions:
            # Draining targets take no new connection: the header does not reach them.
            if (description.get("TargetHealth") or {}).get("State") == "draining":
                continue
            target = description["Target"]
            port = target.get("Port") or group_port
            if str(target["Id"]).startswith("i-"):
                instance_targets.append(Target(target["Id"], port, "registered"))
            elif "arn:" not in str(target["Id"]):  # a Lambda/ALB target is not an MTA
                ip_targets[str(target["Id"])] = port
        known = known_ips or {}
        mapped = {ip: known[ip] for ip in ip_targets if ip in known}
        mapped.update(self.instances_by_private_ip(ip for ip in ip_targets if ip not in known))
        for ip, port in ip_targets.items():
            instance_targets.append(Target(mapped.get(ip, f"{UNKNOWN}:{ip}"), port, "ip"))
        return instance_targets

    def pending_wait(
        self, *, load_balancer_name: str | None = None, target_group_arn: str | None = None
    ) -> list[Target]:
        """Instances held in Pending:Wait by a group attached to the unit (a launch racing a switch)."""
        found: list[Target] = []
        for group in self._all_groups():
            if not _attached(group, load_balancer_name, target_group_arn):
                continue
            found.extend(
                Target(i["InstanceId"], None, "pending-wait")
                for i in group.get("Instances", [])
                if i.get("LifecycleState") in WAITING_STATES
            )
        return found

    def _all_groups(self) -> list[Mapping[str, Any]]:
        if self.snapshot_groups and self._groups is not None:
            return self._groups
        groups: list[Mapping[str, Any]] = []
        try:
            for page in self.clients.autoscaling.get_paginator("describe_auto_scaling_groups").paginate():
                groups.extend(page["AutoScalingGroups"])
        except aws_errors() as exc:
            raise translate(exc, "DescribeAutoScalingGroups") from exc
        if self.snapshot_groups:
            self._groups = groups
        return groups

    def launching_instances(self) -> frozenset[str]:
        """Every instance held in Pending:Wait by any Auto Scaling group of the account (pages)."""
        return frozenset(
            i["InstanceId"]
            for group in self._all_groups()
            for i in group.get("Instances", [])
            if i.get("LifecycleState") in WAITING_STATES
        )

    def group_instances(self, group_name: str) -> list[str]:
        """The instances of one Auto Scaling group that take traffic or soon will (not those held
        in Pending:Wait: the launch flow configures them; not those leaving)."""
        try:
            groups = self.clients.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group_name])
        except aws_errors() as exc:
            raise translate(exc, "DescribeAutoScalingGroups") from exc
        return [
            i["InstanceId"]
            for group in groups.get("AutoScalingGroups", [])
            for i in group.get("Instances", [])
            if i.get("LifecycleState") not in WAITING_STATES
            and not str(i.get("LifecycleState", "")).startswith(("Terminat", "Detach", "Standby"))
        ]

    # ----- instances --------------------------------------------------------------------------

    def instances(self, instance_ids: Iterable[str]) -> dict[str, InstanceFacts]:
        ids = sorted({i for i in instance_ids if i.startswith("i-")})
        return self._describe([("instance-id", ids)])

    def tagged_instances(self) -> dict[str, InstanceFacts]:
        """Every instance carrying a proxymx tag (``proxymx:fleet`` of any fleet, or
        ``proxymx:proxy-protocol``): ONE paged DescribeInstances, 1,000 instances a page (the
        values of one filter are OR'ed). An instance without either tag is outside the fleet and
        not ready, whatever else it carries."""
        found: dict[str, InstanceFacts] = {}
        try:
            pages = self.clients.ec2.get_paginator("describe_instances").paginate(
                Filters=[{"Name": "tag-key", "Values": [FLEET_TAG_KEY, READINESS_TAG_KEY]}],
                PaginationConfig={"PageSize": INSTANCES_PER_PAGE},
            )
            for page in pages:
                for reservation in page.get("Reservations", []):
                    for instance in reservation.get("Instances", []):
                        found[instance["InstanceId"]] = _facts(instance)
        except aws_errors() as exc:
            raise translate(exc, "DescribeInstances of the tagged instances") from exc
        return found

    def instances_by_private_ip(self, ips: Iterable[str]) -> dict[str, str]:
        wanted = sorted(set(ips))
        if not wanted:
            return {}
        facts = self._describe([("network-interface.addresses.private-ip-address", wanted)])
        return {ip: fact.instance_id for fact in facts.values() for ip in fact.private_ips if ip in wanted}

    def _describe(self, filters: list[tuple[str, list[str]]]) -> dict[str, InstanceFacts]:
        found: dict[str, InstanceFacts] = {}
        for name, values in filters:
            for start in range(0, len(values), FILTER_VALUES_PER_CALL):
                chunk = values[start : start + FILTER_VALUES_PER_CALL]
                try:
                    pages = self.clients.ec2.get_paginator("describe_instances").paginate(
                        Filters=[{"Name": name, "Values": chunk}]
                    )
                    for page in pages:
                        for reservation in page.get("Reservations", []):
                            for instance in reservation.get("Instances", []):
                                found[instance["InstanceId"]] = _facts(instance)
                except aws_errors() as exc:
                    raise translate(exc, "DescribeInstances") from exc
        return found

    def readiness(
        self, targets: Sequence[Target], known: Mapping[str, InstanceFacts] | None = None
    ) -> list[TargetReadiness]:
        """Each target's readiness and fleet membership, read in pages of 200. ``known``: facts
        already read (the sweep's pages); only the targets missing from it are read."""
        known = known or {}
        facts = {i: known[i] for i in {t.target_id for t in targets} if i in known}
        facts.update(self.instances(t.target_id for t in targets if t.target_id not in known))
        result = []
        for target in _merge(targets):
            fact = facts.get(target.target_id)
            if fact is None:
                why = (
                    "IP target with no instance (unknown)"
                    if target.target_id.startswith(UNKNOWN)
                    else "instance not found"
                )
                result.append(
                    TargetReadiness(
                        target.target_id,
                        Readiness("unknown", why=why),
                        False,
                        target.port,
                        target.source == "pending-wait",
                    )
                )
                continue
            result.append(
                TargetReadiness(
                    target.target_id,
                    Readiness.parse(fact.tags.get(READINESS_TAG_KEY)),
                    fact.tags.get(FLEET_TAG_KEY) == self.fleet_tag_value,
                    target.port,
                    target.source == "pending-wait",
                )
            )
        return result


def _attached(group: Mapping[str, Any], load_balancer_name: str | None, target_group_arn: str | None) -> bool:
    if load_balancer_name is not None and load_balancer_name in group.get("LoadBalancerNames", []):
        return True
    if target_group_arn is not None and target_group_arn in group.get("TargetGroupARNs", []):
        return True
    for source in group.get("TrafficSources", []) or []:
        identifier = source.get("Identifier")
        if identifier is not None and identifier in (load_balancer_name, target_group_arn):
            return True
    return False


def _merge(*lists: Iterable[Target]) -> list[Target]:
    merged: dict[str, Target] = {}
    for items in lists:
        for target in items:
            known = merged.setdefault(target.target_id, target)
            if target.source == "pending-wait" and known.source != "pending-wait":
                # Registered already (an attached group registers its launches early) and still
                # held by the hook: it is a launch (the port stays the registered one).
                merged[target.target_id] = replace(known, source="pending-wait")
    return list(merged.values())


def _facts(instance: Mapping[str, Any]) -> InstanceFacts:
    ips = [
        address["PrivateIpAddress"]
        for interface in instance.get("NetworkInterfaces", [])
        for address in interface.get("PrivateIpAddresses", [])
        if address.get("PrivateIpAddress")
    ]
    if instance.get("PrivateIpAddress"):
        ips.append(instance["PrivateIpAddress"])
    return InstanceFacts(
        instance_id=instance["InstanceId"],
        tags={t["Key"]: t.get("Value", "") for t in instance.get("Tags", [])},
        state=(instance.get("State") or {}).get("Name", ""),
        private_ips=tuple(dict.fromkeys(ips)),
    )


class SweepReadiness:
    """One sweep's view of readiness, read in account-wide pages (issue 12), for the refresh of
    stale fleet targets behind units that already send the header (issue 7.2).

    Built per sweep (a Reconcile run), never shared with a path that switches a unit on: the
    interlock reads its targets right before the switch. A snapshot is good enough here: the
    refresh only ever configures a fleet instance for what its unit already sends (it cannot
    create a mismatch), a claim keeps it to one command per instance, and what changes after the
    snapshot is seen by the next sweep.

    What it costs, read lazily and at most once per sweep each:

    - :attr:`tagged`: one paged DescribeInstances of every instance with a proxymx tag (1,000 a
      page), read at the first unit that sends;
    - :meth:`launching`: the Auto Scaling group pages, only once a stale target has been found (a
      launch held in Pending:Wait is the launch flow's: its own command is in flight).
    """

    def __init__(self, discovery: TargetDiscovery) -> None:
        self.discovery = discovery
        self._tagged: dict[str, InstanceFacts] | None = None
        self._launching: frozenset[str] | None = None
        self._stale: dict[Requirement, bool] = {}
        # A page that failed fails every unit that needs it (loud: the sweep's alarm), read once.
        self._failed: ProxymxError | None = None

    @property
    def tagged(self) -> dict[str, InstanceFacts]:
        if self._tagged is None:
            self._tagged = self._once(self.discovery.tagged_instances)
        return self._tagged

    @property
    def by_private_ip(self) -> dict[str, str]:
        return {ip: fact.instance_id for fact in self.tagged.values() for ip in fact.private_ips}

    def launching(self) -> frozenset[str]:
        if self._launching is None:
            self._launching = self._once(self.discovery.launching_instances)
        return self._launching

    def _once(self, read: Callable[[], _Read]) -> _Read:
        if self._failed is not None:
            raise self._failed
        try:
            return read()
        except ProxymxError as exc:
            self._failed = exc
            raise

    def readiness(self, targets: Sequence[Target]) -> list[TargetReadiness]:
        """From the pages; a target they do not list (no proxymx tag: outside the fleet, not
        ready) is read by id, so its report names the instance as a per-unit read would."""
        return self.discovery.readiness(targets, self.tagged)

    def stale_fleet(self, requirement: Requirement) -> bool:
        """Is any live fleet instance of the account, not held by a launch, not ready for
        ``requirement``? If none is, no unit with that requirement can have a stale fleet target,
        and its targets need not be read (the common case: every fleet instance fresh)."""
        if requirement not in self._stale:
            fleet = self.discovery.fleet_tag_value
            stale = {
                fact.instance_id
                for fact in self.tagged.values()
                if fact.tags.get(FLEET_TAG_KEY) == fleet
                and fact.state in LIVE_STATES
                and not Readiness.parse(fact.tags.get(READINESS_TAG_KEY)).covers(requirement)[0]
            }
            self._stale[requirement] = bool(stale and stale - self.launching())
        return self._stale[requirement]
