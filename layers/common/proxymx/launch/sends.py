"""The launch side agrees (issue 7.4): configure each launch for what its group's units SEND NOW.

Read the policy / attribute, never the scope: an opted-out Classic ELB switched on earlier still
sends v1; an NLB target group with ``proxy_protocol_v2.enabled`` sends v2.

- header ports H (with the versions sent to them) and plain ports P: the SMTP instance ports of
  every unit attached to the group (``LoadBalancerNames``, ``TargetGroupARNs``,
  ``TrafficSources``), split by whether that unit sends the header;
- H and P overlap -> a contradiction no configuration satisfies: ABANDON at once with the reason
  (metric ``LaunchConflicts``): one unit would answer ``500`` or the other ``421`` forever;
- H not empty -> ``Mode=configure``, ``SmtpPorts=H``, ``ProxyProtocol`` v1 / v2 / any (both);
- H empty -> ``Mode=revert`` with ``SmtpPorts`` = the SmtpPorts setting plus P: proves Postfix
  plain (a baked AMI tagged ready behind units that send nothing is reverted instead of
  answering ``421`` forever). A group with no load balancer is plain too; if its instances are
  later registered behind a unit that sends, the registration path configures them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any, Literal

from proxymx.aws import Clients
from proxymx.config import Settings
from proxymx.errors import aws_errors, translate
from proxymx.frozen import frozen
from proxymx.launch.plan import document_parameters
from proxymx.loadbalancer.classic import ClassicElb
from proxymx.loadbalancer.nlb import NetworkLoadBalancers
from proxymx.loadbalancer.plan import eligible_classic_ports

Mode = Literal["configure", "revert"]


@frozen
class UnitSends:
    unit: str
    ports: tuple[int, ...]
    # None: the unit sends no header to these ports.
    version: Literal["v1", "v2"] | None


@frozen
class LaunchDecision:
    mode: Mode
    smtp_ports: tuple[int, ...]
    proxy_protocol: str
    conflict: str | None = None

    def parameters(self, settings: Settings) -> dict[str, str]:
        return {
            **document_parameters(settings),
            "SmtpPorts": ",".join(str(p) for p in self.smtp_ports),
            "ProxyProtocol": self.proxy_protocol,
            "Mode": self.mode,
        }


def decide_launch(units: Sequence[UnitSends], settings: Settings) -> LaunchDecision:
    """Pure: the document run a launch behind these units needs."""
    header: dict[int, set[str]] = {}
    plain: dict[int, list[str]] = {}
    for unit in units:
        for port in unit.ports:
            if unit.version is None:
                plain.setdefault(port, []).append(unit.unit)
            else:
                header.setdefault(port, set()).add(unit.version)
    both = sorted(set(header) & set(plain))
    if both:
        senders = [u.unit for u in units if u.version is not None and set(u.ports) & set(both)]
        silent = sorted({name for port in both for name in plain[port]})
        return LaunchDecision(
            "configure",
            tuple(sorted(header)),
            "any",
            conflict=(
                f"port(s) {both} get the PROXY header from {senders} and none from {silent}: "
                "no Postfix configuration serves both"
            ),
        )
    if header:
        versions = set().union(*header.values())
        version = versions.pop() if len(versions) == 1 else "any"
        return LaunchDecision("configure", tuple(sorted(header)), version)
    return LaunchDecision("revert", tuple(sorted({*settings.smtp_ports, *plain})), settings.proxy_protocol)


class UnitsOfGroup:
    """Reads what the units attached to an Auto Scaling group send now."""

    def __init__(self, settings: Settings, clients: Clients) -> None:
        self.settings = settings
        self.clients = clients

    @cached_property
    def classic(self) -> ClassicElb:
        return ClassicElb(self.clients.elb)

    @cached_property
    def nlb(self) -> NetworkLoadBalancers:
        return NetworkLoadBalancers(self.clients.elbv2)

    def sends(self, group_name: str) -> list[UnitSends]:
        try:
            groups = self.clients.autoscaling.describe_auto_scaling_groups(
                AutoScalingGroupNames=[group_name]
            )["AutoScalingGroups"]
        except aws_errors() as exc:
            raise translate(exc, f"DescribeAutoScalingGroups {group_name}") from exc
        if not groups:
            return []
        classic, target_groups = attachments(groups[0])
        units = [self._classic(name) for name in classic]
        units.extend(self._target_group(arn) for arn in target_groups)
        return [u for u in units if u.ports]

    def _classic(self, name: str) -> UnitSends:
        state = self.classic.describe(name, with_tags=False)
        ports = eligible_classic_ports(state.listeners, self.settings.smtp_ports)
        proxy = {p.name for p in state.policies if p.enables_proxy_protocol}
        sending = tuple(p for p in ports if proxy & set(state.backend_policies.get(p, ())))
        if sending:
            return UnitSends(f"classic/{name}", sending, "v1")
        return UnitSends(f"classic/{name}", tuple(ports), None)

    def _target_group(self, arn: str) -> UnitSends:
        group = self.nlb.target_group(arn)
        (state,) = self.nlb.target_group_states([group])
        if not state.supports_proxy_protocol or not state.carries_smtp(self.settings.smtp_ports):
            return UnitSends(f"tg/{arn}", (), None)
        port = (state.port,) if state.port else ()
        return UnitSends(f"tg/{arn}", port, "v2" if self.nlb.proxy_protocol_v2(arn) else None)


def attachments(group: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(Classic ELB names, target group ARNs) attached to a group, TrafficSources included."""
    classic = list(group.get("LoadBalancerNames", []))
    target_groups = list(group.get("TargetGroupARNs", []))
    for source in group.get("TrafficSources", []) or []:
        identifier = str(source.get("Identifier", ""))
        if ":targetgroup/" in identifier:
            target_groups.append(identifier)
        elif identifier and source.get("Type") in (None, "elb") and ":" not in identifier:
            classic.append(identifier)
    return list(dict.fromkeys(classic)), list(dict.fromkeys(target_groups))


def launch_decision(group_name: str, settings: Settings, clients: Clients) -> LaunchDecision:
    return decide_launch(UnitsOfGroup(settings, clients).sends(group_name), settings)
